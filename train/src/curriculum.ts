// The seed's synthetic curriculum (section 2): arithmetic 40%, logic 30%, spatial 30%, each problem with
// a worked trace for the think phase. Every reasoning step emits one byte, so traces are written in as
// few bytes as carry the work: digits of a column-wise result, one letter per inference.
import { fnv1a32, Rng } from '@switchyard/shared';

export type TaskFamily = 'arithmetic' | 'logic' | 'spatial';
export type TaskType = 'add' | 'sub' | 'mul' | 'bool' | 'syllogism' | 'compare' | 'grid' | 'relpos';
export const TASK_TYPES: readonly TaskType[] = [
  'add',
  'sub',
  'mul',
  'bool',
  'syllogism',
  'compare',
  'grid',
  'relpos',
];
export const FAMILY_OF: Readonly<Record<TaskType, TaskFamily>> = {
  add: 'arithmetic',
  sub: 'arithmetic',
  mul: 'arithmetic',
  bool: 'logic',
  syllogism: 'logic',
  compare: 'logic',
  grid: 'spatial',
  relpos: 'spatial',
};
/** How often each task type is drawn: weights that sum to 1. */
export type TaskMix = Readonly<Record<TaskType, number>>;

/** The seed's mix, then an even split inside each family except addition, the goal task, which gets half. */
export const TASK_WEIGHTS: TaskMix = {
  add: 0.2,
  sub: 0.1,
  mul: 0.1,
  bool: 0.1,
  syllogism: 0.1,
  compare: 0.1,
  grid: 0.15,
  relpos: 0.15,
};

/** 1: basic skills; 2: harder problems; 3: both mixed (the last curriculum stage). */
export type Stage = 1 | 2 | 3;
export type Level = 1 | 2;

export interface Example {
  task: TaskType;
  level: Level;
  /** The user message (the chat template adds `user: ` and a newline around it). */
  prompt: string;
  /** The worked reasoning for the think phase, one byte per step. */
  trace: string;
  answer: string;
  /** The problem in canonical form: equal for every rewrite and noisy rendering of one problem. */
  key: string;
}

export interface GenOptions {
  /** Probability of rendering the prompt in a perturbed but equivalent format (the seed: 0.1–0.3). */
  noise: number;
  /** Trace budget: the model's max_think_steps. */
  maxThinkSteps: number;
  /** Longest prompt text in bytes; the chat template's 8 bytes and <bos> must still fit max_prompt. */
  maxPromptBytes: number;
  /** How often each task type is drawn; default TASK_WEIGHTS. */
  mix?: TaskMix;
  /** The relpos trace format (RelposTrace); default DEFAULT_RELPOS_TRACE. */
  relposTrace?: RelposTrace;
}

export const DEFAULT_GEN_OPTIONS: GenOptions = { noise: 0.2, maxThinkSteps: 15, maxPromptBytes: 56 };

/** Bytes the chat template adds around one user message: <bos>, `user: ` and the newline. */
export const TEMPLATE_OVERHEAD = 8;

export class CurriculumError extends Error {
  override name = 'CurriculumError';
}

// ---------------------------------------------------------------- held-out split

/** A problem is held out when its canonical key hashes into one eighth of the space. */
export function isHeldOut(key: string): boolean {
  let h = fnv1a32(key);
  // FNV's low bits follow the last characters closely; a finalizer spreads every character over them.
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) & 7) === 0;
}

// ---------------------------------------------------------------- small helpers

const int = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng.next() * (hi - lo + 1));
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng.next() * xs.length)];
const chance = (rng: Rng, p: number) => rng.next() < p;
function shuffle<T>(rng: Rng, xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}
const byteLength = (s: string) => new TextEncoder().encode(s).length;
const reverse = (s: string) => [...s].reverse().join('');
/** A number with exactly `digits` digits (1-digit numbers include 0). */
const ofDigits = (rng: Rng, digits: number) =>
  digits === 1 ? int(rng, 0, 9) : int(rng, 10 ** (digits - 1), 10 ** digits - 1);
const distinctLetters = (rng: Rng, n: number) => shuffle(rng, [...'ABCDEFGHJKLMNPQRSTUVWXYZ']).slice(0, n);

interface Problem {
  key: string;
  trace: string;
  answer: string;
  /** Renderings of the prompt: the canonical one first, then equivalent formats (noise). */
  canonical: string;
  noisy: string[];
}

// ---------------------------------------------------------------- arithmetic

