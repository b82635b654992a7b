// @switchyard/shared: runtime-free (no node: or cloudflare: imports). The tiers import from here.
export * from './config.ts';
export * from './params.ts';
export * from './random.ts';
export * from './tokenizer.ts';
export * from './chat.ts';
export * from './math.ts';
export * from './interfaces.ts';
export * from './reference.ts';
export * from './init.ts';
export * from './sampling.ts';
export * from './digest.ts';
export * from './generate.ts';
export * from './quant.ts';
export * from './onnx/index.ts';
export * from './golden.ts';
export * from './weights/index.ts';
export * from './protocol/index.ts';
