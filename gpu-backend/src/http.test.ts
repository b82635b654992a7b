import { describe, expect, it } from 'vitest';
import { encodeStepRequest } from '@switchyard/shared';
import { peekRequestId } from './http.ts';

describe('peekRequestId', () => {
  const frame = encodeStepRequest({
    sessionId: 'session-1',
    requestId: 'req-ü',
    step: 1,
    digest: new Uint8Array(32),
    hDtype: 'f32',
    responseDtype: 'f32',
    perExpert: false,
    experts: [0],
    gates: [1],
    h: new Float32Array(4),
  });

  it('reads the request id of a STEP_REQUEST, even a truncated one', () => {
    expect(peekRequestId(frame)).toBe('req-ü');
    expect(peekRequestId(frame.subarray(0, 30))).toBe('req-ü');
  });

  it('gives up quietly when the id cannot be read', () => {
    expect(peekRequestId(frame.subarray(0, 24))).toBe('');
    const magic = frame.slice();
    magic[0] = 0;
    expect(peekRequestId(magic)).toBe('');
    const badUtf8 = frame.slice();
    badUtf8[12 + 1 + 9 + 1] = 0xff;
    expect(peekRequestId(badUtf8)).toBe('');
    expect(peekRequestId(new Uint8Array(0))).toBe('');
  });
});
