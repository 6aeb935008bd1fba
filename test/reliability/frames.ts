/**
 * Protocol fuzzing: a seeded generator of client byte streams (handshake
 * variants, random and mutated PR frames, random split points, descriptors on
 * random segments, boundary lengths, opcodes next to 0x5E/0x5F, garbage,
 * abrupt EOF) and an independent model of what the server must do with them,
 * written from pr-helper-protocol.md 1.2-1.5 and 2.1 (not from src/):
 *
 * - The server reads exactly 4, then 16, then N bytes per stage; a descriptor
 *   belongs to the sendmsg it rode on and is delivered by the read that
 *   consumes that segment's first byte (spec 1.3, "Consequence of Linux
 *   SOCK_STREAM fd semantics"). Descriptors of handshake and parameter bytes
 *   are dropped.
 * - Handshake != 0 or EOF -> close. CDB: EOF -> close; fd count != 1 -> close;
 *   opcode not 0x5E/0x5F -> close; bytes 7-8 > 8192 -> close; PR OUT reads N
 *   parameter bytes, EOF -> close. Otherwise one reply per request, in order.
 */
import { PR_IN, PR_OUT, prInCdb, prOutCdb } from '../fixtures/scsi-bytes.js';
import { Prng } from './prng.js';

/** A client sendmsg: bytes plus the names of the descriptors riding on them. */
export interface Segment {
  readonly data: Buffer;
  readonly fds: readonly string[];
}

/**
 * half-close: send everything, shutdown(SHUT_WR), read until the server closes.
 * abort: send everything, close at once without reading (the reply write fails).
 */
export type Ending = 'half-close' | 'abort';

export interface FuzzCase {
  readonly seed: number;
  readonly index: number;
  readonly segments: readonly Segment[];
  readonly ending: Ending;
  /** Frames (requests, mutated requests, garbage) generated into this case. */
  readonly frames: number;
}

/** A request the model says the server executes. */
export interface ModelRequest {
  readonly direction: 'in' | 'out';
  readonly cdb: Buffer;
  /** Allocation length (PR IN) or parameter bytes (PR OUT): bytes 7-8. */
  readonly length: number;
  readonly params: Buffer;
  readonly fd: string;
}

export type CloseCause =
  | 'handshake-eof'
  | 'handshake-features'
  | 'cdb-eof'
  | 'fd-count'
  | 'opcode'
  | 'too-long'
  | 'params-eof';

export interface Prediction {
  readonly requests: readonly ModelRequest[];
  readonly cause: CloseCause;
}

/** Which descriptors a generated case may carry. */
export interface FdProfile {
  /** Descriptor names the generator attaches to CDBs; the runner maps each to an open fd. */
  readonly kinds: readonly string[];
  /** Whether PR OUT parameters should often be well-formed basic parameter lists (simulated disk). */
  readonly structuredParams?: boolean;
}

const LENGTHS_SMALL = [0, 1, 2, 8, 16, 23, 24, 25, 28, 32, 40, 64, 100, 255, 256, 512];
const LENGTHS_LARGE = [1024, 4096, 8190, 8191, 8192];
const LENGTHS_TOO_LONG = [8193, 8194, 8200, 12288, 16384, 32768, 32769, 65534, 65535];
/** Opcodes next to (and bit-flips of) 0x5E/0x5F, and other favourites. */
const NEAR_OPCODES = [0x5c, 0x5d, 0x60, 0x61, 0xde, 0xdf, 0x1e, 0x1f, 0x7e, 0x7f, 0x4e, 0x4f, 0x56, 0x57, 0x5a, 0x5b, 0x00, 0xff, 0x12, 0xa3, 0x9e];

interface Piece {
  data: Buffer;
  fds: string[];
}

function split(r: Prng, data: Buffer, maxPieces: number): Buffer[] {
  if (data.length <= 1 || maxPieces <= 1) return [data];
  const cuts = new Set<number>();
  const n = r.range(1, maxPieces - 1);
  for (let i = 0; i < n; i++) cuts.add(r.range(1, data.length - 1));
  const sorted = [...cuts].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let last = 0;
  for (const c of sorted) {
    out.push(data.subarray(last, c));
    last = c;
  }
  out.push(data.subarray(last));
  return out;
}

function pickLength(r: Prng): number {
  return r.weighted<() => number>([
    [55, () => r.pick(LENGTHS_SMALL)],
    [15, () => r.range(0, 600)],
    [6, () => r.pick(LENGTHS_LARGE)],
    [7, () => r.pick(LENGTHS_TOO_LONG)],
  ])();
}

