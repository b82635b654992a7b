// The native edge ↔ GPU-tier wire protocol; shared/PROTOCOL.md is the byte-level spec.
export * from './errors.ts';
export * from './f16.ts';
export * from './frames.ts';
