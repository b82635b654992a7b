// Writes the kernel cases (wasm/test/cases/*.json) from the float32 reference: shared/src/math.ts for the
// mat-vecs, softmax and top-k, shared/src/quant.ts for the int8 and 2:4 layouts, and the formulas of
// shared/src/reference.ts for the LSTM cell, the STM read and the sparse code. Deterministic (seeded), so
// kernels.test.ts can check that the files are current.
//
//   npx tsx wasm/test/gen-cases.ts
import {
  dequantize,
  dot,
  matVec,
  quantize24,
  quantizeInt8,
  Rng,
  routeFromProbs,
  sigmoid,
  softmax,
  topK,
  type StoredTensor,
} from '@switchyard/shared';
import {
  CASE_FILES,
  toData,
  type AllCases,
  type LstmCase,
  type MatVecCase,
  type SoftmaxTopKCase,
  type SparseCodeCase,
  type StmReadCase,
} from './cases.ts';
import { f32Tolerance, int8FastTolerance, int8PreciseTolerance, lstmTolerance } from './tolerance.ts';

/** float32 values with 9 significant digits: enough to come back to the same float32. */
const f32s = (a: ArrayLike<number>) => Array.from(a, (v) => Number(Math.fround(v).toPrecision(9)));
/** Tolerances rounded up to 3 digits. */
const tols = (a: ArrayLike<number>) => Array.from(a, (v) => Number((v * 1.01).toPrecision(3)));

function normals(rng: Rng, n: number, std = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * std);
}

function weightsOf(t: StoredTensor): Float32Array {
  return dequantize(t).data;
}

function matVecCase(
  name: string,
  t: StoredTensor,
  x: Float32Array,
  bias: Float32Array | null,
  paths: Array<'fast' | 'exact'>,
): MatVecCase {
  const [rows, cols] = t.shape;
  const w = weightsOf(t);
  const expected = matVec(w, rows, cols, x, bias ?? undefined);
  const tolerance: MatVecCase['tolerance'] = {};
  if (paths.includes('fast')) {
    tolerance.fast = tols(int8FastTolerance(w, rows, cols, x, expected));
    tolerance.precise = tols(int8PreciseTolerance(w, rows, cols, x, expected));
  }
  if (paths.includes('exact')) tolerance.exact = tols(f32Tolerance(w, rows, cols, x, expected));
  const data = toData(t);
  if (data.scheme === 'f32') data.w = f32s(data.w);
  else data.scale = f32s(data.scale);
  return {
    name,
    rows,
    cols,
    w: data,
    bias: bias ? f32s(bias) : null,
    x: f32s(x),
    expected: f32s(expected),
    tolerance,
  };
}

/** int8 rows with chosen q and scales (quantizeInt8 always gives scale = max/127). */
function int8Raw(
  rows: number,
  cols: number,
  q: (r: number, k: number) => number,
  scale: (r: number) => number,
) {
  const t: StoredTensor = {
    scheme: 'int8',
    shape: [rows, cols],
    q: Int8Array.from({ length: rows * cols }, (_, i) => q(Math.floor(i / cols), i % cols)),
    scale: Float32Array.from({ length: rows }, (_, r) => scale(r)),
  };
  return t;
}

function withScales(t: Extract<StoredTensor, { scheme: 'int8' | 'int8-2:4' }>, scale: (r: number) => number) {
  return { ...t, scale: Float32Array.from(t.scale, (_, r) => scale(r)) };
}

