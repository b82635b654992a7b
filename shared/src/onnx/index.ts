// ONNX graph builders: runtime-free, they turn a WeightSource into model bytes for onnxruntime-node/-web,
// Triton or KServe.
export * from './graph.ts';
export * from './weights.ts';
export * from './expert.ts';
export * from './edge.ts';
export * from './triton.ts';
