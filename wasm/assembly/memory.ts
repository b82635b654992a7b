// A bump allocator over the module's one linear memory. Weights are allocated once and never freed;
// per-call scratch sits above a mark and is dropped with release(). No GC: the kernels only touch raw memory.

let top: usize = 0;

function base(): usize {
  return (__heap_base + 15) & ~(<usize>15);
}

/** Grows memory so that [0, end) is addressable; false when the engine refuses (isolate limit). */
function reserve(end: usize): bool {
  const pages = <i32>((end + 0xffff) >>> 16);
  const have = memory.size();
  return pages <= have || memory.grow(pages - have) >= 0;
}

/** `bytes` at an `align`-byte boundary (a power of two, at least 16); 0 when memory cannot grow. */
export function alloc(bytes: usize, align: usize): usize {
  if (top == 0) top = base();
  const a: usize = align < 16 ? 16 : align;
  const p = (top + a - 1) & ~(a - 1);
  const end = p + bytes;
  if (end < p || !reserve(end)) return 0;
  top = end;
  return p;
}

/** Allocation that traps instead of returning 0: used for kernel scratch, where there is no caller to tell. */
export function scratch(bytes: usize): usize {
  const p = alloc(bytes, 16);
  if (p == 0) unreachable();
  return p;
}

export function mark(): usize {
  if (top == 0) top = base();
  return top;
}

/** Drops everything allocated since `m` (a value from mark()). */
export function release(m: usize): void {
  if (m >= base() && m <= top) top = m;
}