function int8Cases(): MatVecCase[] {
  const rng = new Rng(101);
  const out: MatVecCase[] = [];
  const both: Array<'fast' | 'exact'> = ['fast', 'exact'];
  const rand = (rows: number, cols: number) =>
    quantizeInt8({ shape: [rows, cols], data: normals(rng, rows * cols) });
  const shapes: Array<[number, number, boolean]> = [
    [1, 1, false],
    [3, 5, true],
    [4, 16, false],
    [5, 17, false],
    [7, 33, true],
    [13, 40, false],
    [33, 100, true],
    [64, 257, false],
    [130, 96, true],
  ];
  for (const [r, c, b] of shapes)
    out.push(
      matVecCase(
        `${r}x${c}${b ? ' bias' : ''}`,
        rand(r, c),
        normals(rng, c),
        b ? normals(rng, r) : null,
        both,
      ),
    );
  out.push(matVecCase('zero rows 0x12', rand(0, 12), normals(rng, 12), null, both));
  out.push(matVecCase('zero columns 3x0 bias', rand(3, 0), new Float32Array(0), normals(rng, 3), both));
  out.push(matVecCase('all-zero x 9x20 bias', rand(9, 20), new Float32Array(20), normals(rng, 9), both));
  const zr = rand(8, 24);
  for (const r of [2, 5]) zr.q.fill(0, r * 24, (r + 1) * 24);
  out.push(
    matVecCase(
      'all-zero weight rows 8x24',
      { ...zr, scale: zr.scale.map((s, r) => (r === 2 || r === 5 ? 1 : s)) },
      normals(rng, 24),
      null,
      both,
    ),
  );
  out.push(
    matVecCase(
      'tiny scales 6x20',
      withScales(rand(6, 20), (r) => 1e-30 * (r + 1)),
      normals(rng, 20),
      null,
      both,
    ),
  );
  out.push(
    matVecCase(
      'huge scales 6x20',
      withScales(rand(6, 20), (r) => 1e25 * (r + 1)),
      normals(rng, 20, 1e-3),
      null,
      both,
    ),
  );
  out.push(
    matVecCase(
      'mixed scales 8x32',
      withScales(rand(8, 32), (r) => 10 ** (5 * r - 20)),
      normals(rng, 32),
      null,
      both,
    ),
  );
  // max|x| subnormal: the quantizer's inverse step overflows float32 and takes its two-factor path.
  const tinyX = normals(rng, 24, 1e-39);
  out.push(matVecCase('subnormal x 5x24', rand(5, 24), tinyX, null, ['fast']));
  out.push(matVecCase('huge x 5x24', rand(5, 24), normals(rng, 24, 1e30), null, both));
  // Every product at the int8 limit and every x at the quantizer's limit: the largest integer sums.
  const sat = int8Raw(
    3,
    1000,
    (r, k) => (r === 1 ? -127 : (k + r) % 3 === 0 ? -127 : 127),
    () => 0.01,
  );
  const satX = Float32Array.from({ length: 1000 }, (_, k) => (k % 3 === 0 ? -2 : 2));
  out.push(matVecCase('saturated 3x1000', sat, satX, null, both));
  return out;
}

function sparse24Cases(): MatVecCase[] {
  const rng = new Rng(202);
  const out: MatVecCase[] = [];
  const both: Array<'fast' | 'exact'> = ['fast', 'exact'];
  const rand = (rows: number, cols: number) =>
    quantize24({ shape: [rows, cols], data: normals(rng, rows * cols) });
  const shapes: Array<[number, number, boolean]> = [
    [1, 4, false],
    [3, 8, true],
    [5, 12, false],
    [8, 16, false],
    [9, 20, true],
    [17, 36, false],
    [33, 100, false],
    [64, 256, true],
    [70, 132, false],
  ];
  for (const [r, c, b] of shapes)
    out.push(
      matVecCase(
        `${r}x${c}${b ? ' bias' : ''}`,
        rand(r, c),
        normals(rng, c),
        b ? normals(rng, r) : null,
        both,
      ),
    );
  out.push(matVecCase('zero rows 0x8', rand(0, 8), normals(rng, 8), null, both));
  out.push(matVecCase('all-zero x 9x20 bias', rand(9, 20), new Float32Array(20), normals(rng, 9), both));
  const zr = quantize24({
    shape: [6, 16],
    data: Float32Array.from({ length: 96 }, (_, i) => (Math.floor(i / 16) === 3 ? 0 : rng.normal())),
  });
  out.push(matVecCase('all-zero weight row 6x16', zr, normals(rng, 16), null, both));
  out.push(
    matVecCase(
      'tiny scales 6x20',
      withScales(rand(6, 20), (r) => 1e-30 * (r + 1)),
      normals(rng, 20),
      null,
      both,
    ),
  );
  out.push(
    matVecCase(
      'huge scales 6x20',
      withScales(rand(6, 20), (r) => 1e25 * (r + 1)),
      normals(rng, 20, 1e-3),
      null,
      both,
    ),
  );
  const sat = quantize24({
    shape: [3, 1000],
    data: Float32Array.from({ length: 3000 }, (_, i) => (i % 4 < 2 ? (i % 8 < 4 ? 1 : -1) : 0.5)),
  });
  const satX = Float32Array.from({ length: 1000 }, (_, k) => (k % 8 < 4 ? 3 : -3));
  out.push(matVecCase('saturated 3x1000', sat, satX, null, both));
  return out;
}

