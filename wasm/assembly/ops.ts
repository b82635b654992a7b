// The per-step pieces around the mat-vecs: the fused LSTM cell, softmax with top-k routing, the STM
// attention read and the LTM sparse code. Small reductions run in float64, as the reference does.
import { D_COLS, D_ROWS } from './layout';
import { matvec } from './matvec';
import { mark, release, scratch } from './memory';
import { sigmoid1, sigmoid4, tanh1, tanh4 } from './nonlinear';

/**
 * gates = W_ih·input + b + W_hh·h (b is W_ih's bias), gate order i, f, g, o;
 * c' = σ(f)·c + σ(i)·tanh(g); h' = σ(o)·tanh(c'). hOut/cOut may alias h/c.
 */
export function lstm_cell(
  wih: usize,
  whh: usize,
  input: usize,
  h: usize,
  c: usize,
  hOut: usize,
  cOut: usize,
): void {
  const H = load<i32>(whh + D_COLS);
  const m = mark();
  const gi = scratch((<usize>H) << 4);
  const gh = scratch((<usize>H) << 4);
  matvec(wih, input, gi);
  matvec(whh, h, gh);
  const hb = (<usize>H) << 2;
  let j = 0;
  for (; j + 4 <= H; j += 4) {
    const o = (<usize>j) << 2;
    const ig = sigmoid4(f32x4.add(v128.load(gi + o), v128.load(gh + o)));
    const fg = sigmoid4(f32x4.add(v128.load(gi + hb + o), v128.load(gh + hb + o)));
    const gg = tanh4(f32x4.add(v128.load(gi + 2 * hb + o), v128.load(gh + 2 * hb + o)));
    const og = sigmoid4(f32x4.add(v128.load(gi + 3 * hb + o), v128.load(gh + 3 * hb + o)));
    const c2 = f32x4.add(f32x4.mul(fg, v128.load(c + o)), f32x4.mul(ig, gg));
    v128.store(cOut + o, c2);
    v128.store(hOut + o, f32x4.mul(og, tanh4(c2)));
  }
  for (; j < H; j++) {
    const o = (<usize>j) << 2;
    const ig = sigmoid1(load<f32>(gi + o) + load<f32>(gh + o));
    const fg = sigmoid1(load<f32>(gi + hb + o) + load<f32>(gh + hb + o));
    const gg = tanh1(load<f32>(gi + 2 * hb + o) + load<f32>(gh + 2 * hb + o));
    const og = sigmoid1(load<f32>(gi + 3 * hb + o) + load<f32>(gh + 3 * hb + o));
    const c2 = fg * load<f32>(c + o) + ig * gg;
    store<f32>(cOut + o, c2);
    store<f32>(hOut + o, og * tanh1(c2));
  }
  release(m);
}

/**
 * The k largest of v[0..n) into idx (largest first; ties to the lower index), over entries > floor only.
 * Returns how many were found (< k when fewer entries pass the floor). Insertion into a sorted prefix:
 * k is small (experts, active atoms), and most entries fail the first comparison.
 */
function selectTop(v: usize, n: i32, k: i32, floor: f32, vals: usize, idx: usize): i32 {
  let count = 0;
  for (let i = 0; i < n; i++) {
    const x = load<f32>(v + ((<usize>i) << 2));
    if (!(x > floor)) continue;
    if (count == k && !(x > load<f32>(vals + ((<usize>(k - 1)) << 2)))) continue;
    // Later indices lose ties, so x goes after every slot holding a value ≥ x.
    let p = count < k ? count : k - 1;
    while (p > 0 && x > load<f32>(vals + ((<usize>(p - 1)) << 2))) {
      store<f32>(vals + ((<usize>p) << 2), load<f32>(vals + ((<usize>(p - 1)) << 2)));
      store<i32>(idx + ((<usize>p) << 2), load<i32>(idx + ((<usize>(p - 1)) << 2)));
      p--;
    }
    store<f32>(vals + ((<usize>p) << 2), x);
    store<i32>(idx + ((<usize>p) << 2), i);
    if (count < k) count++;
  }
  return count;
}

