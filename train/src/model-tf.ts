// The rru-moe v1 forward of shared/src/reference.ts in tfjs, batched, for training: teacher forcing over
// whole sequences and batched generation. Same math, tensor for tensor; only the layout differs:
// weights are kept as [in, out] (wasm multiplies those fastest) and the experts' tensors are stacked
// along a leading expert axis, so that the optimizer sees 30 variables instead of 300.
import {
  END_THINK,
  EOS,
  expertPrefix,
  layerPrefix,
  type ModelConfig,
  type ParamMap,
  paramSpecs,
  THINK,
} from '@switchyard/shared';
import { embed, gatherRows, mm, bmm, scatterRows, tf } from './tf.ts';

const LN_EPS = 1e-5;
const MASKED = -1e9;

// ---------------------------------------------------------------- layout conversion

function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

function concatArrays(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Rows [from, to) of a row-major [rows, cols] matrix. */
const rowsOf = (a: Float32Array, cols: number, from: number, to: number) => a.slice(from * cols, to * cols);

/** Columns [from, to) of a row-major [rows, cols] matrix. */
function colsOf(a: Float32Array, rows: number, cols: number, from: number, to: number): Float32Array {
  const w = to - from;
  const out = new Float32Array(rows * w);
  for (let r = 0; r < rows; r++) out.set(a.subarray(r * cols + from, r * cols + to), r * w);
  return out;
}

/** The names of the training variables, in a fixed order (checkpoints rely on it). */
export function variableNames(config: ModelConfig): string[] {
  const names = [
    'tok_embed',
    'lstm.wx',
    'lstm.wrmh',
    'lstm.b',
    'gate.w',
    'gate.b',
    'memory.w_rq',
    'memory.w_k',
    'memory.w_v',
    'head.w',
    'head.b',
    'experts.embed',
    'experts.pos',
    'x.w_in',
    'x.b_in',
  ];
  for (let l = 0; l < config.experts.layers; l++)
    for (const t of ['ln1.g', 'ln1.b', 'wqkv', 'bqkv', 'wo', 'bo', 'ln2.g', 'ln2.b', 'w1', 'b1', 'w2', 'b2'])
      names.push(`x.l${l}.${t}`);
  names.push('x.ln_f.g', 'x.ln_f.b', 'x.w_out', 'x.b_out');
  return names;
}

/** Per-expert tensors: (stacked variable, shared tensor suffix, whether it is a matrix to transpose). */
function expertTensors(config: ModelConfig): [string, (e: number) => string, boolean][] {
  const out: [string, (e: number) => string, boolean][] = [
    ['x.w_in', (e) => `${expertPrefix(e)}.w_in`, true],
    ['x.b_in', (e) => `${expertPrefix(e)}.b_in`, false],
  ];
  const perLayer: [string, string, boolean][] = [
    ['ln1.g', 'ln1.g', false],
    ['ln1.b', 'ln1.b', false],
    ['wqkv', 'attn.wqkv', true],
    ['bqkv', 'attn.bqkv', false],
    ['wo', 'attn.wo', true],
    ['bo', 'attn.bo', false],
    ['ln2.g', 'ln2.g', false],
    ['ln2.b', 'ln2.b', false],
    ['w1', 'ffn.w1', true],
    ['b1', 'ffn.b1', false],
    ['w2', 'ffn.w2', true],
    ['b2', 'ffn.b2', false],
  ];
  for (let l = 0; l < config.experts.layers; l++)
    for (const [v, s, m] of perLayer) out.push([`x.l${l}.${v}`, (e) => `${layerPrefix(e, l)}.${s}`, m]);
  out.push(
    ['x.ln_f.g', (e) => `${expertPrefix(e)}.ln_f.g`, false],
    ['x.ln_f.b', (e) => `${expertPrefix(e)}.ln_f.b`, false],
    ['x.w_out', (e) => `${expertPrefix(e)}.w_out`, true],
    ['x.b_out', (e) => `${expertPrefix(e)}.b_out`, false],
  );
  return out;
}

export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Shared [out, in] tensors → the training layout ([in, out], experts stacked). */
export function toTrainingLayout(config: ModelConfig, params: ParamMap): Map<string, HostTensor> {
  const { vocab: V } = config;
  const { embed: Dc, hidden: H } = config.controller;
  const S = config.memory.dim;
  const E = config.experts.count;
  const get = (n: string) => {
    const t = params.get(n);
    if (!t) throw new RangeError(`tensor "${n}": expected in the parameters, found no such tensor`);
    return t;
  };
  const T = (n: string) => {
    const t = get(n);
    return { shape: [t.shape[1], t.shape[0]], data: transpose2d(t.data, t.shape[0], t.shape[1]) };
  };
  const out = new Map<string, HostTensor>();
  out.set('tok_embed', { shape: [V, Dc], data: get('tok_embed').data.slice() });
  const wih = get('lstm.w_ih').data; // [4H, Dc+S+H]
  const wihT = transpose2d(wih, 4 * H, Dc + S + H); // [Dc+S+H, 4H]
  out.set('lstm.wx', { shape: [Dc, 4 * H], data: rowsOf(wihT, 4 * H, 0, Dc) });
  out.set('lstm.wrmh', {
    shape: [S + 2 * H, 4 * H],
    data: concatArrays([rowsOf(wihT, 4 * H, Dc, Dc + S + H), transpose2d(get('lstm.w_hh').data, 4 * H, H)]),
  });
  out.set('lstm.b', { shape: [4 * H], data: get('lstm.b').data.slice() });
  out.set('gate.w', T('gate.w'));
  out.set('gate.b', { shape: [E], data: get('gate.b').data.slice() });
  for (const n of ['memory.w_rq', 'memory.w_k', 'memory.w_v', 'head.w']) out.set(n, T(n));
  out.set('head.b', { shape: [V], data: get('head.b').data.slice() });
  for (const n of ['experts.embed', 'experts.pos']) {
    const t = get(n);
    out.set(n, { shape: [...t.shape], data: t.data.slice() });
  }
  for (const [name, src, matrix] of expertTensors(config)) {
    const parts: Float32Array[] = [];
    let shape: number[] = [];
    for (let e = 0; e < E; e++) {
      const t = get(src(e));
      if (matrix) {
        parts.push(transpose2d(t.data, t.shape[0], t.shape[1]));
        shape = [t.shape[1], t.shape[0]];
      } else {
        parts.push(t.data);
        shape = [...t.shape];
      }
    }
    out.set(name, { shape: [E, ...shape], data: concatArrays(parts) });
  }
  return out;
}

/** The training layout → shared [out, in] tensors; `fixed` supplies the tensors training leaves alone. */
export function fromTrainingLayout(
  config: ModelConfig,
  vars: Map<string, HostTensor>,
  fixed: ParamMap,
): ParamMap {
  const { embed: Dc, hidden: H } = config.controller;
  const S = config.memory.dim;
  const E = config.experts.count;
  const v = (n: string) => vars.get(n)!;
  const T = (n: string) => {
    const t = v(n);
    return { shape: [t.shape[1], t.shape[0]], data: transpose2d(t.data, t.shape[0], t.shape[1]) };
  };
  const params: ParamMap = new Map();
  const put = (name: string, shape: number[], data: Float32Array) => params.set(name, { shape, data });
  put('tok_embed', [...v('tok_embed').shape], v('tok_embed').data.slice());
  const wrmh = v('lstm.wrmh').data; // [S+2H, 4H]
  const wihT = concatArrays([v('lstm.wx').data, rowsOf(wrmh, 4 * H, 0, S + H)]); // [Dc+S+H, 4H]
  put('lstm.w_ih', [4 * H, Dc + S + H], transpose2d(wihT, Dc + S + H, 4 * H));
  put('lstm.w_hh', [4 * H, H], transpose2d(rowsOf(wrmh, 4 * H, S + H, S + 2 * H), H, 4 * H));
  put('lstm.b', [4 * H], v('lstm.b').data.slice());
  for (const n of ['gate.w', 'memory.w_rq', 'memory.w_k', 'memory.w_v', 'head.w']) {
    const t = T(n);
    put(n, t.shape, t.data);
  }
  for (const n of ['gate.b', 'head.b', 'experts.embed', 'experts.pos'])
    put(n, [...v(n).shape], v(n).data.slice());
  for (const [name, dst, matrix] of expertTensors(config)) {
    const t = v(name);
    const inner = t.shape.slice(1);
    const size = inner.reduce((a, b) => a * b, 1);
    for (let e = 0; e < E; e++) {
      const part = t.data.slice(e * size, (e + 1) * size);
      if (matrix) put(dst(e), [inner[1], inner[0]], transpose2d(part, inner[0], inner[1]));
      else put(dst(e), [...inner], part);
    }
  }
  for (const [n, t] of fixed)
    if (!params.has(n)) params.set(n, { shape: [...t.shape], data: t.data.slice() });
  // Canonical order, so that a round trip gives an identical map.
  const ordered: ParamMap = new Map();
  for (const s of paramSpecs(config)) {
    const t = params.get(s.name);
    if (!t) throw new RangeError(`tensor "${s.name}": expected after conversion, found no such tensor`);
    ordered.set(s.name, t);
  }
  return ordered;
}

// ---------------------------------------------------------------- the model

let nextModelId = 0;

export class TfModel {
  readonly vars = new Map<string, tf.Variable>();
  /** Tensors of the file that training does not touch (the LTM code matrix has no loss). */
  readonly fixed: ParamMap = new Map();

  /** Every expert on every row (see allExperts) instead of gathering each expert's rows. */
  readonly denseExperts: boolean;

  constructor(
    readonly config: ModelConfig,
    params: ParamMap,
    experts: 'dense' | 'routed' | 'auto' = 'auto',
  ) {
    this.denseExperts =
      experts === 'auto' ? config.experts.count <= 2 * config.experts.top_k : experts === 'dense';
    const layout = toTrainingLayout(config, params);
    // tfjs variable names are global; a prefix per model lets several models live in one process.
    const uid = nextModelId++;
    for (const name of variableNames(config)) {
      const t = layout.get(name)!;
      this.vars.set(name, tf.variable(tf.tensor(t.data, t.shape), true, `m${uid}/${name}`));
    }
    const w = params.get('memory.w_code')!;
    this.fixed.set('memory.w_code', { shape: [...w.shape], data: w.data.slice() });
  }

  /** The variables' values in the training layout. */
  hostVars(): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>();
    for (const [n, v] of this.vars) out.set(n, { shape: [...v.shape], data: v.dataSync() as Float32Array });
    return out;
  }

  setHostVars(values: Map<string, HostTensor>): void {
    for (const [n, v] of this.vars) {
      const t = values.get(n);
      if (!t) throw new RangeError(`variable "${n}": expected in the checkpoint, found no such tensor`);
      if (t.data.length !== v.size)
        throw new RangeError(`variable "${n}": expected ${v.size} values, found ${t.data.length}`);
      v.assign(tf.tensor(t.data, v.shape));
    }
  }

  toParamMap(): ParamMap {
    return fromTrainingLayout(this.config, this.hostVars(), this.fixed);
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
  }

  private v(name: string): tf.Variable {
    return this.vars.get(name)!;
  }

  // -------------------------------------------------------------- prepared weights

  /**
   * Folds every LayerNorm's gain and bias into the matrix after it (LN(x)·W = norm(x)·(g∘W) + β·W), so a
   * step needs only the normalization, and splits stacked expert weights into 2-D matrices. Runs inside
   * the gradient tape, once per batch.
   */
  prepare(): Prepared {
    const E = this.config.experts.count;
    const D = this.config.experts.width;
    const fold = (g: tf.Tensor, b: tf.Tensor, w: tf.Tensor, bias: tf.Tensor) => ({
      w: tf.mul(tf.expandDims(g, 2), w), // [E, in, out]
      b: tf.add(bias, tf.sum(tf.mul(tf.expandDims(b, 2), w), 1)), // [E, out]
    });
    const layers: PreparedLayer[] = [];
    for (let l = 0; l < this.config.experts.layers; l++) {
      const p = `x.l${l}.`;
      const qkv = fold(this.v(p + 'ln1.g'), this.v(p + 'ln1.b'), this.v(p + 'wqkv'), this.v(p + 'bqkv'));
      const ffn1 = fold(this.v(p + 'ln2.g'), this.v(p + 'ln2.b'), this.v(p + 'w1'), this.v(p + 'b1'));
      const [qw, kw, vw] = tf.split(qkv.w, 3, 2).map((t) => tf.unstack(t));
      const [qb, kb, vb] = tf.split(qkv.b, 3, 1).map((t) => tf.unstack(t));
      layers.push({
        qkvW: tf.unstack(qkv.w),
        qkvB: qkv.b,
        qW: qw,
        kW: kw,
        vW: vw,
        qB: qb,
        kB: kb,
        vB: vb,
        woW: tf.unstack(this.v(p + 'wo')),
        bo: this.v(p + 'bo'),
        boE: tf.unstack(this.v(p + 'bo')),
        w1W: tf.unstack(ffn1.w),
        b1: ffn1.b,
        b1E: tf.unstack(ffn1.b),
        w2W: tf.unstack(this.v(p + 'w2')),
        b2: this.v(p + 'b2'),
        b2E: tf.unstack(this.v(p + 'b2')),
      });
    }
    const out = fold(this.v('x.ln_f.g'), this.v('x.ln_f.b'), this.v('x.w_out'), this.v('x.b_out'));
    const Lmax = this.config.experts.max_prompt;
    return {
      layers,
      wIn: tf.unstack(this.v('x.w_in')),
      bIn: this.v('x.b_in'),
      outW: tf.unstack(out.w),
      outB: out.b,
      posQuery: tf.slice(this.v('experts.pos'), [Lmax, 0], [1, D]),
    };
  }

  // -------------------------------------------------------------- prefill

  /** Every expert's prompt K and V per layer, for a batch of prompts padded at the end. */
  prefill(p: Prepared, prompts: readonly (readonly number[])[]): Prefilled {
    const { count: E, width: D, heads, layers, max_prompt: Lmax } = this.config.experts;
    const dh = D / heads;
    const B = prompts.length;
    const L = Math.max(...prompts.map((t) => t.length));
    if (L > Lmax) throw new RangeError(`prompt length: expected at most ${Lmax}, found ${L}`);
    const ids: number[] = [];
    const maskData = new Float32Array(B * L);
    prompts.forEach((t, b) => {
      for (let i = 0; i < L; i++) {
        ids.push(i < t.length ? t[i] : 0);
        if (i >= t.length) maskData[b * L + i] = MASKED;
      }
    });
    const mask = tf.tensor2d(maskData, [B, L]);
    const x0 = tf.reshape(
      tf.add(
        tf.reshape(embed(this.v('experts.embed'), ids), [B, L, D]),
        tf.slice(this.v('experts.pos'), [0, 0], [L, D]),
      ),
      [B * L, D],
    );
    const scale = 1 / Math.sqrt(dh);
    const maskB = tf.reshape(mask, [B, 1, 1, L]);
    // Experts run one by one on 2-D matMuls (wasm runs those several times faster than batched ones),
    // and attention goes through 4-D transposes (wasm transposes rank 5+ very slowly).
    const toHeads = (t: tf.Tensor) =>
      tf.reshape(tf.transpose(tf.reshape(t, [B, L, heads, dh]), [0, 2, 1, 3]), [B * heads, L, dh]);
    const fromHeads = (t: tf.Tensor) =>
      tf.reshape(tf.transpose(tf.reshape(t, [B, heads, L, dh]), [0, 2, 1, 3]), [B * L, D]);
    const ks: tf.Tensor[] = [];
    const vs: tf.Tensor[] = [];
    let xs: tf.Tensor[] = []; // per expert [B*L, D], once the experts' streams diverge
    const n0 = layerNormCore(x0);
    for (let l = 0; l < layers; l++) {
      const lw = p.layers[l];
      const last = l === layers - 1;
      const kl: tf.Tensor[] = [];
      const vl: tf.Tensor[] = [];
      const next: tf.Tensor[] = [];
      for (let e = 0; e < E; e++) {
        const x = l === 0 ? x0 : xs[e];
        const n = l === 0 ? n0 : layerNormCore(x);
        const k = tf.add(mm(n, lw.kW[e]), lw.kB[e]); // [B*L, D]
        const v = tf.add(mm(n, lw.vW[e]), lw.vB[e]);
        kl.push(k);
        vl.push(v);
        if (last) continue;
        // Bidirectional attention among the prompt tokens, padding masked out.
        const q = tf.add(mm(n, lw.qW[e]), lw.qB[e]);
        const s = tf.mul(bmm(toHeads(q), tf.transpose(toHeads(k), [0, 2, 1])), scale); // [B*heads, L, L]
        const pr = tf.softmax(tf.add(tf.reshape(s, [B, heads, L, L]), maskB));
        const o = fromHeads(bmm(tf.reshape(pr, [B * heads, L, L]), toHeads(v)));
        const y = tf.add(x, tf.add(mm(o, lw.woW[e]), lw.boE[e]));
        const f = gelu(tf.add(mm(layerNormCore(y), lw.w1W[e]), lw.b1E[e]));
        next.push(tf.add(y, tf.add(mm(f, lw.w2W[e]), lw.b2E[e])));
      }
      ks.push(tf.reshape(tf.concat(kl, 0), [E * B, L, D]));
      vs.push(tf.reshape(tf.concat(vl, 0), [E * B, L, D]));
      xs = next;
    }
    const maskAll = tf.reshape(tf.tile(mask, [E, 1]), [E * B, 1, L]);
    return { k: ks, v: vs, mask, maskAll, B, L };
  }

  // -------------------------------------------------------------- one step

  /**
   * DESIGN.md §1 "Step t" for a batch: STM read with the previous h, LSTM cell, gate and top-K, the routed
   * experts (each row computes only its K experts), the mixture, the STM write.
   * `xw` is the token's input projection tok_embed[y]·W_x + b, computed for all steps at once.
   */
  step(p: Prepared, pre: Prefilled, st: StepState, xw: tf.Tensor): StepOutput {
    const S = this.config.memory.dim;
    const slots = this.config.memory.stm_slots;
    const { count: E, top_k: K } = this.config.experts;
    const B = pre.B;

    // STM read: r = Σ_j softmax_j(q·k_j/√S) v_j, q = W_rq h_prev; the ring keeps the newest `slots`.
    let r: tf.Tensor;
    if (st.stmK.length === 0) r = tf.zeros([B, S]);
    else {
      const from = Math.max(0, st.stmK.length - slots);
      const keys = tf.stack(st.stmK.slice(from), 1); // [B, n, S]
      const vals = tf.stack(st.stmV.slice(from), 1);
      const q = mm(st.h, this.v('memory.w_rq')); // [B, S]
      const att = tf.softmax(tf.mul(tf.sum(tf.mul(keys, tf.expandDims(q, 1)), 2), 1 / Math.sqrt(S)));
      r = tf.sum(tf.mul(tf.expandDims(att, 2), vals), 1); // [B, S]
    }

    // LSTM cell on [x; r; m], gate order i, f, g, o.
    const z = tf.add(xw, mm(tf.concat([r, st.m, st.h], 1), this.v('lstm.wrmh'))); // [B, 4H]
    const [zi, zf, zg, zo] = tf.split(z, 4, 1);
    const c = tf.add(tf.mul(tf.sigmoid(zf), st.c), tf.mul(tf.sigmoid(zi), tf.tanh(zg)));
    const h = tf.mul(tf.sigmoid(zo), tf.tanh(c)); // [B, H]

    // Gate: top-K of softmax(W_g h + b_g), gates renormalized over the chosen experts.
    const probs = tf.softmax(tf.add(mm(h, this.v('gate.w')), this.v('gate.b'))); // [B, E]
    const top = tf.topk(probs, K);
    const gates = tf.div(top.values, tf.sum(top.values, 1, true)); // [B, K]
    const chosen = top.indices.dataSync() as Int32Array; // [B*K]

    const m = this.denseExperts
      ? this.allExperts(p, pre, h, probs, chosen)
      : this.routedExperts(p, pre, h, gates, chosen); // [B, H]: Σ_e g_e · Expert_e(h)
    const counts = new Array<number>(E).fill(0);
    for (const e of chosen) counts[e]++;

    const key = mm(h, this.v('memory.w_k'));
    const value = mm(m, this.v('memory.w_v'));
    return {
      state: { h, c, m, stmK: [...st.stmK, key], stmV: [...st.stmV, value] },
      probs,
      experts: chosen,
      counts,
    };
  }

  /**
   * The experts for the rows that chose them: each expert multiplies one contiguous block of rows, the
   * rows gather their example's prompt cache. Less work than running every expert when E ≫ K.
   */
  private routedExperts(
    p: Prepared,
    pre: Prefilled,
    h: tf.Tensor,
    gates: tf.Tensor,
    chosen: Int32Array,
  ): tf.Tensor {
    const { count: E, top_k: K } = this.config.experts;
    const B = pre.B;
    const L = pre.L;
    const rowB: number[] = [];
    const rowE: number[] = [];
    const rowSlot: number[] = [];
    const counts = new Array<number>(E).fill(0);
    for (let e = 0; e < E; e++)
      for (let b = 0; b < B; b++)
        for (let k = 0; k < K; k++)
          if (chosen[b * K + k] === e) {
            rowB.push(b);
            rowE.push(e);
            rowSlot.push(b * K + k);
            counts[e]++;
          }
    const N = rowB.length;
    const used = counts.map((n, e) => [n, e]).filter(([n]) => n > 0);
    const sizes = used.map(([n]) => n);
    const perRow = (x: tf.Tensor, ws: tf.Tensor[], bias: tf.Tensor) => {
      const parts = used.length === 1 ? [x] : tf.split(x, sizes, 0);
      const y = tf.concat(
        parts.map((xp, i) => mm(xp, ws[used[i][1]])),
        0,
      );
      return tf.add(y, gatherRows(bias, eIdx));
    };
    const bIdx = tf.tensor1d(rowB, 'int32');
    const eIdx = tf.tensor1d(rowE, 'int32');
    const cacheIdx = tf.tensor1d(
      rowB.map((b, i) => rowE[i] * B + b),
      'int32',
    );
    const maskRows = tf.reshape(tf.gatherND(pre.mask, tf.expandDims(bIdx, 1)), [N, 1, L]);

    let x = tf.add(perRow(gatherRows(h, bIdx), p.wIn, p.bIn), p.posQuery); // [N, D]
    p.layers.forEach((lw, l) => {
      const qkv = perRow(layerNormCore(x), lw.qkvW, lw.qkvB); // [N, 3D]
      const kc = gatherRows(pre.k[l], cacheIdx); // [N, L, D]
      const vc = gatherRows(pre.v[l], cacheIdx);
      const o = this.attendStep(qkv, kc, vc, maskRows);
      x = tf.add(x, perRow(o, lw.woW, lw.bo));
      const f = gelu(perRow(layerNormCore(x), lw.w1W, lw.b1));
      x = tf.add(x, perRow(f, lw.w2W, lw.b2));
    });
    const y = perRow(layerNormCore(x), p.outW, p.outB); // [N, H]
    const g = tf.reshape(gatherRows(tf.reshape(gates, [B * K]), tf.tensor1d(rowSlot, 'int32')), [N, 1]);
    return scatterRows(tf.mul(y, g), bIdx, B);
  }

  /**
   * Every expert on every row, mixed with gates that are zero outside the top-K: the same sum as the
   * routed one, with no gathers and scatters. When E ≤ 2K this does at most twice the routed work in
   * far fewer (and so faster, on wasm) operations.
   */
  private allExperts(
    p: Prepared,
    pre: Prefilled,
    h: tf.Tensor,
    probs: tf.Tensor,
    chosen: Int32Array,
  ): tf.Tensor {
    const { count: E, top_k: K } = this.config.experts;
    const H = this.config.controller.hidden;
    const B = pre.B;
    const keep = new Float32Array(B * E);
    for (let b = 0; b < B; b++) for (let k = 0; k < K; k++) keep[b * E + chosen[b * K + k]] = 1;
    const sel = tf.mul(probs, tf.tensor2d(keep, [B, E]));
    const gates = tf.div(sel, tf.sum(sel, 1, true)); // [B, E], renormalized over the top K
    // Rows e*B + b, like the prompt cache.
    const perExpert = (x: tf.Tensor, ws: tf.Tensor[], bias: tf.Tensor) => {
      const parts = tf.split(x, E, 0);
      const y = tf.stack(parts.map((xp, e) => mm(xp, ws[e]))); // [E, B, out]
      return tf.reshape(tf.add(y, tf.expandDims(bias, 1)), [E * B, -1]);
    };
    let x = tf.add(perExpert(tf.tile(h, [E, 1]), p.wIn, p.bIn), p.posQuery); // [E*B, D]
    p.layers.forEach((lw, l) => {
      const qkv = perExpert(layerNormCore(x), lw.qkvW, lw.qkvB); // [E*B, 3D]
      const o = this.attendStep(qkv, pre.k[l], pre.v[l], pre.maskAll);
      x = tf.add(x, perExpert(o, lw.woW, lw.bo));
      const f = gelu(perExpert(layerNormCore(x), lw.w1W, lw.b1));
      x = tf.add(x, perExpert(f, lw.w2W, lw.b2));
    });
    const y = tf.reshape(perExpert(layerNormCore(x), p.outW, p.outB), [E, B, H]);
    return tf.sum(tf.mul(y, tf.expandDims(tf.transpose(gates), 2)), 0);
  }

  /**
   * One query per row attends over its prompt's cached K, V and its own k, v; softmax over L+1, scaled
   * by 1/√(D/heads). qkv [N, 3D]; kc, vc [N, L, D]; mask [N, 1, L]. Returns [N, D].
   */
  private attendStep(qkv: tf.Tensor, kc: tf.Tensor, vc: tf.Tensor, mask: tf.Tensor): tf.Tensor {
    const { width: D, heads } = this.config.experts;
    const dh = D / heads;
    const [N, L] = kc.shape;
    const [q, k, v] = tf.split(qkv, 3, 1).map((t) => tf.reshape(t, [N, heads, dh]));
    const sPrompt = tf.sum(
      tf.reshape(tf.mul(kc, tf.expandDims(tf.reshape(q, [N, D]), 1)), [N, L, heads, dh]),
      3,
    );
    const sPromptT = tf.add(tf.transpose(sPrompt, [0, 2, 1]), mask); // [N, heads, L]
    const sSelf = tf.sum(tf.mul(k, q), 2, true); // [N, heads, 1]
    const pr = tf.softmax(tf.mul(tf.concat([sPromptT, sSelf], 2), 1 / Math.sqrt(dh)));
    const pPrompt = tf.transpose(tf.slice(pr, [0, 0, 0], [N, heads, L]), [0, 2, 1]); // [N, L, heads]
    const pSelf = tf.slice(pr, [0, 0, L], [N, heads, 1]);
    const oPrompt = tf.sum(tf.mul(tf.expandDims(pPrompt, 3), tf.reshape(vc, [N, L, heads, dh])), 1);
    return tf.reshape(tf.add(oPrompt, tf.mul(pSelf, v)), [N, D]); // [N, D]
  }

  /** logits = W_o [h; m] + b_o for any number of rows. */
  head(h: tf.Tensor, m: tf.Tensor): tf.Tensor2D {
    return tf.add(mm(tf.concat([h, m], 1), this.v('head.w')), this.v('head.b')) as tf.Tensor2D;
  }

  /** tok_embed[y]·W_x + b for a flat list of tokens. */
  inputProjection(tokens: readonly number[]): tf.Tensor2D {
    return tf.add(mm(embed(this.v('tok_embed'), tokens), this.v('lstm.wx')), this.v('lstm.b')) as tf.Tensor2D;
  }

  initialState(B: number): StepState {
    const H = this.config.controller.hidden;
    return { h: tf.zeros([B, H]), c: tf.zeros([B, H]), m: tf.zeros([B, H]), stmK: [], stmV: [] };
  }

  // -------------------------------------------------------------- teacher forcing

  /**
   * Runs whole sequences with the given inputs (teacher forcing). inputs[b][t] is the token fed at step
   * t+1; shorter sequences are padded (their extra steps run but the caller masks them).
   */
  forward(
    p: Prepared,
    prompts: readonly (readonly number[])[],
    inputs: readonly (readonly number[])[],
  ): Forward {
    const B = prompts.length;
    const T = Math.max(...inputs.map((s) => s.length));
    const flat: number[] = [];
    for (let t = 0; t < T; t++) for (let b = 0; b < B; b++) flat.push(inputs[b][t] ?? 0);
    const pre = this.prefill(p, prompts);
    const xw = this.inputProjection(flat); // [T*B, 4H]
    const H = this.config.controller.hidden;
    let st = this.initialState(B);
    const hs: tf.Tensor[] = [];
    const ms: tf.Tensor[] = [];
    const probs: tf.Tensor[] = [];
    const experts: Int32Array[] = [];
    for (let t = 0; t < T; t++) {
      const out = this.step(p, pre, st, tf.slice(xw, [t * B, 0], [B, 4 * H]));
      st = out.state;
      hs.push(st.h);
      ms.push(st.m);
      probs.push(out.probs);
      experts.push(out.experts);
    }
    const hAll = tf.concat(hs, 0); // [T*B, H], step-major
    const mAll = tf.concat(ms, 0);
    return { logits: this.head(hAll, mAll), h: hAll, m: mAll, probs: tf.concat(probs, 0), experts, T, B };
  }

  // -------------------------------------------------------------- generation

  /**
   * Batched generation with the phase rules of shared/src/generate.ts: starts from <think>, forces
   * </think> after max_think_steps reasoning tokens, stops at <eos> or maxTokens. Greedy when
   * temperature is 0 (ties to the lower id, as argmax there), else sampled from `rng`.
   */
  generate(prompts: readonly (readonly number[])[], opts: GenerateBatchOptions): GeneratedBatch {
    const B = prompts.length;
    const maxThink = this.config.max_think_steps;
    const result: GeneratedBatch = {
      tokens: prompts.map(() => []),
      forced: prompts.map(() => []),
      reasoning: prompts.map(() => []),
      answer: prompts.map(() => []),
      logProbs: prompts.map(() => []),
      values: prompts.map(() => []),
      experts: prompts.map(() => []),
    };
    const phase: ('think' | 'answer' | 'done')[] = prompts.map(() => 'think');
    const thinkSteps = new Array<number>(B).fill(0);
    let y = new Array<number>(B).fill(THINK);
    tf.tidy(() => {
      const p = this.prepare();
      const pre = this.prefill(p, prompts);
      let st = this.initialState(B);
      const K = this.config.experts.top_k;
      for (let index = 1; index <= opts.maxTokens && phase.some((x) => x !== 'done'); index++) {
        let logp: Float32Array = new Float32Array(0);
        let value: Float32Array | undefined;
        let chosen: Int32Array = new Int32Array(0);
        const kept = tf.tidy(() => {
          const out = this.step(p, pre, st, this.inputProjection(y));
          logp = tf.logSoftmax(this.head(out.state.h, out.state.m)).dataSync() as Float32Array;
          if (opts.valueHead) value = opts.valueHead(out.state.h, out.state.m).dataSync() as Float32Array;
          chosen = out.experts;
          const s = out.state;
          return [s.h, s.c, s.m, s.stmK[s.stmK.length - 1], s.stmV[s.stmV.length - 1]];
        });
        // The new state; older STM entries stay alive in the outer scope until the batch is done.
        st = { h: kept[0], c: kept[1], m: kept[2], stmK: [...st.stmK, kept[3]], stmV: [...st.stmV, kept[4]] };
        const V = this.config.vocab;
        const tokens = new Array<number>(B);
        for (let b = 0; b < B; b++) {
          if (phase[b] === 'done') {
            tokens[b] = 0;
            continue;
          }
          const row = logp.subarray(b * V, (b + 1) * V);
          const forced = phase[b] === 'think' && thinkSteps[b] >= maxThink;
          const tok = forced ? END_THINK : pickToken(row, opts.temperature, opts.rng);
          tokens[b] = tok;
          result.tokens[b].push(tok);
          result.forced[b].push(forced);
          result.logProbs[b].push(row[tok]);
          if (value) result.values[b].push(value[b]);
          result.experts[b].push(Array.from(chosen.subarray(b * K, (b + 1) * K)));
          if (phase[b] === 'think') {
            if (tok === END_THINK) phase[b] = 'answer';
            else if (tok === EOS) phase[b] = 'done';
            else {
              result.reasoning[b].push(tok);
              thinkSteps[b]++;
            }
          } else if (tok === EOS) phase[b] = 'done';
          else result.answer[b].push(tok);
        }
        y = tokens;
      }
    });
    return result;
  }
}