function f32Cases(): MatVecCase[] {
  const rng = new Rng(303);
  const out: MatVecCase[] = [];
  const f32 = (rows: number, cols: number, std = 1): StoredTensor => ({
    scheme: 'f32',
    shape: [rows, cols],
    data: normals(rng, rows * cols, std),
  });
  const shapes: Array<[number, number, boolean]> = [
    [1, 1, false],
    [3, 5, true],
    [7, 9, false],
    [13, 31, true],
    [33, 100, false],
    [19, 129, true],
  ];
  for (const [r, c, b] of shapes)
    out.push(
      matVecCase(`${r}x${c}${b ? ' bias' : ''}`, f32(r, c), normals(rng, c), b ? normals(rng, r) : null, [
        'exact',
      ]),
    );
  out.push(matVecCase('zero rows 0x5', f32(0, 5), normals(rng, 5), null, ['exact']));
  out.push(matVecCase('zero columns 4x0 bias', f32(4, 0), new Float32Array(0), normals(rng, 4), ['exact']));
  out.push(matVecCase('all-zero x 6x10', f32(6, 10), new Float32Array(10), null, ['exact']));
  const wide: StoredTensor = {
    scheme: 'f32',
    shape: [6, 12],
    data: Float32Array.from({ length: 72 }, (_, i) => rng.normal() * 10 ** (8 * Math.floor(i / 12) - 20)),
  };
  out.push(matVecCase('row magnitudes 1e-20..1e20 6x12', wide, normals(rng, 12), null, ['exact']));
  return out;
}

