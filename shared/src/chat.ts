// The one chat template: <bos>, then "role: content\n" per message, cut from the front to fit Lmax.
import { BOS, encodeText } from './tokenizer.ts';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface RenderedPrompt {
  tokens: number[];
  /** Messages dropped whole from the front to fit. */
  droppedMessages: number;
  /** Bytes cut from the front of the oldest kept message when even it alone did not fit. */
  truncatedBytes: number;
}

export function renderChat(messages: readonly ChatMessage[], maxLen: number): RenderedPrompt {
  if (maxLen < 1) throw new RangeError(`maxLen: expected at least 1 (room for <bos>), found ${maxLen}`);
  const parts = messages.map((m) => encodeText(`${m.role}: ${m.content}\n`));
  const budget = maxLen - 1; // <bos> always stays
  let total = parts.reduce((a, p) => a + p.length, 0);
  let first = 0;
  // Drop whole messages from the front while that keeps at least one; the newest message matters most.
  while (total > budget && first < parts.length - 1) total -= parts[first++].length;
  const kept = parts.slice(first);
  let truncatedBytes = 0;
  if (total > budget) {
    truncatedBytes = total - budget;
    kept[0] = kept[0].slice(truncatedBytes);
  }
  return { tokens: [BOS, ...kept.flat()], droppedMessages: first, truncatedBytes };
}
