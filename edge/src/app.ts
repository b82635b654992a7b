// The public API (DESIGN.md §4) as a hono app. Every error, wherever it is thrown, leaves through onError in
// OpenAI's error shape.
import { Hono, type Context } from 'hono';
import { authenticate, type Tenant } from './auth.ts';
import { readJsonObject } from './body.ts';
import { runChatCompletion } from './completions.ts';
import type { Env } from './env.ts';
import {
  ApiError,
  errorResponse,
  InvalidRequestError,
  MethodNotAllowedError,
  NotFoundError,
  toApiError,
} from './errors.ts';
import { renderTurn } from './openai.ts';
import { enforceRateLimit } from './rate-limit.ts';
import { getServices, type Services } from './services.ts';
import type { Result, SessionActor } from './session-actor.ts';
import { settingsFor } from './settings.ts';
import { parseChatRequest, parseSessionCreate, parseSessionMessage, resolveMemory } from './validation.ts';

export interface AppOptions {
  /** The per-request services (default: built once per isolate from the env). */
  services?: (env: Env) => Promise<Services>;
}

type AppEnv = { Bindings: Env; Variables: { tenant: Tenant; limitHeaders: Record<string, string> } };

const ROUTES: [string, string[]][] = [
  ['/health', ['GET']],
  ['/health/ready', ['GET']],
  ['/v1/models', ['GET']],
  ['/v1/models/:model', ['GET']],
  ['/v1/chat/completions', ['POST']],
  ['/v1/sessions', ['POST']],
  ['/v1/sessions/:id', ['GET', 'DELETE']],
  ['/v1/sessions/:id/messages', ['POST']],
  ['/v1/sessions/:id/resume', ['POST']],
];

const SESSION_ID = /^sess_([0-9a-f]{64})$/;

function waitUntilOf(c: Context<AppEnv>): (p: Promise<unknown>) => void {
  try {
    const ctx = c.executionCtx;
    return (p) => ctx.waitUntil(p);
  } catch {
    return (p) => void p.catch(() => undefined);
  }
}

function sessionStub(env: Env, id: string): DurableObjectStub<SessionActor> {
  const m = SESSION_ID.exec(id);
  if (m) {
    try {
      return env.SESSIONS.get(env.SESSIONS.idFromString(m[1]));
    } catch {
      // Not an id this namespace issued: answered like any unknown session.
    }
  }
  throw new NotFoundError(`session ${JSON.stringify(id.slice(0, 80))} not found`, 'session_not_found', 'id');
}

function unwrap<T>(r: Result<T>): T {
  if (!r.ok) throw ApiError.fromData(r.error);
  return r.value;
}

