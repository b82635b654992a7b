// `npm start` / `npm run dev`: the whole stack on this machine — the GPU tier on CPU and the edge in
// wrangler dev — on the bundled model. Ctrl-C stops both and leaves no process behind.
import { parseArgs } from 'node:util';
import { startStack, type Stack } from './stack.ts';

const { values } = parseArgs({
  options: {
    dev: { type: 'boolean' },
    model: { type: 'string' },
    port: { type: 'string' },
    'gpu-port': { type: 'string' },
    verbose: { type: 'boolean', short: 'v' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help) {
  console.log(`usage: npm start [-- --model FILE] [--port 8787] [--gpu-port 8700] [--verbose]
       npm run dev   (the same, restarting each tier when its source changes)

Environment: SWITCHYARD_MODEL (the weights file), PORT, SWITCHYARD_GPU_PORT.`);
  process.exit(0);
}

const port = Number(values.port ?? process.env.PORT ?? 8787);
const gpuPort = Number(values['gpu-port'] ?? process.env.SWITCHYARD_GPU_PORT ?? 8700);
const dev = Boolean(values.dev);
let stack: Stack | undefined;
let stopping = false;

async function shutdown(code: number) {
  if (stopping) return;
  stopping = true;
  process.stderr.write('\nstopping the edge and the GPU tier ...\n');
  await stack?.stop();
  process.stderr.write('stopped.\n');
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

const t0 = Date.now();
process.stderr.write(
  `starting the GPU tier (CPU) and the edge (wrangler dev)${dev ? ', watching sources' : ''} ...\n`,
);
try {
  stack = await startStack({
    model: values.model ?? process.env.SWITCHYARD_MODEL,
    edgePort: port,
    gpuPort,
    watch: dev,
    echo: Boolean(values.verbose) || dev,
  });
} catch (e) {
  console.error(`npm start failed: ${(e as Error).message}`);
  process.exit(1);
}

const { edge, gpu, apiKey, modelName, model } = stack;
console.log(`
Switchyard is up in ${((Date.now() - t0) / 1000).toFixed(1)} s
  edge (OpenAI-compatible API)  ${edge.url}
  GPU tier (CPU)                ${gpu.url}   metrics: ${gpu.url}/metrics
  model                         ${modelName}  (${model})
  API key                       ${apiKey}

Try it:
  curl -s ${edge.url}/v1/chat/completions \\
    -H 'Authorization: Bearer ${apiKey}' -H 'Content-Type: application/json' \\
    -d '{"model":"${modelName}","messages":[{"role":"user","content":"T and not F"}],"temperature":0}'

  curl -N ${edge.url}/v1/chat/completions \\
    -H 'Authorization: Bearer ${apiKey}' -H 'Content-Type: application/json' \\
    -d '{"model":"${modelName}","stream":true,"messages":[{"role":"user","content":"T and not F"}]}'

  # the openai client, from the repository root (where the openai package is installed):
  node --input-type=module -e "
    import OpenAI from 'openai';
    const client = new OpenAI({ baseURL: '${edge.url}/v1', apiKey: '${apiKey}' });
    const r = await client.chat.completions.create({ model: '${modelName}', messages: [{ role: 'user', content: 'T and not F' }] });
    console.log(r.choices[0].message);"

Ctrl-C stops both.`);

// A tier that dies on its own takes the other down too: a half-up stack is worse than none.
for (const p of [edge, gpu])
  p.child.once('exit', (code) => {
    if (stopping || dev) return;
    console.error(`${p.name} exited unexpectedly (${code}); last output:\n${p.output().slice(-2000)}`);
    void shutdown(1);
  });
