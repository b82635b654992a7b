// A small Prometheus registry: counters, gauges read at scrape time, and histograms, rendered in the text
// exposition format (version 0.0.4).

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Record<string, string | number>;

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(
    ([k, v]) => `${k}="${String(v).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`,
  );
  return parts.length ? `{${parts.join(',')}}` : '';
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

interface Metric {
  render(): string[];
}

export class Counter implements Metric {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    const k = labelText(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }

  get(labels: Labels = {}): number {
    return this.values.get(labelText(labels)) ?? 0;
  }

  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [k, v] of this.values) out.push(`${this.name}${k} ${num(v)}`);
    return out;
  }
}

/** A value read when scraped: a gauge, or a counter that another object already keeps. */
export class Sampled implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'gauge' | 'counter',
    private readonly read: () => number | [Labels, number][],
  ) {}

  render(): string[] {
    const v = this.read();
    const rows = typeof v === 'number' ? [[{}, v] as [Labels, number]] : v;
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} ${this.type}`,
      ...rows.map(([l, x]) => `${this.name}${labelText(l)} ${num(x)}`),
    ];
  }
}

export class Histogram implements Metric {
  private readonly series = new Map<
    string,
    { labels: Labels; counts: number[]; sum: number; count: number }
  >();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {}

  observe(labels: Labels, value: number): void {
    const k = labelText(labels);
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    this.buckets.forEach((b, i) => {
      if (value <= b) s.counts[i]++;
    });
    s.sum += value;
    s.count++;
  }

  /** Observations and their sum over every series. */
  totals(): { count: number; sum: number } {
    let count = 0;
    let sum = 0;
    for (const s of this.series.values()) [count, sum] = [count + s.count, sum + s.sum];
    return { count, sum };
  }

  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) =>
        out.push(`${this.name}_bucket${labelText({ ...s.labels, le: num(b) })} ${s.counts[i]}`),
      );
      out.push(`${this.name}_bucket${labelText({ ...s.labels, le: '+Inf' })} ${s.count}`);
      out.push(`${this.name}_sum${labelText(s.labels)} ${num(s.sum)}`);
      out.push(`${this.name}_count${labelText(s.labels)} ${s.count}`);
    }
    return out;
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];

  counter(name: string, help: string): Counter {
    return this.add(new Counter(name, help));
  }

  histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, buckets));
  }

  sampled(
    name: string,
    help: string,
    type: 'gauge' | 'counter',
    read: () => number | [Labels, number][],
  ): Sampled {
    return this.add(new Sampled(name, help, type, read));
  }

  render(): string {
    return this.metrics.flatMap((m) => m.render()).join('\n') + '\n';
  }

  private add<M extends Metric>(m: M): M {
    this.metrics.push(m);
    return m;
  }
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The server's metrics, by name. */
export function serverMetrics(registry = new Registry()) {
  return {
    registry,
    requests: registry.counter('switchyard_gpu_requests_total', 'HTTP requests by endpoint and status code.'),
    requestSeconds: registry.histogram(
      'switchyard_gpu_request_duration_seconds',
      'HTTP request latency by endpoint.',
      LATENCY_BUCKETS,
    ),
    batchSize: registry.histogram(
      'switchyard_gpu_batch_size',
      'Rows per batched expert step run.',
      [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    ),
    expertSeconds: registry.histogram(
      'switchyard_gpu_expert_latency_seconds',
      'Per-expert latency of one step row (queue + compute), and of prefills and stateless runs, by phase.',
      LATENCY_BUCKETS,
    ),
    batchComputeSeconds: registry.histogram(
      'switchyard_gpu_batch_compute_seconds',
      'Run time of one batched step in a worker, by expert.',
      LATENCY_BUCKETS,
    ),
    needPrompt: registry.counter(
      'switchyard_gpu_need_prompt_total',
      'NEED_PROMPT answers (cache misses without tokens).',
    ),
    prefills: registry.counter('switchyard_gpu_prefills_total', 'Prompt prefills run, by expert.'),
    prefillBatchSize: registry.histogram(
      'switchyard_gpu_prefill_batch_size',
      'Prompts per batched prefill run.',
      [1, 2, 4, 8, 16, 32, 64],
    ),
    authFailures: registry.counter(
      'switchyard_gpu_auth_failures_total',
      'Requests refused with 401, by reason.',
    ),
  };
}

export type ServerMetrics = ReturnType<typeof serverMetrics>;
