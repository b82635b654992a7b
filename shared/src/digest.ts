// The prompt digest: SHA-256 over the prompt tokens as little-endian u16. It keys the expert tier's
// prompt cache, so two prompts share a cache entry only if they are the same tokens.

export async function promptDigest(tokens: readonly number[]): Promise<Uint8Array> {
  const buf = new Uint8Array(tokens.length * 2);
  const dv = new DataView(buf.buffer);
  tokens.forEach((t, i) => dv.setUint16(i * 2, t, true));
  return new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
}
