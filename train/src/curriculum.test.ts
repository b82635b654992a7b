import { describe, expect, it } from 'vitest';
import { Rng } from '@switchyard/shared';
import {
  DEFAULT_GEN_OPTIONS,
  EVAL_SET_NAMES,
  generateTask,
  heldOutSet,
  isHeldOut,
  parseMix,
  parseRelposTrace,
  TASK_TYPES,
  TASK_WEIGHTS,
  trainingBatch,
  type Example,
  type Stage,
} from './curriculum.ts';

// ---------------------------------------------------------------- an independent solver
// It reads the prompt text the way a person would (any of the renderings), without the generator's code.

function solveArithmetic(p: string): string | undefined {
  const m = /(\d+)\s*(\+|plus|-|minus|\*|x|times)\s*(\d+)/.exec(p);
  if (!m) return undefined;
  const [a, b] = [Number(m[1]), Number(m[3])];
  if (m[2] === '+' || m[2] === 'plus') return String(a + b);
  if (m[2] === '-' || m[2] === 'minus') return String(a - b);
  return String(a * b);
}

function solveBool(p: string): string {
  const tokens = p
    .replace(/\?$/, '')
    .replace(/\band\b|&/g, ' & ')
    .replace(/\bor\b|\|/g, ' | ')
    .replace(/\bnot\b|!/g, ' ! ')
    .replace(/\(/g, ' ( ')
    .replace(/\)/g, ' ) ')
    .split(/\s+/)
    .filter(Boolean);
  let i = 0;
  // or < and < not, with parentheses: a textbook recursive descent.
  const orExpr = (): boolean => {
    let v = andExpr();
    while (tokens[i] === '|') {
      i++;
      const r = andExpr();
      v = v || r;
    }
    return v;
  };
  const andExpr = (): boolean => {
    let v = unary();
    while (tokens[i] === '&') {
      i++;
      const r = unary();
      v = v && r;
    }
    return v;
  };
  const unary = (): boolean => {
    const t = tokens[i++];
    if (t === '!') return !unary();
    if (t === '(') {
      const v = orExpr();
      expect(tokens[i++]).toBe(')');
      return v;
    }
    if (/^[Tt]$/.test(t)) return true;
    if (/^[Ff]$/.test(t)) return false;
    throw new Error(`unexpected token ${t} in ${p}`);
  };
  const v = orExpr();
  expect(i).toBe(tokens.length);
  return v ? 'true' : 'false';
}

function solveSyllogism(p: string): string {
  const [premises, question] = p.split(/[;.] (?=(?:all|every|are all) \w+ \w*\s*\w*\?)/);
  const edges = [...premises.matchAll(/(?:all|every) ([A-Z]) (?:are|is) ([A-Z])/g)].map((m) => [m[1], m[2]]);
  const q = /(?:all|every) ([A-Z]) (?:are|is) ([A-Z])\?|are all ([A-Z]) ([A-Z])\?/.exec(question)!;
  const [s, t] = q[1] ? [q[1], q[2]] : [q[3], q[4]];
  const seen = new Set([s]);
  const todo = [s];
  while (todo.length) {
    const x = todo.pop()!;
    for (const [a, b] of edges) if (a === x && !seen.has(b)) (seen.add(b), todo.push(b));
  }
  return seen.has(t) ? 'yes' : 'no';
}

function solveCompare(p: string): string {
  const m = /(\d+)\s*(>|<|bigger than|smaller than)\s*(\d+)/.exec(p)!;
  const [a, b] = [Number(m[1]), Number(m[3])];
  return (m[2] === '>' || m[2] === 'bigger than' ? a > b : a < b) ? 'yes' : 'no';
}

function solveGrid(p: string): string {
  const start = /(?:at|from) \(?(\d),(\d)\)?/.exec(p)!;
  let [x, y] = [Number(start[1]), Number(start[2])];
  const rest = p.slice(start.index + start[0].length);
  for (const m of rest.matchAll(/\b(up|down|left|right|U|D|L|R) ?(\d)/g)) {
    const k = Number(m[2]);
    const d = m[1][0].toUpperCase();
    if (d === 'U') y += k;
    if (d === 'D') y -= k;
    if (d === 'L') x -= k;
    if (d === 'R') x += k;
    expect(x >= 0 && x <= 9 && y >= 0 && y <= 9).toBe(true);
  }
  return `${x},${y}`;
}

/** A relpos question's subject and reference object, in every rendering. */
const RELPOS_QUESTION = /([A-Z]) (?:from|vs) ([A-Z])\?/;

/** A relpos premise as stated: subject, relation words, object. */
const RELPOS_PREMISE = /([A-Z]) (left of|right of|above|below) ([A-Z])/g;