function handshake(r: Prng, profile: FdProfile): { pieces: Piece[]; continues: boolean } {
  const ok = Buffer.alloc(4);
  return r.weighted<() => { pieces: Piece[]; continues: boolean }>([
    [78, () => ({ pieces: [{ data: ok, fds: [] }], continues: true })],
    [8, () => ({ pieces: split(r, ok, 4).map((d) => ({ data: d, fds: [] })), continues: true })],
    // Descriptors on handshake bytes are dropped by the kernel (plain read).
    [4, () => ({ pieces: [{ data: ok, fds: [r.pick(profile.kinds)] }], continues: true })],
    [
      4,
      () => {
        const v = Buffer.alloc(4);
        v.writeUInt32BE(r.chance(0.5) ? (1 << r.int(32)) >>> 0 : r.u32() || 1);
        return { pieces: [{ data: v, fds: [] }], continues: r.chance(0.5) };
      },
    ],
    [4, () => ({ pieces: r.chance(0.3) ? [] : [{ data: Buffer.alloc(r.range(1, 3)), fds: [] }], continues: false })],
  ])();
}

function structuredOutParams(r: Prng, length: number): Buffer {
  const p = Buffer.alloc(length);
  if (length >= 24 && r.chance(0.7)) {
    const keys = [0n, 1n, 0x1234n, 0xabcdefn, 0xffffffffffffffffn];
    p.writeBigUInt64BE(r.pick(keys), 0);
    p.writeBigUInt64BE(r.chance(0.8) ? r.pick(keys) : BigInt(r.u32()), 8);
    p[20] = r.chance(0.7) ? r.int(2) | (r.chance(0.1) ? 0x04 : 0) : r.int(256);
    if (length >= 28 && r.chance(0.5)) {
      // A TransportID list length (SPEC_I_PT) that may or may not match.
      p.writeUInt32BE(r.chance(0.5) ? Math.max(0, length - 28) : r.u32() >>> r.int(32), 24);
    }
    return p;
  }
  return r.bytes(length);
}

/** One frame: a PR request (possibly mutated), a bad opcode, or garbage. */
function frame(r: Prng, profile: FdProfile, last: boolean): Piece[] {
  const type = r.weighted<string>([
    [40, 'in'],
    [40, 'out'],
    [7, 'bad-opcode'],
    [5, 'garbage'],
    [last ? 5 : 0, 'short-params'],
    [last ? 3 : 0, 'short-cdb'],
  ]);
  const fdName = (): string => r.pick(profile.kinds);
  if (type === 'garbage') {
    const data = r.bytes(r.chance(0.5) ? r.range(1, 15) : r.range(16, 48));
    return [{ data, fds: r.chance(0.5) ? [fdName()] : [] }];
  }
  const out = type === 'out' || type === 'short-params' || (type === 'short-cdb' && r.chance(0.5));
  const badOpcode = type === 'bad-opcode' ? r.pick(NEAR_OPCODES) : null;
  const action = r.chance(0.9) ? r.int(out ? 9 : 5) : r.int(256);
  const scopeType = out ? (r.chance(0.8) ? r.pick([0, 1, 3, 5, 6, 7, 8]) : r.int(256)) : 0;
  const noise = r.chance(0.15) ? { bytes: r.bytes(4), count: r.chance(0.5) ? 4 : 3 } : null;
  const length = pickLength(r);
  // The length lands in bytes 7-8 either way: PR IN's ALLOCATION LENGTH, the low half of PR OUT's.
  const cdb = out ? prOutCdb(action, scopeType, length) : prInCdb(action, length);
  if (badOpcode !== null) cdb[0] = badOpcode;
  noise?.bytes.copy(cdb, 2, 0, noise.count);
  // PR OUT: bytes 5-6 belong to SPC's 32-bit length but are ignored for framing.
  if (out && r.chance(0.1)) cdb.writeUInt16BE(r.range(1, 0xffff), 5);
  if (r.chance(0.1)) r.bytes(7).copy(cdb, 9);

  let cdbBytes = cdb;
  if (type === 'short-cdb') cdbBytes = cdb.subarray(0, r.range(1, 15));
  const cdbPieces: Piece[] = split(r, cdbBytes, r.chance(0.75) ? 1 : 4).map((d) => ({ data: d, fds: [] }));
  // Where the descriptor(s) go.
  r.weighted<() => void>([
    [84, () => cdbPieces[0]!.fds.push(fdName())],
    [4, () => undefined],
    [3, () => cdbPieces[0]!.fds.push(fdName(), fdName())],
    [5, () => r.pick(cdbPieces).fds.push(fdName())],
    [2, () => (cdbPieces[0]!.fds.push(fdName()), cdbPieces[cdbPieces.length - 1]!.fds.push(fdName()))],
    [2, () => cdbPieces[0]!.fds.push(...Array.from({ length: r.range(3, 12) }, fdName))],
  ])();
  if (type === 'short-cdb') return cdbPieces;

  const pieces = [...cdbPieces];
  if (out && length > 0) {
    // Parameters beyond 8192 are sent (the server has closed by then) only sometimes: they cost time.
    const sendLength = length > 8192 ? (r.chance(0.2) ? length : r.range(0, 64)) : length;
    let params = profile.structuredParams && r.chance(0.7) ? structuredOutParams(r, sendLength) : r.bytes(sendLength);
    if (type === 'short-params') params = params.subarray(0, r.int(Math.max(1, length)));
    if (params.length > 0) {
      for (const d of split(r, params, r.chance(0.7) ? 1 : 4)) {
        // Descriptors on parameter bytes are dropped by the kernel (plain read).
        pieces.push({ data: d, fds: r.chance(0.04) ? [fdName()] : [] });
      }
    }
  } else if (!out && type !== 'bad-opcode' && r.chance(0.02)) {
    // Stray bytes after a PR IN CDB become (part of) the next CDB.
    pieces.push({ data: r.bytes(r.range(1, 8)), fds: [] });
  }
  return pieces;
}

