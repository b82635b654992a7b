// The Switchyard weights file (DESIGN.md §2, shared/FORMAT.md). Helpers for messages stay internal.
export { crc32, crc32Hex } from './crc32.ts';
export {
  check24Index,
  checkTensorScheme,
  defaultScheme,
  LOOKUP_TABLE_TENSORS,
  normalizeShard,
  SHARD_KINDS,
  shardHolds,
  shardSpecs,
  STORED_DTYPE_SIZE,
  STORED_DTYPES,
  storedEntrySpecs,
  SUPPORTED_WEIGHTS_VERSIONS,
  WEIGHTS_DATA_ALIGNMENT,
  WEIGHTS_FORMAT_ID,
  WEIGHTS_FORMAT_VERSION,
  WeightsError,
  type ShardInfo,
  type ShardInput,
  type ShardKind,
  type StoredDtype,
  type StoredEntryRole,
  type StoredEntrySpec,
} from './format.ts';
export { writeStored, writeWeights, type WriteOptions } from './write.ts';
export { readWeights, type ReadOptions, type StoredEntry, type WeightsFile } from './read.ts';
export { expertGroups, splitWeights, type SplitResult } from './split.ts';
