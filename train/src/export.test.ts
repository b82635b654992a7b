import { beforeAll, describe, expect, it } from 'vitest';
import { initRandom, preset, readWeights } from '@switchyard/shared';
import { evalExamples } from './eval.ts';
import { checkExport, exportWeights } from './export.ts';
import { TfModel } from './model-tf.ts';
import { initTf } from './tf.ts';

beforeAll(() => initTf(), 60_000);

describe('export', () => {
  const config = { ...preset('tiny'), max_think_steps: 5 };

  it('writes a weights file that shared reads back to the same tensors, and the reference reproduces', async () => {
    const model = new TfModel(config, initRandom(config, 12));
    const bytes = exportWeights(model, 'f32');
    const file = readWeights(bytes);
    expect(file.config).toEqual(config);
    const params = model.toParamMap();
    for (const [n, t] of file.params())
      expect(Array.from(t.data), n).toEqual(Array.from(params.get(n)!.data));
    const check = await checkExport(bytes, model, evalExamples(['add2', 'grid'], 3, 7), 16);
    expect(check).toEqual({ agree: 6, of: 6, mismatches: [] });
    model.dispose();
  });

  it('quantizes matrices to int8 with per-row scales, vectors staying float32', () => {
    const model = new TfModel(config, initRandom(config, 12));
    const [f32, int8] = [exportWeights(model, 'f32'), exportWeights(model, 'int8')];
    expect(int8.length).toBeLessThan(f32.length / 2);
    const file = readWeights(int8);
    expect(file.schemes.get('lstm.w_ih')).toBe('int8');
    expect(file.schemes.get('lstm.b')).toBe('f32');
    const w = file.tensor('head.w');
    const ref = model.toParamMap().get('head.w')!;
    let worst = 0;
    for (let i = 0; i < w.data.length; i++) worst = Math.max(worst, Math.abs(w.data[i] - ref.data[i]));
    // Half a quantization step of the largest row: max|W| / 127 / 2.
    const max = ref.data.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    expect(worst).toBeLessThanOrEqual(max / 254 + 1e-7);
    model.dispose();
  });
});
