// Golden cases: seeded conversations whose greedy outputs the reference produced once and committed
// (shared/golden/*.json). Every other path (WASM kernels, ORT, the GPU tier, the whole stack) runs the
// same sessions through `runGoldenSession` with its own backends and is held against the data.
import { renderChat, type ChatMessage } from './chat.ts';
import type { ModelConfig } from './config.ts';
import { promptDigest } from './digest.ts';
import { DEFAULT_GENERATE_OPTIONS, generate, type FinishReason, type StepRecord } from './generate.ts';
import type { ControllerState, EdgeComputeBackend, ExpertBackend } from './interfaces.ts';

export interface GoldenTurnSpec {
  /** The new user message of this turn; the transcript grows with each turn's answer. */
  user: string;
  maxTokens: number;
}

export interface GoldenSessionSpec {
  name: string;
  system?: string;
  turns: GoldenTurnSpec[];
}

export interface GoldenStep {
  token: number;
  phase: 'think' | 'answer';
  forced: boolean;
  experts: number[];
  gates: number[];
  logits_checksum: number;
  /** Gap between the best and second-best logit: where it is small, an approximate path may pick the other. */
  margin: number;
}

export interface GoldenTurn {
  messages: ChatMessage[];
  prompt_tokens: number[];
  max_tokens: number;
  tokens: number[];
  reasoning_text: string;
  answer_text: string;
  finish: FinishReason;
  steps: GoldenStep[];
}

export interface GoldenSession {
  name: string;
  turns: GoldenTurn[];
}

export interface GoldenFile {
  description: string;
  model: { preset: string; seed: number; scheme: string; file: string };
  tolerances: { gate: number; logits_checksum: number };
  sessions: GoldenSession[];
}

/** Tolerances for a float32 reimplementation of the same math (different summation order). */
export const GOLDEN_TOLERANCES = { gate: 1e-4, logits_checksum: 1e-3 };

export const GOLDEN_SESSIONS: GoldenSessionSpec[] = [
  { name: 'arithmetic', turns: [{ user: 'What is 17 + 25?', maxTokens: 24 }] },
  {
    name: 'system-and-user',
    system: 'You are a careful reasoner.',
    turns: [{ user: 'If all cats are animals and Tom is a cat, is Tom an animal?', maxTokens: 20 }],
  },
  {
    name: 'multi-turn',
    turns: [
      { user: 'Move right twice from (0,0).', maxTokens: 18 },
      { user: 'Now move up once.', maxTokens: 18 },
    ],
  },
];

/**
 * Runs one golden session: every turn renders the transcript, continues from the previous turn's
 * controller state (as a session actor does), and decodes greedily.
 */
export async function runGoldenSession(
  config: ModelConfig,
  edge: EdgeComputeBackend,
  experts: ExpertBackend,
  spec: GoldenSessionSpec,
  initial: ControllerState,
  onLogits?: (step: StepRecord) => void,
): Promise<GoldenSession> {
  const messages: ChatMessage[] = spec.system ? [{ role: 'system', content: spec.system }] : [];
  let state = initial;
  const turns: GoldenTurn[] = [];
  for (const [t, turn] of spec.turns.entries()) {
    messages.push({ role: 'user', content: turn.user });
    const tokens = renderChat(messages, config.experts.max_prompt).tokens;
    const margins: number[] = [];
    const r = await generate(
      {
        config,
        edge: marginTap(edge, margins),
        experts,
        prompt: { tokens, digest: await promptDigest(tokens) },
        sessionId: `golden-${spec.name}`,
        requestId: `turn-${t}`,
        options: { ...DEFAULT_GENERATE_OPTIONS, maxTokens: turn.maxTokens, ltmTopN: 0 },
      },
      state,
      onLogits,
    );
    state = r.state.ctrl;
    turns.push({
      messages: structuredClone(messages),
      prompt_tokens: tokens,
      max_tokens: turn.maxTokens,
      tokens: r.steps.map((s) => s.token),
      reasoning_text: r.reasoningText,
      answer_text: r.answerText,
      finish: r.finish,
      steps: r.steps.map((s, i) => ({
        token: s.token,
        phase: s.phase,
        forced: s.forced,
        experts: s.experts,
        gates: s.gates,
        logits_checksum: s.logitsChecksum,
        margin: margins[i],
      })),
    });
    messages.push({ role: 'assistant', content: r.answerText });
  }
  return { name: spec.name, turns };
}

/** Wraps an edge backend to record each step's top-1/top-2 logit gap. */
function marginTap(edge: EdgeComputeBackend, margins: number[]): EdgeComputeBackend {
  return {
    name: edge.name,
    controller: (s, y) => edge.controller(s, y),
    ltmCode: (h) => edge.ltmCode(h),
    head: async (h, m) => {
      const out = await edge.head(h, m);
      let a = -Infinity;
      let b = -Infinity;
      for (const x of out.logits) {
        if (x > a) [a, b] = [x, a];
        else if (x > b) b = x;
      }
      margins.push(a - b);
      return out;
    },
  };
}

export interface GoldenMismatch {
  session: string;
  turn: number;
  step: number;
  what: string;
}

/**
 * Compares a path's run with the golden data: tokens and experts exactly, gates and logit checksums
 * within tolerance. Returns every mismatch (empty when the path agrees).
 */
export function compareGolden(
  expected: GoldenSession,
  actual: GoldenSession,
  tol: { gate: number; logits_checksum: number } = GOLDEN_TOLERANCES,
): GoldenMismatch[] {
  const out: GoldenMismatch[] = [];
  expected.turns.forEach((et, t) => {
    const at = actual.turns[t];
    if (!at) return out.push({ session: expected.name, turn: t, step: -1, what: 'turn missing' });
    if (JSON.stringify(at.prompt_tokens) !== JSON.stringify(et.prompt_tokens))
      out.push({ session: expected.name, turn: t, step: -1, what: 'prompt tokens differ' });
    et.steps.forEach((es, i) => {
      const as = at.steps[i];
      const at_ = (what: string) => out.push({ session: expected.name, turn: t, step: i + 1, what });
      if (!as) return at_('step missing');
      if (as.token !== es.token) at_(`token: expected ${es.token}, found ${as.token}`);
      if (JSON.stringify(as.experts) !== JSON.stringify(es.experts))
        at_(`experts: expected [${es.experts}], found [${as.experts}]`);
      es.gates.forEach((g, k) => {
        if (!(Math.abs(g - as.gates[k]) <= tol.gate)) at_(`gate ${k}: expected ${g}, found ${as.gates[k]}`);
      });
      const d = Math.abs(es.logits_checksum - as.logits_checksum);
      if (!(d <= tol.logits_checksum * Math.max(1, Math.abs(es.logits_checksum))))
        at_(`logits checksum: expected ${es.logits_checksum}, found ${as.logits_checksum}`);
    });
    if (at.steps.length !== et.steps.length)
      out.push({
        session: expected.name,
        turn: t,
        step: -1,
        what: `steps: expected ${et.steps.length}, found ${at.steps.length}`,
      });
  });
  return out;
}