function pickToken(logp: Float32Array, temperature: number, rng?: { next(): number }): number {
  if (temperature <= 0 || !rng) {
    let best = 0;
    for (let i = 1; i < logp.length; i++) if (logp[i] > logp[best]) best = i;
    return best;
  }
  let max = -Infinity;
  for (let i = 0; i < logp.length; i++) max = Math.max(max, logp[i]);
  const w = new Float64Array(logp.length);
  let sum = 0;
  for (let i = 0; i < logp.length; i++) sum += w[i] = Math.exp((logp[i] - max) / temperature);
  let u = rng.next() * sum;
  for (let i = 0; i < w.length; i++) {
    u -= w[i];
    if (u < 0) return i;
  }
  return w.length - 1;
}

/** (x - mean) / √(var + ε) over the last axis: LayerNorm without its gain and bias (folded away). */
function layerNormCore(x: tf.Tensor): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, LN_EPS)));
}

/** Exact GELU, x·Φ(x). */
function gelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

export interface PreparedLayer {
  qkvW: tf.Tensor[];
  qkvB: tf.Tensor;
  /** Per expert: the q, k, v parts of the folded qkv projection, and every bias by itself. */
  qW: tf.Tensor[];
  kW: tf.Tensor[];
  vW: tf.Tensor[];
  qB: tf.Tensor[];
  kB: tf.Tensor[];
  vB: tf.Tensor[];
  boE: tf.Tensor[];
  b1E: tf.Tensor[];
  b2E: tf.Tensor[];
  woW: tf.Tensor[];
  bo: tf.Tensor;
  w1W: tf.Tensor[];
  b1: tf.Tensor;
  w2W: tf.Tensor[];
  b2: tf.Tensor;
}

