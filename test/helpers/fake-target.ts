/**
 * Test-side driver for the fake SCSI target (test/fake-target/fake-sg.c), an
 * LD_PRELOAD ioctl() interposer that answers SG_IO for files under a marked
 * directory from a script, and logs every call it sees.
 *
 * Typical use:
 *   const dir = createFakeTargetDir();
 *   const disk = new FakeDevice(dir, 'disk0');
 *   disk.script([{ status: 0x02, sense: fixedSenseBytes }]);
 *   spawn(daemon, args, { env: { ...process.env, ...fakeTargetEnv(dir) } });
 *   // ...send a request with an fd of disk.path, then inspect disk.calls()
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from './repo-root.js';

/** One scripted answer. Omitted fields: GOOD, no sense, resid = dxfer_len - data.length for reads (else 0). */
export interface FakeResponse {
  /** If set (non-zero), the ioctl fails with this errno and nothing else applies. */
  errno?: number;
  status?: number;
  hostStatus?: number;
  driverStatus?: number;
  resid?: number;
  /** Copied into the caller's sense buffer (up to mx_sb_len); sb_len_wr is set. */
  sense?: Buffer;
  /** Copied into the data buffer for FROM_DEV transfers (up to dxfer_len). */
  data?: Buffer;
  /** Sleep this long before answering (slow or hung device). */
  delayMs?: number;
}

export type SgDirection = 'none' | 'to-dev' | 'from-dev' | 'to-from-dev' | 'unknown';

/** One SG_IO as the fake target saw it. */
export interface RecordedCall {
  pid: number;
  /** Kernel thread id of the caller (a libuv worker for an async binding). */
  tid: number;
  /** cmd_len bytes from cmdp. */
  cdb: Buffer;
  direction: SgDirection;
  rawDirection: number;
  dxferLen: number;
  timeout: number;
  interfaceId: number;
  mxSbLen: number;
  /** Data-out bytes (TO_DEV), at most 64 KiB; empty otherwise. */
  dataOut: Buffer;
  /** CAP_SYS_RAWIO in the effective set of the calling thread (false if unreadable). */
  hadCapSysRawio: boolean;
  /** Queue slot used (0-based). */
  slot: number;
  /** errno the call failed with, 0 on success. */
  errno: number;
  /** Why the script was rejected (no-script, unknown-key, bad-sense, ...). */
  error?: string;
}

const buildDir = join(REPO_ROOT, 'build', 'fake-target');
let built: string | undefined;

