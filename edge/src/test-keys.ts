// The API keys the workerd tests use: the test config registers their hashes (and limits), and the tests
// send them. One list, so a key added for a test cannot be missing on either side.
export const KEYS = {
  alice: 'sk-test-alice',
  bob: 'sk-test-bob',
  limited: 'sk-test-limited',
  metered: 'sk-test-metered',
};
