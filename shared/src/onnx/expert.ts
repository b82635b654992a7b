// The expert transformer as ONNX graphs: prefill (prompt → per-layer K/V), step (one query per row over its
// row's cached K/V) and stateless (both in one graph, the KServe/Triton `expert-{e}` model). All three emit
// their layers through emitLayer, so they share one definition of the math in reference.ts; they differ
// only in how a layer's queries reach their keys (selfAttention, cachedAttention).
import { expertPrefix, layerPrefix } from '../params.ts';
import { GraphBuilder, OnnxBuildError, type Dim } from './graph.ts';
import { WeightEmitter, type WeightSource } from './weights.ts';

/** Added to the scores of keys a query must not see; exp() of it underflows to exactly 0 in float32. */
const MASKED = -1e9;

/**
 * How the graphs multiply by weight matrices. 'float': in float32, int8 weights dequantized exactly
 * (DequantizeLinear), so the graph computes the reference's math. 'int8-dynamic': int8 weights times int8
 * activations (DynamicQuantizeLinear + MatMulInteger, which ORT fuses into DynamicQuantizeMatMul): faster on
 * CPUs with int8 dot products, but each activation tensor is rounded to 256 levels (one scale per tensor, so
 * a row's result also depends on the other rows of its batch). Float32 weights stay float in both.
 */
export type ExpertMatMul = 'float' | 'int8-dynamic';
export const EXPERT_MATMULS: readonly ExpertMatMul[] = ['float', 'int8-dynamic'];

/**
 * The documented bound of 'int8-dynamic' against the reference on the dequantized weights: |Δy| ≤ this
 * times max |y| of the batch. Measured 0.7–0.9% (tiny random and golden weights, r1-seed random weights,
 * onnxruntime-node and -web), so 2% leaves room for other activation ranges.
 */
export const INT8_DYNAMIC_REL_TOL = 0.02;

export interface ExpertGraphOptions {
  /** Default 'float'. */
  matmul?: ExpertMatMul;
}

interface Ctx {
  g: GraphBuilder;
  w: WeightEmitter;
  matmul: ExpertMatMul;
  e: number;
  D: number;
  heads: number;
  layers: number;
  Lmax: number;
}

function context(src: WeightSource, e: number, o: ExpertGraphOptions): Ctx {
  const c = src.config.experts;
  if (!Number.isInteger(e) || e < 0 || e >= c.count)
    throw new OnnxBuildError(`expert id: expected an integer in [0, ${c.count}), found ${e}`);
  const matmul = o.matmul ?? 'float';
  if (!EXPERT_MATMULS.includes(matmul))
    throw new OnnxBuildError(
      `matmul: expected one of ${EXPERT_MATMULS.join(', ')}, found ${JSON.stringify(matmul)}`,
    );
  const g = new GraphBuilder();
  return {
    g,
    w: new WeightEmitter(g, src),
    matmul,
    e,
    D: c.width,
    heads: c.heads,
    layers: c.layers,
    Lmax: c.max_prompt,
  };
}

/** ONNX TensorProto data type of float32, for Cast. */
const FLOAT = 1;

/** int8 q as uint8 q + 128 (offset binary): the same value under zero point 128. */
function offsetBinary(q: Int8Array): Uint8Array {
  const u = new Uint8Array(q.length);
  for (let i = 0; i < q.length; i++) u[i] = q[i] + 128;
  return u;
}

