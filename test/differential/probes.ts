/**
 * Probes for the differential suite: each is a sequence of segments a client
 * sends, some carrying descriptors, after the handshake bytes it chooses.
 * Every framing and reply rule of QEMU's scsi/qemu-pr-helper.c (prh_co_entry,
 * prh_read, prh_read_request, do_pr_out) that can be exercised without a SCSI
 * device has at least one probe.
 */
import { CDB, IN, PARAMS, PR_IN, PR_OUT, prInCdb, prOutCdb, SA } from '../fixtures/scsi-bytes.js';

export type FdKind = 'file-rw' | 'file-ro' | 'dev-null' | 'dev-urandom' | 'pipe-read' | 'pipe-write' | 'o-path' | 'socket';

export interface Segment {
  /** Hex, whitespace ignored. */
  readonly hex: string;
  /** How many descriptors ride on this segment (default 0). */
  readonly fds?: number;
}

export interface Probe {
  readonly name: string;
  /** Descriptor kind sent where a segment carries fds. */
  readonly fd: FdKind;
  /** Sent as the client's handshake; omitted to send nothing. */
  readonly handshake?: Segment[];
  readonly segments: Segment[];
  /** What the original is known to do (pr-helper-protocol.md), checked as well as the difference. */
  readonly expect: 'replies' | 'closes-silently';
}

export const HANDSHAKE_OK: Segment[] = [{ hex: '00000000' }];

const READ_KEYS_8192 = CDB.READ_KEYS_8192.toString('hex');
const REGISTER_24 = CDB.REGISTER_24.toString('hex');
const PARAMS_24 = PARAMS.REGISTER_SARK_1234.toString('hex');
const INQUIRY = CDB.INQUIRY.toString('hex');

/** READ KEYS or REGISTER with `length` in bytes 7-8; `bytes5and6` lands where PR OUT's 32-bit length begins. */
function cdbWithLength(opcode: typeof PR_IN | typeof PR_OUT, length: number, bytes5and6 = 0): string {
  const cdb = opcode === PR_IN ? prInCdb(IN.READ_KEYS, length) : prOutCdb(SA.REGISTER, 0, length);
  cdb.writeUInt16BE(bytes5and6, 5);
  return cdb.toString('hex');
}

const FD_KINDS: FdKind[] = ['file-rw', 'file-ro', 'dev-null', 'dev-urandom', 'pipe-read', 'pipe-write', 'o-path', 'socket'];

