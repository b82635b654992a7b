import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { stopIndex } from '@switchyard/shared/generate';
import { decodeTokens, encodeText, END_THINK, EOS } from '@switchyard/shared/tokenizer';
import { TurnText } from './text.ts';

/** Feeds a whole turn, returning the deltas as they would be sent. */
function run(stop: string[], reasoning: number[], answer: number[], end = true) {
  const t = new TurnText(stop);
  const sent = { reasoning: [] as string[], content: [] as string[] };
  const take = (d: { reasoning: string; content: string }) => {
    sent.reasoning.push(d.reasoning);
    sent.content.push(d.content);
  };
  for (const tok of reasoning) take(t.push(tok, 'think'));
  take(t.push(END_THINK, 'think'));
  for (const tok of answer) take(t.push(tok, 'answer'));
  if (end) take(t.push(EOS, 'answer'));
  take(t.pending(true));
  return { t, sent };
}

describe('TurnText', () => {
  it('releases a multi-byte character only once all its bytes have arrived', () => {
    const t = new TurnText([]);
    const bytes = encodeText('é€'); // c3 a9, e2 82 ac
    t.push(END_THINK, 'think');
    const out = bytes.map((b) => t.push(b, 'answer').content);
    expect(out).toEqual(['', 'é', '', '', '€']);
  });

  it('decodes invalid bytes to U+FFFD exactly as a one-shot decode does', () => {
    const answer = [0xff, 0x41, 0xe2, 0x82, 0x42, 0xc3];
    const { t, sent } = run([], [], answer);
    expect(sent.content.join('')).toBe(decodeTokens(answer));
    expect(t.full().content).toBe(decodeTokens(answer));
  });

  it('holds back a possible stop sequence and never sends what the stop cuts', () => {
    const t = new TurnText(['END']);
    t.push(END_THINK, 'think');
    const parts = [...'abcENxyEND!'].map((ch) => t.push(ch.charCodeAt(0), 'answer').content);
    expect(parts).toEqual(['a', 'b', 'c', '', '', 'ENx', 'y', '', '', '', '']);
    expect(t.full().content).toBe('abcENxy');
  });

  it('sends the held-back tail when the turn ends without the stop', () => {
    const { sent, t } = run(['END'], [], encodeText('xyEN'), false);
    expect(sent.content.join('')).toBe('xyEN');
    expect(t.full().content).toBe('xyEN');
  });

  it('keeps reasoning and answer apart: skips specials, flushes the reasoning at </think>', () => {
    const { sent } = run([], [...encodeText('ab'), 0xc3], encodeText('ok'));
    expect(sent.reasoning.join('')).toBe('ab\uFFFD');
    expect(sent.content.join('')).toBe('ok');
  });

  it('replays a turn from its tokens as if they had been pushed (a resumed turn)', () => {
    const reasoning = encodeText('think');
    const answer = encodeText('pa');
    const t = TurnText.replay(['X'], reasoning, answer);
    expect(t.pending()).toEqual({ reasoning: 'think', content: 'pa' });
    expect(t.push(0x58, 'answer').content).toBe(''); // "X" is the stop
    expect(t.full().content).toBe('pa');
  });

  it('property: the deltas concatenate to the final text, which is what finishResult gives for the same turn', () => {
    const token = fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x61, 0x62, 0xc3, 0xa9));
    fc.assert(
      fc.property(
        fc.array(token, { maxLength: 30 }),
        fc.array(token, { maxLength: 60 }),
        fc.array(fc.string({ unit: fc.constantFrom('a', 'b', 'é', '\uFFFD'), minLength: 1, maxLength: 3 }), {
          maxLength: 3,
        }),
        (reasoning, tokens, stop) => {
          // As generationStep does: the answer ends at the first token after which a stop sequence appears.
          let n = 0;
          while (n < tokens.length && stopIndex(decodeTokens(tokens.slice(0, n)), stop) < 0) n++;
          const answer = stopIndex(decodeTokens(tokens.slice(0, n)), stop) >= 0 ? tokens.slice(0, n) : tokens;
          const { t, sent } = run(stop, reasoning, answer);
          const text = decodeTokens(answer);
          const cut = stopIndex(text, stop);
          const want = cut >= 0 ? text.slice(0, cut) : text;
          expect(t.full()).toEqual({ reasoning: decodeTokens(reasoning), content: want });
          expect(sent.reasoning.join('')).toBe(decodeTokens(reasoning));
          expect(sent.content.join('')).toBe(want);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
