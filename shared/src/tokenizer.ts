// Byte-level tokenizer: ids 0-255 are bytes, then four specials. No merges, so every UTF-8 string round-trips.
export const BOS = 256;
export const EOS = 257;
export const THINK = 258;
export const END_THINK = 259;
export const SPECIAL_NAMES: Record<number, string> = {
  [BOS]: '<bos>',
  [EOS]: '<eos>',
  [THINK]: '<think>',
  [END_THINK]: '</think>',
};

const encoder = new TextEncoder();

export function encodeText(text: string): number[] {
  return Array.from(encoder.encode(text));
}

/** Decodes the byte tokens; specials carry no text. Invalid UTF-8 (a babbling model) becomes U+FFFD. */
export function decodeTokens(ids: readonly number[]): string {
  const bytes = new Uint8Array(ids.length);
  let n = 0;
  for (const id of ids) if (id >= 0 && id < 256) bytes[n++] = id;
  return new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(0, n));
}

/** Human-readable rendering for debugging and the CLI: specials by name, bytes as text. */
export function showTokens(ids: readonly number[]): string {
  let out = '';
  let run: number[] = [];
  const flush = () => {
    out += decodeTokens(run);
    run = [];
  };
  for (const id of ids) {
    if (id < 256) run.push(id);
    else {
      flush();
      out += SPECIAL_NAMES[id] ?? `<${id}>`;
    }
  }
  flush();
  return out;
}
