// Writes the edge part of a full weights file (default: the tiny golden model) to edge/model/edge.safetensors,
// the file the Worker bundles. Usage: tsx edge/scripts/build-model.ts [FULL_FILE] [OUT_FILE]
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readWeights, splitWeights } from '@switchyard/shared/weights/index';

const here = dirname(fileURLToPath(import.meta.url));
const input = resolve(process.argv[2] ?? join(here, '../../shared/golden/tiny-int8.safetensors'));
const output = resolve(process.argv[3] ?? join(here, '../model/edge.safetensors'));

const file = readWeights(new Uint8Array(readFileSync(input)));
const { edge } = splitWeights(file, 1);
writeFileSync(output, edge);
console.log(`wrote ${output}: ${edge.length} bytes (edge tensors of ${input})`);
