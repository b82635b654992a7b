// Charts from the benchmark JSON as plain SVG strings (no dependency): the end-to-end run's throughput against
// concurrent sessions for both systems, and its per-step latency split as stacked bars.
// `npm run bench -- chart` (or `npx tsx bench/chart.ts`) redraws bench/results/e2e.svg from e2e.json;
// bench/e2e.ts draws it itself after each run.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { E2eResult, LatencySplit, LoadRun, System } from './e2e.ts';
import { fmt, RESULTS_DIR } from './lib.ts';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const n2 = (x: number) => (Math.round(x * 10) / 10).toString();

const COLORS: Record<System, string> = { stack: '#d9480f', monolith: '#1c7ed6' };
const LABELS: Record<System, string> = { stack: 'edge + GPU tier', monolith: 'monolith' };

const SEGMENTS: { key: keyof LatencySplit; label: string; color: string }[] = [
  { key: 'edgeMs', label: 'edge compute', color: '#2f9e44' },
  { key: 'persistMs', label: 'persist (DO SQLite)', color: '#94d82d' },
  { key: 'networkMs', label: 'network', color: '#fab005' },
  { key: 'queueMs', label: 'GPU-tier queue', color: '#9775fa' },
  { key: 'computeMs', label: 'GPU-tier compute', color: '#5f3dc4' },
  { key: 'tierOtherMs', label: 'GPU-tier other', color: '#e599f7' },
  { key: 'otherMs', label: 'other (DO→Worker→SSE)', color: '#adb5bd' },
];

/** About five round steps from 0 to at least max. */
function ticks(max: number): number[] {
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = 0; v <= max + step * 0.001; v += step) out.push(v);
  if (out[out.length - 1] < max) out.push(out[out.length - 1] + step);
  return out;
}

/** Tick values without the table formatter's trailing zeros (0, 2.5, 40). */
const tickLabel = (v: number) => String(Number(v.toPrecision(3)));

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${n2(x)}" y="${n2(y)}" ${attrs}>${esc(s)}</text>`;
}

