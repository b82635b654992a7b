// Runs the edge Worker locally through wrangler's own dev server (`unstable_startWorker`: the same bundling,
// workerd, Durable Object SQLite and persistence as `wrangler dev`), with the flags scripts/stack.ts passes:
//   node scripts/edge-dev.mjs --config wrangler.toml --ip 127.0.0.1 --port 8787 --persist-to DIR
//     [--env-file FILE] [--var KEY:VALUE ...] [--watch] [--inspect]
// Why not the `wrangler dev` command: it always starts its DevTools inspector proxy, which turns on the
// runtime's Network events and relays every one of them to wrangler's Node process over HTTP. With a fetch to
// the GPU tier at every step, that relay cost more CPU than the Worker itself (64 concurrent sessions:
// wrangler's Node process 59% of a core and its proxy workerd 39%, against 7% and 8% without it) and halved
// throughput. `--inspect` brings the inspector back for debugging.
import { parseArgs } from 'node:util';
import { unstable_startWorker } from 'wrangler';

const { values } = parseArgs({
  options: {
    config: { type: 'string' },
    ip: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    'persist-to': { type: 'string' },
    'env-file': { type: 'string' },
    var: { type: 'string', multiple: true, default: [] },
    watch: { type: 'boolean', default: false },
    inspect: { type: 'boolean', default: false },
  },
  strict: true,
});
const bindings = {};
for (const v of values.var) {
  const i = v.indexOf(':');
  if (i < 1) {
    console.error(`edge-dev: --var: expected KEY:VALUE, found ${JSON.stringify(v)}`);
    process.exit(2);
  }
  bindings[v.slice(0, i)] = { type: 'plain_text', value: v.slice(i + 1) };
}
const worker = await unstable_startWorker({
  config: values.config,
  envFiles: values['env-file'] ? [values['env-file']] : undefined,
  bindings,
  sendMetrics: false,
  dev: {
    server: { hostname: values.ip, port: values.port === undefined ? undefined : Number(values.port) },
    inspector: values.inspect ? {} : false,
    persist: values['persist-to'] ?? false,
    watch: values.watch,
    liveReload: false,
  },
});
await worker.ready;
console.log(`edge-dev: ready on ${(await worker.url).href}`);
let stopping = false;
const stop = async () => {
  if (stopping) process.exit(1);
  stopping = true;
  await worker.dispose();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