/** y[..., out] = x[..., in] · Wᵀ (+ b) for W [out, in], as c.matmul says. */
function linear(c: Ctx, x: string, w: string, b?: string): string {
  const { g } = c;
  const t = c.matmul === 'int8-dynamic' ? c.w.dense(w) : undefined;
  if (t?.scheme !== 'int8') return c.w.linear(x, w, b);
  // Wᵀ [in, out] (the Transpose of an initializer is folded when the session loads), and the
  // per-output-channel scales, emitted once per graph. The weights go in as uint8 q + 128 with zero point
  // 128, the same integers: ORT's u8×s8 kernel on x86 CPUs without AVX-VNNI sums pairs of products with
  // pmaddubsw, which saturates at 32767 (measured 8.5% and 22% errors on an AMD Zen 3); its u8×u8 kernel
  // widens to 16 bits first and is exact everywhere.
  const wT = g.once(`u8T:${w}`, () =>
    g.op('Transpose', [g.u8(`${w}.q`, offsetBinary(t.q), t.shape)], { perm: [1, 0] }),
  );
  const wz = g.once('u8:128', () => g.u8('u8_128', Uint8Array.of(128), []));
  const ws = g.once(`i8s:${w}`, () => g.f32(`${w}.scale`, t.scale, [t.scale.length]));
  const [xq, xs, xz] = g.node('DynamicQuantizeLinear', [x], {}, 3);
  const acc = g.op('Cast', [g.op('MatMulInteger', [xq, wT, xz, wz])], { to: FLOAT });
  const y = g.op('Mul', [acc, g.op('Mul', [xs, ws])]);
  return b ? g.op('Add', [y, c.w.vector(b)]) : y;
}

/** [B, T, D] → [B, heads, T, dh]: the layout attention computes in, and the prompt cache's layout. */
function splitHeads(c: Ctx, x: string): string {
  const r = c.g.op('Reshape', [x, c.g.ints([0, 0, c.heads, c.D / c.heads])]);
  return c.g.op('Transpose', [r], { perm: [0, 2, 1, 3] });
}

/** Maps a layer's q, k, v (heads concatenated along the last axis) to its attention output, same shape. */
type Attend = (q: string, k: string, v: string) => string;

/** Layer l's queries, keys and values of x [..., D] (LN1, then the joint projection), heads concatenated. */
function projectQkv(c: Ctx, l: number, x: string): string[] {
  const { g, w, D } = c;
  const p = layerPrefix(c.e, l);
  const qkv = linear(c, w.layerNorm(x, `${p}.ln1.g`, `${p}.ln1.b`), `${p}.attn.wqkv`, `${p}.attn.bqkv`);
  return g.node('Split', [qkv, g.ints([D, D, D])], { axis: -1 }, 3);
}

/** One pre-LN layer on x [..., D]; `attend` decides which keys each query sees. */
function emitLayer(c: Ctx, l: number, x: string, attend: Attend): string {
  const { g, w } = c;
  const p = layerPrefix(c.e, l);
  const [q, k, v] = projectQkv(c, l, x);
  const x1 = g.op('Add', [x, linear(c, attend(q, k, v), `${p}.attn.wo`, `${p}.attn.bo`)]);
  const f = g.op('Gelu', [
    linear(c, w.layerNorm(x1, `${p}.ln2.g`, `${p}.ln2.b`), `${p}.ffn.w1`, `${p}.ffn.b1`),
  ]);
  return g.op('Add', [x1, linear(c, f, `${p}.ffn.w2`, `${p}.ffn.b2`)]);
}

/**
 * Self-attention of T queries over the same T keys, x [B, T, D] → [B, T, D]; `mask` is additive and
 * broadcastable to [B, heads, T, T]. Hands the layer's keys and values in heads layout to `keep`.
 */
function selfAttention(c: Ctx, mask?: string, keep?: (kh: string, vh: string) => void): Attend {
  const { g, D } = c;
  return (q, k, v) => {
    const kh = splitHeads(c, k);
    const vh = splitHeads(c, v);
    keep?.(kh, vh);
    // ORT folds this Transpose into its MatMul (FusedMatMul, transB), so the keys are not copied again.
    let s = g.op('MatMul', [splitHeads(c, q), g.op('Transpose', [kh], { perm: [0, 1, 3, 2] })]);
    s = g.op('Div', [s, g.scalar(Math.sqrt(D / c.heads))]); // [B, heads, T, T]
    if (mask) s = g.op('Add', [s, mask]);
    const a = g.op('MatMul', [g.op('Softmax', [s], { axis: -1 }), vh]); // [B, heads, T, dh]
    return g.op('Reshape', [g.op('Transpose', [a], { perm: [0, 2, 1, 3] }), g.ints([0, 0, D])]);
  };
}

