// The matrix descriptor the TypeScript loader writes (wasm/src/layout.ts mirrors these numbers):
// 48 bytes of i32 fields that point at the re-laid-out weights.

export const ABI_VERSION: i32 = 2;

export const KIND_INT8: i32 = 1; // int8, tiles of 4 rows × 16 columns
export const KIND_INT8_24: i32 = 2; // 2:4 int8, blocks of 8 rows, one 48-byte record per group of 4 columns
export const KIND_F32: i32 = 3; // float32, row-major, rows padded to 4 and columns to 8

export const MODE_FAST: i32 = 0; // x quantized to int16 per call, i32x4.dot_i16x8_s
export const MODE_EXACT: i32 = 1; // weights widened to float32 on the fly, x as given
export const MODE_RELAXED_DOT: i32 = 2; // x as 14 bits split into two 7-bit halves, relaxed i8 dot
export const MODE_PRECISE: i32 = 3; // x as two int16 parts (value and residual), two i32x4.dot_i16x8_s

export const D_KIND: usize = 0;
export const D_ROWS: usize = 4;
export const D_COLS: usize = 8;
export const D_ROWS_PAD: usize = 12;
export const D_COLS_PAD: usize = 16;
export const D_W: usize = 20;
export const D_SCALE: usize = 24; // f32 [rowsPad], 0 on padding rows
export const D_BIAS: usize = 28; // f32 [rows] or 0 for none
export const D_ROW_SUM: usize = 32; // i32 [rowsPad]: Σ_k q[r,k], for the relaxed dot's zero point; or 0
export const D_MODE: usize = 36;
export const DESC_BYTES: i32 = 48;
