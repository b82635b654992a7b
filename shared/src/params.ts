// Every tensor of an rru-moe v1 model: its name, logical shape and which tier runs it.
// FORMAT.md lists the same table; loading checks names and shapes against this one.
import type { ModelConfig } from './config.ts';

/** `matrix` tensors are 2-D and may be quantized; `vector` tensors (biases, norms) always stay float32. */
export type ParamKind = 'matrix' | 'vector';
/** edge: run by the Worker; expert-shared: every expert shard needs them; expert: belongs to one expert. */
export type ParamTier = 'edge' | 'expert-shared' | 'expert';

export interface ParamSpec {
  name: string;
  shape: number[];
  kind: ParamKind;
  tier: ParamTier;
  expert?: number;
  /** Init scale hint, used only by initRandom. */
  init: InitRule;
}

export type InitRule =
  | { type: 'normal'; std: number }
  | { type: 'uniform'; bound: number }
  | { type: 'const'; value: number }
  | { type: 'lstm-bias'; hidden: number };

/** A logical (float32, dequantized) tensor. */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}

/** Named float32 tensors; the unit every path (reference, ONNX builders, backends) consumes. */
export type ParamMap = Map<string, Tensor>;

export const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

export const expertPrefix = (e: number) => `experts.${e}`;
export const layerPrefix = (e: number, l: number) => `experts.${e}.layers.${l}`;

export function expertParamSpecs(c: ModelConfig, e: number): ParamSpec[] {
  const H = c.controller.hidden;
  const { width: D, ffn: F, layers } = c.experts;
  const out: ParamSpec[] = [];
  const m = (name: string, shape: number[], std: number) =>
    out.push({ name, shape, kind: 'matrix', tier: 'expert', expert: e, init: { type: 'normal', std } });
  const v = (name: string, n: number, value: number) =>
    out.push({ name, shape: [n], kind: 'vector', tier: 'expert', expert: e, init: { type: 'const', value } });
  // Residual projections are scaled down by √(2·layers) (GPT-2) so the residual stream stays O(1) over depth.
  const resid = 1 / Math.sqrt(2 * layers);
  const p = expertPrefix(e);
  // h has tanh-bounded entries of ~0.3 rms, so W_in is scaled up to give z an O(1) start.
  m(`${p}.w_in`, [D, H], 3 / Math.sqrt(H));
  v(`${p}.b_in`, D, 0);
  for (let l = 0; l < layers; l++) {
    const q = layerPrefix(e, l);
    v(`${q}.ln1.g`, D, 1);
    v(`${q}.ln1.b`, D, 0);
    m(`${q}.attn.wqkv`, [3 * D, D], 1 / Math.sqrt(D));
    v(`${q}.attn.bqkv`, 3 * D, 0);
    m(`${q}.attn.wo`, [D, D], resid / Math.sqrt(D));
    v(`${q}.attn.bo`, D, 0);
    v(`${q}.ln2.g`, D, 1);
    v(`${q}.ln2.b`, D, 0);
    m(`${q}.ffn.w1`, [F, D], 1 / Math.sqrt(D));
    v(`${q}.ffn.b1`, F, 0);
    m(`${q}.ffn.w2`, [D, F], (2 * resid) / Math.sqrt(F));
    v(`${q}.ffn.b2`, D, 0);
  }
  v(`${p}.ln_f.g`, D, 1);
  v(`${p}.ln_f.b`, D, 0);
  m(`${p}.w_out`, [H, D], 1 / Math.sqrt(D));
  v(`${p}.b_out`, H, 0);
  return out;
}

