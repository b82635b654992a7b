// The rru-moe v1 model in float32, top to bottom: the oracle that every other path is tested against.
// Notation (DESIGN.md §1): V vocab, Dc embed, H hidden, S memory width, E experts, K routed,
// D expert width, L prompt length, Lmax its maximum.
import type { ModelConfig } from './config.ts';
import type {
  ControllerOutput,
  ControllerState,
  EdgeComputeBackend,
  ExpertBackend,
  ExpertCall,
  ExpertResult,
  HeadOutput,
  SparseCode,
  StmState,
} from './interfaces.ts';
import { dot, gelu, layerNorm, matMulT, matVec, sigmoid, softmax, topK } from './math.ts';
import { checkParams, expertPrefix, layerPrefix, type ParamMap, type ParamSpec } from './params.ts';

/** One expert's prompt encoding: every layer's K and V for the L prompt tokens. */
export interface PromptCache {
  length: number; // L
  k: Float32Array[]; // per layer, [L, D]
  v: Float32Array[]; // per layer, [L, D]
  out: Float32Array; // [L, D] LN_f of the last layer: the prompt's encoding
}

export interface Routing {
  probs: Float32Array; // [E]
  experts: number[]; // [K], by descending probability, ties to the lower id
  gates: number[]; // [K], renormalized over the chosen experts
}

/** Sees the residual stream after each layer (activation-scale checks, debugging). */
export type LayerObserver = (layer: number, x: Float32Array) => void;

interface Linear {
  w: Float32Array;
  b?: Float32Array;
  rows: number;
  cols: number;
}

interface ExpertLayer {
  ln1: { g: Float32Array; b: Float32Array };
  qkv: Linear; // [3D, D]
  o: Linear; // [D, D]
  ln2: { g: Float32Array; b: Float32Array };
  ffn1: Linear; // [F, D]
  ffn2: Linear; // [D, F]
}

interface ExpertWeights {
  in: Linear; // [D, H]
  layers: ExpertLayer[];
  lnF: { g: Float32Array; b: Float32Array };
  out: Linear; // [H, D]
}

const apply = (l: Linear, x: ArrayLike<number>) => matVec(l.w, l.rows, l.cols, x, l.b);

export type ModelPart = 'edge' | 'experts' | 'all';

export class ReferenceModel {
  readonly V: number;
  readonly Dc: number;
  readonly H: number;
  readonly S: number;
  readonly E: number;
  readonly K: number;
  readonly D: number;
  readonly heads: number;
  readonly Lmax: number;
  private readonly experts = new Map<number, ExpertWeights>();

  /**
   * `part` allows a model that holds only the edge tensors or only (some) experts, as a split file does.
   * With 'experts', every expert present in `params` is loaded.
   */
  constructor(
    readonly config: ModelConfig,
    readonly params: ParamMap,
    part: ModelPart = 'all',
  ) {
    this.V = config.vocab;
    this.Dc = config.controller.embed;
    this.H = config.controller.hidden;
    this.S = config.memory.dim;
    this.E = config.experts.count;
    this.K = config.experts.top_k;
    this.D = config.experts.width;
    this.heads = config.experts.heads;
    this.Lmax = config.experts.max_prompt;
    const wantExpert = (e: number) => part === 'all' || params.has(`${expertPrefix(e)}.w_in`);
    const only = (s: ParamSpec) =>
      s.tier === 'edge'
        ? part !== 'experts'
        : part !== 'edge' && (s.tier === 'expert-shared' || wantExpert(s.expert!));
    checkParams(config, params, only);
    if (part !== 'edge')
      for (let e = 0; e < this.E; e++) if (wantExpert(e)) this.experts.set(e, this.loadExpert(e));
  }

  private t(name: string): Float32Array {
    return this.params.get(name)!.data;
  }

  private linear(w: string, b?: string): Linear {
    const t = this.params.get(w)!;
    return { w: t.data, b: b ? this.t(b) : undefined, rows: t.shape[0], cols: t.shape[1] };
  }

  private loadExpert(e: number): ExpertWeights {
    const p = expertPrefix(e);
    const layers: ExpertLayer[] = [];
    for (let l = 0; l < this.config.experts.layers; l++) {
      const q = layerPrefix(e, l);
      layers.push({
        ln1: { g: this.t(`${q}.ln1.g`), b: this.t(`${q}.ln1.b`) },
        qkv: this.linear(`${q}.attn.wqkv`, `${q}.attn.bqkv`),
        o: this.linear(`${q}.attn.wo`, `${q}.attn.bo`),
        ln2: { g: this.t(`${q}.ln2.g`), b: this.t(`${q}.ln2.b`) },
        ffn1: this.linear(`${q}.ffn.w1`, `${q}.ffn.b1`),
        ffn2: this.linear(`${q}.ffn.w2`, `${q}.ffn.b2`),
      });
    }
    return {
      in: this.linear(`${p}.w_in`, `${p}.b_in`),
      layers,
      lnF: { g: this.t(`${p}.ln_f.g`), b: this.t(`${p}.ln_f.b`) },
      out: this.linear(`${p}.w_out`, `${p}.b_out`),
    };
  }

