// The CLI as a user runs it: the real bin in a child process, on files in a temporary directory.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { readWeights, ReferenceModel } from '../src/index.ts';

const BIN = new URL('../bin/switchyard.mjs', import.meta.url).pathname;
const GOLDEN = new URL('../golden/tiny-int8.safetensors', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'switchyard-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], { cwd: dir });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const p = (f: string) => join(dir, f);

describe('switchyard CLI', () => {
  it('lists the commands and gives each one --help', async () => {
    const r = await cli('--help');
    expect(r.code).toBe(0);
    for (const c of ['init', 'inspect', 'verify', 'quantize', 'split', 'export-onnx'])
      expect(r.stdout).toContain(c);
    const h = await cli('split', '--help');
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('--shards N');
  });

  it('rejects an unknown command or option with the valid ones and exit code 2', async () => {
    const r = await cli('frobnicate');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('expected one of init, inspect, verify, quantize, split, export-onnx');
    const s = await cli('init', '--preset', 'tiny', '--scheme', 'int4', '-o', p('x.safetensors'));
    expect(s.code).toBe(2);
    expect(s.stderr).toContain('--scheme: expected one of f32, int8, int8-2:4, found "int4"');
  });

  it('init is deterministic: the tiny preset with seed 1 is the committed golden model', async () => {
    const r = await cli('init', '--preset', 'tiny', '--seed', '1', '-o', p('tiny.safetensors'));
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('quantize (int8)'); // the progress bar
    expect(Buffer.compare(readFileSync(p('tiny.safetensors')), readFileSync(GOLDEN))).toBe(0);
  });

  it('init takes a config file and reports a bad field by its path', async () => {
    const cfg = JSON.parse(JSON.stringify(readWeights(new Uint8Array(readFileSync(GOLDEN))).config));
    cfg.experts.count = 3;
    cfg.experts.top_k = 1;
    writeFileSync(p('three.json'), JSON.stringify(cfg));
    expect((await cli('init', '--config', p('three.json'), '-o', p('three.safetensors'))).code).toBe(0);
    expect(readWeights(new Uint8Array(readFileSync(p('three.safetensors')))).experts()).toEqual([0, 1, 2]);
    cfg.experts.top_k = 9;
    writeFileSync(p('bad.json'), JSON.stringify(cfg));
    const bad = await cli('init', '--config', p('bad.json'), '-o', p('bad.safetensors'));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('experts.top_k: expected at most experts.count (3), found 9');
  });

  it('verify passes a good file and names the tensor of a corrupted one', async () => {
    const good = await cli('verify', GOLDEN);
    expect(good.code).toBe(0);
    expect(good.stdout).toContain('checksums match');
    const bytes = new Uint8Array(readFileSync(GOLDEN));
    const w = readWeights(bytes);
    const entry = w.entries.find((e) => e.name === 'head.w')!;
    const bad = bytes.slice();
    bad[entry.offset + 5] ^= 0x40;
    writeFileSync(p('corrupt.safetensors'), bad);
    const r = await cli('verify', p('corrupt.safetensors'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('head.w');
    expect(r.stderr).toMatch(/checksum/i);
  });

  it('quantize to 2:4 shrinks the file and keeps 2 of every 4 weights', async () => {
    const r = await cli('quantize', GOLDEN, '--scheme', 'int8-2:4', '-o', p('t24.safetensors'));
    expect(r.code).toBe(0);
    const w = readWeights(new Uint8Array(readFileSync(p('t24.safetensors'))));
    expect(w.bytes.length).toBeLessThan(readFileSync(GOLDEN).length * 0.8);
    expect(w.schemes.get('lstm.w_ih')).toBe('int8-2:4');
    expect(w.schemes.get('tok_embed')).toBe('int8');
    const t = w.tensor('experts.0.layers.0.ffn.w1').data;
    for (let g = 0; g < t.length; g += 4)
      expect([t[g], t[g + 1], t[g + 2], t[g + 3]].filter((x) => x !== 0).length).toBeLessThanOrEqual(2);
  });

  it('split writes an edge file and shards that verify and together hold every expert', async () => {
    const r = await cli('split', GOLDEN, '--groups', '0,2;1,3', '-o', p('split'));
    expect(r.code).toBe(0);
    const files = ['edge.safetensors', 'experts-0_2.safetensors', 'experts-1_3.safetensors'].map((f) =>
      p(`split/${f}`),
    );
    expect((await cli('verify', ...files)).code).toBe(0);
    const [edge, a, b] = files.map((f) => readWeights(new Uint8Array(readFileSync(f))));
    expect(edge.shard.kind).toBe('edge');
    expect([...a.experts(), ...b.experts()].sort()).toEqual([0, 1, 2, 3]);
  });

  it('export-onnx writes a model repository whose expert models compute the reference', async () => {
    const r = await cli('export-onnx', GOLDEN, '-o', p('repo'), '--max-batch', '8');
    expect(r.code).toBe(0);
    for (const e of [0, 1, 2, 3]) {
      expect(existsSync(p(`repo/expert-${e}/1/model.onnx`))).toBe(true);
      expect(readFileSync(p(`repo/expert-${e}/config.pbtxt`), 'utf8')).toContain('max_batch_size: 8');
    }
    expect(existsSync(p('repo/edge/controller.onnx'))).toBe(true);
    expect(existsSync(p('repo/edge/head.onnx'))).toBe(true);

    const w = readWeights(new Uint8Array(readFileSync(GOLDEN)));
    const ref = new ReferenceModel(w.config, w.params());
    const prompt = [256, 72, 105, 10];
    const h = new Float32Array(ref.H).map((_, i) => 0.2 * Math.cos(i));
    const session = await ort.InferenceSession.create(p('repo/expert-2/1/model.onnx'), {
      graphOptimizationLevel: 'all',
      extra: { session: { qdq_matmulnbits_accuracy_level: '0' } },
    });
    const out = await session.run({
      tokens: new ort.Tensor('int64', BigInt64Array.from(prompt.map(BigInt)), [1, prompt.length]),
      prompt_len: new ort.Tensor('int64', BigInt64Array.from([BigInt(prompt.length)]), [1]),
      h: new ort.Tensor('float32', h, [1, ref.H]),
    });
    const y = out.y.data as Float32Array;
    const expected = ref.expertStep(2, h, ref.expertPrefill(2, prompt));
    for (let i = 0; i < ref.H; i++) expect(Math.abs(y[i] - expected[i])).toBeLessThan(1e-4);
  });

  it('inspect reports about 110 M parameters and about 28% active per step for r1-seed', async () => {
    expect((await cli('init', '--preset', 'r1-seed', '-o', p('r1.safetensors'))).code).toBe(0);
    const r = await cli('inspect', p('r1.safetensors'), '--json');
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.parameters.model).toBeGreaterThan(105e6);
    expect(info.parameters.model).toBeLessThan(115e6);
    expect(info.parameters.activeFraction).toBeGreaterThan(0.26);
    expect(info.parameters.activeFraction).toBeLessThan(0.3);
    const text = await cli('inspect', p('r1.safetensors'));
    expect(text.stdout).toMatch(/active \/ step\s+31\.\d+ M \(28\.\d% of the model\)/);
  }, 120_000);
});
