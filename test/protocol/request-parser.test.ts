import { describe, expect, it } from 'vitest';
import { CloseReason, RequestParser, type ParseResult } from '../../src/protocol/request-parser.js';
import { CDB, hex, PARAMS } from '../fixtures/scsi-bytes.js';
import { HANDSHAKE_ZERO } from './fixtures.js';

const FD = 40;

function afterHandshake(): RequestParser {
  const parser = new RequestParser();
  expect(parser.push(HANDSHAKE_ZERO, []).step.kind).toBe('handshake');
  return parser;
}

/** Feeds `data` in segments of the given sizes, the fd list per segment index. */
function feed(parser: RequestParser, data: Buffer, sizes: number[], fds: Record<number, number[]> = {}): ParseResult[] {
  const results: ParseResult[] = [];
  let offset = 0;
  sizes.forEach((size, i) => {
    results.push(parser.push(data.subarray(offset, offset + size), fds[i] ?? []));
    offset += size;
  });
  return results;
}

describe('handshake', () => {
  it('wants exactly 4 bytes and accepts 0 in any segmentation', () => {
    const parser = new RequestParser();
    expect(parser.wanted()).toBe(4);
    expect(parser.push(hex('00'), []).step.kind).toBe('more');
    expect(parser.wanted()).toBe(3);
    expect(parser.push(hex('00 00 00'), []).step.kind).toBe('handshake');
    expect(parser.wanted()).toBe(16);
  });

  it('closes on any requested feature', () => {
    const result = new RequestParser().push(hex('00 00 00 01'), []);
    expect(result.step).toEqual({ kind: 'close', reason: CloseReason.HANDSHAKE_FEATURES, detail: { features: 1 } });
  });

  it('discards descriptors sent with handshake bytes', () => {
    expect(new RequestParser().push(HANDSHAKE_ZERO, [7, 8]).discard).toEqual([7, 8]);
  });

  it('reports end of stream during the handshake', () => {
    const parser = new RequestParser();
    parser.push(hex('00 00'), []);
    expect(parser.end()).toEqual({ step: { kind: 'close', reason: CloseReason.HANDSHAKE_EOF }, discard: [] });
  });

  it('refuses more bytes than it asked for', () => {
    expect(() => new RequestParser().push(Buffer.alloc(5), [])).toThrow(RangeError);
  });
});