/**
 * probs = softmax(x) (float64 inside, float32 out); top = the k most probable (ties to the lower index);
 * gates[k] (float64) = probs[top] / Σ probs[top]. k ≤ n.
 */
export function softmax_topk(x: usize, n: i32, k: i32, probs: usize, top: usize, gates: usize): void {
  softmax(x, n, probs);
  if (k <= 0) return;
  const m = mark();
  const vals = scratch((<usize>k) << 2);
  const found = selectTop(probs, n, k, -Infinity, vals, top);
  let sum: f64 = 0;
  for (let i = 0; i < found; i++) sum += <f64>load<f32>(vals + ((<usize>i) << 2));
  for (let i = 0; i < found; i++)
    store<f64>(gates + ((<usize>i) << 3), <f64>load<f32>(vals + ((<usize>i) << 2)) / sum);
  release(m);
}

export function softmax(x: usize, n: i32, out: usize): void {
  const m = mark();
  const s = scratch((<usize>n) << 3);
  for (let i = 0; i < n; i++) store<f64>(s + ((<usize>i) << 3), <f64>load<f32>(x + ((<usize>i) << 2)));
  softmax64(s, n, out);
  release(m);
}

/** out (float32) = softmax of the float64 scores s[0..n); s is overwritten with the exponentials. */
function softmax64(s: usize, n: i32, out: usize): void {
  let mx: f64 = -Infinity;
  for (let i = 0; i < n; i++) mx = max(mx, load<f64>(s + ((<usize>i) << 3)));
  let sum: f64 = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(load<f64>(s + ((<usize>i) << 3)) - mx);
    store<f64>(s + ((<usize>i) << 3), e);
    sum += e;
  }
  for (let i = 0; i < n; i++)
    store<f32>(out + ((<usize>i) << 2), <f32>(load<f64>(s + ((<usize>i) << 3)) / sum));
}

/**
 * r = Σ_j softmax_j(q·k_j/√S) v_j over the first `count` slots of keys/values ([slots, S] row-major);
 * zero when count = 0. The weights are rounded to float32 before the sum, as the reference does.
 */
export function stm_read(q: usize, keys: usize, values: usize, count: i32, S: i32, out: usize): void {
  if (count <= 0) {
    memory.fill(out, 0, (<usize>S) << 2);
    return;
  }
  const m = mark();
  const scores = scratch((<usize>count) << 3);
  const p = scratch((<usize>count) << 2);
  const rs = Math.sqrt(<f64>S);
  for (let j = 0; j < count; j++) {
    const kj = keys + ((<usize>j * <usize>S) << 2);
    let d: f64 = 0;
    for (let i = 0; i < S; i++)
      d += <f64>load<f32>(q + ((<usize>i) << 2)) * <f64>load<f32>(kj + ((<usize>i) << 2));
    store<f64>(scores + ((<usize>j) << 3), d / rs);
  }
  softmax64(scores, count, p);
  for (let i = 0; i < S; i++) {
    let acc: f64 = 0;
    for (let j = 0; j < count; j++)
      acc +=
        <f64>load<f32>(p + ((<usize>j) << 2)) *
        <f64>load<f32>(values + ((<usize>j * <usize>S + <usize>i) << 2));
    store<f32>(out + ((<usize>i) << 2), <f32>acc);
  }
  release(m);
}

/**
 * The LTM code of v: u = W v, then the top-a entries of ReLU(u) that are > 0 (ties to the lower atom).
 * atoms (i32) and weights (f32) get up to `a` entries, strongest first; returns how many.
 */
export function sparse_code(desc: usize, v: usize, a: i32, atoms: usize, weights: usize): i32 {
  const C = load<i32>(desc + D_ROWS);
  const m = mark();
  const u = scratch((<usize>C) << 2);
  matvec(desc, v, u);
  const found = a > 0 ? selectTop(u, C, a, 0, weights, atoms) : 0;
  release(m);
  return found;
}
