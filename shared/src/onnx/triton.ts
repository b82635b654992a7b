// Triton model configuration for the stateless expert model (buildExpertStateless), so a Triton or KServe
// model repository can serve `expert-{e}/1/model.onnx` with dynamic batching.
import type { ModelConfig } from '../config.ts';
import { OnnxBuildError } from './graph.ts';

export interface TritonBatchingOptions {
  /** max_batch_size: the most rows Triton stacks into one run. */
  maxBatch: number;
  /** Batch sizes Triton tries to form, each in 1..maxBatch. */
  preferredBatch: number[];
  /** How long a request may wait for others to join its batch. */
  maxQueueDelayUs: number;
}

function checkInt(what: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(v) || v < min || v > max)
    throw new OnnxBuildError(`${what}: expected an integer in [${min}, ${max}], found ${v}`);
}

/** The name both Triton and the KServe V2 endpoints use for expert e's stateless model. */
export const expertModelName = (e: number) => `expert-${e}`;

/**
 * config.pbtxt for expert e's stateless model. The batch dimension is implicit (max_batch_size > 0), so dims
 * are per row; prompt_len is one int64 per row, reshaped to the model's [B].
 */
export function expertModelConfigPbtxt(config: ModelConfig, e: number, opts: TritonBatchingOptions): string {
  checkInt('expert id', e, 0, config.experts.count - 1);
  checkInt('maxBatch', opts.maxBatch, 1);
  opts.preferredBatch.forEach((b, i) => checkInt(`preferredBatch[${i}]`, b, 1, opts.maxBatch));
  checkInt('maxQueueDelayUs', opts.maxQueueDelayUs, 0);
  const H = config.controller.hidden;
  const tensor = (name: string, type: string, dims: number[], extra = '') =>
    `  {\n    name: "${name}"\n    data_type: ${type}\n    dims: [ ${dims.join(', ')} ]\n${extra}  }`;
  const preferred = [...new Set(opts.preferredBatch)].sort((a, b) => a - b);
  return [
    `# Switchyard rru-moe v1, expert ${e}: prefill + step in one call (tokens padded to P per request).`,
    `# Triton batches only requests whose P is equal, so clients should pad prompts to a fixed length.`,
    `name: "${expertModelName(e)}"`,
    `platform: "onnxruntime_onnx"`,
    `max_batch_size: ${opts.maxBatch}`,
    `input [`,
    [
      tensor('tokens', 'TYPE_INT64', [-1]),
      tensor('prompt_len', 'TYPE_INT64', [1], '    reshape: { shape: [ ] }\n'),
      tensor('h', 'TYPE_FP32', [H]),
    ].join(',\n'),
    `]`,
    `output [`,
    tensor('y', 'TYPE_FP32', [H]),
    `]`,
    `dynamic_batching {`,
    ...(preferred.length ? [`  preferred_batch_size: [ ${preferred.join(', ')} ]`] : []),
    `  max_queue_delay_microseconds: ${opts.maxQueueDelayUs}`,
    `}`,
    '',
  ].join('\n');
}