export function createApp(options: AppOptions = {}): Hono<AppEnv> {
  const services = options.services ?? getServices;
  const app = new Hono<AppEnv>();

  app.onError((err) => errorResponse(toApiError(err)));
  app.notFound((c) =>
    errorResponse(
      new NotFoundError(
        `${c.req.method} ${new URL(c.req.url).pathname}: no such route; routes: ${ROUTES.map(([p, m]) => `${m.join('|')} ${p}`).join(', ')}`,
        'unknown_route',
      ),
    ),
  );

  // ---------------------------------------------------------------------------------------- health

  app.get('/health', async (c) => {
    const s = await services(c.env);
    return c.json({
      status: 'ok',
      model: s.settings.modelName,
      compute: s.edge.name,
      weights: s.weightsSource,
    });
  });

  app.get('/health/ready', async (c) => {
    const s = await services(c.env);
    let shards: unknown = [];
    let ready = false;
    let reason: string | null = null;
    try {
      const tier = s.experts();
      const health = tier.health ? await tier.health() : [];
      shards = health;
      ready = health.every((sh) => sh.replicas.some((r) => r.ready));
      if (!ready)
        reason = `no ready replica for shard(s) ${health
          .filter((sh) => !sh.replicas.some((r) => r.ready))
          .map((sh) => sh.shard)
          .join(', ')}`;
    } catch (e) {
      reason = toApiError(e).message;
    }
    return c.json(
      { status: ready ? 'ready' : 'not_ready', reason, model: s.settings.modelName, shards },
      ready ? 200 : 503,
    );
  });

  // ---------------------------------------------------------------------------------------- /v1: auth, limits

  app.use('/v1/*', async (c, next) => {
    const settings = settingsFor(c.env);
    const tenant = await authenticate(c.req.raw, settings);
    const rl = await enforceRateLimit(c.env, tenant, settings.rateLimit);
    c.set('tenant', tenant);
    c.set(
      'limitHeaders',
      rl
        ? {
            'x-ratelimit-limit-requests': String(rl.limit),
            'x-ratelimit-remaining-requests': String(rl.remaining),
          }
        : {},
    );
    await next();
    for (const [k, v] of Object.entries(c.get('limitHeaders'))) c.res.headers.set(k, v);
  });

  // ---------------------------------------------------------------------------------------- models

  const modelObject = (s: Services) => ({
    id: s.settings.modelName,
    object: 'model',
    created: 0,
    owned_by: 'switchyard',
    switchyard: {
      arch: s.config.arch,
      config: s.config,
      max_prompt_tokens: s.config.experts.max_prompt,
      max_tokens_limit: s.settings.maxTokensLimit,
      compute: s.edge.name,
    },
  });

  app.get('/v1/models', async (c) => {
    const s = await services(c.env);
    return c.json({ object: 'list', data: [modelObject(s)] });
  });

  app.get('/v1/models/:model', async (c) => {
    const s = await services(c.env);
    const id = c.req.param('model');
    if (id !== s.settings.modelName)
      throw new NotFoundError(
        `model ${JSON.stringify(id)} not found; this server serves ${JSON.stringify(s.settings.modelName)}`,
        'model_not_found',
        'model',
      );
    return c.json(modelObject(s));
  });

  // ---------------------------------------------------------------------------------------- completions

  app.post('/v1/chat/completions', async (c) => {
    const s = await services(c.env);
    const req = parseChatRequest(await readJsonObject(c.req.raw, s.settings.maxBodyBytes), s.settings);
    const turn = runChatCompletion(c.env, s, c.get('tenant'), req, waitUntilOf(c));
    return renderTurn(turn.events, {
      stream: req.stream,
      includeUsage: req.includeUsage,
      trace: req.trace,
      onCancel: turn.cancel,
    });
  });

  // ---------------------------------------------------------------------------------------- sessions

  app.post('/v1/sessions', async (c) => {
    const s = await services(c.env);
    const req = parseSessionCreate(await readJsonObject(c.req.raw, s.settings.maxBodyBytes), s.settings);
    const tenant = c.get('tenant');
    const id = c.env.SESSIONS.newUniqueId();
    const sessionId = `sess_${id.toString()}`;
    const info = unwrap(
      await c.env.SESSIONS.get(id).create({
        sessionId,
        tenant: tenant.id,
        model: req.model,
        messages: req.messages,
        memory: resolveMemory(req.memory, s.settings),
      }),
    );
    return c.json(info);
  });

  app.get('/v1/sessions/:id', async (c) => {
    const stub = sessionStub(c.env, c.req.param('id'));
    return c.json(unwrap(await stub.get(c.get('tenant').id)));
  });

  app.delete('/v1/sessions/:id', async (c) => {
    const stub = sessionStub(c.env, c.req.param('id'));
    return c.json(unwrap(await stub.remove(c.get('tenant').id)));
  });

  app.post('/v1/sessions/:id/messages', async (c) => {
    const s = await services(c.env);
    const stub = sessionStub(c.env, c.req.param('id'));
    const req = parseSessionMessage(await readJsonObject(c.req.raw, s.settings.maxBodyBytes), s.settings);
    // The actor renders the response itself; its bytes pass through.
    return stub.message(c.get('tenant').id, req);
  });

  app.post('/v1/sessions/:id/resume', async (c) => {
    const s = await services(c.env);
    const stub = sessionStub(c.env, c.req.param('id'));
    const raw = await readJsonObject(c.req.raw, s.settings.maxBodyBytes, true);
    const opts = parseResume(raw);
    return stub.resume(c.get('tenant').id, opts);
  });

  // ---------------------------------------------------------------------------------------- wrong methods

  for (const [path, methods] of ROUTES)
    app.all(path, (c) => {
      throw new MethodNotAllowedError(c.req.method, new URL(c.req.url).pathname, methods);
    });

  return app;
}

function parseResume(body: Record<string, unknown>): {
  stream: boolean;
  includeUsage: boolean;
  trace: boolean;
} {
  const allowed = ['stream', 'stream_options', 'switchyard'];
  for (const k of Object.keys(body))
    if (!allowed.includes(k))
      throw new InvalidRequestError(
        `${k}: unrecognized field; a resume takes only ${allowed.join(', ')} (the turn keeps its own sampling options)`,
        k,
        'unknown_parameter',
      );
  const bool = (v: unknown, name: string) => {
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean')
      throw new InvalidRequestError(`${name}: expected a boolean, found ${JSON.stringify(v)}`, name);
    return v;
  };
  const so = body.stream_options as Record<string, unknown> | undefined;
  const ext = body.switchyard as Record<string, unknown> | undefined;
  return {
    stream: bool(body.stream, 'stream'),
    includeUsage: bool(so?.include_usage, 'stream_options.include_usage'),
    trace: bool(ext?.trace, 'switchyard.trace'),
  };
}
