// Evaluation with the seed's three metrics, per held-out set: reasoning-step correctness (the trace
// against the worked trace), final-answer accuracy (exact match), and the resource ratio (parameters and
// FLOPs activated per answer against the whole model). Three engines produce the answers: the float32
// reference in process, the tfjs model (fast, batched), and a running OpenAI-compatible endpoint.
import {
  countParams,
  decodeTokens,
  DEFAULT_GENERATE_OPTIONS,
  generate,
  paramSpecs,
  promptDigest,
  ReferenceEdge,
  ReferenceExperts,
  ReferenceModel,
  type LtmEntry,
  type LtmStore,
  type ModelConfig,
  type SparseCode,
} from '@switchyard/shared';
import { heldOutSet, type Example, type RelposTrace } from './curriculum.ts';
import type { TfModel } from './model-tf.ts';
import { promptTokens } from './sequences.ts';

/** One answered problem. `experts` lists the routed experts of every step. */
export interface Answered {
  set: string;
  example: Example;
  reasoning: string;
  answer: string;
  experts: number[][];
}

export interface SetMetrics {
  set: string;
  n: number;
  /** Final-answer accuracy: exact match. */
  answerAccuracy: number;
  /** Reasoning-step correctness: trace bytes equal to the worked trace's at the same step. */
  stepAccuracy: number;
  /** Share of answers whose whole trace equals the worked trace. */
  traceExact: number;
  /** Parameters touched per answer (edge, shared expert tensors, every expert used) / all parameters. */
  paramRatio: number;
  /** FLOPs computed per answer / FLOPs had every expert run at every step. */
  flopRatio: number;
  meanSteps: number;
  /** Routed slots per expert, as shares of all slots. */
  expertShare: number[];
}

// ---------------------------------------------------------------- resource accounting

/** Multiply-adds ×2 of the matrix products (elementwise work is left out: it is a few percent here). */
export function stepFlops(
  c: ModelConfig,
  promptLength: number,
  stmUsed: number,
): { edge: number; expert: number } {
  const { vocab: V } = c;
  const { embed: Dc, hidden: H } = c.controller;
  const S = c.memory.dim;
  const { count: E, width: D, layers, ffn: F } = c.experts;
  const edge =
    2 * 4 * H * (Dc + S + H) + // LSTM input part
    2 * 4 * H * H + // LSTM recurrent part
    2 * S * H + // STM query
    2 * 2 * stmUsed * S + // STM scores and read
    2 * E * H + // gate
    2 * V * 2 * H + // head
    2 * 2 * S * H; // STM key and value
  const perLayer = 2 * 3 * D * D + 2 * 2 * (promptLength + 1) * D + 2 * D * D + 2 * 2 * D * F;
  const expert = 2 * D * H + layers * perLayer + 2 * H * D;
  return { edge, expert };
}

/** One expert's prefill of an L-token prompt (every layer in full, as the reference computes it). */
export function prefillFlops(c: ModelConfig, L: number): number {
  const { width: D, layers, ffn: F } = c.experts;
  return layers * (L * (2 * 3 * D * D + 2 * D * D + 2 * 2 * D * F) + 2 * 2 * L * L * D);
}

export function resourceRatios(
  c: ModelConfig,
  promptLength: number,
  experts: readonly (readonly number[])[],
): { params: number; flops: number } {
  const counts = countParams(c);
  const used = new Set(experts.flat());
  const params = (counts.edge + counts.expertShared + used.size * counts.perExpert) / counts.total;
  let active = used.size * prefillFlops(c, promptLength);
  let whole = c.experts.count * prefillFlops(c, promptLength);
  experts.forEach((routed, i) => {
    const f = stepFlops(c, promptLength, Math.min(i, c.memory.stm_slots));
    active += f.edge + routed.length * f.expert;
    whole += f.edge + c.experts.count * f.expert;
  });
  return { params, flops: whole > 0 ? active / whole : 0 };
}

// ---------------------------------------------------------------- metrics

export function stepCorrectness(pred: string, gold: string): { right: number; of: number } {
  const p = new TextEncoder().encode(pred);
  const g = new TextEncoder().encode(gold);
  let right = 0;
  for (let i = 0; i < Math.min(p.length, g.length); i++) if (p[i] === g[i]) right++;
  return { right, of: Math.max(p.length, g.length) };
}

