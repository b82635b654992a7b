// The one error the wire codec throws. Decoders see untrusted bytes, so anything they reject must surface as a
// ProtocolError (never a RangeError from a DataView or a TypeError from TextDecoder): a server can then turn it
// into an ERROR frame without guessing whether it is looking at a bug or at a bad peer.

export const PROTOCOL_ERROR_CODES = [
  'bad-magic',
  'bad-version',
  'truncated',
  'trailing-bytes',
  'bad-type',
  'bad-field',
] as const;

export type ProtocolErrorCode = (typeof PROTOCOL_ERROR_CODES)[number];

export class ProtocolError extends Error {
  override name = 'ProtocolError';
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
    /** The field being read or written when it failed, e.g. 'experts[2]' or 'payload length'. */
    readonly field?: string,
  ) {
    super(message);
  }
}
