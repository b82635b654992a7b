// How a worker turns one batch of step rows into step-graph runs: rows are grouped by prompt length, so that
// a short prompt is not padded to a long one, and each group's caches are copied layer by layer straight
// into the tensors ORT reads (the step graph's past_k_{l}/past_v_{l}, [B, heads, P, dh]).

/** One row's prompt cache as the prefill graph emits it: k and v [layers, heads, L, dh]. */
export interface CacheRow {
  k: Float32Array;
  v: Float32Array;
  length: number;
}

export interface CacheShape {
  layers: number;
  heads: number;
  /** D / heads */
  dh: number;
}

/**
 * The cost of a step-graph run over a group of rows, in units of one padded cache position of one row:
 * `run + rows · (row + P)`.
 */
export interface GroupCost {
  /** Fixed cost of a run: reading every weight once. */
  run: number;
  /** Per row, besides its cache: its share of the weight FLOPs. */
  row: number;
}

/**
 * Rough CPU costs for an expert of this shape. A padded position costs copying and reading its K and V in
 * every layer (2·layers·D floats); a run reads the layer weights (layers·(4D² + 2D·ffn) floats) once; a row
 * does two FLOPs per weight, and a CPU core does roughly 100 FLOPs in the time it moves one float through
 * memory (measured on the development machine: ~100 GFLOP/s MatMul, ~1 ns per float copied and read).
 */
export function stepGroupCost(e: { width: number; layers: number; ffn: number }): GroupCost {
  const position = 2 * e.layers * e.width;
  const weights = e.layers * (4 * e.width * e.width + 2 * e.width * e.ffn);
  return { run: weights / position, row: (2 * weights) / 100 / position };
}

/**
 * Splits rows into groups, each run as one batch padded to its longest prompt, minimizing the total
 * GroupCost: rows sorted by length, then the cheapest cut of that order into contiguous groups. Returns row
 * indices, every group ascending by length.
 */
export function planStepGroups(lengths: readonly number[], cost: GroupCost): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const n = order.length;
  // best[i]: cheapest plan for the first i rows of `order`; from[i]: where its last group starts.
  const best = new Float64Array(n + 1).fill(Infinity);
  const from = new Int32Array(n + 1);
  best[0] = 0;
  for (let i = 1; i <= n; i++) {
    const P = lengths[order[i - 1]];
    for (let j = 0; j < i; j++) {
      const c = best[j] + cost.run + (i - j) * (cost.row + P);
      if (c < best[i]) {
        best[i] = c;
        from[i] = j;
      }
    }
  }
  const groups: number[][] = [];
  for (let i = n; i > 0; i = from[i]) groups.unshift(order.slice(from[i], i));
  return groups;
}

export class CacheShapeError extends Error {
  override name = 'CacheShapeError';
}

/** Checks that a row's k and v hold [layers, heads, length, dh] floats. */
export function checkCacheRow(row: CacheRow, s: CacheShape): void {
  const want = s.layers * s.heads * row.length * s.dh;
  if (!(row.length >= 1) || row.k.length !== want || row.v.length !== want)
    throw new CacheShapeError(
      `step row: expected k and v of ${want} floats ([layers ${s.layers}, heads ${s.heads}, length ${row.length}, dh ${s.dh}]), found ${row.k.length} and ${row.v.length}`,
    );
}

/**
 * Copies layer l of the rows' k (or v) into dst [rows.length, heads, P, dh]: one contiguous copy per row and
 * head. Positions from a row's length to P keep whatever dst held; the step graph masks them, so they only
 * need to be finite.
 */
export function packLayer(
  rows: readonly CacheRow[],
  which: 'k' | 'v',
  l: number,
  P: number,
  s: CacheShape,
  dst: Float32Array,
): void {
  const { heads, dh } = s;
  for (let b = 0; b < rows.length; b++) {
    const r = rows[b];
    const span = r.length * dh;
    const src = r[which];
    if (r.length === P) {
      const at = l * heads * span;
      dst.set(src.subarray(at, at + heads * span), b * heads * P * dh);
      continue;
    }
    for (let hd = 0; hd < heads; hd++) {
      const at = (l * heads + hd) * span;
      dst.set(src.subarray(at, at + span), (b * heads + hd) * P * dh);
    }
  }
}