/**
 * One query per row, z [B, D], over its row's cached prompt keys/values pastK, pastV [B, heads, P, dh] and
 * its own k, v. The cache is read in place (no gather, transpose or concatenation of it): the scores against
 * the cache, K·q, and against the query's own key are computed apart and only those [B, heads, P] + [B,
 * heads, 1] scores are concatenated; the output is p_cache·V + p_self·v. `mask` [B, 1, 1, P+1] is additive;
 * `split` holds [P, 1], the sizes that cut the probabilities back into cache and self.
 */
function cachedAttention(c: Ctx, pastK: string, pastV: string, mask: string, split: string): Attend {
  const { g, D, heads } = c;
  const dh = D / heads;
  return (q, k, v) => {
    const qc = g.op('Reshape', [q, g.ints([0, heads, dh, 1])]); // [B, heads, dh, 1]
    // [B, heads, P, 1] holds the same values in the same order as [B, heads, 1, P]: the Reshape is free.
    const sCache = g.op('Reshape', [g.op('MatMul', [pastK, qc]), g.ints([0, heads, 1, -1])]);
    // q·k per head as Mul + ReduceSum: a batched MatMul of B·heads 1×1 products costs more in dispatch.
    const qk = g.op('Reshape', [g.op('Mul', [q, k]), g.ints([0, heads, 1, dh])]);
    const sSelf = g.op('ReduceSum', [qk, g.ints([-1])], { keepdims: 1 }); // [B, heads, 1, 1]
    let s = g.op('Concat', [sCache, sSelf], { axis: -1 }); // [B, heads, 1, P+1]
    s = g.op('Add', [g.op('Div', [s, g.scalar(Math.sqrt(dh))]), mask]);
    const [pCache, pSelf] = g.node('Split', [g.op('Softmax', [s], { axis: -1 }), split], { axis: -1 }, 2);
    const vSelf = g.op('Reshape', [v, g.ints([0, heads, 1, dh])]);
    const a = g.op('Add', [g.op('MatMul', [pCache, pastV]), g.op('Mul', [pSelf, vSelf])]); // [B, heads, 1, dh]
    return g.op('Reshape', [a, g.ints([0, D])]);
  };
}

/** embed[tokens] + pos[0..n-1] for tokens [..., n]. */
function embedPrompt(c: Ctx, tokens: string, n: string): string {
  const { g, w } = c;
  const x = g.op('Gather', [w.table('experts.embed'), tokens], { axis: 0 });
  const pos = g.op('Slice', [w.table('experts.pos', c.Lmax), g.ints([0]), n, g.ints([0])]);
  return g.op('Add', [x, pos]);
}

/** z = W_in h + b_in + pos[Lmax] for h [B, H]: [B, D]. */
function embedQuery(c: Ctx, h: string): string {
  const pre = expertPrefix(c.e);
  const pos = c.g.f32('query_pos', c.w.row('experts.pos', c.Lmax), [c.D]);
  return c.g.op('Add', [linear(c, h, `${pre}.w_in`, `${pre}.b_in`), pos]);
}

/** y = W_out LN_f(z) + b_out for z [B, D]: [B, H]. */
function readOut(c: Ctx, z: string): string {
  const pre = expertPrefix(c.e);
  return linear(c, c.w.layerNorm(z, `${pre}.ln_f.g`, `${pre}.ln_f.b`), `${pre}.w_out`, `${pre}.b_out`);
}

/** Dimension `axis` of x's shape as a scalar int64 value. */
function dimScalar(c: Ctx, x: string, axis: number): string {
  const d = c.g.op('Shape', [x], { start: axis, end: axis + 1 });
  return c.g.op('Squeeze', [d, c.g.ints([0])]);
}

