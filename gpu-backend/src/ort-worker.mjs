// Worker entry: registers tsx in this thread (loaders do not carry over into workers), then runs the
// TypeScript worker. The server and the tests start workers through this file.
import { register } from 'tsx/esm/api';

register();
await import('./ort-worker.ts');
