import { describe, expect, it } from 'vitest';
import {
  DEFAULT_GENERATE_OPTIONS,
  generate,
  startGeneration,
  type StepContext,
} from '@switchyard/shared/generate';
import type { ExpertBackend, ExpertCall, ExpertResult } from '@switchyard/shared/interfaces';
import { promptDigest } from '@switchyard/shared/digest';
import { ReferenceEdge, ReferenceExperts } from '@switchyard/shared/reference';
import { runSteps, TurnCancelledError, type StepHooks } from './engine.ts';
import { TurnText } from './text.ts';
import { referenceModel, unavailable } from './test-utils.ts';

const PROMPT = [256, 104, 105, 10];
const STEPS = 6;

/** Reference experts that log when each call goes out and answers, and can say "sent" or stay silent. */
class LoggedExperts extends ReferenceExperts {
  constructor(
    readonly log: string[],
    readonly signalsSent: boolean,
    readonly failAt = 0,
  ) {
    super(referenceModel);
  }
  override async runExperts(call: ExpertCall): Promise<ExpertResult> {
    this.log.push(`call ${call.step}`);
    if (this.signalsSent) call.onSent?.();
    await new Promise((r) => setTimeout(r, 1));
    if (call.step === this.failAt) throw unavailable();
    const r = await super.runExperts(call);
    this.log.push(`answer ${call.step}`);
    return r;
  }
}

async function context(experts: ExpertBackend): Promise<StepContext> {
  return {
    config: referenceModel.config,
    edge: new ReferenceEdge(referenceModel),
    experts,
    prompt: { tokens: PROMPT, digest: await promptDigest(PROMPT) },
    sessionId: 's',
    requestId: 'r',
    options: { ...DEFAULT_GENERATE_OPTIONS, maxTokens: STEPS, ltmTopN: 0 },
  };
}

async function turn(experts: LoggedExperts, hooks: Partial<StepHooks> = {}) {
  const log = experts.log;
  const ctx = await context(experts);
  const records: Parameters<typeof runSteps>[2] = [];
  const tokens: number[] = [];
  const run = runSteps(
    ctx,
    startGeneration(referenceModel.initialState(), 0),
    records,
    new TurnText([]),
    true,
    {
      commit: (s, r) => void log.push(`commit ${r.index}`),
      emit: (e) => {
        if (e.type === 'delta' && e.step) {
          log.push(`emit ${e.step.index}`);
          tokens.push(e.step.token);
        }
      },
      ...hooks,
    },
  );
  return { run, records, tokens };
}

async function referenceTokens(): Promise<number[]> {
  const r = await generate(
    await context(new ReferenceExperts(referenceModel)),
    referenceModel.initialState(),
  );
  return r.steps.map((s) => s.token);
}

describe('runSteps', () => {
  it("sends step t+1's expert call before persisting step t, and reports step t only after persisting it", async () => {
    const log: string[] = [];
    const { run, tokens } = await turn(new LoggedExperts(log, true));
    await run;
    expect(tokens).toEqual(await referenceTokens());
    for (let t = 1; t < STEPS; t++) {
      expect(log.indexOf(`call ${t + 1}`)).toBeLessThan(log.indexOf(`commit ${t}`));
      // The next call goes out, it is not waited for.
      expect(log.indexOf(`commit ${t}`)).toBeLessThan(log.indexOf(`answer ${t + 1}`));
    }
    for (let t = 1; t <= STEPS; t++)
      expect(log.indexOf(`commit ${t}`)).toBeLessThan(log.indexOf(`emit ${t}`));
    expect(log.filter((x) => x.startsWith('call'))).toHaveLength(STEPS);
  });

  it('with a backend that never says "sent", persists step t once step t+1 has answered, in the same order', async () => {
    const log: string[] = [];
    const { run, tokens } = await turn(new LoggedExperts(log, false));
    await run;
    expect(tokens).toEqual(await referenceTokens());
    for (let t = 1; t < STEPS; t++)
      expect(log.indexOf(`answer ${t + 1}`)).toBeLessThan(log.indexOf(`commit ${t}`));
    for (let t = 1; t <= STEPS; t++)
      expect(log.indexOf(`commit ${t}`)).toBeLessThan(log.indexOf(`emit ${t}`));
  });

  it('a failing step t+1 still lets step t be persisted and reported first', async () => {
    const log: string[] = [];
    const { run, records } = await turn(new LoggedExperts(log, true, 4));
    await expect(run).rejects.toMatchObject({ status: 503 });
    expect(records.map((r) => r.index)).toEqual([1, 2, 3]);
    expect(log.filter((x) => /^(commit|emit)/.test(x))).toEqual([
      'commit 1',
      'emit 1',
      'commit 2',
      'emit 2',
      'commit 3',
      'emit 3',
    ]);
  });

  it('a failed write stops the turn: the step is not reported and the call already made is dropped', async () => {
    const log: string[] = [];
    const { run, records } = await turn(new LoggedExperts(log, true), {
      commit: (_, r) => {
        if (r.index === 2) throw new Error('disk full');
        log.push(`commit ${r.index}`);
      },
    });
    await expect(run).rejects.toThrow('disk full');
    expect(records.map((r) => r.index)).toEqual([1]);
    expect(log.filter((x) => x.startsWith('emit'))).toEqual(['emit 1']);
    // Step 3's call went out before step 2's write failed; nothing came of it.
    expect(log).toContain('call 3');
    await new Promise((r) => setTimeout(r, 5));
    expect(log).not.toContain('emit 3');
  });

  it('a cancellation stops the turn before its next call: the step already under way is persisted and reported, nothing after it', async () => {
    const log: string[] = [];
    let cancel: string | null = null;
    const { run, records } = await turn(new LoggedExperts(log, true), {
      cancelled: () => cancel,
      emit: (e) => {
        if (e.type === 'delta' && e.step?.index === 2) cancel = 'deleted';
      },
    });
    await expect(run).rejects.toBeInstanceOf(TurnCancelledError);
    expect(records.map((r) => r.index)).toEqual([1, 2, 3]);
    expect(log.filter((x) => x.startsWith('call'))).toEqual(['call 1', 'call 2', 'call 3']);
  });
});