/** An offset as relpos answers name it: `up-left`, `right`, … */
const directionName = (x: number, y: number): string =>
  [y > 0 ? 'up' : y < 0 ? 'down' : '', x > 0 ? 'right' : x < 0 ? 'left' : ''].filter(Boolean).join('-');

function solveRelpos(p: string): string {
  const rel = [...p.matchAll(RELPOS_PREMISE)];
  const q = RELPOS_QUESTION.exec(p)!;
  const pos = new Map<string, [number, number]>([[q[2], [0, 0]]]);
  const off = { 'left of': [-1, 0], 'right of': [1, 0], above: [0, 1], below: [0, -1] } as const;
  for (let pass = 0; pass < rel.length; pass++)
    for (const [, a, r, b] of rel) {
      const [dx, dy] = off[r as keyof typeof off];
      const pb = pos.get(b);
      const pa = pos.get(a);
      if (pb && !pa) pos.set(a, [pb[0] + dx, pb[1] + dy]);
      if (pa && !pb) pos.set(b, [pa[0] - dx, pa[1] - dy]);
    }
  const [x, y] = pos.get(q[1])!;
  return directionName(x, y);
}

function solve(ex: Example): string | undefined {
  switch (ex.task) {
    case 'add':
    case 'sub':
    case 'mul':
      return solveArithmetic(ex.prompt);
    case 'bool':
      return solveBool(ex.prompt);
    case 'syllogism':
      return solveSyllogism(ex.prompt);
    case 'compare':
      return solveCompare(ex.prompt);
    case 'grid':
      return solveGrid(ex.prompt);
    case 'relpos':
      return solveRelpos(ex.prompt);
  }
}

/** Column traces: triples (digit of a, digit of b, result digit) from the ones, checked digit by digit. */
function checkColumnTrace(ex: Example): void {
  const m = /(\d+)\s*(\+|plus|-|minus)\s*(\d+)/.exec(ex.prompt)!;
  const [a, b] = [m[1], m[3]];
  const cols = Math.max(a.length, b.length);
  const digit = (s: string, i: number) => (i < s.length ? Number(s[s.length - 1 - i]) : 0);
  const adding = m[2] === '+' || m[2] === 'plus';
  let carry = 0;
  for (let i = 0; i < cols; i++) {
    const [x, y] = [digit(a, i), digit(b, i)];
    const r = adding ? x + y + carry : x - y - carry;
    const d = ((r % 10) + 10) % 10;
    carry = adding ? (r >= 10 ? 1 : 0) : r < 0 ? 1 : 0;
    expect(ex.trace.slice(3 * i, 3 * i + 3), `${ex.prompt} column ${i}`).toBe(`${x}${y}${d}`);
  }
  expect(ex.trace.slice(3 * cols), ex.prompt).toBe(carry && adding ? '1' : '');
}

const STAGES: Stage[] = [1, 2, 3];