/** Case `index` of the stream seeded by `seed` (reproducible on its own). */
export function generateCase(seed: number, index: number, profile: FdProfile): FuzzCase {
  const r = new Prng(seed, index);
  const hs = handshake(r, profile);
  const pieces: Piece[] = [...hs.pieces];
  let frames = 0;
  if (hs.continues) {
    const count = r.weighted([
      [30, 1],
      [25, 2],
      [20, 3],
      [12, 4],
      [8, 6],
      [5, 10],
    ]);
    for (let i = 0; i < count; i++) {
      pieces.push(...frame(r, profile, i === count - 1));
      frames++;
    }
    if (r.chance(0.06)) {
      pieces.push({ data: r.bytes(r.range(1, 40)), fds: r.chance(0.3) ? [r.pick(profile.kinds)] : [] });
      frames++;
    }
  }
  // Glue neighbours into one sendmsg now and then: descriptors then ride on the earlier bytes.
  const segments: Piece[] = [];
  for (const p of pieces) {
    const prev = segments[segments.length - 1];
    if (prev && r.chance(0.08)) {
      prev.data = Buffer.concat([prev.data, p.data]);
      prev.fds.push(...p.fds);
    } else {
      segments.push({ data: p.data, fds: [...p.fds] });
    }
  }
  const ending: Ending = r.chance(0.9) ? 'half-close' : 'abort';
  return { seed, index, segments: segments.filter((s) => s.data.length > 0), ending, frames };
}

/** The server's behaviour on a case, from the spec. */
export function predict(c: FuzzCase): Prediction {
  const stream = Buffer.concat(c.segments.map((s) => s.data));
  // Descriptors by the stream offset of their segment's first byte.
  const fdsAt = new Map<number, string[]>();
  let offset = 0;
  for (const s of c.segments) {
    if (s.fds.length > 0) fdsAt.set(offset, [...(fdsAt.get(offset) ?? []), ...s.fds]);
    offset += s.data.length;
  }
  const fdsIn = (from: number, to: number): string[] => {
    const out: string[] = [];
    for (const [at, fds] of fdsAt) if (at >= from && at < to) out.push(...fds);
    return out;
  };
  const requests: ModelRequest[] = [];
  if (stream.length < 4) return { requests, cause: 'handshake-eof' };
  if (stream.readUInt32BE(0) !== 0) return { requests, cause: 'handshake-features' };
  let p = 4;
  for (;;) {
    if (stream.length < p + 16) {
      // Too many descriptors on the bytes that did arrive close as well; silently either way.
      return { requests, cause: 'cdb-eof' };
    }
    const fds = fdsIn(p, p + 16);
    if (fds.length !== 1) return { requests, cause: 'fd-count' };
    const cdb = stream.subarray(p, p + 16);
    if (cdb[0] !== PR_IN && cdb[0] !== PR_OUT) return { requests, cause: 'opcode' };
    const length = cdb.readUInt16BE(7);
    if (length > 8192) return { requests, cause: 'too-long' };
    const direction = cdb[0] === PR_IN ? 'in' : 'out';
    let params = Buffer.alloc(0);
    p += 16;
    if (direction === 'out') {
      if (stream.length < p + length) return { requests, cause: 'params-eof' };
      params = stream.subarray(p, p + length);
      p += length;
    }
    requests.push({ direction, cdb: Buffer.from(cdb), length, params: Buffer.from(params), fd: fds[0]! });
  }
}