function lstmCase(
  name: string,
  rng: Rng,
  H: number,
  I: number,
  scheme: 'f32' | 'int8',
  opts: { std?: number; zeroState?: boolean } = {},
): LstmCase {
  const std = opts.std ?? 1 / Math.sqrt(H);
  const make = (rows: number, cols: number): StoredTensor => {
    const data = normals(rng, rows * cols, std);
    return scheme === 'f32'
      ? { scheme, shape: [rows, cols], data }
      : quantizeInt8({ shape: [rows, cols], data });
  };
  const wih = make(4 * H, I);
  const whh = make(4 * H, H);
  const b = normals(rng, 4 * H, 0.5);
  const input = normals(rng, I);
  const h = opts.zeroState
    ? new Float32Array(H)
    : Float32Array.from({ length: H }, () => Math.tanh(rng.normal()));
  const c = opts.zeroState ? new Float32Array(H) : normals(rng, H);
  const wi = weightsOf(wih);
  const wh = weightsOf(whh);
  // As ReferenceModel.controller: two mat-vecs, gates summed in float64, c rounded to float32 before tanh.
  const gi = matVec(wi, 4 * H, I, input, b);
  const gh = matVec(wh, 4 * H, H, h);
  const gates = { i: [] as number[], f: [] as number[], g: [] as number[], o: [] as number[] };
  const hOut = new Float32Array(H);
  const cOut = new Float32Array(H);
  for (let j = 0; j < H; j++) {
    gates.i.push(sigmoid(gi[j] + gh[j]));
    gates.f.push(sigmoid(gi[H + j] + gh[H + j]));
    gates.g.push(Math.tanh(gi[2 * H + j] + gh[2 * H + j]));
    gates.o.push(sigmoid(gi[3 * H + j] + gh[3 * H + j]));
    cOut[j] = gates.f[j] * c[j] + gates.i[j] * gates.g[j];
    hOut[j] = gates.o[j] * Math.tanh(cOut[j]);
  }
  const tolOf = scheme === 'f32' ? f32Tolerance : int8FastTolerance;
  const ti = tolOf(wi, 4 * H, I, input, gi);
  const th = tolOf(wh, 4 * H, H, h, gh);
  const pre = ti.map((v, j) => v + th[j]);
  const tol = lstmTolerance(pre, gates, c, cOut);
  const data = (t: StoredTensor) => {
    const d = toData(t);
    if (d.scheme === 'f32') d.w = f32s(d.w);
    else if (d.scheme === 'int8') d.scale = f32s(d.scale);
    return d;
  };
  return {
    name,
    hidden: H,
    inputSize: I,
    wih: data(wih),
    whh: data(whh),
    b: f32s(b),
    input: f32s(input),
    h: f32s(h),
    c: f32s(c),
    expected: { h: f32s(hOut), c: f32s(cOut) },
    tolerance: { h: tols(tol.h), c: tols(tol.c) },
  };
}

function lstmCases(): LstmCase[] {
  const rng = new Rng(404);
  return [
    lstmCase('H1 I3 f32', rng, 1, 3, 'f32'),
    lstmCase('H3 I5 int8', rng, 3, 5, 'int8'),
    lstmCase('H4 I8 int8', rng, 4, 8, 'int8'),
    lstmCase('H5 I11 f32', rng, 5, 11, 'f32'),
    lstmCase('H16 I40 int8', rng, 16, 40, 'int8'),
    lstmCase('H16 I40 f32', rng, 16, 40, 'f32'),
    lstmCase('H7 I13 int8 zero state', rng, 7, 13, 'int8', { zeroState: true }),
    // Pre-activations of tens: σ and tanh saturate.
    lstmCase('H6 I9 f32 saturating', rng, 6, 9, 'f32', { std: 8 }),
    lstmCase('H6 I9 int8 saturating', rng, 6, 9, 'int8', { std: 8 }),
  ];
}

function softmaxCase(name: string, logits: ArrayLike<number>, k: number): SoftmaxTopKCase {
  const x = Float32Array.from(logits);
  const r = routeFromProbs(softmax(x), k);
  return {
    name,
    logits: f32s(x),
    k,
    expected: { probs: f32s(r.probs), top: r.experts, gates: r.gates },
    tolerance: { probs: 2 ** -21, gates: 2 ** -20 },
  };
}

function softmaxCases(): SoftmaxTopKCase[] {
  const rng = new Rng(505);
  return [
    softmaxCase('one entry', [0.5], 1),
    softmaxCase('tie for second', [1, 3, 3, 2], 2),
    softmaxCase('all equal', [0.25, 0.25, 0.25, 0.25, 0.25], 3),
    softmaxCase('tie across the cut', [5, 4, 4, 4, 1], 2),
    softmaxCase('spread ±100', [-100, 100, 0, 99, -50, 98.5, 3, 100], 3),
    softmaxCase('large negative', [-1000, -1001, -999.5, -1003, -1000, -998], 2),
    softmaxCase('16 experts top 4', normals(rng, 16, 2), 4),
    softmaxCase('260 logits top 1', normals(rng, 260, 3), 1),
    softmaxCase('k = n', normals(rng, 6), 6),
  ];
}