const digitAt = (n: number, i: number) => Math.floor(n / 10 ** i) % 10;
const width = (n: number) => String(n).length;

/**
 * a+b column by column from the ones: per column the two digits read, then the sum digit (the carry
 * lives in the state); a final carry is written last. 47+38 → `785438`.
 */
function add(rng: Rng, level: Level, digits?: [number, number]): Problem {
  const [da, db] =
    digits ?? (level === 1 ? [int(rng, 1, 2), int(rng, 1, 2)] : [int(rng, 2, 3), int(rng, 1, 3)]);
  let a = ofDigits(rng, da);
  let b = ofDigits(rng, db);
  const key = `add:${Math.min(a, b)}+${Math.max(a, b)}`;
  if (chance(rng, 0.5)) [a, b] = [b, a]; // commuted operands: the same problem
  let trace = '';
  let carry = 0;
  for (let i = 0; i < Math.max(width(a), width(b)); i++) {
    const s = digitAt(a, i) + digitAt(b, i) + carry;
    trace += `${digitAt(a, i)}${digitAt(b, i)}${s % 10}`;
    carry = s >= 10 ? 1 : 0;
  }
  if (carry) trace += '1';
  const sum = String(a + b);
  return {
    key,
    trace,
    answer: sum,
    canonical: `${a}+${b}`,
    noisy: [`${a} + ${b}`, `${a}+${b}=`, `${a}+${b}=?`, `what is ${a}+${b}?`, `${a} plus ${b}`],
  };
}

/** a-b with a ≥ b: per column of a the two digits, then the difference digit (borrows in the state). */
function sub(rng: Rng, level: Level): Problem {
  const da = level === 1 ? int(rng, 1, 2) : int(rng, 2, 3);
  const a = ofDigits(rng, da);
  const b = int(rng, 0, a);
  let trace = '';
  let borrow = 0;
  for (let i = 0; i < width(a); i++) {
    let d = digitAt(a, i) - digitAt(b, i) - borrow;
    borrow = d < 0 ? 1 : 0;
    if (d < 0) d += 10;
    trace += `${digitAt(a, i)}${digitAt(b, i)}${d}`;
  }
  const diff = String(a - b);
  return {
    key: `sub:${a}-${b}`,
    trace,
    answer: diff,
    canonical: `${a}-${b}`,
    noisy: [`${a} - ${b}`, `${a}-${b}=`, `${a}-${b}=?`, `what is ${a}-${b}?`, `${a} minus ${b}`],
  };
}

/**
 * a*b with a single-digit factor m: first m, then per digit of the other factor that digit and the
 * product digit (the carry lives in the state), then the final carry if any. 47*6 → `672482`.
 */
function mul(rng: Rng, level: Level): Problem {
  const n0 = level === 1 ? int(rng, 0, 9) : int(rng, 10, 99);
  const m = int(rng, level === 1 ? 0 : 2, 9);
  const key = `mul:${Math.min(n0, m)}*${Math.max(n0, m)}`;
  const swap = chance(rng, 0.5);
  const [a, b] = swap ? [m, n0] : [n0, m];
  let trace = `${m}`;
  let carry = 0;
  for (let i = 0; i < width(n0); i++) {
    const p = digitAt(n0, i) * m + carry;
    trace += `${digitAt(n0, i)}${p % 10}`;
    carry = Math.floor(p / 10);
  }
  if (carry) trace += `${carry}`;
  const p = String(a * b);
  return {
    key,
    trace,
    answer: p,
    canonical: `${a}*${b}`,
    noisy: [`${a} * ${b}`, `${a}*${b}=`, `${a}x${b}`, `${a} times ${b}`, `what is ${a}*${b}?`],
  };
}

// ---------------------------------------------------------------- logic

/** A chain: a first literal, then operators each with a (possibly negated) literal, innermost first. */
interface BoolChain {
  first: { v: boolean; not: boolean };
  ops: { op: 'and' | 'or'; v: boolean; not: boolean; left: boolean }[];
}

const lit = (x: { v: boolean; not: boolean }) => x.v !== x.not;
const tf1 = (b: boolean) => (b ? 'T' : 'F');

interface BoolStyle {
  t: string;
  f: string;
  and: string;
  or: string;
  not: string;
}
const WORDS: BoolStyle = { t: 'T', f: 'F', and: ' and ', or: ' or ', not: 'not ' };
const SYMBOLS: BoolStyle = { t: 'T', f: 'F', and: ' & ', or: ' | ', not: '!' };
const LOWER: BoolStyle = { t: 't', f: 'f', and: ' and ', or: ' or ', not: 'not ' };
const TIGHT: BoolStyle = { t: 'T', f: 'F', and: '&', or: '|', not: '!' };

