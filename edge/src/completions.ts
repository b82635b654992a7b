// POST /v1/chat/completions: a stateless turn run right in the Worker. It starts from zero controller state
// (DESIGN.md §1), recalls from and writes to the tenant's memory namespace, and forgets its expert-tier
// caches when it ends.
import { promptDigest } from '@switchyard/shared/digest';
import { DEFAULT_GENERATE_OPTIONS, startGeneration, type StepRecord } from '@switchyard/shared/generate';
import type { Tenant } from './auth.ts';
import type { Env } from './env.ts';
import { toApiError } from './errors.ts';
import { EventChannel, type TurnEvent } from './events.ts';
import {
  finishTurn,
  guardedLtm,
  rememberTurn,
  renderPrompt,
  runSteps,
  snippetOf,
  zeroState,
} from './engine.ts';
import { memoryStore } from './memory-actor.ts';
import type { Services } from './services.ts';
import { TurnText } from './text.ts';
import { resolveMemory, type ChatRequest } from './validation.ts';

export interface StatelessTurn {
  events: AsyncIterable<TurnEvent>;
  /** The client went away: stop at the next step (nothing is kept, so there is nothing to finish). */
  cancel(): void;
}

export function runChatCompletion(
  env: Env,
  services: Services,
  tenant: Tenant,
  req: ChatRequest,
  waitUntil: (p: Promise<unknown>) => void,
): StatelessTurn {
  const ch = new EventChannel();
  const emit = (e: TurnEvent) => ch.push(e);
  let gone = false;
  const id = `chatcmpl-${crypto.randomUUID().replaceAll('-', '')}`;
  const expertSession = `req_${id.slice(9)}`;
  const task = (async () => {
    const { config, edge, settings } = services;
    let experts: ReturnType<Services['experts']> | null = null;
    try {
      const prompt = renderPrompt(
        req.messages,
        config.experts.max_prompt,
        req.truncate,
        `messages[${req.messages.length - 1}].content`,
      );
      const memory = resolveMemory(req.memory, settings);
      const ltm = guardedLtm(memoryStore(env, tenant.id, memory.namespace));
      experts = services.experts();
      emit({
        type: 'start',
        id,
        created: Math.floor(Date.now() / 1000),
        model: req.model,
        promptTokens: prompt.tokens.length,
        droppedMessages: prompt.droppedMessages,
        seed: req.seed,
      });
      const text = new TurnText(req.stop);
      const records: StepRecord[] = [];
      const final = await runSteps(
        {
          config,
          edge,
          experts,
          prompt: { tokens: prompt.tokens, digest: await promptDigest(prompt.tokens) },
          sessionId: expertSession,
          requestId: id,
          options: {
            ...DEFAULT_GENERATE_OPTIONS,
            maxTokens: req.maxTokens,
            temperature: req.temperature,
            topP: req.topP,
            seed: req.seed,
            stop: req.stop,
            ltmTopN: memory.recall,
          },
          ltm: memory.recall > 0 ? ltm : undefined,
        },
        startGeneration(zeroState(config), req.seed),
        records,
        text,
        req.trace,
        { emit, cancelled: () => (gone ? 'the client disconnected' : null) },
      );
      const full = finishTurn(final, records, prompt.tokens.length, text, emit);
      ch.end();
      if (memory.write) {
        const lastUser = [...req.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
        await rememberTurn(config, edge, ltm, final, snippetOf(lastUser, full.content)).catch((e) =>
          console.error(`${id}: long-term memory write failed: ${(e as Error).message}`),
        );
      }
    } catch (e) {
      emit({ type: 'error', error: toApiError(e).toData() });
      ch.end();
    } finally {
      await experts?.dropSession?.(expertSession).catch(() => undefined);
    }
  })();
  waitUntil(task);
  return { events: ch, cancel: () => (gone = true) };
}
