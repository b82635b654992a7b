// The edge Worker: the public API, and the Durable Object classes wrangler.toml binds.
import { createApp } from './app.ts';
import './compute/backends.ts';
import type { Env } from './env.ts';

export { SessionActor } from './session-actor.ts';
export { MemoryActor } from './memory-actor.ts';
export { RateLimiter } from './rate-limit.ts';

const app = createApp();

export default {
  fetch(request: Request, env: Env, ctx: ExecutionContext): Response | Promise<Response> {
    return app.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