/** Each operator wraps what came before in parentheses; `left` puts its literal on the left (commuted). */
function renderBool(c: BoolChain, s: BoolStyle): string {
  const l = (x: { v: boolean; not: boolean }) => (x.not ? s.not : '') + (x.v ? s.t : s.f);
  let out = l(c.first);
  c.ops.forEach((o, i) => {
    const inner = i === 0 ? out : `(${out})`;
    const op = o.op === 'and' ? s.and : s.or;
    out = o.left ? `${l(o)}${op}${inner}` : `${inner}${op}${l(o)}`;
  });
  return out;
}

/**
 * Boolean expressions read from the innermost operator outward: the trace is the first literal's
 * value, then per operator the value of its literal and the result so far. (T and not F) or F → `TTTFT`.
 */
function bool(rng: Rng, level: Level): Problem {
  const n = level === 1 ? int(rng, 1, 2) : int(rng, 2, 4);
  const c: BoolChain = {
    first: { v: chance(rng, 0.5), not: chance(rng, 0.25) },
    ops: Array.from({ length: n }, () => ({
      op: chance(rng, 0.5) ? ('and' as const) : ('or' as const),
      v: chance(rng, 0.5),
      not: chance(rng, 0.25),
      left: chance(rng, 0.3), // commuted operands: the same problem, the same trace
    })),
  };
  let value = lit(c.first);
  let trace = tf1(value);
  for (const o of c.ops) {
    value = o.op === 'and' ? value && lit(o) : value || lit(o);
    trace += tf1(lit(o)) + tf1(value);
  }
  const key = `bool:${tf1(c.first.v)}${c.first.not ? '!' : ''}${c.ops.map((o) => `${o.op}${o.not ? '!' : ''}${tf1(o.v)}`).join(',')}`;
  return {
    key,
    trace,
    answer: value ? 'true' : 'false',
    canonical: renderBool(c, WORDS),
    noisy: [renderBool(c, SYMBOLS), renderBool(c, LOWER), renderBool(c, TIGHT), `${renderBool(c, WORDS)}?`],
  };
}

/**
 * "all A are B, all B are C; all A are C?": the trace walks the chain from the subject, one letter per
 * premise used, until it reaches the predicate (yes) or no premise leads on (no).
 */
function syllogism(rng: Rng, level: Level): Problem {
  const n = level === 1 ? 2 : 3; // premises
  const chain = distinctLetters(rng, n + 1);
  const premises = chain.slice(0, n).map((x, i) => [x, chain[i + 1]] as const);
  let i = int(rng, 0, n);
  let j = int(rng, 0, n - 1);
  if (j >= i) j++;
  // Half of the questions follow the chain forward (yes), half ask a converse (no).
  if (chance(rng, 0.5) !== i < j) [i, j] = [j, i];
  const [subj, pred] = [chain[i], chain[j]];
  let walk = subj;
  for (let k = i; k < n && chain[k] !== pred; k++) walk += chain[k + 1];
  const yes = i < j;
  if (yes) walk = chain.slice(i, j + 1).join('');
  const order = shuffle(rng, [...premises]); // reordered premises: the same problem
  const key = `syl:${[...premises.map((p) => p.join('>'))].sort().join(',')}?${subj}>${pred}`;
  const all = order.map(([x, y]) => `all ${x} are ${y}`).join(', ');
  const every = order.map(([x, y]) => `every ${x} is ${y}`).join(', ');
  return {
    key,
    trace: walk,
    answer: yes ? 'yes' : 'no',
    canonical: `${all}; all ${subj} are ${pred}?`,
    noisy: [
      `${every}; every ${subj} is ${pred}?`,
      `${all}. all ${subj} are ${pred}?`,
      `${all}; are all ${subj} ${pred}?`,
      `${order.map(([x, y]) => `all ${x} are ${y}`).join('; ')}; all ${subj} are ${pred}?`,
    ],
  };
}

/**
 * "is 47>39?": the numbers zero-padded to one width, digit pairs from the left until they differ, then
 * the relation. 452 vs 457 → `445527<`.
 */