function stmCase(name: string, rng: Rng, S: number, slots: number, count: number, scale = 1): StmReadCase {
  const q = normals(rng, S, scale);
  const keys = normals(rng, slots * S, scale);
  const values = normals(rng, slots * S);
  // As ReferenceModel.stmRead, with q given.
  const r = new Float32Array(S);
  const tol = new Array<number>(S).fill(1e-44);
  if (count > 0) {
    const scores = new Float64Array(count);
    for (let j = 0; j < count; j++) scores[j] = dot(q, keys.subarray(j * S, (j + 1) * S)) / Math.sqrt(S);
    const p = softmax(scores);
    for (let i = 0; i < S; i++) {
      let acc = 0;
      let mag = 0;
      for (let j = 0; j < count; j++) {
        acc += p[j] * values[j * S + i];
        mag += p[j] * Math.abs(values[j * S + i]);
      }
      r[i] = acc;
      // Weights agree to a few float32 ulps (float64 exp on both sides), the sum is float64.
      tol[i] = 2 ** -20 * mag + 1e-44;
    }
  }
  return {
    name,
    dim: S,
    slots,
    count,
    q: f32s(q),
    keys: f32s(keys),
    values: f32s(values),
    expected: f32s(r),
    tolerance: tols(tol),
  };
}

function stmCases(): StmReadCase[] {
  const rng = new Rng(606);
  return [
    stmCase('empty', rng, 16, 16, 0),
    stmCase('one slot', rng, 16, 16, 1),
    stmCase('S1 two of four', rng, 1, 4, 2),
    stmCase('S5 partial', rng, 5, 8, 7),
    stmCase('S16 full', rng, 16, 16, 16),
    stmCase('S16 sharp scores', rng, 16, 12, 12, 4),
  ];
}

function sparseCodeCase(
  name: string,
  seed: number,
  C: number,
  H: number,
  a: number,
  scheme: 'f32' | 'int8' | 'int8-2:4',
  opts: { shift?: number; duplicates?: Array<[number, number]> } = {},
): SparseCodeCase {
  // Random draws until every comparison the selection makes is decided by more than the tolerance.
  for (let attempt = 0; attempt < 200; attempt++) {
    const rng = new Rng(seed, attempt);
    const wf = normals(rng, C * H, 1 / Math.sqrt(H));
    for (let i = 0; i < C * H; i++) wf[i] += opts.shift ?? 0;
    for (const [dst, src] of opts.duplicates ?? []) wf.copyWithin(dst * H, src * H, (src + 1) * H);
    const t: StoredTensor =
      scheme === 'f32'
        ? { scheme, shape: [C, H], data: wf }
        : scheme === 'int8'
          ? quantizeInt8({ shape: [C, H], data: wf })
          : quantize24({ shape: [C, H], data: wf });
    const v = normals(rng, H);
    const w = weightsOf(t);
    // As ReferenceModel.ltmCode.
    const u = matVec(w, C, H, v);
    for (let i = 0; i < C; i++) if (u[i] < 0) u[i] = 0;
    const atoms = topK(u, a).filter((i) => u[i] > 0);
    const tolAll = scheme === 'f32' ? f32Tolerance(w, C, H, v, u) : int8FastTolerance(w, C, H, v, u);
    const same = (i: number, j: number) =>
      (opts.duplicates ?? []).some(([d, s]) => (d === i && s === j) || (d === j && s === i));
    const raw = matVec(w, C, H, v);
    const order = Array.from({ length: C }, (_, i) => i).sort((i, j) => raw[j] - raw[i] || i - j);
    const contenders = order.slice(0, Math.min(C, a + 1));
    let ok = contenders.every((i) => Math.abs(raw[i]) > 2 * tolAll[i]);
    for (let x = 0; ok && x < contenders.length; x++)
      for (let y = x + 1; ok && y < contenders.length; y++) {
        const i = contenders[x];
        const j = contenders[y];
        if (!same(i, j) && Math.abs(raw[i] - raw[j]) <= 2 * (tolAll[i] + tolAll[j])) ok = false;
      }
    if (!ok) continue;
    const data = toData(t);
    if (data.scheme === 'f32') data.w = f32s(data.w);
    else data.scale = f32s(data.scale);
    return {
      name,
      atoms: C,
      dim: H,
      active: a,
      w: data,
      v: f32s(v),
      expected: { atoms, weights: f32s(atoms.map((i) => u[i])) },
      tolerance: tols(atoms.map((i) => tolAll[i])),
    };
  }
  throw new Error(`sparse code case ${name}: found no draw with decisive margins in 200 attempts`);
}

