/** Named wire fixtures, written from pr-helper-protocol.md 1.3-1.5. */
export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

export const HANDSHAKE_ZERO = hex('00 00 00 00');
export const READ_KEYS_ALLOC_8192 = hex('5e 00 00 00 00 00 00 20 00 00 00 00 00 00 00 00');
export const REGISTER_LEN_24 = hex('5f 00 00 00 00 00 00 00 18 00 00 00 00 00 00 00');
/** PR OUT whose 32-bit PARAMETER LIST LENGTH says 0x10018 but framing uses bytes 7-8 only: 24. */
export const REGISTER_LEN_65560 = hex('5f 00 00 00 00 00 01 00 18 00 00 00 00 00 00 00');
export const REGISTER_PARAMS = hex('00 00 00 00 00 00 00 00  00 00 00 00 00 00 12 34  00 00 00 00 00 00 00 00');
export const INQUIRY = hex('12 00 00 00 60 00 00 00 00 00 00 00 00 00 00 00');

/** CHECK CONDITION, ABORTED COMMAND 00/06, size 0: what ENOTTY from SG_IO produces (A1). */
export const REPLY_IO_PROCESS_TERMINATED = Buffer.concat([
  hex('00 00 00 02  00 00 00 00  70 00 0b 00 00 00 00 0a 00 00 00 00 00 06 00 00 00 00'),
  Buffer.alloc(96 - 18),
]);