function compare(rng: Rng, level: Level): Problem {
  const digits = level === 1 ? int(rng, 1, 2) : int(rng, 2, 3);
  const a = ofDigits(rng, digits);
  // Mostly the same length (the interesting case), sometimes shorter, sometimes equal.
  const r = rng.next();
  const b = r < 0.1 ? a : r < 0.25 ? ofDigits(rng, int(rng, 1, digits)) : ofDigits(rng, digits);
  const op = pick(rng, ['>', '<'] as const);
  const w = Math.max(width(a), width(b));
  const [pa, pb] = [String(a).padStart(w, '0'), String(b).padStart(w, '0')];
  let trace = '';
  for (let k = 0; k < w; k++) {
    trace += pa[k] + pb[k];
    if (pa[k] !== pb[k]) break;
  }
  trace += a > b ? '>' : a < b ? '<' : '=';
  const holds = op === '>' ? a > b : a < b;
  const word = op === '>' ? 'bigger' : 'smaller';
  return {
    key: `cmp:${a}${op}${b}`,
    trace,
    answer: holds ? 'yes' : 'no',
    canonical: `is ${a}${op}${b}?`,
    noisy: [`is ${a} ${op} ${b}?`, `${a}${op}${b}?`, `is ${a} ${word} than ${b}?`, `${a} ${op} ${b}`],
  };
}

// ---------------------------------------------------------------- spatial

const MOVES = { up: [0, 1], down: [0, -1], left: [-1, 0], right: [1, 0] } as const;
type Dir = keyof typeof MOVES;
const SHORT: Record<Dir, string> = { up: 'U', down: 'D', left: 'L', right: 'R' };

/**
 * Moves on a 10×10 grid (y grows upward): per move its direction letter, its length and the moved
 * coordinate's new value. "at 2,3: up 2, left 1" → `U25L11`.
 */
function grid(rng: Rng, level: Level): Problem {
  const n = level === 1 ? int(rng, 1, 2) : int(rng, 3, 5);
  let x = int(rng, 0, 9);
  let y = int(rng, 0, 9);
  const start = [x, y];
  const moves: [Dir, number][] = [];
  let trace = '';
  while (moves.length < n) {
    const d = pick(rng, Object.keys(MOVES) as Dir[]);
    const k = int(rng, 1, 4);
    const [nx, ny] = [x + MOVES[d][0] * k, y + MOVES[d][1] * k];
    if (nx < 0 || nx > 9 || ny < 0 || ny > 9) continue;
    moves.push([d, k]);
    [x, y] = [nx, ny];
    trace += `${SHORT[d]}${k}${MOVES[d][0] ? x : y}`;
  }
  const words = moves.map(([d, k]) => `${d} ${k}`).join(', ');
  const short = moves.map(([d, k]) => `${SHORT[d]}${k}`).join(' ');
  return {
    key: `grid:${start}:${moves.map(([d, k]) => SHORT[d] + k).join('')}`,
    trace,
    answer: `${x},${y}`,
    canonical: `at ${start[0]},${start[1]}: ${words}`,
    noisy: [
      `at (${start[0]},${start[1]}): ${words}`,
      `at ${start[0]},${start[1]}: ${short}`,
      `from ${start[0]},${start[1]} go ${words}`,
      `at ${start[0]},${start[1]}: ${words}; where?`,
    ],
  };
}

const REL = {
  L: { word: 'left of', inverse: 'R', dx: -1, dy: 0 },
  R: { word: 'right of', inverse: 'L', dx: 1, dy: 0 },
  U: { word: 'above', inverse: 'D', dx: 0, dy: 1 },
  D: { word: 'below', inverse: 'U', dx: 0, dy: -1 },
} as const;
type Rel = keyof typeof REL;

/**
 * Relpos trace formats, for "A left of B, C below B: A from C?":
 * - `walk` (`ALBUC`): per premise on the chain, the side of the object before and the next object;
 * - `roles` (`A>LLB<DUC`): per premise, first `>` if the current object is the premise's subject or `<` if
 *   it is its object, and the relation as the premise states it, then the same two letters. The direction
 *   is then a function of the two bytes just written, and the one thing left to read from the prompt is
 *   which side of the relation word the current object stands on, which the `walk` trace never shows.
 */
export const RELPOS_TRACES = ['walk', 'roles'] as const;
export type RelposTrace = (typeof RELPOS_TRACES)[number];
/** The format the shipped model (run 10) learned: what training and eval use unless told otherwise. */
export const DEFAULT_RELPOS_TRACE: RelposTrace = 'roles';