  hasExpert(e: number): boolean {
    return this.experts.has(e);
  }

  // ---------------------------------------------------------------- edge: state

  initialState(): ControllerState {
    const { H, S } = this;
    const slots = this.config.memory.stm_slots;
    return {
      h: new Float32Array(H),
      c: new Float32Array(H),
      m: new Float32Array(H),
      stm: { keys: new Float32Array(slots * S), values: new Float32Array(slots * S), count: 0, next: 0 },
    };
  }

  // ---------------------------------------------------------------- edge: short-term memory

  /** r = Σ_j softmax_j(q·k_j/√S) v_j with q = W_rq h; zero while the STM is empty.  [S] */
  stmRead(stm: StmState, h: Float32Array): Float32Array {
    const { S } = this;
    const r = new Float32Array(S);
    if (stm.count === 0) return r;
    const q = matVec(this.t('memory.w_rq'), S, this.H, h); // [S]
    const scores = new Float64Array(stm.count);
    for (let j = 0; j < stm.count; j++)
      scores[j] = dot(q, stm.keys.subarray(j * S, (j + 1) * S)) / Math.sqrt(S);
    const p = softmax(scores); // [slots in use]
    for (let i = 0; i < S; i++) {
      let acc = 0;
      for (let j = 0; j < stm.count; j++) acc += p[j] * stm.values[j * S + i];
      r[i] = acc;
    }
    return r;
  }

  /** Appends (key, value) to the ring; when full, the oldest slot is overwritten. Mutates `stm`. */
  static stmWrite(stm: StmState, key: Float32Array, value: Float32Array): void {
    const S = key.length;
    const slots = stm.keys.length / S;
    stm.keys.set(key, stm.next * S);
    stm.values.set(value, stm.next * S);
    stm.next = (stm.next + 1) % slots;
    stm.count = Math.min(stm.count + 1, slots);
  }

  // ---------------------------------------------------------------- edge: controller and gate

  /** x = tok_embed[y]; r = STM read; (h, c) = LSTMCell([x; r; m], h, c). Gate order i, f, g, o. */
  controller(state: ControllerState, y: number): { h: Float32Array; c: Float32Array } {
    const { Dc, S, H } = this;
    if (!Number.isInteger(y) || y < 0 || y >= this.V)
      throw new RangeError(`token: expected an integer in [0, ${this.V}), found ${y}`);
    const x = this.t('tok_embed').subarray(y * Dc, (y + 1) * Dc); // [Dc]
    const r = this.stmRead(state.stm, state.h); // [S]
    const input = new Float32Array(Dc + S + H); // [Dc+S+H]
    input.set(x, 0);
    input.set(r, Dc);
    input.set(state.m, Dc + S);
    const gi = matVec(this.t('lstm.w_ih'), 4 * H, Dc + S + H, input, this.t('lstm.b')); // [4H]
    const gh = matVec(this.t('lstm.w_hh'), 4 * H, H, state.h); // [4H]
    const h = new Float32Array(H);
    const c = new Float32Array(H);
    for (let j = 0; j < H; j++) {
      const i = sigmoid(gi[j] + gh[j]);
      const f = sigmoid(gi[H + j] + gh[H + j]);
      const g = Math.tanh(gi[2 * H + j] + gh[2 * H + j]);
      const o = sigmoid(gi[3 * H + j] + gh[3 * H + j]);
      c[j] = f * state.c[j] + i * g;
      h[j] = o * Math.tanh(c[j]);
    }
    return { h, c };
  }

  /** p = softmax(W_g h + b_g); the top-K experts with gates renormalized over them. */
  route(h: Float32Array): Routing {
    const probs = softmax(matVec(this.t('gate.w'), this.E, this.H, h, this.t('gate.b'))); // [E]
    return routeFromProbs(probs, this.K);
  }

  // ---------------------------------------------------------------- edge: long-term memory code

  /** code(v) = top-a of ReLU(W_code v), the rest zero. */
  ltmCode(v: Float32Array): SparseCode {
    const a = this.config.memory.ltm_active;
    const u = matVec(this.t('memory.w_code'), this.config.memory.ltm_atoms, this.H, v); // [C]
    for (let i = 0; i < u.length; i++) if (u[i] < 0) u[i] = 0;
    const atoms = topK(u, a).filter((i) => u[i] > 0);
    return { atoms, weights: atoms.map((i) => u[i]) };
  }