export interface Prepared {
  layers: PreparedLayer[];
  wIn: tf.Tensor[];
  bIn: tf.Tensor;
  outW: tf.Tensor[];
  outB: tf.Tensor;
  posQuery: tf.Tensor;
}

export interface Prefilled {
  k: tf.Tensor[]; // per layer [E*B, L, D], row e*B + b
  v: tf.Tensor[];
  mask: tf.Tensor2D; // [B, L], 0 or -1e9
  maskAll: tf.Tensor; // [E*B, 1, L], the mask of row e*B + b
  B: number;
  L: number;
}

export interface StepState {
  h: tf.Tensor;
  c: tf.Tensor;
  m: tf.Tensor;
  stmK: tf.Tensor[];
  stmV: tf.Tensor[];
}

export interface StepOutput {
  state: StepState;
  probs: tf.Tensor; // [B, E]
  experts: Int32Array; // [B*K], by descending probability
  counts: number[]; // routed rows per expert
}

export interface Forward {
  logits: tf.Tensor2D; // [T*B, V], step-major
  h: tf.Tensor; // [T*B, H]
  m: tf.Tensor; // [T*B, H]
  probs: tf.Tensor; // [T*B, E]
  experts: Int32Array[]; // per step [B*K]
  T: number;
  B: number;
}

export interface GenerateBatchOptions {
  maxTokens: number;
  temperature: number;
  rng?: { next(): number };
  /** Scores [h; m] for PPO (training only; not part of the model). */
  valueHead?: (h: tf.Tensor, m: tf.Tensor) => tf.Tensor;
}

export interface GeneratedBatch {
  tokens: number[][];
  forced: boolean[][];
  reasoning: number[][];
  answer: number[][];
  /** log π(token) per step (for forced tokens too; PPO masks them). */
  logProbs: number[][];
  values: number[][];
  experts: number[][][];
}
