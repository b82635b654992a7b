// Session affinity: which replica of a shard a session's steps go to. Free of Worker types, so the
// cross-tier tests can compute it too.

/** 32-bit mix of a string (FNV-1a, then a murmur3 finalizer so that similar inputs spread). */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Rendezvous (highest random weight) order of `replicas` for `key`: stable, and minimal reshuffling. */
export function rendezvousOrder(replicas: readonly string[], key: string): string[] {
  return replicas
    .map((r) => ({ r, w: hash32(`${r}\u0000${key}`) }))
    .sort((a, b) => b.w - a.w || (a.r < b.r ? -1 : 1))
    .map((x) => x.r);
}