  // ---------------------------------------------------------------- edge: output head

  /** logits = W_o [h; m] + b_o; STM key W_k h and value W_v m for the ring write. */
  head(h: Float32Array, m: Float32Array): HeadOutput {
    const { H, S, V } = this;
    const hm = new Float32Array(2 * H); // [2H]
    hm.set(h, 0);
    hm.set(m, H);
    return {
      logits: matVec(this.t('head.w'), V, 2 * H, hm, this.t('head.b')), // [V]
      stmKey: matVec(this.t('memory.w_k'), S, H, h), // [S]
      stmValue: matVec(this.t('memory.w_v'), S, H, m), // [S]
    };
  }

  // ---------------------------------------------------------------- experts

  private expert(e: number): ExpertWeights {
    const w = this.experts.get(e);
    if (!w)
      throw new RangeError(
        `expert ${e}: not loaded; this model holds experts [${[...this.experts.keys()].join(', ')}]`,
      );
    return w;
  }

  /**
   * Prefill: X = embed[prompt] + pos[0..L-1], pre-LN layers with bidirectional attention among the
   * prompt tokens only. Caches every layer's K and V; the query never enters, so the cache is valid
   * for every step of a turn.
   */
  expertPrefill(e: number, prompt: readonly number[], observe?: LayerObserver): PromptCache {
    const { D, Lmax } = this;
    const L = prompt.length;
    if (L < 1 || L > Lmax) throw new RangeError(`prompt length: expected 1..${Lmax}, found ${L}`);
    const W = this.expert(e);
    const embed = this.t('experts.embed');
    const pos = this.t('experts.pos');
    const x = new Float32Array(L * D); // [L, D]
    for (let i = 0; i < L; i++) {
      const tok = prompt[i];
      if (!Number.isInteger(tok) || tok < 0 || tok >= this.V)
        throw new RangeError(`prompt[${i}]: expected a token id in [0, ${this.V}), found ${tok}`);
      for (let d = 0; d < D; d++) x[i * D + d] = embed[tok * D + d] + pos[i * D + d];
    }
    const cache: PromptCache = { length: L, k: [], v: [], out: new Float32Array(L * D) };
    for (const [l, layer] of W.layers.entries()) {
      const a = new Float32Array(L * D); // [L, D]
      for (let i = 0; i < L; i++)
        a.set(layerNorm(x.subarray(i * D, (i + 1) * D), layer.ln1.g, layer.ln1.b), i * D);
      const qkv = matMulT(a, L, layer.qkv.w, 3 * D, D, layer.qkv.b); // [L, 3D]
      const q = new Float32Array(L * D);
      const k = new Float32Array(L * D);
      const v = new Float32Array(L * D);
      for (let i = 0; i < L; i++) {
        q.set(qkv.subarray(i * 3 * D, i * 3 * D + D), i * D);
        k.set(qkv.subarray(i * 3 * D + D, i * 3 * D + 2 * D), i * D);
        v.set(qkv.subarray(i * 3 * D + 2 * D, i * 3 * D + 3 * D), i * D);
      }
      cache.k.push(k);
      cache.v.push(v);
      for (let i = 0; i < L; i++) {
        const o = this.attend(q.subarray(i * D, (i + 1) * D), k, v, L); // [D]
        this.residualBlock(x.subarray(i * D, (i + 1) * D), o, layer);
      }
      observe?.(l, x);
    }
    for (let i = 0; i < L; i++)
      cache.out.set(layerNorm(x.subarray(i * D, (i + 1) * D), W.lnF.g, W.lnF.b), i * D);
    return cache;
  }

  /**
   * Step: z = W_in h + pos[Lmax]; each layer attends over [cached prompt K, V ; z's own k, v];
   * output W_out LN_f(z).  [H]
   */
  expertStep(e: number, h: Float32Array, cache: PromptCache, observe?: LayerObserver): Float32Array {
    const { D } = this;
    const W = this.expert(e);
    const L = cache.length;
    const z = apply(W.in, h); // [D]
    const pos = this.t('experts.pos');
    for (let d = 0; d < D; d++) z[d] += pos[this.Lmax * D + d];
    W.layers.forEach((layer, l) => {
      const qkv = apply(layer.qkv, layerNorm(z, layer.ln1.g, layer.ln1.b)); // [3D]
      const k = new Float32Array((L + 1) * D); // [L+1, D]
      const v = new Float32Array((L + 1) * D);
      k.set(cache.k[l]);
      k.set(qkv.subarray(D, 2 * D), L * D);
      v.set(cache.v[l]);
      v.set(qkv.subarray(2 * D, 3 * D), L * D);
      const o = this.attend(qkv.subarray(0, D), k, v, L + 1); // [D]
      this.residualBlock(z, o, layer);
      observe?.(l, z);
    });
    return apply(W.out, layerNorm(z, W.lnF.g, W.lnF.b)); // [H]
  }

