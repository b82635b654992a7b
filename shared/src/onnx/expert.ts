// The expert transformer as ONNX graphs: prefill (prompt → per-layer K/V), step (one query per row over its
// row's cached K/V) and stateless (both in one graph, the KServe/Triton `expert-{e}` model). All three emit
// their layers through emitLayer, so they share one definition of the math in reference.ts.
import { expertPrefix, layerPrefix } from '../params.ts';
import { GraphBuilder, OnnxBuildError } from './graph.ts';
import { WeightEmitter, type WeightSource } from './weights.ts';

/** Added to the scores of keys a query must not see; exp() of it underflows to exactly 0 in float32. */
const MASKED = -1e9;

interface Ctx {
  g: GraphBuilder;
  w: WeightEmitter;
  e: number;
  D: number;
  heads: number;
  layers: number;
  Lmax: number;
}

function context(src: WeightSource, e: number): Ctx {
  const c = src.config.experts;
  if (!Number.isInteger(e) || e < 0 || e >= c.count)
    throw new OnnxBuildError(`expert id: expected an integer in [0, ${c.count}), found ${e}`);
  const g = new GraphBuilder();
  return {
    g,
    w: new WeightEmitter(g, src),
    e,
    D: c.width,
    heads: c.heads,
    layers: c.layers,
    Lmax: c.max_prompt,
  };
}

/** [B, T, D] → [B, heads, T, dh], or [B, heads, dh, T] for keys (so that q · kᵀ is a plain MatMul). */
function splitHeads(c: Ctx, x: string, keys = false): string {
  const r = c.g.op('Reshape', [x, c.g.ints([0, 0, c.heads, c.D / c.heads])]);
  return c.g.op('Transpose', [r], { perm: keys ? [0, 2, 3, 1] : [0, 2, 1, 3] });
}

interface LayerOut {
  x: string; // [B, T, D] the residual stream after the layer
  k: string; // [B, T, D] this layer's keys for the T inputs (heads concatenated)
  v: string; // [B, T, D]
}

/**
 * One pre-LN layer on x [B, T, D]. Keys are [past.k ; own k] (past [B, P, D], when given). `mask` is additive,
 * broadcastable to [B, heads, T, keys].
 */
function emitLayer(c: Ctx, l: number, x: string, mask?: string, past?: { k: string; v: string }): LayerOut {
  const { g, w, D } = c;
  const p = layerPrefix(c.e, l);
  const qkv = w.linear(w.layerNorm(x, `${p}.ln1.g`, `${p}.ln1.b`), `${p}.attn.wqkv`, `${p}.attn.bqkv`);
  const [q, k, v] = g.node('Split', [qkv, g.ints([D, D, D])], { axis: -1 }, 3);
  const keys = past ? g.op('Concat', [past.k, k], { axis: 1 }) : k;
  const values = past ? g.op('Concat', [past.v, v], { axis: 1 }) : v;
  let s = g.op('MatMul', [splitHeads(c, q), splitHeads(c, keys, true)]); // [B, heads, T, keys]
  s = g.op('Div', [s, g.scalar(Math.sqrt(D / c.heads))]);
  if (mask) s = g.op('Add', [s, mask]);
  const a = g.op('MatMul', [g.op('Softmax', [s], { axis: -1 }), splitHeads(c, values)]); // [B, heads, T, dh]
  const o = g.op('Reshape', [g.op('Transpose', [a], { perm: [0, 2, 1, 3] }), g.ints([0, 0, D])]);
  const x1 = g.op('Add', [x, w.linear(o, `${p}.attn.wo`, `${p}.attn.bo`)]);
  const f = g.op('Gelu', [
    w.linear(w.layerNorm(x1, `${p}.ln2.g`, `${p}.ln2.b`), `${p}.ffn.w1`, `${p}.ffn.b1`),
  ]);
  return { x: g.op('Add', [x1, w.linear(f, `${p}.ffn.w2`, `${p}.ffn.b2`)]), k, v };
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
  return c.g.op('Add', [c.w.linear(h, `${pre}.w_in`, `${pre}.b_in`), pos]);
}

