import { describe, expect, it } from 'vitest';
import { Registry } from './metrics.ts';

describe('Prometheus registry', () => {
  it('renders counters, sampled values and cumulative histograms in the text format', () => {
    const r = new Registry();
    const c = r.counter('reqs_total', 'Requests.');
    c.inc({ endpoint: 'a', status: 200 });
    c.inc({ endpoint: 'a', status: 200 }, 2);
    c.inc({ endpoint: 'b"\\\n', status: 500 });
    let depth = 7;
    r.sampled('depth', 'Queue depth.', 'gauge', () => depth);
    r.sampled('by_kind', 'By kind.', 'counter', () => [
      [{ kind: 'x' }, 1],
      [{ kind: 'y' }, 2],
    ]);
    const h = r.histogram('size', 'Sizes.', [1, 4]);
    for (const v of [1, 2, 3, 9]) h.observe({ e: 0 }, v);
    depth = 3;
    expect(r.render().split('\n')).toEqual([
      '# HELP reqs_total Requests.',
      '# TYPE reqs_total counter',
      'reqs_total{endpoint="a",status="200"} 3',
      'reqs_total{endpoint="b\\"\\\\\\n",status="500"} 1',
      '# HELP depth Queue depth.',
      '# TYPE depth gauge',
      'depth 3',
      '# HELP by_kind By kind.',
      '# TYPE by_kind counter',
      'by_kind{kind="x"} 1',
      'by_kind{kind="y"} 2',
      '# HELP size Sizes.',
      '# TYPE size histogram',
      'size_bucket{e="0",le="1"} 1',
      'size_bucket{e="0",le="4"} 3',
      'size_bucket{e="0",le="+Inf"} 4',
      'size_sum{e="0"} 15',
      'size_count{e="0"} 4',
      '',
    ]);
    expect(c.get({ endpoint: 'a', status: 200 })).toBe(3);
  });
});