/**
 * Key visibility for rows of prompt_len [B] over keys j in 0..P (key P is the query's own): `prompt` [B, P+1]
 * is j < prompt_len[b], `isQuery` [P+1] is j == P.
 */
function keyMask(c: Ctx, promptLen: string, P: string): { prompt: string; isQuery: string } {
  const { g } = c;
  const j = g.op('Range', [g.ints([0], true), g.op('Add', [P, g.ints([1], true)]), g.ints([1], true)]);
  const prompt = g.op('Less', [j, g.op('Unsqueeze', [promptLen, g.ints([1])])]);
  return { prompt, isQuery: g.op('Equal', [j, P]) };
}

function additive(c: Ctx, visible: string): string {
  return c.g.op('Where', [visible, c.g.scalar(0), c.g.scalar(MASKED)]);
}

function docFor(src: WeightSource, e: number, what: string): string {
  const x = src.config.experts;
  return `switchyard rru-moe v1 expert ${e} ${what} (D=${x.width}, layers=${x.layers}, heads=${x.heads}, ffn=${x.ffn}, Lmax=${x.max_prompt})`;
}

/**
 * Collects every layer's keys and values in heads layout (selfAttention's `keep`) and emits them as the
 * graph's k and v outputs, layers first. `stack`: how a layer's [B, heads, T, dh] joins the others, along
 * its own batch axis (B = 1: [layers, heads, T, dh]) or along a new one ([layers, B, heads, T, dh]).
 */
function cacheOutputs(c: Ctx, stack: 'batch-axis' | 'new-axis') {
  const { g } = c;
  const ks: string[] = [];
  const vs: string[] = [];
  const lift = (x: string) => (stack === 'new-axis' ? g.op('Unsqueeze', [x, g.ints([0])]) : x);
  return {
    keep: (kh: string, vh: string) => {
      ks.push(lift(kh));
      vs.push(lift(vh));
    },
    emit: (dims: Dim[], per: string) => {
      g.output(g.op('Concat', ks, { axis: 0 }), 'k', 'float32', dims, `keys per ${per}`);
      g.output(g.op('Concat', vs, { axis: 0 }), 'v', 'float32', dims, `values per ${per}`);
    },
  };
}

/**
 * Prefill of expert e: tokens [L] → out [L, D] (LN_f of the last layer), k and v [layers, heads, L, dh]
 * (every layer's prompt keys/values, split into heads: the layout buildExpertStep reads, so the cache is
 * stored as it comes out). L must be in 1..Lmax.
 */
export function buildExpertPrefill(
  src: WeightSource,
  e: number,
  options: ExpertGraphOptions = {},
): Uint8Array {
  const c = context(src, e, options);
  const { g, w, D, heads, layers } = c;
  const dh = D / heads;
  const tokens = g.input('tokens', 'int64', ['L'], 'prompt token ids, 1 ≤ L ≤ Lmax');
  const L = g.op('Shape', [tokens]);
  let x = g.op('Unsqueeze', [embedPrompt(c, tokens, L), g.ints([0])]); // [1, L, D]
  const cache = cacheOutputs(c, 'batch-axis');
  for (let l = 0; l < layers; l++) x = emitLayer(c, l, x, selfAttention(c, undefined, cache.keep));
  const pre = expertPrefix(e);
  const out = g.op('Squeeze', [w.layerNorm(x, `${pre}.ln_f.g`, `${pre}.ln_f.b`), g.ints([0])]);
  g.output(out, 'out', 'float32', ['L', D], 'LN_f of the last layer: the prompt encoding');
  cache.emit([layers, heads, 'L', dh], 'layer and head');
  return g.build({ graphName: `expert-${e}-prefill`, doc: docFor(src, e, 'prefill') });
}

