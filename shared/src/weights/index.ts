// The Switchyard weights file (DESIGN.md §2, shared/FORMAT.md).
export * from './crc32.ts';
export * from './format.ts';
export * from './write.ts';
export * from './read.ts';
export * from './split.ts';
