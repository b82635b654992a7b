// Examples as token sequences: the prompt the experts read, and the tokens the controller is fed and
// must predict. Generation starts from <think>; the targets are the trace, </think>, the answer, <eos>.
import { encodeText, END_THINK, EOS, renderChat, THINK } from '@switchyard/shared';
import type { Example } from './curriculum.ts';

export interface Sequence {
  prompt: number[];
  /** Fed at steps 1..T: <think>, trace, </think>, answer. */
  inputs: number[];
  /** Predicted at steps 1..T: trace, </think>, answer, <eos>. */
  targets: number[];
  /** How many targets belong to the trace (the reasoning steps). */
  traceLength: number;
}

/** The prompt exactly as the served stack renders a one-message chat. */
export function promptTokens(text: string, maxPrompt: number): number[] {
  return renderChat([{ role: 'user', content: text }], maxPrompt).tokens;
}

export function toSequence(ex: Example, maxPrompt: number): Sequence {
  const trace = encodeText(ex.trace);
  const answer = encodeText(ex.answer);
  return {
    prompt: promptTokens(ex.prompt, maxPrompt),
    inputs: [THINK, ...trace, END_THINK, ...answer],
    targets: [...trace, END_THINK, ...answer, EOS],
    traceLength: trace.length,
  };
}

/** Step-major flat targets and a 0/1 mask of real (not padding) steps. */
export function flatTargets(seqs: readonly { targets: readonly number[] }[]): {
  targets: number[];
  mask: number[];
  T: number;
} {
  const T = Math.max(...seqs.map((s) => s.targets.length));
  const targets: number[] = [];
  const mask: number[] = [];
  for (let t = 0; t < T; t++)
    for (const s of seqs) {
      targets.push(s.targets[t] ?? 0);
      mask.push(t < s.targets.length ? 1 : 0);
    }
  return { targets, mask, T };
}