/**
 * The serving prefill of expert e for B prompts at once: tokens [B, P] (row b's prompt in its first
 * prompt_len[b] entries, padded with any valid token id), prompt_len [B] → k, v [layers, B, heads, P, dh].
 * Row b's first prompt_len[b] positions equal buildExpertPrefill's k/v for its prompt alone; the rest is
 * finite padding. Only what the cache needs is computed: the last layer stops at its Q/K/V projection,
 * and there is no `out` (about 3/4 of one layer's work less than buildExpertPrefill).
 */
export function buildExpertPrefillBatch(
  src: WeightSource,
  e: number,
  options: ExpertGraphOptions = {},
): Uint8Array {
  const c = context(src, e, options);
  const { g, D, heads, layers } = c;
  const dh = D / heads;
  const tokens = g.input('tokens', 'int64', ['B', 'P'], 'prompt token ids per row, padded to P');
  const promptLen = g.input('prompt_len', 'int64', ['B'], 'prompt length per row, 1 ≤ prompt_len ≤ P ≤ Lmax');
  const P = dimScalar(c, tokens, 1);
  let x = embedPrompt(c, tokens, g.op('Unsqueeze', [P, g.ints([0])])); // [B, P, D]
  // Every position, padding included, sees exactly its row's real prompt keys: real positions compute
  // what a prefill of that prompt alone computes, padded ones stay finite.
  const j = g.op('Range', [g.ints([0], true), P, g.ints([1], true)]);
  const real = g.op('Less', [j, g.op('Unsqueeze', [promptLen, g.ints([1])])]); // [B, P]
  const mask = g.op('Unsqueeze', [additive(c, real), g.ints([1, 2])]); // [B, 1, 1, P]
  const cache = cacheOutputs(c, 'new-axis');
  for (let l = 0; l < layers - 1; l++) x = emitLayer(c, l, x, selfAttention(c, mask, cache.keep));
  // The last layer's keys and values are all the cache holds of it.
  const [, k, v] = projectQkv(c, layers - 1, x);
  cache.keep(splitHeads(c, k), splitHeads(c, v));
  cache.emit([layers, 'B', heads, 'P', dh], 'layer, row and head');
  return g.build({
    graphName: `expert-${e}-prefill-batch`,
    doc: docFor(src, e, 'batched prefill (K/V only)'),
  });
}

/** Names of the step graph's cache inputs for layer l. */
export const stepCacheInputs = (l: number) => ({ k: `past_k_${l}`, v: `past_v_${l}` });

/**
 * Step of expert e for B rows at once: h [B, H], prompt_len [B], and per layer l the rows' prompt caches
 * past_k_{l}, past_v_{l} [B, heads, P, dh] (row b valid for its first prompt_len[b] positions, the rest
 * finite padding, e.g. zeros; one row's [heads, L, dh] is its prefill's k/v for that layer) → y [B, H].
 */
export function buildExpertStep(src: WeightSource, e: number, options: ExpertGraphOptions = {}): Uint8Array {
  const c = context(src, e, options);
  const { g, D, heads, layers } = c;
  const dh = D / heads;
  const H = src.config.controller.hidden;
  const h = g.input('h', 'float32', ['B', H], 'controller hidden state per row');
  const promptLen = g.input('prompt_len', 'int64', ['B'], 'valid cache rows per row, 1 ≤ prompt_len ≤ P');
  const past = Array.from({ length: layers }, (_, l) => {
    const name = stepCacheInputs(l);
    const dims = ['B', heads, 'P', dh];
    return {
      k: g.input(name.k, 'float32', dims, `layer ${l} prompt keys from prefill, padded to P`),
      v: g.input(name.v, 'float32', dims, `layer ${l} prompt values from prefill, padded to P`),
    };
  });
  const P = dimScalar(c, past[0].k, 2);
  const { prompt, isQuery } = keyMask(c, promptLen, P);
  const visible = g.op('Or', [prompt, isQuery]); // [B, P+1]
  const mask = g.op('Unsqueeze', [additive(c, visible), g.ints([1, 2])]); // [B, 1, 1, P+1]
  const split = g.op('Concat', [g.op('Unsqueeze', [P, g.ints([0])]), g.ints([1])], { axis: 0 }); // [P, 1]
  let z = embedQuery(c, h); // [B, D]
  for (let l = 0; l < layers; l++)
    z = emitLayer(c, l, z, cachedAttention(c, past[l].k, past[l].v, mask, split));
  g.output(readOut(c, z), 'y', 'float32', ['B', H], 'expert output per row');
  return g.build({ graphName: `expert-${e}-step`, doc: docFor(src, e, 'step') });
}