// ---------------------------------------------------------------------------
// Expected replies

/** 96 sense bytes: these, then zeros. */
export function sense96(hex: string): Buffer {
  const out = Buffer.alloc(96);
  Buffer.from(hex.replace(/\s+/g, ''), 'hex').copy(out);
  return out;
}

/** Fixed sense the helper synthesizes (spec 2.4c). */
export const SENSE = {
  IO_PROCESS_TERMINATED: sense96('70 00 0b 00 00 00 00 0a 00 00 00 00 00 06 00 00 00 00'),
  INVALID_OPCODE: sense96('70 00 05 00 00 00 00 0a 00 00 00 00 20 00 00 00 00 00'),
  INVALID_FIELD_IN_CDB: sense96('70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 00 00 00'),
  SPACE_ALLOC_FAILED_WP: sense96('70 00 07 00 00 00 00 0a 00 00 00 00 27 07 00 00 00 00'),
  COMMAND_TIMEOUT: sense96('70 00 0b 00 00 00 00 0a 00 00 00 00 2e 02 00 00 00 00'),
} as const;

export interface ExpectedReply {
  readonly status: number;
  readonly sense: Buffer;
  readonly data: Buffer;
}

/** Builds a reply's bytes as the spec lays them out (1.5). */
export function replyBytes(r: ExpectedReply): Buffer {
  const head = Buffer.alloc(8);
  head.writeInt32BE(r.status, 0);
  head.writeInt32BE(r.data.length, 4);
  return Buffer.concat([head, r.sense, r.data]);
}

export interface ReplyCheck {
  /** Problems found; empty when the bytes are what the model allows. */
  readonly problems: string[];
  readonly replies: number;
}

/**
 * Walks the received bytes along the model: handshake, then one reply per
 * predicted request, nothing more. Always checks what QEMU asserts (1.5,
 * 1.7: PR OUT size 0; PR IN size <= allocation length and <= 8192; payload
 * only with GOOD) and a well-formed header; also compares with `expected`
 * when it knows the reply exactly.
 */
export function checkReplies(
  received: Buffer,
  prediction: Prediction,
  expected: (request: ModelRequest) => ExpectedReply | null,
): ReplyCheck {
  const problems: string[] = [];
  if (received.length < 4 || received.readUInt32BE(0) !== 0) {
    problems.push(`handshake bytes ${received.subarray(0, 4).toString('hex')} (want 00000000)`);
    return { problems, replies: 0 };
  }
  let p = 4;
  let replies = 0;
  for (const [i, req] of prediction.requests.entries()) {
    if (received.length < p + 104) {
      problems.push(`reply ${i}: only ${received.length - p} bytes of the 104-byte header before close (${prediction.requests.length} requests predicted)`);
      return { problems, replies };
    }
    const status = received.readInt32BE(p);
    const size = received.readInt32BE(p + 4);
    const what = `reply ${i} (${req.direction === 'in' ? 'PR IN' : 'PR OUT'} ${req.cdb.toString('hex')}, length ${req.length}, fd ${req.fd})`;
    if (status < 0 || status > 0xff) problems.push(`${what}: status ${status} is not a SCSI status byte`);
    if (req.direction === 'out' && size !== 0) problems.push(`${what}: PR OUT with size ${size} (QEMU asserts size == 0)`);
    if (size < 0 || size > req.length || size > 8192) problems.push(`${what}: size ${size} > allocation length ${req.length} (QEMU asserts)`);
    if (status !== 0 && size !== 0) problems.push(`${what}: size ${size} with status ${status}`);
    if (status === 2 && ![0x70, 0x71, 0x72, 0x73].includes(received[p + 8]! & 0x7f)) {
      problems.push(`${what}: CHECK CONDITION with sense response code 0x${received[p + 8]!.toString(16)}`);
    }
    const payload = Math.max(0, Math.min(size, 8192));
    if (received.length < p + 104 + payload) {
      problems.push(`${what}: payload cut short`);
      return { problems, replies };
    }
    const want = expected(req);
    if (want) {
      const got = received.subarray(p, p + 104 + payload).toString('hex');
      const exp = replyBytes(want).toString('hex');
      if (got !== exp) problems.push(`${what}: got ${got.slice(0, 80)}... want ${exp.slice(0, 80)}...`);
    }
    p += 104 + payload;
    replies++;
    if (problems.length > 0) return { problems, replies };
  }
  if (p !== received.length) problems.push(`${received.length - p} bytes after the last predicted reply (close cause ${prediction.cause}): ${received.subarray(p, p + 16).toString('hex')}`);
  return { problems, replies };
}