describe('requests', () => {
  it('parses a PR IN with the descriptor on any segment', () => {
    for (const [sizes, fdSegment] of [[[16], 0], [[5, 11], 1], [[5, 11], 0], [[1, 1, 14], 2]] as const) {
      const parser = afterHandshake();
      const results = feed(parser, CDB.READ_KEYS_8192, [...sizes], { [fdSegment]: [FD] });
      const last = results.at(-1)!;
      expect(last.step).toEqual({
        kind: 'request',
        request: { cdb: CDB.READ_KEYS_8192, direction: 'in', transferLength: 8192, params: Buffer.alloc(0), fd: FD },
      });
      expect(results.every((r) => r.discard.length === 0)).toBe(true);
    }
  });

  it('reads exactly the PR OUT parameters and drops descriptors on them', () => {
    const parser = afterHandshake();
    expect(parser.push(CDB.REGISTER_24, [FD]).step.kind).toBe('more');
    expect(parser.wanted()).toBe(24);
    const first = parser.push(PARAMS.REGISTER_SARK_1234.subarray(0, 10), [41]);
    expect(first).toEqual({ step: { kind: 'more' }, discard: [41] });
    expect(parser.wanted()).toBe(14);
    const done = parser.push(PARAMS.REGISTER_SARK_1234.subarray(10), []);
    expect(done.step).toEqual({
      kind: 'request',
      request: { cdb: CDB.REGISTER_24, direction: 'out', transferLength: 24, params: PARAMS.REGISTER_SARK_1234, fd: FD },
    });
    expect(parser.wanted()).toBe(16);
  });

  it('completes a PR OUT with length 0 without reading parameters', () => {
    const cdb = hex('5f 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00');
    const step = afterHandshake().push(cdb, [FD]).step;
    expect(step).toMatchObject({ kind: 'request', request: { direction: 'out', transferLength: 0, params: Buffer.alloc(0) } });
  });

  it('accepts 8192 and drops 8193, closing the descriptor', () => {
    const ok = Buffer.from(CDB.READ_KEYS_8192);
    expect(afterHandshake().push(ok, [FD]).step.kind).toBe('request');
    const tooLong = Buffer.from(CDB.READ_KEYS_8192);
    tooLong.writeUInt16BE(8193, 7);
    expect(afterHandshake().push(tooLong, [FD])).toEqual({
      step: { kind: 'close', reason: CloseReason.TRANSFER_TOO_LONG, detail: { length: 8193 } },
      discard: [FD],
    });
  });

  it('drops a CDB without a descriptor (E3)', () => {
    expect(afterHandshake().push(CDB.READ_KEYS_8192, [])).toEqual({ step: { kind: 'close', reason: CloseReason.NO_FD }, discard: [] });
  });

  it('drops a non-PR opcode after the descriptor check (E4)', () => {
    expect(afterHandshake().push(CDB.INQUIRY, [FD])).toEqual({
      step: { kind: 'close', reason: CloseReason.INVALID_CDB, detail: { opcode: 0x12 } },
      discard: [FD],
    });
    expect(afterHandshake().push(CDB.INQUIRY, []).step).toEqual({ kind: 'close', reason: CloseReason.NO_FD });
  });

  it('drops a CDB carrying two descriptors, in one segment or two (E2)', () => {
    expect(afterHandshake().push(CDB.READ_KEYS_8192, [FD, 41])).toEqual({
      step: { kind: 'close', reason: CloseReason.EXTRA_FDS, detail: { fds: 2 } },
      discard: [FD, 41],
    });
    const parser = afterHandshake();
    parser.push(CDB.READ_KEYS_8192.subarray(0, 4), [FD]);
    expect(parser.push(CDB.READ_KEYS_8192.subarray(4, 8), [41]).discard).toEqual([FD, 41]);
  });

  it('hands back the stashed descriptor on end of stream mid-CDB (E1) and mid-parameters (E6)', () => {
    const midCdb = afterHandshake();
    midCdb.push(CDB.READ_KEYS_8192.subarray(0, 8), [FD]);
    expect(midCdb.end()).toEqual({ step: { kind: 'close', reason: CloseReason.CDB_EOF }, discard: [FD] });
    const midParams = afterHandshake();
    midParams.push(CDB.REGISTER_24, [FD]);
    midParams.push(PARAMS.REGISTER_SARK_1234.subarray(0, 3), []);
    expect(midParams.end()).toEqual({ step: { kind: 'close', reason: CloseReason.PARAMS_EOF }, discard: [FD] });
    expect(CloseReason.PARAMS_EOF.message).toBe('Unexpected end-of-file before all data were read');
  });

  it('parses pipelined requests one after another', () => {
    const parser = afterHandshake();
    const kinds = [
      parser.push(CDB.READ_KEYS_8192, [1]).step.kind,
      parser.push(CDB.REGISTER_24, [2]).step.kind,
      parser.push(PARAMS.REGISTER_SARK_1234, []).step.kind,
      parser.push(CDB.READ_KEYS_8192, [3]).step.kind,
    ];
    expect(kinds).toEqual(['request', 'more', 'request', 'request']);
  });
});

describe('a descriptor the kernel dropped (MSG_CTRUNC)', () => {
  it('PR IN: the request is read whole and reported lost-fd, and the next request parses normally', () => {
    const parser = afterHandshake();
    expect(parser.push(CDB.READ_KEYS_8192.subarray(0, 4), [], true).step.kind).toBe('more');
    expect(parser.push(CDB.READ_KEYS_8192.subarray(4), []).step).toEqual({ kind: 'lost-fd', request: { direction: 'in', transferLength: 8192 } });
    expect(parser.push(CDB.READ_KEYS_8192, [FD]).step.kind).toBe('request');
  });

  it('PR OUT: its parameters are consumed before lost-fd, so framing holds', () => {
    const parser = afterHandshake();
    expect(parser.push(CDB.REGISTER_24, [], true).step.kind).toBe('more');
    expect(parser.wanted()).toBe(24);
    expect(parser.push(Buffer.alloc(24), []).step).toEqual({ kind: 'lost-fd', request: { direction: 'out', transferLength: 24 } });
    expect(parser.midFrame()).toBe(false);
    expect(parser.push(CDB.REGISTER_24, [FD]).step.kind).toBe('more');
  });

  it('without truncation a missing descriptor still closes, as the original does', () => {
    expect(afterHandshake().push(CDB.READ_KEYS_8192, [], false).step).toEqual({ kind: 'close', reason: CloseReason.NO_FD });
  });
});
