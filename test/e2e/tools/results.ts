// Reading and asserting on the JSON-lines results a VM job writes to its output dir.
// Host side; also used by in-VM TypeScript drivers to append results.
import { appendFileSync, readFileSync } from 'node:fs';

export type ResultLine = Record<string, unknown> & { step?: string; label?: string };

export function readResults(path: string): ResultLine[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, i) => {
      try {
        return JSON.parse(line) as ResultLine;
      } catch {
        throw new Error(`${path}:${i + 1}: not JSON: ${line}`);
      }
    });
}

export function appendResult(path: string, line: ResultLine): void {
  appendFileSync(path, `${JSON.stringify(line)}\n`);
}

/** Collects named checks, prints one line per check, and tells whether all passed. */
export class Checker {
  private failures = 0;
  private total = 0;

  constructor(private readonly results: ResultLine[]) {}

  /** The line whose `step` or `label` is `name`; a missing line is a failed check. */
  line(name: string): ResultLine {
    const found = this.results.find((r) => r.step === name || r.label === name);
    if (found === undefined) {
      this.check(`${name}: present in results`, false);
      return {};
    }
    if (typeof found.error === 'string') this.check(`${name}: no client error (${found.error})`, false);
    return found;
  }

  check(what: string, ok: boolean, detail?: unknown): void {
    this.total += 1;
    if (!ok) this.failures += 1;
    const extra = ok || detail === undefined ? '' : `  -- got ${JSON.stringify(detail)}`;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${extra}`);
  }

  equal(what: string, actual: unknown, expected: unknown): void {
    this.check(`${what} == ${JSON.stringify(expected)}`, JSON.stringify(actual) === JSON.stringify(expected), actual);
  }

  summary(): boolean {
    console.log(`${this.total - this.failures}/${this.total} checks passed`);
    return this.failures === 0 && this.total > 0;
  }
}

/**
 * The whole of a check script: `node check-X.js RESULTS.jsonl` runs `checks`
 * on the results and exits 0 only when every check passed (2 on bad usage).
 */
export function runChecks(script: string, checks: (c: Checker, results: ResultLine[], path: string) => void): void {
  const path = process.argv[2];
  if (path === undefined) {
    console.error(`usage: ${script} RESULTS.jsonl`);
    process.exit(2);
  }
  const results = readResults(path);
  const c = new Checker(results);
  checks(c, results, path);
  process.exit(c.summary() ? 0 : 1);
}

// ---- SCSI payload decoding (SPC-4 6.16 PERSISTENT RESERVE IN parameter data) ----

export interface ReadKeys {
  generation: number;
  keys: string[]; // hex, no leading zeros: "aaaa"
}

export function decodeReadKeys(hex: string): ReadKeys | undefined {
  const b = Buffer.from(hex, 'hex');
  if (b.length < 8) return undefined;
  const addl = b.readUInt32BE(4);
  const keys: string[] = [];
  for (let off = 8; off + 8 <= Math.min(b.length, 8 + addl); off += 8) {
    keys.push(b.readBigUInt64BE(off).toString(16));
  }
  return { generation: b.readUInt32BE(0), keys };
}

export interface ReadReservation {
  generation: number;
  key?: string;
  scope?: number;
  type?: number;
}

export function decodeReadReservation(hex: string): ReadReservation | undefined {
  const b = Buffer.from(hex, 'hex');
  if (b.length < 8) return undefined;
  const generation = b.readUInt32BE(0);
  if (b.readUInt32BE(4) < 16 || b.length < 24) return { generation };
  return { generation, key: b.readBigUInt64BE(8).toString(16), scope: b[21]! >> 4, type: b[21]! & 0x0f };
}

/** [sense key, ASC, ASCQ] of fixed (0x70/0x71) or descriptor (0x72/0x73) sense. */
export function senseTriple(hex: string): [number, number, number] | undefined {
  const b = Buffer.from(hex, 'hex');
  const code = (b[0] ?? 0) & 0x7f;
  if ((code === 0x70 || code === 0x71) && b.length >= 14) return [b[2]! & 0x0f, b[12]!, b[13]!];
  if ((code === 0x72 || code === 0x73) && b.length >= 4) return [b[1]! & 0x0f, b[2]!, b[3]!];
  return undefined;
}