/** All tensors in canonical order: edge, shared expert tensors, then expert 0..E-1. */
export function paramSpecs(c: ModelConfig): ParamSpec[] {
  const { vocab: V } = c;
  const { embed: Dc, hidden: H } = c.controller;
  const { dim: S, ltm_atoms: C } = c.memory;
  const { count: E, width: D, max_prompt: Lmax } = c.experts;
  const edge = (name: string, shape: number[], init: InitRule, kind: ParamKind = 'matrix'): ParamSpec => ({
    name,
    shape,
    kind,
    tier: 'edge',
    init,
  });
  const lstmBound = 1 / Math.sqrt(H); // PyTorch's LSTM init
  const specs: ParamSpec[] = [
    edge('tok_embed', [V, Dc], { type: 'normal', std: 1 }),
    edge('lstm.w_ih', [4 * H, Dc + S + H], { type: 'uniform', bound: lstmBound }),
    edge('lstm.w_hh', [4 * H, H], { type: 'uniform', bound: lstmBound }),
    edge('lstm.b', [4 * H], { type: 'lstm-bias', hidden: H }, 'vector'),
    // Larger than 1/√H so that routing is decisive at init rather than uniform.
    edge('gate.w', [E, H], { type: 'normal', std: 4 / Math.sqrt(H) }),
    edge('gate.b', [E], { type: 'const', value: 0 }, 'vector'),
    edge('memory.w_rq', [S, H], { type: 'normal', std: 2 / Math.sqrt(H) }),
    edge('memory.w_k', [S, H], { type: 'normal', std: 2 / Math.sqrt(H) }),
    edge('memory.w_v', [S, H], { type: 'normal', std: 1 / Math.sqrt(H) }),
    edge('memory.w_code', [C, H], { type: 'normal', std: 1 / Math.sqrt(H) }),
    edge('head.w', [V, 2 * H], { type: 'normal', std: 2 / Math.sqrt(2 * H) }),
    edge('head.b', [V], { type: 'const', value: 0 }, 'vector'),
    {
      name: 'experts.embed',
      shape: [V, D],
      kind: 'matrix',
      tier: 'expert-shared',
      init: { type: 'normal', std: 1 },
    },
    {
      name: 'experts.pos',
      shape: [Lmax + 1, D],
      kind: 'matrix',
      tier: 'expert-shared',
      init: { type: 'normal', std: 0.5 },
    },
  ];
  for (let e = 0; e < E; e++) specs.push(...expertParamSpecs(c, e));
  return specs;
}

export interface ParamCounts {
  total: number;
  edge: number;
  expertShared: number;
  perExpert: number;
  /** Parameters touched by one step: edge + shared + top_k experts. */
  activePerStep: number;
  activeFraction: number;
}

export function countParams(c: ModelConfig): ParamCounts {
  let edge = 0;
  let shared = 0;
  let expert0 = 0;
  let total = 0;
  for (const s of paramSpecs(c)) {
    const n = numel(s.shape);
    total += n;
    if (s.tier === 'edge') edge += n;
    else if (s.tier === 'expert-shared') shared += n;
    else if (s.expert === 0) expert0 += n;
  }
  const active = edge + shared + c.experts.top_k * expert0;
  return {
    total,
    edge,
    expertShared: shared,
    perExpert: expert0,
    activePerStep: active,
    activeFraction: active / total,
  };
}

export class ParamError extends Error {
  override name = 'ParamError';
  constructor(
    message: string,
    readonly tensor: string,
  ) {
    super(message);
  }
}

/**
 * Checks a ParamMap against the config's specs. `only` restricts the check to a subset
 * (an edge file or an expert shard holds only its tier's tensors).
 */
export function checkParams(c: ModelConfig, params: ParamMap, only?: (s: ParamSpec) => boolean): void {
  for (const s of paramSpecs(c)) {
    if (only && !only(s)) continue;
    const t = params.get(s.name);
    if (!t)
      throw new ParamError(`tensor "${s.name}": expected shape [${s.shape}], found no such tensor`, s.name);
    if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i]))
      throw new ParamError(`tensor "${s.name}": expected shape [${s.shape}], found [${t.shape}]`, s.name);
    if (t.data.length !== numel(s.shape))
      throw new ParamError(
        `tensor "${s.name}": expected ${numel(s.shape)} elements, found ${t.data.length}`,
        s.name,
      );
  }
}