interface Panel {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Horizontal grid lines at the ticks (the last one is the top), their labels left of the panel, and the x axis. */
function grid(p: Panel, yTicks: number[], labelGap: number, fontSize: number): string[] {
  const top = yTicks[yTicks.length - 1];
  const out: string[] = [];
  for (const t of yTicks) {
    const y = p.y + p.h - (t / top) * p.h;
    out.push(
      `<line x1="${n2(p.x)}" y1="${n2(y)}" x2="${n2(p.x + p.w)}" y2="${n2(y)}" stroke="#e9ecef"/>`,
      text(p.x - labelGap, y + 4, tickLabel(t), `text-anchor="end" font-size="${fontSize}" fill="#495057"`),
    );
  }
  out.push(
    `<line x1="${n2(p.x)}" y1="${p.y + p.h}" x2="${n2(p.x + p.w)}" y2="${p.y + p.h}" stroke="#495057"/>`,
  );
  return out;
}

function axes(p: Panel, yTicks: number[], yLabel: string, title: string): string[] {
  const out = [text(p.x, p.y - 14, title, 'font-size="14" font-weight="600"'), ...grid(p, yTicks, 6, 11)];
  out.push(
    text(
      p.x - 44,
      p.y + p.h / 2,
      yLabel,
      `font-size="11" fill="#495057" transform="rotate(-90 ${p.x - 44} ${p.y + p.h / 2})" text-anchor="middle"`,
    ),
  );
  return out;
}

function throughputPanel(r: E2eResult, p: Panel): string[] {
  const loads = [...new Set(r.runs.map((x) => x.sessions))].sort((a, b) => a - b);
  const top = ticks(Math.max(...r.runs.map((x) => x.aggregateTokensPerS)) * 1.1);
  const ymax = top[top.length - 1];
  const xOf = (i: number) => p.x + ((i + 0.5) / loads.length) * p.w;
  const yOf = (v: number) => p.y + p.h - (v / ymax) * p.h;
  const out = axes(p, top, 'tokens per second', 'Aggregate throughput vs concurrent sessions');
  loads.forEach((n, i) =>
    out.push(text(xOf(i), p.y + p.h + 16, `${n}`, 'text-anchor="middle" font-size="12"')),
  );
  out.push(
    text(
      p.x + p.w / 2,
      p.y + p.h + 34,
      'concurrent sessions',
      'text-anchor="middle" font-size="11" fill="#495057"',
    ),
  );
  for (const sys of ['monolith', 'stack'] as const) {
    const pts = loads.map((n, i) => {
      const run = r.runs.find((x) => x.system === sys && x.sessions === n);
      return run ? { n, x: xOf(i), agg: run.aggregateTokensPerS, per: run.perSessionTokensPerS } : null;
    });
    const present = pts.filter((q): q is NonNullable<typeof q> => q !== null);
    out.push(
      `<polyline fill="none" stroke="${COLORS[sys]}" stroke-width="2.5" points="${present.map((q) => `${n2(q.x)},${n2(yOf(q.agg))}`).join(' ')}"/>`,
      `<polyline fill="none" stroke="${COLORS[sys]}" stroke-width="1.5" stroke-dasharray="5 4" points="${present.map((q) => `${n2(q.x)},${n2(yOf(q.per))}`).join(' ')}"/>`,
    );
    for (const q of present) {
      // The higher of the two systems at this load is labelled above its point, the lower below.
      const other = r.runs.find((x) => x.system !== sys && x.sessions === q.n)?.aggregateTokensPerS ?? 0;
      out.push(
        `<circle cx="${n2(q.x)}" cy="${n2(yOf(q.agg))}" r="4" fill="${COLORS[sys]}"/>`,
        text(
          q.x,
          yOf(q.agg) + (q.agg >= other ? -9 : 18),
          fmt(q.agg),
          `font-size="11" fill="${COLORS[sys]}" text-anchor="middle"`,
        ),
      );
    }
  }
  (['stack', 'monolith'] as const).forEach((sys, k) => {
    const lx = p.x + k * 200;
    const ly = p.y + p.h + 56;
    out.push(
      `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 24}" y2="${ly - 4}" stroke="${COLORS[sys]}" stroke-width="2.5"/>`,
      text(lx + 30, ly, `${LABELS[sys]}: aggregate`, 'font-size="11"'),
      `<line x1="${lx}" y1="${ly + 12}" x2="${lx + 24}" y2="${ly + 12}" stroke="${COLORS[sys]}" stroke-width="1.5" stroke-dasharray="5 4"/>`,
      text(lx + 30, ly + 16, `${LABELS[sys]}: per session`, 'font-size="11"'),
    );
  });
  return out;
}

/** One small panel per load, each on its own scale, so that one session's few milliseconds stay visible. */
function splitPanel(r: E2eResult, p: Panel): string[] {
  const loads = [...new Set(r.runs.map((x) => x.sessions))].sort((a, b) => a - b);
  const total = (x: LoadRun) => SEGMENTS.reduce((a, s) => a + x.split[s.key], 0);
  const out = [
    text(
      p.x - 50,
      p.y - 14,
      'Per-step latency split (ms, steps after the first)',
      'font-size="14" font-weight="600"',
    ),
  ];
  const gap = 46;
  const w = (p.w - gap * (loads.length - 1)) / loads.length;
  const bw = Math.min(30, w / 3.2);
  loads.forEach((n, i) => {
    const runs = (['monolith', 'stack'] as const).map((sys) =>
      r.runs.find((x) => x.system === sys && x.sessions === n),
    );
    const yt = ticks(Math.max(...runs.map((x) => (x ? Math.max(total(x), x.stepMs) : 0))) * 1.12);
    const ymax = yt[yt.length - 1];
    const q: Panel = { x: p.x + i * (w + gap), y: p.y, w, h: p.h };
    out.push(
      ...grid(q, yt, 4, 10),
      text(
        q.x + q.w / 2,
        q.y + q.h + 32,
        `${n} session${n > 1 ? 's' : ''}`,
        'text-anchor="middle" font-size="12"',
      ),
    );
    runs.forEach((run, j) => {
      if (!run) return;
      const sys = run.system;
      const x = q.x + q.w / 2 + (j === 0 ? -bw - 4 : 4);
      let y = q.y + q.h;
      for (const s of SEGMENTS) {
        const hgt = (run.split[s.key] / ymax) * q.h;
        if (hgt <= 0) continue;
        y -= hgt;
        out.push(
          `<rect x="${n2(x)}" y="${n2(y)}" width="${n2(bw)}" height="${n2(hgt)}" fill="${s.color}"><title>${esc(`${LABELS[sys]}, ${n} sessions: ${s.label} ${fmt(run.split[s.key])} ms`)}</title></rect>`,
        );
      }
      out.push(
        text(
          x + bw / 2,
          Math.min(y, q.y + q.h - (run.stepMs / ymax) * q.h) - 4,
          fmt(run.stepMs),
          'text-anchor="middle" font-size="10"',
        ),
        text(
          x + bw / 2,
          q.y + q.h + 14,
          sys === 'stack' ? 'S' : 'M',
          `text-anchor="middle" font-size="11" fill="${COLORS[sys]}" font-weight="600"`,
        ),
      );
    });
  });
  SEGMENTS.forEach((s, i) => {
    const lx = p.x - 40 + (i % 3) * 145;
    const ly = p.y + p.h + 56 + Math.floor(i / 3) * 16;
    out.push(
      `<rect x="${n2(lx)}" y="${ly - 9}" width="10" height="10" fill="${s.color}"/>`,
      text(lx + 14, ly, s.label, 'font-size="11"'),
    );
  });
  out.push(
    text(
      p.x - 40,
      p.y + p.h + 112,
      'M monolith, S edge + GPU tier; the figure above a bar is the step latency the client saw',
      'font-size="10" fill="#495057"',
    ),
  );
  return out;
}

/** The end-to-end chart: throughput on the left, the latency split on the right. */
export function renderE2eChart(r: E2eResult): string {
  const W = 1040;
  const H = 450;
  const m = r.model;
  const body = [
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    text(
      20,
      24,
      `Switchyard end to end: ${m.preset} (${m.experts} experts top-${m.topK}, ${m.expertLayers} × d${m.expertWidth}), CPU only, ${r.setup.cores} cores, loopback`,
      'font-size="15" font-weight="600"',
    ),
    ...throughputPanel(r, { x: 80, y: 70, w: 380, h: 250 }),
    ...splitPanel(r, { x: 590, y: 70, w: 390, h: 250 }),
  ];
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif">`,
    ...body.map((l) => `  ${l}`),
    '</svg>',
    '',
  ].join('\n');
}

/** Redraws every chart whose results exist. */
export async function run(): Promise<void> {
  const json = join(RESULTS_DIR, 'e2e.json');
  if (!existsSync(json)) {
    console.log(`chart: no ${json} yet; run \`npm run bench -- e2e\` first`);
    return;
  }
  const { result } = JSON.parse(readFileSync(json, 'utf8')) as { result: E2eResult };
  const svg = join(RESULTS_DIR, 'e2e.svg');
  writeFileSync(svg, renderE2eChart(result));
  console.log(`chart: wrote ${svg}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
