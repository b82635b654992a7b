// Helpers for the workerd tests: requests through the Worker's own fetch handler, the test API keys, and an
// in-process expert tier (shared's ReferenceExperts on the full golden model) whose calls can be made to fail.
import { exports } from 'cloudflare:workers';
import type { ExpertBackend, ExpertCall, ExpertResult } from '@switchyard/shared/interfaces';
import { ReferenceExperts, ReferenceModel } from '@switchyard/shared/reference';
import { readWeights } from '@switchyard/shared/weights/index';
import type { GoldenFile } from '@switchyard/shared/golden';
import fullModel from '../../shared/golden/tiny-int8.safetensors';
import goldenJson from '../../shared/golden/tiny-int8.golden.json';
import { ExpertUnavailableError } from './errors.ts';
import { setExpertFactory } from './services.ts';

import { KEYS } from './test-keys.ts';

export { KEYS };
export const MODEL = 'switchyard-tiny';
export const golden = goldenJson as unknown as GoldenFile;

const full = readWeights(new Uint8Array(fullModel));
export const referenceModel = new ReferenceModel(full.config, full.params());

/** The reference experts with a switch to fail chosen calls, as a dead or refusing GPU tier would. */
export class TestExperts implements ExpertBackend {
  readonly name = 'test-reference';
  readonly inner = new ReferenceExperts(referenceModel);
  calls: ExpertCall[] = [];
  dropped: string[] = [];
  failWhen: ((call: ExpertCall) => Error | null) | null = null;
  /** Milliseconds each call takes, as a slow tier's would. */
  delayMs = 0;

  async runExperts(call: ExpertCall): Promise<ExpertResult> {
    this.calls.push(call);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    const err = this.failWhen?.(call);
    if (err) throw err;
    return this.inner.runExperts(call);
  }

  async dropSession(sessionId: string): Promise<void> {
    this.dropped.push(sessionId);
    await this.inner.dropSession(sessionId);
  }
}

/** Installs a fresh in-process expert tier for this isolate (routes and actors alike) and returns it. */
export function useTestExperts(): TestExperts {
  const t = new TestExperts();
  setExpertFactory(() => t);
  return t;
}

export const unavailable = () => new ExpertUnavailableError('expert tier unavailable: injected failure', 2);

export function api(
  path: string,
  init: RequestInit & { key?: string | null; json?: unknown } = {},
): Promise<Response> {
  const headers = new Headers(init.headers);
  const key = init.key === undefined ? KEYS.alice : init.key;
  if (key) headers.set('authorization', `Bearer ${key}`);
  let body = init.body;
  if (init.json !== undefined) {
    body = JSON.stringify(init.json);
    headers.set('content-type', 'application/json');
  }
  return (exports as unknown as { default: Fetcher }).default.fetch(`http://edge.test${path}`, {
    ...init,
    headers,
    body,
    method: init.method ?? (body !== undefined ? 'POST' : 'GET'),
  });
}

/** Parses an SSE body into its data payloads (the last one is "[DONE]" on success). */
export async function sseEvents(res: Response): Promise<unknown[]> {
  const text = await res.text();
  const out: unknown[] = [];
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    const lines = block.split('\n');
    for (const l of lines) {
      if (!l.startsWith('data: '))
        throw new Error(`SSE: expected "data: " lines, found ${JSON.stringify(l)}`);
      const d = l.slice(6);
      out.push(d === '[DONE]' ? d : JSON.parse(d));
    }
  }
  return out;
}

export type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