/** `--relpos-trace` → the format, or a CurriculumError listing the valid ones. */
export function parseRelposTrace(text: string): RelposTrace {
  if ((RELPOS_TRACES as readonly string[]).includes(text)) return text as RelposTrace;
  throw new CurriculumError(`relpos trace "${text}": expected one of ${RELPOS_TRACES.join(', ')}`);
}

/**
 * "A left of B, C below B: A from C?": a chain of objects; the trace names the subject, then follows the
 * chain from it (RelposTrace); the answer sums the offsets. The subject comes first because the experts see
 * the prompt only through a query made from the controller's state: with the subject written, each step can
 * look up the premise that names the object just written (as syllogism's trace does); without it, the first
 * step must find the subject's premise with a query that is the same for every prompt.
 */
function relpos(rng: Rng, level: Level, format: RelposTrace = DEFAULT_RELPOS_TRACE): Problem {
  const n = level === 1 ? int(rng, 1, 2) : int(rng, 2, 3);
  for (;;) {
    const objs = distinctLetters(rng, n + 1);
    const rels: Rel[] = Array.from({ length: n }, () => pick(rng, ['L', 'R', 'U', 'D'] as const));
    let dx = 0;
    let dy = 0;
    for (const r of rels) [dx, dy] = [dx + REL[r].dx, dy + REL[r].dy];
    if (dx === 0 && dy === 0) continue; // "same place" is not a direction
    // Each premise is stated either way round (an equivalent rewrite), then the premises are shuffled.
    // The same draws for every trace format, so that both formats give the same problems.
    const forward = rels.map(() => chance(rng, 0.5));
    const stated = rels.map((r, i) =>
      forward[i]
        ? `${objs[i]} ${REL[r].word} ${objs[i + 1]}`
        : `${objs[i + 1]} ${REL[REL[r].inverse].word} ${objs[i]}`,
    );
    shuffle(rng, stated);
    const role = (r: Rel, i: number) =>
      format === 'roles' ? (forward[i] ? '>' + r : '<' + REL[r].inverse) : '';
    const trace = objs[0] + rels.map((r, i) => role(r, i) + r + objs[i + 1]).join('');
    const answer = [dy > 0 ? 'up' : dy < 0 ? 'down' : '', dx > 0 ? 'right' : dx < 0 ? 'left' : '']
      .filter(Boolean)
      .join('-');
    const canonicalPremises = rels.map((r, i) =>
      'LD'.includes(r) ? `${objs[i]}${r}${objs[i + 1]}` : `${objs[i + 1]}${REL[r].inverse}${objs[i]}`,
    );
    const first = objs[0];
    const last = objs[n];
    return {
      key: `rel:${canonicalPremises.sort().join(',')}?${first}${last}`,
      trace,
      answer,
      canonical: `${stated.join(', ')}: ${first} from ${last}?`,
      noisy: [
        `${stated.join('; ')}: ${first} from ${last}?`,
        `${stated.join(', ')}. ${first} from ${last}?`,
        `${stated.join(', ')}: where is ${first} from ${last}?`,
        `${stated.join(', ')}; ${first} vs ${last}?`,
      ],
    };
  }
}

// ---------------------------------------------------------------- generation

const GENERATORS: Record<TaskType, (rng: Rng, level: Level, opts: GenOptions) => Problem> = {
  add: (rng, level) => add(rng, level),
  sub,
  mul,
  bool,
  syllogism,
  compare,
  grid,
  relpos: (rng, level, opts) => relpos(rng, level, opts.relposTrace),
};

export interface TaskSpec {
  task: TaskType;
  /** Fixed level; default: as the stage says. */
  level?: Level;
  /** For `add` only: the operands' digit counts, e.g. [2, 2] for the 2-digit held-out set. */
  digits?: [number, number];
}

export type Split = 'train' | 'heldout';

/**
 * One example of a task from its split. Training examples are never held-out problems and held-out ones
 * always are, whatever their rendering. Rejection sampling: a held-out problem is 1 draw in 8.
 */
