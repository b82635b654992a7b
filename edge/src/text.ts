// Turns the token stream of a turn into text deltas: reasoning, then the answer. Bytes are decoded
// incrementally (a multi-byte character is released only once complete), and the answer holds back any
// tail that could still become a stop sequence, so what has been sent is always a prefix of the final text.
import { stopIndex } from '@switchyard/shared/generate';
import { END_THINK, EOS } from '@switchyard/shared/tokenizer';

class Utf8Stream {
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });
  text = '';
  push(token: number): void {
    if (token >= 0 && token < 256)
      this.text += this.decoder.decode(new Uint8Array([token]), { stream: true });
  }
  /** Ends the stream: an incomplete trailing sequence becomes U+FFFD, as a one-shot decode would. */
  flush(): void {
    this.text += this.decoder.decode();
  }
}

/** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
function heldBack(text: string, stop: readonly string[]): number {
  let keep = 0;
  for (const s of stop)
    for (let n = Math.min(s.length - 1, text.length); n > keep; n--)
      if (text.endsWith(s.slice(0, n))) {
        keep = n;
        break;
      }
  return keep;
}

export interface TextDelta {
  reasoning: string;
  content: string;
}

export class TurnText {
  private readonly reasoning = new Utf8Stream();
  private readonly answer = new Utf8Stream();
  private sentReasoning = 0;
  private sentContent = 0;
  private finished = false;

  constructor(private readonly stop: readonly string[]) {}

  /** Rebuilds the text of a turn from its tokens so far (a resumed turn), as if they had been pushed. */
  static replay(stop: readonly string[], reasoning: readonly number[], answer: readonly number[]): TurnText {
    const t = new TurnText(stop);
    for (const tok of reasoning) t.reasoning.push(tok);
    for (const tok of answer) t.answer.push(tok);
    return t;
  }

  /** Feeds one step's token (phase as the step reported it) and returns the text now safe to send. */
  push(token: number, phase: 'think' | 'answer'): TextDelta {
    if (phase === 'think') {
      if (token !== END_THINK && token !== EOS) this.reasoning.push(token);
      else this.reasoning.flush();
    } else if (token !== EOS) this.answer.push(token);
    return this.pending();
  }

  /** The text not yet sent; with `final` the decoders are flushed and the stop cut applied. */
  pending(final = false): TextDelta {
    if (final && !this.finished) {
      this.finished = true;
      this.reasoning.flush();
      this.answer.flush();
    }
    const r = this.reasoning.text.slice(this.sentReasoning);
    this.sentReasoning = this.reasoning.text.length;
    let end: number;
    const cut = stopIndex(this.answer.text, this.stop);
    if (cut >= 0) end = cut;
    else
      end = final ? this.answer.text.length : this.answer.text.length - heldBack(this.answer.text, this.stop);
    const c = end > this.sentContent ? this.answer.text.slice(this.sentContent, end) : '';
    this.sentContent = Math.max(this.sentContent, end);
    return { reasoning: r, content: c };
  }

  /** Everything, as finishResult would give it: the reasoning and the answer cut before the first stop. */
  full(): TextDelta {
    const cut = stopIndex(this.answer.text, this.stop);
    return {
      reasoning: this.reasoning.text,
      content: cut >= 0 ? this.answer.text.slice(0, cut) : this.answer.text,
    };
  }
}
