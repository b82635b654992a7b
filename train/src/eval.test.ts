import { describe, expect, it } from 'vitest';
import { countParams, initRandom, preset, ReferenceModel } from '@switchyard/shared';
import type { Example } from './curriculum.ts';
import {
  differences,
  EndpointEngine,
  EndpointError,
  endpointModel,
  evalExamples,
  MemoryLtm,
  ReferenceEngine,
  resourceRatios,
  score,
  stepCorrectness,
  type Answered,
} from './eval.ts';

const config = preset('tiny'); // 4 experts, top 2
const ex = (prompt: string, trace: string, answer: string): Example => ({
  task: 'add',
  level: 1,
  prompt,
  trace,
  answer,
  key: `add:${prompt}`,
});

describe('metrics', () => {
  it('scores reasoning steps position by position against the worked trace', () => {
    expect(stepCorrectness('785438', '785438')).toEqual({ right: 6, of: 6 });
    expect(stepCorrectness('7854', '785438')).toEqual({ right: 4, of: 6 }); // missing steps count as wrong
    expect(stepCorrectness('x85438zz', '785438')).toEqual({ right: 5, of: 8 }); // so do extra ones
    expect(stepCorrectness('', '')).toEqual({ right: 0, of: 0 });
  });

  it('computes the three metrics on a hand-made set', () => {
    const items: Answered[] = [
      {
        set: 'mini',
        example: ex('47+38', '785438', '85'),
        reasoning: '785438',
        answer: '85',
        experts: [
          [0, 1],
          [0, 1],
        ],
      },
      {
        set: 'mini',
        example: ex('10+20', '020031', '30'),
        reasoning: '020031',
        answer: '30',
        experts: [[0, 1]],
      },
      {
        set: 'mini',
        example: ex('55+55', '550551', '110'),
        reasoning: '550550',
        answer: '100',
        experts: [[2, 3]],
      },
      { set: 'mini', example: ex('11+11', '112112', '22'), reasoning: '11', answer: '22', experts: [[0, 2]] },
    ];
    const [m] = score(config, items);
    expect(m.set).toBe('mini');
    expect(m.n).toBe(4);
    expect(m.answerAccuracy).toBe(3 / 4);
    expect(m.stepAccuracy).toBe((6 + 6 + 5 + 2) / (6 + 6 + 6 + 6));
    expect(m.traceExact).toBe(2 / 4);
    expect(m.meanSteps).toBe(5 / 4);
    // Routed slots: expert 0 ×4, 1 ×3, 2 ×2, 3 ×1 of 10.
    expect(m.expertShare).toEqual([0.4, 0.3, 0.2, 0.1]);
    const c = countParams(config);
    const twoExperts = (c.edge + c.expertShared + 2 * c.perExpert) / c.total;
    expect(m.paramRatio).toBeCloseTo(twoExperts, 12);
  });

  it('counts activated FLOPs between K/E of the experts and the whole model', () => {
    const r = resourceRatios(config, 20, [
      [0, 1],
      [1, 2],
      [2, 3],
    ]);
    expect(r.params).toBe(1); // all four experts were used at some step
    expect(r.flops).toBeGreaterThan(0.5);
    expect(r.flops).toBeLessThan(1);
    const one = resourceRatios(config, 20, [[0, 1]]);
    expect(one.flops).toBeLessThan(r.flops);
    expect(one.flops).toBeGreaterThan(config.experts.top_k / config.experts.count - 0.05);
  });
});

describe('engines', () => {
  it('asks an OpenAI-compatible endpoint greedily and reads reasoning_content and content', async () => {
    const bodies: Record<string, unknown>[] = [];
    const fakeFetch = (async (url: string, init?: RequestInit) => {
      if (String(url).endsWith('/v1/models'))
        return new Response(JSON.stringify({ object: 'list', data: [{ id: 'reasoner' }] }));
      const body = JSON.parse(String(init!.body));
      bodies.push(body);
      const [a, b] = String(body.messages[0].content).split('+').map(Number);
      const sum = String(a + b);
      return new Response(
        JSON.stringify({
          choices: [{ message: { role: 'assistant', reasoning_content: 'r', content: sum } }],
          switchyard: { steps: [{ experts: [1, 0] }] },
        }),
      );
    }) as typeof fetch;
    expect(await endpointModel('http://x/', fakeFetch)).toBe('reasoner');
    const items = [
      { set: 's', example: ex('1+2', 'r', '3') },
      { set: 's', example: ex('2+2', 'r', '5') },
    ];
    const got = await new EndpointEngine('http://x/', 'reasoner', 32, fakeFetch).answer(items);
    expect(got.map((a) => [a.reasoning, a.answer, a.experts])).toEqual([
      ['r', '3', [[1, 0]]],
      ['r', '4', [[1, 0]]],
    ]);
    expect(bodies[0]).toMatchObject({
      model: 'reasoner',
      temperature: 0,
      max_tokens: 32,
      messages: [{ role: 'user', content: '1+2' }],
    });
    expect(score(config, got)[0].answerAccuracy).toBe(0.5);
    const other = got.map((a, i) => (i === 1 ? { ...a, answer: '5' } : a));
    expect(differences(got, other).map((d) => d.index)).toEqual([1]);
  });

  it('reports endpoint failures with the status and body', async () => {
    const failing = (async () => new Response('{"error":{"message":"no"}}', { status: 503 })) as typeof fetch;
    const e = new EndpointEngine('http://x', 'm', 8, failing);
    await expect(e.answer([{ set: 's', example: ex('1+1', '', '2') }])).rejects.toThrow(EndpointError);
    await expect(e.answer([{ set: 's', example: ex('1+1', '', '2') }])).rejects.toThrow(
      /expected 200, found 503/,
    );
  });

  it('runs the reference with simulated long-term recall, storing one entry per answer', async () => {
    const small = { ...config, max_think_steps: 3 };
    const model = new ReferenceModel(small, initRandom(small, 2));
    const ltm = new MemoryLtm();
    const items = evalExamples(['add2'], 3, 2);
    const plain = await new ReferenceEngine(model, 8).answer(items);
    const recalled = await new ReferenceEngine(model, 8, 2, ltm).answer(items);
    expect(ltm.entries.length).toBe(3);
    // The first request has nothing to recall, so it matches the run without recall.
    expect(recalled[0].answer).toBe(plain[0].answer);
    expect(recalled.every((a) => a.experts.length > 0)).toBe(true);
  });
});