export function generateTask(
  rng: Rng,
  spec: TaskSpec,
  stage: Stage,
  split: Split,
  opts: GenOptions = DEFAULT_GEN_OPTIONS,
): Example {
  for (let tries = 0; tries < 10_000; tries++) {
    const level: Level = spec.level ?? (stage === 3 ? (chance(rng, 0.5) ? 1 : 2) : stage);
    const p =
      spec.task === 'add' && spec.digits
        ? add(rng, level, spec.digits)
        : GENERATORS[spec.task](rng, level, opts);
    if (isHeldOut(p.key) !== (split === 'heldout')) continue;
    if (p.trace.length > opts.maxThinkSteps) continue;
    let prompt = p.canonical;
    if (chance(rng, opts.noise)) {
      const alt = pick(rng, p.noisy);
      if (byteLength(alt) <= opts.maxPromptBytes) prompt = alt;
    }
    if (byteLength(prompt) > opts.maxPromptBytes) continue;
    return { task: spec.task, level, prompt, trace: p.trace, answer: p.answer, key: p.key };
  }
  throw new CurriculumError(
    `task ${spec.task}: expected a ${split} problem within ${opts.maxPromptBytes} bytes and ${opts.maxThinkSteps} think steps, found none in 10000 draws`,
  );
}

/**
 * `task=w,...` → the task weights: the named tasks get weight w relative to the others' TASK_WEIGHTS
 * ("syllogism=3" draws syllogisms three times as often as the curriculum does), normalized to sum to 1.
 */
export function parseMix(text: string): TaskMix {
  const w: Record<TaskType, number> = { ...TASK_WEIGHTS };
  for (const part of text.split(',')) {
    const m = /^\s*([a-z0-9]+)\s*=\s*([0-9.]+)\s*$/.exec(part);
    const task = m?.[1] as TaskType | undefined;
    const factor = Number(m?.[2]);
    if (!m || !task || !(TASK_TYPES as readonly string[]).includes(task) || !Number.isFinite(factor))
      throw new CurriculumError(
        `mix "${part.trim()}": expected task=factor with a task among ${TASK_TYPES.join(', ')} and a number ≥ 0`,
      );
    w[task] = TASK_WEIGHTS[task] * factor;
  }
  const sum = TASK_TYPES.reduce((a, t) => a + w[t], 0);
  if (!(sum > 0)) throw new CurriculumError(`mix "${text}": expected some task with a weight above 0`);
  for (const t of TASK_TYPES) w[t] /= sum;
  return w;
}

/** Draws a task by the curriculum's weights (or the given ones). */
export function pickTask(rng: Rng, weights: TaskMix = TASK_WEIGHTS): TaskType {
  let r = rng.next();
  for (const t of TASK_TYPES) {
    r -= weights[t];
    if (r < 0) return t;
  }
  return TASK_TYPES[TASK_TYPES.length - 1];
}

/** A training batch: the i-th batch of a seed is always the same examples. */
export function trainingBatch(
  seed: number,
  index: number,
  size: number,
  stage: Stage,
  opts: GenOptions = DEFAULT_GEN_OPTIONS,
): Example[] {
  const rng = new Rng(seed, 0x7a11 + index);
  return Array.from({ length: size }, () =>
    generateTask(rng, { task: pickTask(rng, opts.mix) }, stage, 'train', opts),
  );
}

/** The evaluation sets: one per task type, with addition split into its 2- and 3-digit goals. */
export const EVAL_SETS: Readonly<Record<string, TaskSpec>> = {
  add2: { task: 'add', digits: [2, 2] },
  add3: { task: 'add', digits: [3, 3] },
  sub: { task: 'sub' },
  mul: { task: 'mul' },
  bool: { task: 'bool' },
  syllogism: { task: 'syllogism' },
  compare: { task: 'compare' },
  grid: { task: 'grid' },
  relpos: { task: 'relpos' },
};
export const EVAL_SET_NAMES = Object.keys(EVAL_SETS);

/**
 * A held-out set: distinct problems, mixed difficulty; the default generation options with canonical
 * prompts, but for what `overrides` sets (`noise`, `relposTrace`, …).
 */
export function heldOutSet(
  name: string,
  n: number,
  seed = 1,
  overrides: Partial<GenOptions> = {},
): Example[] {
  const opts: GenOptions = { ...DEFAULT_GEN_OPTIONS, noise: 0, ...overrides };
  const spec = EVAL_SETS[name];
  if (!spec) throw new CurriculumError(`eval set "${name}": expected one of ${EVAL_SET_NAMES.join(', ')}`);
  const rng = new Rng(seed, fnv1a32(`heldout:${name}`));
  const seen = new Set<string>();
  const out: Example[] = [];
  for (let tries = 0; out.length < n && tries < 50 * n; tries++) {
    const ex = generateTask(rng, spec, 3, 'heldout', opts);
    if (seen.has(ex.key)) continue;
    seen.add(ex.key);
    out.push(ex);
  }
  return out;
}
