// The generation loop of DESIGN.md §1, over any edge compute and expert backend. Its state is plain
// data, so a session actor can persist it after every step and resume after an eviction.
import type { ModelConfig } from './config.ts';
import type {
  ControllerState,
  EdgeComputeBackend,
  ExpertBackend,
  LtmStore,
  PromptRef,
  SparseCode,
} from './interfaces.ts';
import { ReferenceModel, routeFromProbs } from './reference.ts';
import { Rng } from './random.ts';
import { sampleToken, type SamplingOptions } from './sampling.ts';
import { decodeTokens, END_THINK, EOS, THINK } from './tokenizer.ts';

export type Phase = 'think' | 'answer' | 'done';
export type FinishReason = 'stop' | 'length';

export interface GenerateOptions extends SamplingOptions {
  maxTokens: number;
  seed: number;
  stop: string[];
  /** LTM entries recalled into the STM after step 1 (0 turns recall off). */
  ltmTopN: number;
}

export const DEFAULT_GENERATE_OPTIONS: GenerateOptions = {
  temperature: 0,
  topP: 1,
  maxTokens: 64,
  seed: 0,
  stop: [],
  ltmTopN: 4,
};

export interface StepRecord {
  index: number; // 1-based
  token: number;
  phase: 'think' | 'answer';
  forced: boolean; // </think> forced by the think-step limit
  experts: number[];
  gates: number[];
  /** Σ (i+1)·logit_i / V: one number that moves if any logit does. */
  logitsChecksum: number;
}

/** Everything needed to continue a generation: persist it after each step. */
export interface GenerationState {
  ctrl: ControllerState;
  y: number; // the token fed to the next step
  phase: Phase;
  thinkSteps: number;
  steps: number;
  reasoning: number[];
  answer: number[];
  finish: FinishReason | null;
  rng: number[];
  /** The step-1 LTM query has run (it runs once per request). */
  recalled: boolean;
}

export function startGeneration(ctrl: ControllerState, seed: number): GenerationState {
  return {
    ctrl,
    y: THINK,
    phase: 'think',
    thinkSteps: 0,
    steps: 0,
    reasoning: [],
    answer: [],
    finish: null,
    rng: new Rng(seed).state,
    recalled: false,
  };
}

export function logitsChecksum(logits: Float32Array): number {
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += (i + 1) * logits[i];
  return s / logits.length;
}

export interface StepContext {
  config: ModelConfig;
  edge: EdgeComputeBackend;
  experts: ExpertBackend;
  prompt: PromptRef;
  sessionId: string;
  requestId: string;
  options: GenerateOptions;
  ltm?: LtmStore;
}

/**
 * One step. Returns the new state (the input is not mutated, so a failed step, e.g. an expert call
 * that throws, leaves the caller's state exactly as it was) and the step's record.
 */
export async function generationStep(
  ctx: StepContext,
  prev: GenerationState,
): Promise<{ state: GenerationState; record: StepRecord; code?: SparseCode }> {
  if (prev.phase === 'done') throw new Error('generationStep: the generation is already done');
  const { config, edge, options } = ctx;
  const index = prev.steps + 1;

  const ctl = await edge.controller(prev.ctrl, prev.y); // h, c [H]; probs [E]
  const routing = routeFromProbs(ctl.probs, config.experts.top_k);
  const { mixture: m } = await ctx.experts.runExperts({
    sessionId: ctx.sessionId,
    requestId: ctx.requestId,
    step: index,
    prompt: ctx.prompt,
    experts: routing.experts,
    gates: routing.gates,
    h: ctl.h,
  }); // [H]
  const out = await edge.head(ctl.h, m);

  const stm = cloneStm(prev.ctrl.stm);
  ReferenceModel.stmWrite(stm, out.stmKey, out.stmValue);
  const rng = Rng.fromState(prev.rng);
  const forced = prev.phase === 'think' && prev.thinkSteps >= config.max_think_steps;
  const token = forced ? END_THINK : sampleToken(out.logits, options, rng);

  const state: GenerationState = {
    ...prev,
    ctrl: { h: ctl.h, c: ctl.c, m, stm },
    y: token,
    steps: index,
    reasoning: prev.reasoning,
    answer: prev.answer,
    rng: rng.state,
  };

  // Long-term recall: after step 1, the namespace's best matches for code(h₁) join the STM.
  if (!prev.recalled && ctx.ltm && options.ltmTopN > 0) {
    const code = await edge.ltmCode(ctl.h);
    for (const e of await ctx.ltm.query(code, options.ltmTopN)) ReferenceModel.stmWrite(stm, e.key, e.value);
  }
  state.recalled = true;

  const record: StepRecord = {
    index,
    token,
    phase: prev.phase,
    forced,
    experts: routing.experts,
    gates: routing.gates,
    logitsChecksum: logitsChecksum(out.logits),
  };

  if (prev.phase === 'think') {
    if (token === END_THINK) state.phase = 'answer';
    else if (token === EOS) [state.phase, state.finish] = ['done', 'stop'];
    else {
      state.reasoning = [...prev.reasoning, token];
      state.thinkSteps = prev.thinkSteps + 1;
    }
  } else if (token === EOS) [state.phase, state.finish] = ['done', 'stop'];
  else {
    state.answer = [...prev.answer, token];
    if (options.stop.length && stopIndex(decodeTokens(state.answer), options.stop) >= 0)
      [state.phase, state.finish] = ['done', 'stop'];
  }
  if (state.phase !== 'done' && index >= options.maxTokens) [state.phase, state.finish] = ['done', 'length'];
  return { state, record };
}

/** Where the earliest stop sequence starts in `text`, or -1. */
export function stopIndex(text: string, stop: readonly string[]): number {
  let best = -1;
  for (const s of stop) {
    if (!s) continue;
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}

function cloneStm(s: ControllerState['stm']): ControllerState['stm'] {
  return { keys: s.keys.slice(), values: s.values.slice(), count: s.count, next: s.next };
}

export interface GenerateResult {
  reasoning: number[];
  answer: number[];
  reasoningText: string;
  /** The answer, cut before the first stop sequence. */
  answerText: string;
  finish: FinishReason;
  steps: StepRecord[];
  state: GenerationState;
}

/** Runs a whole request; `onStep` sees each step (streaming, persistence). */
export async function generate(
  ctx: StepContext,
  initial: ControllerState,
  onStep?: (record: StepRecord, state: GenerationState) => void | Promise<void>,
): Promise<GenerateResult> {
  let state = startGeneration(initial, ctx.options.seed);
  const steps: StepRecord[] = [];
  while (state.phase !== 'done') {
    const r = await generationStep(ctx, state);
    state = r.state;
    steps.push(r.record);
    await onStep?.(r.record, state);
  }
  return finishResult(state, steps, ctx.options.stop);
}

export function finishResult(
  state: GenerationState,
  steps: StepRecord[],
  stop: readonly string[],
): GenerateResult {
  let answerText = decodeTokens(state.answer);
  const cut = stopIndex(answerText, stop);
  if (cut >= 0) answerText = answerText.slice(0, cut);
  return {
    reasoning: state.reasoning,
    answer: state.answer,
    reasoningText: decodeTokens(state.reasoning),
    answerText,
    finish: state.finish ?? 'length',
    steps,
    state,
  };
}