  /** Multi-head attention of one query over n keys/values, scaled by 1/√(D/heads).  [D] */
  private attend(q: Float32Array, k: Float32Array, v: Float32Array, n: number): Float32Array {
    const { D, heads } = this;
    const dh = D / heads;
    const out = new Float32Array(D);
    const scores = new Float64Array(n);
    for (let hd = 0; hd < heads; hd++) {
      const off = hd * dh;
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let d = 0; d < dh; d++) s += q[off + d] * k[j * D + off + d];
        scores[j] = s / Math.sqrt(dh);
      }
      const p = softmax(scores);
      for (let d = 0; d < dh; d++) {
        let acc = 0;
        for (let j = 0; j < n; j++) acc += p[j] * v[j * D + off + d];
        out[off + d] = acc;
      }
    }
    return out;
  }

  /** x += Wo·o + bo; x += W2·GELU(W1·LN2(x) + b1) + b2. Mutates x. */
  private residualBlock(x: Float32Array, o: Float32Array, layer: ExpertLayer): void {
    const a = apply(layer.o, o);
    for (let d = 0; d < x.length; d++) x[d] += a[d];
    const f = apply(layer.ffn1, layerNorm(x, layer.ln2.g, layer.ln2.b)); // [F]
    for (let i = 0; i < f.length; i++) f[i] = gelu(f[i]);
    const y = apply(layer.ffn2, f); // [D]
    for (let d = 0; d < x.length; d++) x[d] += y[d];
  }
}

/**
 * What is wrong with a controller state for a model of these sizes, or undefined when it fits. Backends
 * that copy the state into their own memory check it first, each throwing its own error class.
 */
export function controllerStateProblem(
  state: ControllerState,
  H: number,
  S: number,
  slots: number,
): string | undefined {
  const want: Array<[string, number, number]> = [
    ['h', state.h.length, H],
    ['c', state.c.length, H],
    ['m', state.m.length, H],
    ['stm.keys', state.stm.keys.length, slots * S],
    ['stm.values', state.stm.values.length, slots * S],
  ];
  for (const [what, found, expected] of want)
    if (found !== expected) return `state.${what}: expected ${expected} elements, found ${found}`;
  if (!Number.isInteger(state.stm.count) || state.stm.count < 0 || state.stm.count > slots)
    return `state.stm.count: expected an integer in 0..${slots}, found ${state.stm.count}`;
  return undefined;
}

/** Top-K of a gate distribution with gates renormalized over the chosen experts. */
export function routeFromProbs(probs: Float32Array, k: number): Routing {
  const experts = topK(probs, k);
  let sum = 0;
  for (const e of experts) sum += probs[e];
  return { probs, experts, gates: experts.map((e) => probs[e] / sum) };
}

/** The reference as an edge compute backend. */
export class ReferenceEdge implements EdgeComputeBackend {
  readonly name = 'reference';
  constructor(readonly model: ReferenceModel) {}

  async controller(state: ControllerState, token: number): Promise<ControllerOutput> {
    const { h, c } = this.model.controller(state, token);
    return { h, c, probs: this.model.route(h).probs };
  }

  async head(h: Float32Array, m: Float32Array): Promise<HeadOutput> {
    return this.model.head(h, m);
  }

  async ltmCode(h: Float32Array): Promise<SparseCode> {
    return this.model.ltmCode(h);
  }
}

/** The reference as an expert backend, with a prompt cache keyed by (session, expert, prompt digest). */
export class ReferenceExperts implements ExpertBackend {
  readonly name = 'reference';
  private readonly caches = new Map<string, PromptCache>();
  prefills = 0;

  constructor(readonly model: ReferenceModel) {}

  private cacheFor(call: ExpertCall, e: number): PromptCache {
    const key = `${call.sessionId}\u0000${e}\u0000${hex(call.prompt.digest)}`;
    let c = this.caches.get(key);
    if (!c) {
      c = this.model.expertPrefill(e, call.prompt.tokens);
      this.prefills++;
      this.caches.set(key, c);
    }
    return c;
  }

  async runExperts(call: ExpertCall): Promise<ExpertResult> {
    const H = this.model.H;
    const mixture = new Float32Array(H); // [H]
    call.experts.forEach((e, i) => {
      const y = this.model.expertStep(e, call.h, this.cacheFor(call, e));
      for (let j = 0; j < H; j++) mixture[j] += call.gates[i] * y[j];
    });
    return { mixture };
  }

  async dropSession(sessionId: string): Promise<void> {
    for (const k of this.caches.keys()) if (k.startsWith(sessionId + '\u0000')) this.caches.delete(k);
  }
}

export function hex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}
