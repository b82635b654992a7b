// Export to the Switchyard weights file, and the check that the file means what the training model
// meant: read back with shared's readWeights, the reference must give the tfjs model's greedy outputs.
import { readWeights, ReferenceModel, writeWeights, type QuantScheme } from '@switchyard/shared';
import { differences, ReferenceEngine, TfEngine, type Answered } from './eval.ts';
import type { Example } from './curriculum.ts';
import type { TfModel } from './model-tf.ts';

export function exportWeights(model: TfModel, scheme: QuantScheme): Uint8Array {
  return writeWeights(model.config, model.toParamMap(), { scheme });
}

export interface ExportCheck {
  /** Problems on which the reference (on the file) and the tfjs model gave the same reasoning and answer. */
  agree: number;
  of: number;
  mismatches: { prompt: string; tfjs: Answered; reference: Answered }[];
}

export async function checkExport(
  bytes: Uint8Array,
  model: TfModel,
  items: readonly { set: string; example: Example }[],
  maxTokens = 48,
): Promise<ExportCheck> {
  const file = readWeights(bytes);
  const ref = new ReferenceModel(file.config, file.params());
  const [a, b] = [
    await new TfEngine(model, maxTokens).answer(items),
    await new ReferenceEngine(ref, maxTokens).answer(items),
  ];
  const diffs = differences(a, b);
  return {
    agree: items.length - diffs.length,
    of: items.length,
    mismatches: diffs.map((d) => ({ prompt: d.a.example.prompt, tfjs: d.a, reference: d.b })),
  };
}