export function score(config: ModelConfig, items: readonly Answered[]): SetMetrics[] {
  const bySet = new Map<string, Answered[]>();
  for (const it of items) bySet.set(it.set, [...(bySet.get(it.set) ?? []), it]);
  const E = config.experts.count;
  const out: SetMetrics[] = [];
  for (const [set, xs] of bySet) {
    let right = 0;
    let stepsRight = 0;
    let stepsOf = 0;
    let exact = 0;
    let params = 0;
    let flops = 0;
    let steps = 0;
    const share = new Array<number>(E).fill(0);
    for (const it of xs) {
      if (it.answer === it.example.answer) right++;
      const s = stepCorrectness(it.reasoning, it.example.trace);
      stepsRight += s.right;
      stepsOf += s.of;
      if (it.reasoning === it.example.trace) exact++;
      const L = promptTokens(it.example.prompt, config.experts.max_prompt).length;
      const r = resourceRatios(config, L, it.experts);
      params += r.params;
      flops += r.flops;
      steps += it.experts.length;
      for (const step of it.experts) for (const e of step) share[e]++;
    }
    const slots = share.reduce((a, b) => a + b, 0) || 1;
    out.push({
      set,
      n: xs.length,
      answerAccuracy: right / xs.length,
      stepAccuracy: stepsOf ? stepsRight / stepsOf : 1,
      traceExact: exact / xs.length,
      paramRatio: params / xs.length,
      flopRatio: flops / xs.length,
      meanSteps: steps / xs.length,
      expertShare: share.map((n) => n / slots),
    });
  }
  return out;
}

/** Every set's examples, in set order. */
export function evalExamples(
  sets: readonly string[],
  n: number,
  seed = 1,
  relposTrace?: RelposTrace,
): { set: string; example: Example }[] {
  return sets.flatMap((set) =>
    heldOutSet(set, n, seed, { relposTrace }).map((example) => ({ set, example })),
  );
}

// ---------------------------------------------------------------- engines

export interface Engine {
  readonly name: string;
  answer(
    items: readonly { set: string; example: Example }[],
    onDone?: (done: number) => void,
  ): Promise<Answered[]>;
}

/** An in-memory LTM namespace for simulating recall (entries are scored by sparse-code dot product). */
export class MemoryLtm implements LtmStore {
  readonly entries: (LtmEntry & { code: SparseCode })[] = [];
  async query(code: SparseCode, topN: number): Promise<LtmEntry[]> {
    const w = new Map(code.atoms.map((a, i) => [a, code.weights[i]]));
    const scored = this.entries.map((e) => {
      let s = 0;
      e.code.atoms.forEach((a, i) => (s += (w.get(a) ?? 0) * e.code.weights[i]));
      return [s, e] as const;
    });
    return scored
      .filter(([s]) => s > 0)
      .sort((a, b) => b[0] - a[0])
      .slice(0, topN)
      .map(([, e]) => e);
  }
  async write(code: SparseCode, entry: LtmEntry): Promise<void> {
    this.entries.push({ ...entry, code });
  }
}

/** The shared float32 reference with the shared generation loop: what every tier is tested against. */
export class ReferenceEngine implements Engine {
  readonly name = 'reference';
  constructor(
    readonly model: ReferenceModel,
    readonly maxTokens = 48,
    /** LTM entries recalled after step 1 from `ltm` (0: recall off, as in training). */
    readonly recall = 0,
    readonly ltm?: MemoryLtm,
  ) {}

  async answer(
    items: readonly { set: string; example: Example }[],
    onDone?: (done: number) => void,
  ): Promise<Answered[]> {
    const config = this.model.config;
    const edge = new ReferenceEdge(this.model);
    const out: Answered[] = [];
    for (const [i, { set, example }] of items.entries()) {
      const tokens = promptTokens(example.prompt, config.experts.max_prompt);
      const experts = new ReferenceExperts(this.model);
      const r = await generate(
        {
          config,
          edge,
          experts,
          prompt: { tokens, digest: await promptDigest(tokens) },
          sessionId: `eval-${i}`,
          requestId: `eval-${i}`,
          options: {
            ...DEFAULT_GENERATE_OPTIONS,
            temperature: 0,
            maxTokens: this.maxTokens,
            ltmTopN: this.recall,
          },
          ltm: this.recall > 0 ? this.ltm : undefined,
        },
        this.model.initialState(),
      );
      if (this.ltm) {
        const last = r.state.ctrl;
        const head = this.model.head(last.h, last.m);
        // What the edge stores when a request completes: (code(h_T), W_k h_T, W_v m_T, a snippet).
        await this.ltm.write(this.model.ltmCode(last.h), {
          key: head.stmKey,
          value: head.stmValue,
          snippet: example.prompt,
        });
      }
      out.push({
        set,
        example,
        reasoning: r.reasoningText,
        answer: r.answerText,
        experts: r.steps.map((s) => s.experts),
      });
      onDone?.(i + 1);
    }
    return out;
  }
}

/** The tfjs training model, greedy and batched (equal to the reference up to float rounding). */
export class TfEngine implements Engine {
  readonly name = 'tfjs';
  constructor(
    readonly model: TfModel,
    readonly maxTokens = 48,
    readonly batch = 64,
  ) {}

