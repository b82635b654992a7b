// `npm run bench [-- NAME ...]`: runs every benchmark module in bench/ (each exports `run()`), in one process,
// one after another so they do not compete for this machine's two cores.
import { readdirSync } from 'node:fs';

const dir = new URL('.', import.meta.url).pathname;
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !['run.ts', 'lib.ts'].includes(f) && !f.endsWith('.test.ts'))
  .map((f) => f.replace(/\.ts$/, ''))
  .sort();
const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !all.includes(w));
if (unknown.length) {
  console.error(`bench: unknown benchmark(s) ${unknown.join(', ')}: expected some of ${all.join(', ')}`);
  process.exit(2);
}
let failed = 0;
for (const name of wanted.length ? wanted : all) {
  console.log(`\n=== bench/${name}`);
  const mod = await import(`./${name}.ts`);
  if (typeof mod.run !== 'function') {
    console.error(`bench/${name}.ts exports no run()`);
    failed++;
    continue;
  }
  try {
    await mod.run();
  } catch (e) {
    console.error(`bench/${name} failed: ${(e as Error).stack ?? e}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