/** Builds fake-sg.so and probe if needed (build.sh is idempotent); returns the .so path. */
export function ensureFakeTargetBuilt(): string {
  if (built === undefined) {
    execFileSync('sh', [join(REPO_ROOT, 'test', 'fake-target', 'build.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
    built = join(buildDir, 'fake-sg.so');
  }
  return built;
}

/** Path of the probe program (issues SG_IO and prints the header as JSON). */
export function fakeProbePath(): string {
  ensureFakeTargetBuilt();
  return join(buildDir, 'probe');
}

/** Environment additions that make a child process use the fake target for files under dir. */
export function fakeTargetEnv(dir: string): Record<string, string> {
  const so = ensureFakeTargetBuilt();
  const inherited = process.env['LD_PRELOAD'];
  return { LD_PRELOAD: inherited ? `${so}:${inherited}` : so, FAKE_SG_DIR: resolve(dir) };
}

/**
 * A fresh directory for fake devices, searchable by everyone so a daemon that
 * dropped privileges can still read scripts and append to logs.
 */
export function createFakeTargetDir(prefix = 'fake-sg-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

function num(name: string, value: number): string {
  if (!Number.isInteger(value)) throw new TypeError(`FakeResponse.${name} must be an integer, got ${value}`);
  return String(value);
}

/** Renders responses in the script syntax fake-sg.c parses. */
export function renderScript(responses: readonly FakeResponse[]): string {
  const sections = responses.map((r) => {
    const lines: string[] = [];
    if (r.errno !== undefined) lines.push(`errno=${num('errno', r.errno)}`);
    if (r.status !== undefined) lines.push(`status=${num('status', r.status)}`);
    if (r.hostStatus !== undefined) lines.push(`host_status=${num('hostStatus', r.hostStatus)}`);
    if (r.driverStatus !== undefined) lines.push(`driver_status=${num('driverStatus', r.driverStatus)}`);
    if (r.resid !== undefined) lines.push(`resid=${num('resid', r.resid)}`);
    if (r.sense !== undefined) lines.push(`sense=${r.sense.toString('hex')}`);
    if (r.data !== undefined) lines.push(`data=${r.data.toString('hex')}`);
    if (r.delayMs !== undefined) lines.push(`delay_ms=${num('delayMs', r.delayMs)}`);
    return lines.join('\n');
  });
  return sections.join('\n---\n') + '\n';
}

const DIRECTIONS: Record<number, SgDirection> = { [-1]: 'none', [-2]: 'to-dev', [-3]: 'from-dev', [-4]: 'to-from-dev' };

function parseLogLine(line: string): RecordedCall {
  const f = new Map<string, string>();
  for (const word of line.split(' ')) {
    const eq = word.indexOf('=');
    if (eq > 0) f.set(word.slice(0, eq), word.slice(eq + 1));
  }
  const int = (k: string): number => {
    const v = f.get(k);
    if (v === undefined || !/^-?\d+$/.test(v)) throw new Error(`fake-target log: bad ${k} in "${line}"`);
    return Number(v);
  };
  const rawDirection = int('dir');
  const call: RecordedCall = {
    pid: int('pid'),
    tid: int('tid'),
    cdb: Buffer.from(f.get('cdb') ?? '', 'hex'),
    direction: DIRECTIONS[rawDirection] ?? 'unknown',
    rawDirection,
    dxferLen: int('len'),
    timeout: int('timeout'),
    interfaceId: int('iface'),
    mxSbLen: int('mx_sb_len'),
    dataOut: Buffer.from(f.get('out') ?? '', 'hex'),
    hadCapSysRawio: int('rawio') === 1,
    slot: int('slot'),
    errno: int('errno'),
  };
  const error = f.get('error');
  if (error !== undefined) call.error = error;
  return call;
}

/** A file under the fake-target directory that behaves like a SCSI device for SG_IO. */
export class FakeDevice {
  /** Open this path and pass the fd around like a /dev/sdX descriptor. */
  readonly path: string;
  private readonly scriptPath: string;
  private readonly counterPath: string;
  private readonly logPath: string;

  constructor(dir: string, name: string) {
    if (name.includes('/') || name === '' || name === '.' || name === '..') {
      throw new Error(`FakeDevice: bad name ${JSON.stringify(name)}`);
    }
    this.path = join(resolve(dir), name);
    this.scriptPath = `${this.path}.sg`;
    this.counterPath = `${this.scriptPath}.n`;
    this.logPath = `${this.path}.log`;
    // A fresh device: empty log, script "GOOD, no data". World-writable so a
    // daemon that dropped privileges can open the device read-write and the
    // interposer (running inside that daemon) can append to the log.
    if (!existsSync(this.path)) writeFileSync(this.path, '');
    writeFileSync(this.logPath, '');
    chmodSync(this.path, 0o666);
    chmodSync(this.logPath, 0o666);
    this.script([{}]);
  }

  /**
   * Replaces the script (atomically) and restarts the queue: call k gets
   * responses[min(k, length - 1)]. An empty list means "GOOD, no data".
   */
  script(responses: readonly FakeResponse[]): void {
    this.scriptRaw(renderScript(responses.length > 0 ? responses : [{}]));
  }

  /** Writes script text verbatim (e.g. a malformed one) and restarts the queue. */
  scriptRaw(text: string | Buffer): void {
    const tmp = `${this.scriptPath}.tmp${process.pid}`;
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, this.scriptPath);
    writeFileSync(this.counterPath, '0\n');
    chmodSync(this.counterPath, 0o666);
  }

  /** Every SG_IO seen so far, in log order. */
  calls(): RecordedCall[] {
    if (!existsSync(this.logPath)) return [];
    return readFileSync(this.logPath, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map(parseLogLine);
  }

  /** Forgets recorded calls. */
  clearCalls(): void {
    writeFileSync(this.logPath, '');
  }
}
