// Seeded random initialisation of any config. Each tensor draws from its own stream (seed, name), so
// initialising one expert or one tier gives the same values as initialising the whole model.
import type { ModelConfig } from './config.ts';
import { numel, paramSpecs, type ParamMap, type ParamSpec } from './params.ts';
import { fnv1a32, Rng } from './random.ts';

export function initTensor(spec: ParamSpec, seed: number): Float32Array {
  const n = numel(spec.shape);
  const out = new Float32Array(n);
  const rng = new Rng(seed, fnv1a32(spec.name));
  const rule = spec.init;
  switch (rule.type) {
    case 'normal':
      for (let i = 0; i < n; i++) out[i] = rng.normal() * rule.std;
      break;
    case 'uniform':
      for (let i = 0; i < n; i++) out[i] = (2 * rng.next() - 1) * rule.bound;
      break;
    case 'const':
      out.fill(rule.value);
      break;
    case 'lstm-bias':
      // Forget-gate bias 1 (Jozefowicz et al.) so the cell remembers across steps from the start.
      out.fill(1, rule.hidden, 2 * rule.hidden);
      break;
  }
  return out;
}

export function initRandom(
  config: ModelConfig,
  seed: number,
  filter: (s: ParamSpec) => boolean = () => true,
  onTensor?: (done: number, total: number) => void,
): ParamMap {
  const specs = paramSpecs(config).filter(filter);
  const params: ParamMap = new Map();
  specs.forEach((s, i) => {
    params.set(s.name, { shape: [...s.shape], data: initTensor(s, seed) });
    onTensor?.(i + 1, specs.length);
  });
  return params;
}