describe('curriculum', () => {
  it('drills tasks by a mix: parseMix scales the named tasks, and batches follow it', () => {
    const mix = parseMix('syllogism=3, relpos=0');
    const sum = TASK_TYPES.reduce((a, t) => a + mix[t], 0);
    expect(sum).toBeCloseTo(1, 12);
    expect(mix.relpos).toBe(0);
    // 3 × 0.1 against the rest's 1 − 0.1 − 0.15
    expect(mix.syllogism).toBeCloseTo(0.3 / 1.05, 12);
    expect(mix.add / mix.sub).toBeCloseTo(TASK_WEIGHTS.add / TASK_WEIGHTS.sub, 12);
    const only = parseMix(TASK_TYPES.map((t) => `${t}=${t === 'grid' ? 1 : 0}`).join(','));
    const batch = trainingBatch(7, 0, 60, 3, { ...DEFAULT_GEN_OPTIONS, mix: only });
    expect(new Set(batch.map((e) => e.task))).toEqual(new Set(['grid']));
    const drilled = trainingBatch(7, 0, 400, 3, { ...DEFAULT_GEN_OPTIONS, mix });
    expect(drilled.some((e) => e.task === 'relpos')).toBe(false);
    const share = drilled.filter((e) => e.task === 'syllogism').length / drilled.length;
    expect(share).toBeGreaterThan(0.2);
    expect(share).toBeLessThan(0.38);
    for (const bad of [
      'syllogisms=2',
      'relpos',
      'add=-1',
      'add=x',
      'add=0,sub=0,mul=0,bool=0,syllogism=0,compare=0,grid=0,relpos=0',
    ])
      expect(() => parseMix(bad), bad).toThrow(/expected/);
    expect(() => parseMix('nope=1')).toThrow(/add, sub, mul, bool, syllogism, compare, grid, relpos/);
  });

  it('is deterministic for a seed and differs across seeds', () => {
    expect(trainingBatch(7, 3, 40, 3)).toEqual(trainingBatch(7, 3, 40, 3));
    expect(trainingBatch(7, 3, 40, 3)).not.toEqual(trainingBatch(8, 3, 40, 3));
    expect(trainingBatch(7, 3, 40, 3)).not.toEqual(trainingBatch(7, 4, 40, 3));
    expect(heldOutSet('add3', 20, 5)).toEqual(heldOutSet('add3', 20, 5));
  });

  it('gives answers an independent solver agrees with, in every rendering, within the think budget', () => {
    const opts = { ...DEFAULT_GEN_OPTIONS, noise: 0.5 };
    let checked = 0;
    for (const stage of STAGES)
      for (const task of TASK_TYPES) {
        const rng = new Rng(11, stage * 100 + TASK_TYPES.indexOf(task));
        for (let i = 0; i < 120; i++) {
          const ex = generateTask(rng, { task }, stage, i % 4 ? 'train' : 'heldout', opts);
          expect(solve(ex), `${task}: ${ex.prompt}`).toBe(ex.answer);
          expect(ex.trace.length).toBeGreaterThan(0);
          expect(ex.trace.length).toBeLessThanOrEqual(DEFAULT_GEN_OPTIONS.maxThinkSteps);
          expect(new TextEncoder().encode(ex.prompt).length).toBeLessThanOrEqual(
            DEFAULT_GEN_OPTIONS.maxPromptBytes,
          );
          if (task === 'add' || task === 'sub') checkColumnTrace(ex);
          checked++;
        }
      }
    expect(checked).toBe(3 * TASK_TYPES.length * 120);
  });

  it('writes traces that end in what the answer rests on', () => {
    const rng = new Rng(3);
    for (let i = 0; i < 200; i++) {
      const bool = generateTask(rng, { task: 'bool' }, 3, 'train');
      expect(bool.trace.at(-1)).toBe(bool.answer === 'true' ? 'T' : 'F');
      const cmp = generateTask(rng, { task: 'compare' }, 3, 'train');
      const [, a, b] = /(\d+)\D+(\d+)/.exec(cmp.prompt)!;
      expect(cmp.trace.at(-1)).toBe(Number(a) > Number(b) ? '>' : Number(a) < Number(b) ? '<' : '=');
      const grid = generateTask(rng, { task: 'grid' }, 3, 'train');
      // Per move: direction, length, the new coordinate; the last x and y written are the answer's.
      const moves = grid.trace.match(/[UDLR]\d\d/g)!;
      expect(moves.join('')).toBe(grid.trace);
      const lastX = moves.filter((m) => 'LR'.includes(m[0])).at(-1)?.[2];
      const lastY = moves.filter((m) => 'UD'.includes(m[0])).at(-1)?.[2];
      const [x, y] = grid.answer.split(',');
      if (lastX) expect(lastX).toBe(x);
      if (lastY) expect(lastY).toBe(y);
      const mul = generateTask(rng, { task: 'mul' }, 3, 'train');
      const [, p, q] = /(\d+)\D+(\d+)/.exec(mul.prompt)!;
      expect([p, q]).toContain(mul.trace[0]); // the single-digit factor comes first
      // The subject, then per premise on the chain: its role and relation, the side the current object is on
      // and the next object; the walk ends at the question's reference object and its offsets add up to the
      // answer.
      const rel = generateTask(rng, { task: 'relpos' }, 3, 'train');
      const [, subject, reference] = RELPOS_QUESTION.exec(rel.prompt)!;
      expect(rel.trace).toMatch(/^[A-Z]([<>][LRUD][LRUD][A-Z])+$/);
      expect(rel.trace[0]).toBe(subject);
      expect(rel.trace.at(-1)).toBe(reference);
      const steps = [...rel.trace.slice(1).matchAll(/[<>][LRUD]([LRUD])[A-Z]/g)].map((m) => m[1]); // objects may be U, D, L or R
      const sum = (a: string, b: string) =>
        steps.filter((d) => d === a).length - steps.filter((d) => d === b).length;
      expect(rel.answer).toBe(directionName(sum('R', 'L'), sum('U', 'D')));
    }
  });

  it('writes role-marked relpos traces on the same problems: the role and relation as stated, then the walk', () => {
    const relWord = { 'left of': 'L', 'right of': 'R', above: 'U', below: 'D' } as const;
    const inverse = { L: 'R', R: 'L', U: 'D', D: 'U' } as const;
    const walk = heldOutSet('relpos', 60, 3, { relposTrace: 'walk' });
    const roles = heldOutSet('relpos', 60, 3);
    expect(roles.map((e) => [e.prompt, e.answer])).toEqual(walk.map((e) => [e.prompt, e.answer]));
    let subjects = 0;
    for (const [i, ex] of roles.entries()) {
      expect(ex.trace).toMatch(/^[A-Z]([<>][LRUD][LRUD][A-Z])+$/);
      const premises = [...ex.prompt.matchAll(RELPOS_PREMISE)];
      let walked = ex.trace[0];
      for (let h = 1; h < ex.trace.length; h += 4) {
        const [cur, role, stated, dir, next] = ex.trace.slice(h - 1, h + 4);
        // The premise that joins the two objects, as the prompt states it.
        const p = premises.find(([, a, , b]) => (a === cur && b === next) || (a === next && b === cur))!;
        expect(p).toBeDefined();
        expect(role).toBe(p[1] === cur ? '>' : '<');
        expect(stated).toBe(relWord[p[2] as keyof typeof relWord]);
        expect(dir).toBe(role === '>' ? stated : inverse[stated as keyof typeof inverse]);
        if (role === '>') subjects++;
        walked += dir + next;
      }
      expect(walked).toBe(walk[i].trace); // without the role bytes it is the walk trace
    }
    expect(subjects).toBeGreaterThan(10); // both roles occur
    expect(() => parseRelposTrace('role')).toThrow('relpos trace "role": expected one of walk, roles');
  });

  it('keeps held-out problems out of training, whatever their rendering', () => {
    const train = new Set<string>();
    for (let i = 0; i < 40; i++)
      for (const ex of trainingBatch(1, i, 50, (1 + (i % 3)) as Stage)) train.add(ex.key);
    for (const key of train) expect(isHeldOut(key)).toBe(false);
    for (const name of EVAL_SET_NAMES) {
      const set = heldOutSet(name, 60, 1);
      expect(set.length).toBe(60);
      expect(new Set(set.map((e) => e.key)).size).toBe(60); // distinct problems
      for (const ex of set) {
        expect(isHeldOut(ex.key)).toBe(true);
        expect(train.has(ex.key)).toBe(false);
      }
    }
    // Commuted operands are one problem: both orders share the key, so neither order leaks.
    const rng = new Rng(5);
    const seen = new Map<string, Set<string>>();
    for (let i = 0; i < 3000; i++) {
      const ex = generateTask(rng, { task: 'add', level: 1 }, 1, 'train');
      seen.set(ex.key, (seen.get(ex.key) ?? new Set()).add(ex.prompt.replace(/\s/g, '')));
    }
    const commuted = [...seen.values()].filter((s) => s.size > 1);
    expect(commuted.length).toBeGreaterThan(0);
  });

  it('sets held-out addition sizes and difficulty by stage', () => {
    for (const ex of heldOutSet('add2', 30)) expect(ex.prompt).toMatch(/^\d{2}\+\d{2}$/);
    for (const ex of heldOutSet('add3', 30)) expect(ex.prompt).toMatch(/^\d{3}\+\d{3}$/);
    const levels = (stage: Stage) => new Set(trainingBatch(2, 0, 200, stage).map((e) => e.level));
    expect([...levels(1)]).toEqual([1]);
    expect([...levels(2)]).toEqual([2]);
    expect([...levels(3)].sort()).toEqual([1, 2]);
  });

  it('injects prompt noise at the configured rate and never otherwise', () => {
    const canonical = (noise: number) => {
      let changed = 0;
      for (let i = 0; i < 1000; i++) {
        const a = generateTask(new Rng(9, i), { task: 'add' }, 3, 'train', {
          ...DEFAULT_GEN_OPTIONS,
          noise: 0,
        });
        const b = generateTask(new Rng(9, i), { task: 'add' }, 3, 'train', { ...DEFAULT_GEN_OPTIONS, noise });
        expect(b.key).toBe(a.key);
        expect(b.answer).toBe(a.answer);
        if (a.prompt !== b.prompt) changed++;
      }
      return changed / 1000;
    };
    expect(canonical(0)).toBe(0);
    const rate = canonical(0.3);
    expect(rate).toBeGreaterThan(0.2);
    expect(rate).toBeLessThan(0.4);
  });

  it('draws the seed mix: arithmetic 40%, logic 30%, spatial 30%', () => {
    const xs = trainingBatch(4, 0, 4000, 3);
    const share = (tasks: string[]) => xs.filter((e) => tasks.includes(e.task)).length / xs.length;
    expect(share(['add', 'sub', 'mul'])).toBeCloseTo(0.4, 1);
    expect(share(['bool', 'syllogism', 'compare'])).toBeCloseTo(0.3, 1);
    expect(share(['grid', 'relpos'])).toBeCloseTo(0.3, 1);
  });
});