export const PROBES: Probe[] = [
  ...FD_KINDS.map((fd): Probe => ({ name: `READ KEYS on ${fd}`, fd, segments: [{ hex: READ_KEYS_8192, fds: 1 }], expect: 'replies' })),
  ...FD_KINDS.map((fd): Probe => ({
    name: `REGISTER on ${fd}`,
    fd,
    segments: [{ hex: REGISTER_24, fds: 1 }, { hex: PARAMS_24 }],
    expect: 'replies',
  })),
  { name: 'handshake asking for a feature', fd: 'file-rw', handshake: [{ hex: '00000001' }], segments: [{ hex: READ_KEYS_8192, fds: 1 }], expect: 'closes-silently' },
  { name: 'handshake with high bit set', fd: 'file-rw', handshake: [{ hex: '80000000' }], segments: [], expect: 'closes-silently' },
  { name: 'handshake split 1+3', fd: 'file-rw', handshake: [{ hex: '00' }, { hex: '000000' }], segments: [{ hex: READ_KEYS_8192, fds: 1 }], expect: 'replies' },
  { name: 'descriptor on the handshake is dropped', fd: 'file-rw', handshake: [{ hex: '00000000', fds: 1 }], segments: [{ hex: READ_KEYS_8192 }], expect: 'closes-silently' },
  { name: 'half a handshake then end of stream', fd: 'file-rw', handshake: [{ hex: '0000' }], segments: [], expect: 'closes-silently' },
  { name: 'no handshake at all', fd: 'file-rw', handshake: [], segments: [], expect: 'closes-silently' },
  { name: 'CDB split 5+11, fd on the second part', fd: 'file-rw', segments: [{ hex: READ_KEYS_8192.slice(0, 10) }, { hex: READ_KEYS_8192.slice(10), fds: 1 }], expect: 'replies' },
  { name: 'CDB split 5+11, fd on the first part', fd: 'dev-urandom', segments: [{ hex: READ_KEYS_8192.slice(0, 10), fds: 1 }, { hex: READ_KEYS_8192.slice(10) }], expect: 'replies' },
  {
    name: 'CDB byte by byte, fd on byte 9',
    fd: 'dev-null',
    segments: READ_KEYS_8192.match(/../g)!.map((b, i) => ({ hex: b, fds: i === 8 ? 1 : 0 })),
    expect: 'replies',
  },
  { name: 'CDB without a descriptor', fd: 'file-rw', segments: [{ hex: READ_KEYS_8192 }], expect: 'closes-silently' },
  { name: 'two descriptors on the CDB', fd: 'file-rw', segments: [{ hex: READ_KEYS_8192, fds: 2 }], expect: 'closes-silently' },
  { name: 'ten descriptors on the CDB', fd: 'dev-null', segments: [{ hex: READ_KEYS_8192, fds: 10 }], expect: 'closes-silently' },
  { name: 'descriptors on two parts of one CDB', fd: 'file-rw', segments: [{ hex: READ_KEYS_8192.slice(0, 16), fds: 1 }, { hex: READ_KEYS_8192.slice(16), fds: 1 }], expect: 'closes-silently' },
  { name: 'INQUIRY is not forwarded', fd: 'file-rw', segments: [{ hex: INQUIRY, fds: 1 }], expect: 'closes-silently' },
  { name: 'opcode 0x00 is not forwarded', fd: 'file-rw', segments: [{ hex: '00'.repeat(16), fds: 1 }], expect: 'closes-silently' },
  { name: 'partial CDB then end of stream', fd: 'file-rw', segments: [{ hex: READ_KEYS_8192.slice(0, 16), fds: 1 }], expect: 'closes-silently' },
  { name: 'allocation length 0', fd: 'file-rw', segments: [{ hex: cdbWithLength(PR_IN, 0), fds: 1 }], expect: 'replies' },
  { name: 'allocation length 8192', fd: 'dev-urandom', segments: [{ hex: cdbWithLength(PR_IN, 8192), fds: 1 }], expect: 'replies' },
  { name: 'allocation length 8193', fd: 'file-rw', segments: [{ hex: cdbWithLength(PR_IN, 8193), fds: 1 }], expect: 'closes-silently' },
  { name: 'allocation length 65535', fd: 'file-rw', segments: [{ hex: cdbWithLength(PR_IN, 0xffff), fds: 1 }], expect: 'closes-silently' },
  { name: 'PR IN bytes 5-6 ignored for framing', fd: 'file-rw', segments: [{ hex: cdbWithLength(PR_IN, 24, 0xffff), fds: 1 }], expect: 'replies' },
  { name: 'PR OUT length 0', fd: 'file-rw', segments: [{ hex: cdbWithLength(PR_OUT, 0), fds: 1 }], expect: 'replies' },
  { name: 'PR OUT length 8 (short list reaches the device)', fd: 'file-rw', segments: [{ hex: cdbWithLength(PR_OUT, 8), fds: 1 }, { hex: '00'.repeat(8) }], expect: 'replies' },
  { name: 'PR OUT length 8192', fd: 'dev-null', segments: [{ hex: cdbWithLength(PR_OUT, 8192), fds: 1 }, { hex: 'ab'.repeat(8192) }], expect: 'replies' },
  { name: 'PR OUT length 8193', fd: 'file-rw', segments: [{ hex: cdbWithLength(PR_OUT, 8193), fds: 1 }, { hex: 'ab'.repeat(8193) }], expect: 'closes-silently' },
  { name: 'PR OUT framing uses bytes 7-8 only', fd: 'file-rw', segments: [{ hex: CDB.REGISTER_65560.toString('hex'), fds: 1 }, { hex: PARAMS_24 }, { hex: READ_KEYS_8192, fds: 1 }], expect: 'replies' },
  { name: 'PR OUT read-only descriptor, parameters consumed', fd: 'file-ro', segments: [{ hex: REGISTER_24, fds: 1 }, { hex: PARAMS_24 }, { hex: READ_KEYS_8192, fds: 1 }], expect: 'replies' },
  { name: 'PR OUT parameters split 3+21 with descriptors on them', fd: 'file-rw', segments: [{ hex: REGISTER_24, fds: 1 }, { hex: PARAMS_24.slice(0, 6), fds: 1 }, { hex: PARAMS_24.slice(6), fds: 2 }, { hex: READ_KEYS_8192, fds: 1 }], expect: 'replies' },
  { name: 'PR OUT parameters end early', fd: 'file-rw', segments: [{ hex: REGISTER_24, fds: 1 }, { hex: PARAMS_24.slice(0, 20) }], expect: 'closes-silently' },
  { name: 'PR OUT parameters glued to the next CDB with its fd', fd: 'file-rw', segments: [{ hex: REGISTER_24, fds: 1 }, { hex: PARAMS_24 + READ_KEYS_8192, fds: 1 }], expect: 'replies' },
  { name: 'three pipelined requests', fd: 'dev-urandom', segments: [{ hex: READ_KEYS_8192, fds: 1 }, { hex: REGISTER_24, fds: 1 }, { hex: PARAMS_24 }, { hex: READ_KEYS_8192, fds: 1 }], expect: 'replies' },
  { name: 'pipelined requests in one write', fd: 'dev-null', segments: [{ hex: READ_KEYS_8192, fds: 1 }, { hex: READ_KEYS_8192 + READ_KEYS_8192, fds: 1 }], expect: 'replies' },
  { name: 'reply then garbage shorter than a CDB', fd: 'file-rw', segments: [{ hex: READ_KEYS_8192, fds: 1 }, { hex: 'deadbeef' }], expect: 'replies' },
  { name: 'CDB bytes 1-15 are not validated', fd: 'file-rw', segments: [{ hex: '5e ff ff ff ff 00 00 00 10 ff ff ff ff ff ff ff', fds: 1 }], expect: 'replies' },
  { name: 'reply then a non-PR opcode', fd: 'file-rw', segments: [{ hex: READ_KEYS_8192, fds: 1 }, { hex: INQUIRY, fds: 1 }], expect: 'replies' },
];
