// @switchyard/wasm kernels: the module's exports. Pointers are byte offsets into the exported memory;
// the TypeScript side (wasm/src/kernels.ts) owns the calling conventions.
import { ABI_VERSION, DESC_BYTES } from './layout';

export { alloc, mark, release } from './memory';
export { matvec, quant_range, set_relaxed_dot } from './matvec';
export { lstm_cell, softmax, softmax_topk, sparse_code, stm_read } from './ops';
export { vexp, vsigmoid, vtanh } from './nonlinear';

export function abi_version(): i32 {
  return ABI_VERSION;
}

export function desc_bytes(): i32 {
  return DESC_BYTES;
}

/** 1 when this build uses relaxed-SIMD instructions (the module then fails to validate where unsupported). */
export function relaxed(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}