  async answer(
    items: readonly { set: string; example: Example }[],
    onDone?: (done: number) => void,
  ): Promise<Answered[]> {
    const Lmax = this.model.config.experts.max_prompt;
    // Batches of similar prompt length: a batch pads to its longest prompt.
    const order = items.map((it, i) => [promptTokens(it.example.prompt, Lmax).length, i] as const);
    order.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const out = new Array<Answered>(items.length);
    for (let s = 0; s < order.length; s += this.batch) {
      const idx = order.slice(s, s + this.batch).map(([, i]) => i);
      const g = this.model.generate(
        idx.map((i) => promptTokens(items[i].example.prompt, Lmax)),
        { maxTokens: this.maxTokens, temperature: 0 },
      );
      idx.forEach((i, j) => {
        out[i] = {
          ...items[i],
          reasoning: decodeTokens(g.reasoning[j]),
          answer: decodeTokens(g.answer[j]),
          experts: g.experts[j],
        };
      });
      onDone?.(Math.min(order.length, s + this.batch));
    }
    return out;
  }
}

export class EndpointError extends Error {
  override name = 'EndpointError';
}

/** A running OpenAI-compatible endpoint (the Switchyard stack): greedy, recall and memory writes off. */
export class EndpointEngine implements Engine {
  readonly name: string;
  constructor(
    readonly url: string,
    readonly model: string,
    readonly maxTokens = 48,
    readonly fetchImpl: typeof fetch = fetch,
    /** Sent as a bearer token; the stack refuses requests without one. */
    readonly apiKey?: string,
  ) {
    this.name = `endpoint ${url}`;
  }

  async answer(
    items: readonly { set: string; example: Example }[],
    onDone?: (done: number) => void,
  ): Promise<Answered[]> {
    const out: Answered[] = [];
    const endpoint = `${this.url.replace(/\/+$/, '')}/v1/chat/completions`;
    for (const [i, { set, example }] of items.entries()) {
      const res = await this.fetchImpl(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer(this.apiKey) },
        body: JSON.stringify({
          model: this.model,
          messages: [{ role: 'user', content: example.prompt }],
          temperature: 0,
          max_tokens: this.maxTokens,
          switchyard: { trace: true, memory: { recall: 0, write: false } },
        }),
      });
      const text = await res.text();
      if (!res.ok)
        throw new EndpointError(`POST ${endpoint}: expected 200, found ${res.status}: ${text.slice(0, 300)}`);
      let body: {
        choices?: { message?: { content?: string | null; reasoning_content?: string | null } }[];
        switchyard?: { steps?: { experts: number[] }[] };
      };
      try {
        body = JSON.parse(text);
      } catch {
        throw new EndpointError(
          `POST ${endpoint}: expected a JSON chat.completion, found ${text.slice(0, 120)}`,
        );
      }
      const msg = body.choices?.[0]?.message;
      if (!msg)
        throw new EndpointError(`POST ${endpoint}: expected choices[0].message, found ${text.slice(0, 120)}`);
      out.push({
        set,
        example,
        reasoning: msg.reasoning_content ?? '',
        answer: msg.content ?? '',
        experts: body.switchyard?.steps?.map((s) => s.experts) ?? [],
      });
      onDone?.(i + 1);
    }
    return out;
  }
}

const bearer = (key: string | undefined): Record<string, string> =>
  key ? { authorization: `Bearer ${key}` } : {};

/** The first model an endpoint lists (GET /v1/models). */
export async function endpointModel(
  url: string,
  fetchImpl: typeof fetch = fetch,
  apiKey?: string,
): Promise<string> {
  const endpoint = `${url.replace(/\/+$/, '')}/v1/models`;
  const res = await fetchImpl(endpoint, { headers: bearer(apiKey) });
  const text = await res.text();
  if (!res.ok)
    throw new EndpointError(`GET ${endpoint}: expected 200, found ${res.status}: ${text.slice(0, 200)}`);
  const id = (JSON.parse(text) as { data?: { id?: string }[] }).data?.[0]?.id;
  if (!id) throw new EndpointError(`GET ${endpoint}: expected data[0].id, found ${text.slice(0, 120)}`);
  return id;
}

/** Answers that differ between two runs over the same items (same order). */
export function differences(
  a: readonly Answered[],
  b: readonly Answered[],
): { index: number; a: Answered; b: Answered }[] {
  const out: { index: number; a: Answered; b: Answered }[] = [];
  a.forEach((x, i) => {
    const y = b[i];
    if (!y || x.answer !== y.answer || x.reasoning !== y.reasoning) out.push({ index: i, a: x, b: y });
  });
  return out;
}

export const totalParams = (c: ModelConfig) =>
  paramSpecs(c).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