/** y = W_out LN_f(z) + b_out for z [B, D]: [B, H]. */
function readOut(c: Ctx, z: string): string {
  const pre = expertPrefix(c.e);
  return c.w.linear(c.w.layerNorm(z, `${pre}.ln_f.g`, `${pre}.ln_f.b`), `${pre}.w_out`, `${pre}.b_out`);
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
 * Prefill of expert e: tokens [L] → out [L, D] (LN_f of the last layer), k and v [layers, L, D] (every
 * layer's prompt keys/values, heads concatenated along D). L must be in 1..Lmax.
 */
export function buildExpertPrefill(src: WeightSource, e: number): Uint8Array {
  const c = context(src, e);
  const { g, w, D, layers } = c;
  const tokens = g.input('tokens', 'int64', ['L'], 'prompt token ids, 1 ≤ L ≤ Lmax');
  const L = g.op('Shape', [tokens]);
  let x = g.op('Unsqueeze', [embedPrompt(c, tokens, L), g.ints([0])]); // [1, L, D]
  const ks: string[] = [];
  const vs: string[] = [];
  for (let l = 0; l < layers; l++) {
    const r = emitLayer(c, l, x);
    x = r.x;
    ks.push(r.k);
    vs.push(r.v);
  }
  const pre = expertPrefix(e);
  const out = g.op('Squeeze', [w.layerNorm(x, `${pre}.ln_f.g`, `${pre}.ln_f.b`), g.ints([0])]);
  g.output(out, 'out', 'float32', ['L', D], 'LN_f of the last layer: the prompt encoding');
  g.output(g.op('Concat', ks, { axis: 0 }), 'k', 'float32', [layers, 'L', D], 'keys per layer');
  g.output(g.op('Concat', vs, { axis: 0 }), 'v', 'float32', [layers, 'L', D], 'values per layer');
  return g.build({ graphName: `expert-${e}-prefill`, doc: docFor(src, e, 'prefill') });
}

/**
 * Step of expert e for B rows at once: h [B, H], the rows' prompt caches past_k/past_v [layers, B, P, D]
 * (row b valid for its first prompt_len[b] positions, the rest finite padding, e.g. zeros) → y [B, H].
 */
export function buildExpertStep(src: WeightSource, e: number): Uint8Array {
  const c = context(src, e);
  const { g, D, layers } = c;
  const H = src.config.controller.hidden;
  const h = g.input('h', 'float32', ['B', H], 'controller hidden state per row');
  const pastK = g.input(
    'past_k',
    'float32',
    [layers, 'B', 'P', D],
    'prompt keys from prefill, zero-padded to P',
  );
  const pastV = g.input(
    'past_v',
    'float32',
    [layers, 'B', 'P', D],
    'prompt values from prefill, zero-padded to P',
  );
  const promptLen = g.input('prompt_len', 'int64', ['B'], 'valid cache rows per row, 1 ≤ prompt_len ≤ P');
  const P = dimScalar(c, pastK, 2);
  const { prompt, isQuery } = keyMask(c, promptLen, P);
  const visible = g.op('Or', [prompt, isQuery]); // [B, P+1]
  const mask = g.op('Unsqueeze', [additive(c, visible), g.ints([1, 2])]); // [B, 1, 1, P+1]
  let z = g.op('Unsqueeze', [embedQuery(c, h), g.ints([1])]); // [B, 1, D]
  for (let l = 0; l < layers; l++) {
    const at = g.ints([l], true);
    const past = {
      k: g.op('Gather', [pastK, at], { axis: 0 }),
      v: g.op('Gather', [pastV, at], { axis: 0 }),
    };
    z = emitLayer(c, l, z, mask, past).x;
  }
  const y = readOut(c, g.op('Squeeze', [z, g.ints([1])]));
  g.output(y, 'y', 'float32', ['B', H], 'expert output per row');
  return g.build({ graphName: `expert-${e}-step`, doc: docFor(src, e, 'step') });
}

/**
 * Prefill and step in one graph: tokens [B, P] (row b's prompt in its first prompt_len[b] entries, padded
 * with any valid token id), prompt_len [B], h [B, H] → y [B, H]. Prompt and query run as one sequence of
 * P+1 per row; prompt tokens see only their row's real prompt, the query sees those and itself, so each row
 * equals prefill(its prompt) then step(h).
 */
export function buildExpertStateless(src: WeightSource, e: number): Uint8Array {
  const c = context(src, e);
  const { g, D, layers } = c;
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
  for (let l = 0; l < layers; l++) x = emitLayer(c, l, x, mask).x;
  const z = g.op('Gather', [x, P], { axis: 1 }); // [B, D] the query row
  g.output(readOut(c, z), 'y', 'float32', ['B', H], 'expert output per row');
  return g.build({ graphName: `expert-${e}`, doc: docFor(src, e, 'stateless prefill + step') });
}