function sparseCodeCases(): SparseCodeCase[] {
  return [
    sparseCodeCase('C16 H8 a4 f32', 1, 16, 8, 4, 'f32'),
    sparseCodeCase('C64 H16 a8 int8', 2, 64, 16, 8, 'int8'),
    sparseCodeCase('C48 H16 a6 2:4', 3, 48, 16, 6, 'int8-2:4'),
    sparseCodeCase('a > C', 4, 12, 8, 20, 'f32'),
    sparseCodeCase('few positive', 5, 32, 8, 8, 'int8', { shift: -0.45 }),
    sparseCodeCase('none positive', 6, 16, 4, 4, 'f32', { shift: -3 }),
    // Rows 9 and 2 are identical, so their codes tie exactly; the lower atom comes first.
    sparseCodeCase('exact ties f32', 7, 24, 8, 6, 'f32', {
      shift: 0.3,
      duplicates: [
        [9, 2],
        [17, 5],
      ],
    }),
    sparseCodeCase('exact ties int8', 8, 24, 8, 6, 'int8', {
      shift: 0.3,
      duplicates: [
        [9, 2],
        [17, 5],
      ],
    }),
  ];
}

export function generateCases(): AllCases {
  const file = <T>(kernel: string, about: string, cases: T[]) => ({ kernel, about, cases });
  const matvecAbout =
    'y = W x + b against shared/src/math.ts matVec on the dequantized W; |got - expected| <= tolerance per row ' +
    '(fast: x quantized to integers per call; precise: x as an int16 value and residual; exact: float32 ' +
    'accumulation; see wasm/src/kernels.ts)';
  return {
    'matvec-int8': file('matvec', matvecAbout, int8Cases()),
    'matvec-int8-24': file(
      'matvec',
      matvecAbout + '; W in the 2:4 layout of shared/src/quant.ts',
      sparse24Cases(),
    ),
    'matvec-f32': file('matvec', matvecAbout, f32Cases()),
    lstm: file(
      'lstm_cell',
      'gates = W_ih [x] + b + W_hh h, order i f g o; c = s(f)c + s(i)tanh(g); h = s(o)tanh(c); tolerance per element',
      lstmCases(),
    ),
    'softmax-topk': file(
      'softmax_topk',
      'routeFromProbs(softmax(logits), k) of shared/src/reference.ts; top exact, probs and gates within a relative tolerance',
      softmaxCases(),
    ),
    'stm-read': file(
      'stm_read',
      'r = sum_j softmax_j(q.k_j/sqrt(S)) v_j over the first count slots, zero when count = 0',
      stmCases(),
    ),
    'sparse-code': file(
      'sparse_code',
      'top-a of ReLU(W v), entries > 0, ties to the lower atom (ReferenceModel.ltmCode); atoms exact, weights within tolerance',
      sparseCodeCases(),
    ),
  };
}

async function main(): Promise<void> {
  const { writeFile } = await import('node:fs/promises');
  const prettier = await import('prettier');
  const dir = new URL('./cases/', import.meta.url);
  const config = (await prettier.resolveConfig(new URL('x.json', dir).pathname)) ?? {};
  const all = generateCases();
  for (const name of CASE_FILES) {
    const text = await prettier.format(JSON.stringify(all[name]), { ...config, parser: 'json' });
    await writeFile(new URL(`${name}.json`, dir), text);
    console.log(
      `wrote ${name}.json (${all[name].cases.length} cases, ${(text.length / 1024).toFixed(0)} KiB)`,
    );
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) await main();