/**
 * Prefill and step in one graph: tokens [B, P] (row b's prompt in its first prompt_len[b] entries, padded
 * with any valid token id), prompt_len [B], h [B, H] → y [B, H]. Prompt and query run as one sequence of
 * P+1 per row; prompt tokens see only their row's real prompt, the query sees those and itself, so each row
 * equals prefill(its prompt) then step(h).
 */
export function buildExpertStateless(
  src: WeightSource,
  e: number,
  options: ExpertGraphOptions = {},
): Uint8Array {
  const c = context(src, e, options);
  const { g, layers } = c;
  const H = src.config.controller.hidden;
  const tokens = g.input('tokens', 'int64', ['B', 'P'], 'prompt token ids per row, padded to P');
  const promptLen = g.input('prompt_len', 'int64', ['B'], 'prompt length per row, 1 ≤ prompt_len ≤ P ≤ Lmax');
  const h = g.input('h', 'float32', ['B', H], 'controller hidden state per row');
  const P = dimScalar(c, tokens, 1);
  const prompt = embedPrompt(c, tokens, g.op('Unsqueeze', [P, g.ints([0])])); // [B, P, D]
  const query = g.op('Unsqueeze', [embedQuery(c, h), g.ints([1])]); // [B, 1, D]
  let x = g.op('Concat', [prompt, query], { axis: 1 }); // [B, P+1, D]
  const { prompt: seen, isQuery } = keyMask(c, promptLen, P);
  // Query i sees key j when j is a real prompt key of its row, or when i == j == P (the query itself).
  const self = g.op('And', [g.op('Unsqueeze', [isQuery, g.ints([1])]), isQuery]); // [P+1, P+1]
  const visible = g.op('Or', [g.op('Unsqueeze', [seen, g.ints([1])]), self]); // [B, P+1, P+1]
  const mask = g.op('Unsqueeze', [additive(c, visible), g.ints([1])]); // [B, 1, P+1, P+1]
  for (let l = 0; l < layers; l++) x = emitLayer(c, l, x, selfAttention(c, mask));
  const z = g.op('Gather', [x, P], { axis: 1 }); // [B, D] the query row
  g.output(readOut(c, z), 'y', 'float32', ['B', H], 'expert output per row');
  return g.build({ graphName: `expert-${e}`, doc: docFor(src, e, 'stateless prefill + step') });
}

/**
 * One layer's keys or values from [L, D] (heads concatenated, as the reference's PromptCache holds them) to
 * [heads, L, dh], the layout of the prefill graph's k/v outputs and the step graph's cache inputs.
 */
export function toHeadsLayout(x: Float32Array, L: number, heads: number): Float32Array {
  const D = x.length / L;
  const dh = D / heads;
  if (!Number.isInteger(D) || !Number.isInteger(dh))
    throw new OnnxBuildError(
      `toHeadsLayout: expected L·D values with D a multiple of heads (${heads}), found ${x.length} values for L=${L}`,
    );
  const out = new Float32Array(x.length);
  for (let t = 0; t < L; t++)
    for (let hd = 0; hd < heads; hd++)
      out.set(x.subarray(t * D + hd * dh, t * D + (hd + 1) * dh), (hd * L + t) * dh);
  return out;
}
