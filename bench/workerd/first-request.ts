// A Worker with only the wasm-simd backend and the r1-seed int8 edge weights (a Data module): its first
// request parses the weights, instantiates the kernels, copies the weights in and runs one edge step, as the
// edge Worker's first chat request would. bench/edge-compute.ts times it in a fresh workerd process.
import { readWeights } from '@switchyard/shared/weights/index';
import { createWasmSimdCompute } from '../../edge/src/compute/wasm-simd.ts';
import int8File from './r1-edge-int8.safetensors';

export default {
  async fetch(): Promise<Response> {
    const file = readWeights(new Uint8Array(int8File));
    const edge = await createWasmSimdCompute(file);
    const { hidden: H } = file.config.controller;
    const stm = file.config.memory.stm_slots * file.config.memory.dim;
    const zeros = (n: number) => new Float32Array(n);
    const state = {
      h: zeros(H),
      c: zeros(H),
      m: zeros(H),
      stm: { keys: zeros(stm), values: zeros(stm), count: 0, next: 0 },
    };
    const out = await edge.controller(state, 258);
    const head = await edge.head(out.h, out.h);
    return Response.json({ compute: edge.name, logits: head.logits.length });
  },
};
