// Weight layouts inside the kernels' memory, written once at load. Mirrors wasm/assembly/layout.ts:
// change both together and bump ABI_VERSION.

export const ABI_VERSION = 2;
export const DESC_BYTES = 48;

export const KIND_INT8 = 1;
export const KIND_INT8_24 = 2;
export const KIND_F32 = 3;

export const MODE_FAST = 0;
export const MODE_EXACT = 1;
export const MODE_RELAXED_DOT = 2;
export const MODE_PRECISE = 3;

/** i32 slots of the descriptor (byte offset / 4). */
export const D = {
  kind: 0,
  rows: 1,
  cols: 2,
  rowsPad: 3,
  colsPad: 4,
  w: 5,
  scale: 6,
  bias: 7,
  rowSum: 8,
  mode: 9,
} as const;

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

export interface Geometry {
  rowsPad: number;
  colsPad: number;
  /** Bytes of the weight block. */
  bytes: number;
}

/** int8 tiles of 4 rows × 16 columns (64 bytes), row-block major. */
export function int8Geometry(rows: number, cols: number): Geometry {
  const rowsPad = roundUp(rows, 4);
  const colsPad = roundUp(cols, 16);
  return { rowsPad, colsPad, bytes: rowsPad * colsPad };
}

export function packInt8(
  q: Int8Array,
  rows: number,
  cols: number,
  dst: Int8Array,
  rowSum?: Int32Array,
): void {
  const { colsPad } = int8Geometry(rows, cols);
  const tiles = colsPad / 16;
  for (let r = 0; r < rows; r++) {
    const rb = r >> 2;
    const lane = r & 3;
    let sum = 0;
    for (let k = 0; k < cols; k++) {
      const v = q[r * cols + k];
      sum += v;
      dst[(rb * tiles + (k >> 4)) * 64 + lane * 16 + (k & 15)] = v;
    }
    if (rowSum) rowSum[r] = sum;
  }
}

/**
 * 2:4 blocks of 8 rows. Groups are padded to an even count so that two groups share one 8-column x chunk.
 * Per (row block, group) a 48-byte record: [0,16) the kept pair of rows 0..7 (first, second position);
 * [16,32) and [32,48) for rows 0-3 and 4-7 the byte indices (2a+o, 2a+o+1, 2b+o, 2b+o+1) of the pair's
 * int16 x values inside the chunk, o = 8 for odd groups.
 */
export function sparse24Geometry(rows: number, cols: number): Geometry & { groupsPad: number } {
  const groupsPad = roundUp(cols / 4, 2);
  const rowsPad = roundUp(rows, 8);
  return { rowsPad, colsPad: groupsPad * 4, groupsPad, bytes: rowsPad * groupsPad * 6 };
}

export class LayoutError extends Error {
  override name = 'LayoutError';
}

export function packSparse24(
  q: Int8Array,
  idx: Uint8Array,
  rows: number,
  cols: number,
  dst: Uint8Array,
): void {
  const groups = cols / 4;
  const perRow = Math.ceil(groups / 2);
  const { rowsPad, groupsPad } = sparse24Geometry(rows, cols);
  for (let rb = 0; rb < rowsPad / 8; rb++)
    for (let g = 0; g < groupsPad; g++) {
      const rec = (rb * groupsPad + g) * 48;
      const o = (g & 1) * 8;
      for (let i = 0; i < 8; i++) {
        const r = rb * 8 + i;
        let a = 0;
        let b = 1;
        if (r < rows && g < groups) {
          const nib = (idx[r * perRow + (g >> 1)] >> ((g & 1) * 4)) & 15;
          a = nib & 3;
          b = nib >> 2;
          if (a >= b)
            throw new LayoutError(
              `2:4 positions of row ${r}, group ${g}: expected first < second in 0..3, found ${a} and ${b}`,
            );
          dst[rec + 2 * i] = q[r * (cols / 2) + 2 * g];
          dst[rec + 2 * i + 1] = q[r * (cols / 2) + 2 * g + 1];
        }
        const at = rec + 16 + i * 4;
        dst[at] = 2 * a + o;
        dst[at + 1] = 2 * a + o + 1;
        dst[at + 2] = 2 * b + o;
        dst[at + 3] = 2 * b + o + 1;
      }
    }
}

/** float32 row-major, rows padded to 4 and columns to 8. */
export function f32Geometry(rows: number, cols: number): Geometry {
  const rowsPad = roundUp(rows, 4);
  const colsPad = roundUp(cols, 8);
  return { rowsPad, colsPad, bytes: rowsPad * colsPad * 4 };
}

export function packF32(w: Float32Array, rows: number, cols: number, dst: Float32Array): void {
  const { colsPad } = f32Geometry(rows, cols);
  for (let r = 0; r < rows; r++) dst.set(w.subarray(r * cols, (r + 1) * cols), r * colsPad);
}
