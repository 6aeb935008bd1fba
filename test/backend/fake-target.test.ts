// Proves the LD_PRELOAD fake SCSI target works, using a tiny C probe instead of
// the project's native binding.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FakeDevice,
  createFakeTargetDir,
  ensureFakeTargetBuilt,
  fakeProbePath,
  fakeTargetEnv,
} from '../helpers/fake-target.js';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);

interface ProbeResult {
  ret: number;
  errno: number;
  status: number;
  masked_status: number;
  host_status: number;
  driver_status: number;
  resid: number;
  sb_len_wr: number;
  duration: number;
  info: number;
  sense: string;
  data: string;
}

const PR_IN_READ_KEYS = '5e000000000000002000' + '000000000000'; // 16 bytes, like the helper sends
const PR_OUT_REGISTER = '5f000000000000001800' + '000000000000';

let dir: string;
let probe: string;

async function probeRun(
  path: string,
  args: string[] = [],
  cdb = PR_IN_READ_KEYS,
  opts: { env?: Record<string, string>; wrap?: string[] } = {},
): Promise<ProbeResult[]> {
  const env = { ...process.env, ...(opts.env ?? fakeTargetEnv(dir)) };
  const argv = [probe, ...args, path, cdb];
  const [cmd, ...rest] = opts.wrap ? [...opts.wrap, ...argv] : argv;
  const { stdout } = await run(cmd!, rest, { env, maxBuffer: 64 << 20 });
  return stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as ProbeResult);
}

async function one(path: string, args: string[] = [], cdb?: string): Promise<ProbeResult> {
  const results = await probeRun(path, args, cdb);
  expect(results).toHaveLength(1);
  return results[0]!;
}

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function ownCapSysRawio(): boolean {
  const m = /\nCapEff:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m !== null && ((BigInt(`0x${m[1]}`) >> 17n) & 1n) === 1n;
}

beforeAll(() => {
  ensureFakeTargetBuilt();
  probe = fakeProbePath();
  dir = createFakeTargetDir();
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('fake SCSI target (LD_PRELOAD)', () => {
  it('builds idempotently and returns the .so path', () => {
    const so = ensureFakeTargetBuilt();
    expect(so.endsWith('build/fake-target/fake-sg.so')).toBe(true);
    expect(existsSync(so)).toBe(true);
    expect(fakeTargetEnv(dir)['FAKE_SG_DIR']).toBe(dir);
    expect(fakeTargetEnv(dir)['LD_PRELOAD']!.split(':')[0]).toBe(so);
  });

  it('delivers GOOD with data, default resid, truncation to dxfer_len', async () => {
    const dev = new FakeDevice(dir, 'good');
    dev.script([{ data: hex('00000007 00000010 0102030405060708 1112131415161718') }]);
    let r = await one(dev.path, ['-l', '64']);
    expect(r.ret).toBe(0);
    expect(r.status).toBe(0);
    expect(r.info).toBe(0);
    expect(r.data).toBe('00000007000000100102030405060708111213141516171' + '8' + '00'.repeat(40));
    expect(r.resid).toBe(64 - 24);
    expect(r.sb_len_wr).toBe(0);

    r = await one(dev.path, ['-l', '4']);
    expect(r.data).toBe('00000007');
    expect(r.resid).toBe(0);
  });

  it('delivers status, sense, resid, masked_status', async () => {
    const dev = new FakeDevice(dir, 'check');
    const sense = hex('70 00 06 00 00 00 00 0a 00 00 00 00 29 00 00 00 00 00');
    dev.script([{ status: 0x02, sense, resid: 12 }]);
    const r = await one(dev.path);
    expect(r.ret).toBe(0);
    expect(r.status).toBe(0x02);
    expect(r.masked_status).toBe(0x01);
    expect(r.resid).toBe(12);
    expect(r.sb_len_wr).toBe(18);
    expect(r.info).toBe(1);
    expect(r.sense).toBe(sense.toString('hex') + '00'.repeat(78));
    expect(r.driver_status).toBe(0); // never added implicitly
  });

  it('limits sense to mx_sb_len', async () => {
    const dev = new FakeDevice(dir, 'longsense');
    dev.script([{ status: 0x02, sense: Buffer.alloc(120, 0xab) }]);
    const r = await one(dev.path);
    expect(r.sb_len_wr).toBe(96);
    expect(r.sense).toBe('ab'.repeat(96));
  });

  it('delivers host_status and driver_status', async () => {
    const dev = new FakeDevice(dir, 'hostdrv');
    dev.script([{ hostStatus: 0x11, driverStatus: 0x06, resid: 0 }]);
    const r = await one(dev.path);
    expect(r.ret).toBe(0);
    expect(r.host_status).toBe(0x11);
    expect(r.driver_status).toBe(0x06);
    expect(r.status).toBe(0);
  });

  it('fails the ioctl with a scripted errno', async () => {
    const dev = new FakeDevice(dir, 'errno');
    for (const errno of [52, 19, 61, 33]) {
      dev.script([{ errno, status: 0x02, sense: hex('70') }]);
      const r = await one(dev.path);
      expect(r.ret).toBe(-1);
      expect(r.errno).toBe(errno);
      expect(r.sb_len_wr).toBe(0);
    }
    expect(dev.calls().map((c) => c.errno)).toEqual([52, 19, 61, 33]);
  });

  it('passes unmarked descriptors to the real ioctl', async () => {
    const nullResult = await one('/dev/null');
    expect(nullResult).toMatchObject({ ret: -1, errno: 25 });

    const outside = createFakeTargetDir('fake-sg-outside-');
    try {
      writeFileSync(join(outside, 'plain'), '');
      writeFileSync(join(outside, 'plain.sg'), 'status=0\n');
      const r = await one(join(outside, 'plain'));
      expect(r).toMatchObject({ ret: -1, errno: 25 });
      expect(existsSync(join(outside, 'plain.log'))).toBe(false);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }

    // Without FAKE_SG_DIR nothing is marked.
    const dev = new FakeDevice(dir, 'unmarked');
    dev.script([{ status: 0x18 }]);
    const [r] = await probeRun(dev.path, [], PR_IN_READ_KEYS, { env: { LD_PRELOAD: ensureFakeTargetBuilt() } });
    expect(r).toMatchObject({ ret: -1, errno: 25 });
    expect(dev.calls()).toEqual([]);
  });

  it('recognizes the directory through a symlinked FAKE_SG_DIR', async () => {
    const dev = new FakeDevice(dir, 'vialink');
    dev.script([{ status: 0x18 }]);
    const link = `${dir}-link`;
    symlinkSync(dir, link);
    try {
      const [r] = await probeRun(join(link, 'vialink'), [], PR_IN_READ_KEYS, { env: fakeTargetEnv(link) });
      expect(r).toMatchObject({ ret: 0, status: 0x18 });
    } finally {
      rmSync(link);
    }
  });

  it('advances the queue, repeats the last entry, persists across processes, resets on script()', async () => {
    const dev = new FakeDevice(dir, 'queue');
    dev.script([{ status: 0x18 }, { errno: 52 }, { status: 0x08 }]);
    const first = await probeRun(dev.path, ['-n', '4']);
    expect(first.map((r) => [r.ret, r.status, r.errno])).toEqual([
      [0, 0x18, 0],
      [-1, 0, 52],
      [0, 0x08, 0],
      [0, 0x08, 0],
    ]);
    const next = await one(dev.path);
    expect(next.status).toBe(0x08);
    expect(dev.calls().map((c) => c.slot)).toEqual([0, 1, 2, 2, 2]);

    dev.script([{ status: 0x28 }, { status: 0x02 }]);
    const again = await probeRun(dev.path, ['-n', '2']);
    expect(again.map((r) => r.status)).toEqual([0x28, 0x02]);
  });

  it('logs CDB, direction, lengths, timeout, data-out and the thread capability', async () => {
    const dev = new FakeDevice(dir, 'log');
    dev.script([{}]);
    const param = hex('0000000000000000 00000000deadbeef 00000000 00000000');
    await one(dev.path, ['-d', 'to', '-l', String(param.length), '-w', param.toString('hex'), '-T', '1'], PR_OUT_REGISTER);
    await one(dev.path, ['-l', '8192', '-T', '30000']);
    await one(dev.path, ['-d', 'none'], '00000000000000000000000000000000');

    const calls = dev.calls();
    expect(calls).toHaveLength(3);
    const [out, inn, none] = calls as [typeof calls[0], typeof calls[0], typeof calls[0]];
    expect(out.cdb).toEqual(hex(PR_OUT_REGISTER));
    expect(out.direction).toBe('to-dev');
    expect(out.rawDirection).toBe(-2);
    expect(out.dxferLen).toBe(24);
    expect(out.timeout).toBe(1);
    expect(out.dataOut).toEqual(param);
    expect(out.interfaceId).toBe('S'.charCodeAt(0));
    expect(out.mxSbLen).toBe(96);
    expect(out.errno).toBe(0);
    expect(out.error).toBeUndefined();

    expect(inn.cdb).toEqual(hex(PR_IN_READ_KEYS));
    expect(inn.direction).toBe('from-dev');
    expect(inn.dxferLen).toBe(8192);
    expect(inn.timeout).toBe(30000);
    expect(inn.dataOut.length).toBe(0);

    expect(none.direction).toBe('none');
    expect(none.dxferLen).toBe(0);

    for (const c of calls) expect(c.hadCapSysRawio).toBe(ownCapSysRawio());
  });

  it.runIf(process.getuid?.() === 0 && ownCapSysRawio() && existsSync('/usr/bin/setpriv'))(
    'reports a caller without CAP_SYS_RAWIO',
    async () => {
      const dev = new FakeDevice(dir, 'norawio');
      dev.script([{}]);
      const [r] = await probeRun(dev.path, [], PR_IN_READ_KEYS, {
        wrap: ['/usr/bin/setpriv', '--bounding-set', '-sys_rawio', '--inh-caps', '-sys_rawio'],
      });
      expect(r!.ret).toBe(0);
      expect(dev.calls().map((c) => c.hadCapSysRawio)).toEqual([false]);
    },
  );

  it.runIf(ownCapSysRawio())('reports the capability of the calling thread, not of the process', async () => {
    const dev = new FakeDevice(dir, 'perthread');
    dev.script([{}]);
    const results = await probeRun(dev.path, ['-t', '2', '-c']); // thread 1 drops CAP_SYS_RAWIO
    expect(results.map((r) => r.ret)).toEqual([0, 0]);
    const byTid = new Map(dev.calls().map((c) => [c.tid, c.hadCapSysRawio]));
    expect(byTid.size).toBe(2);
    expect([...byTid.values()].sort()).toEqual([false, true]);
  });

  it('delays the answer', async () => {
    const dev = new FakeDevice(dir, 'slow');
    dev.script([{ delayMs: 300, status: 0x00 }]);
    const t0 = performance.now();
    const r = await one(dev.path);
    const elapsed = performance.now() - t0;
    expect(r.ret).toBe(0);
    expect(r.duration).toBe(300);
    expect(elapsed).toBeGreaterThanOrEqual(300);
  });

  it('logs the call on arrival, before a long delay completes', async () => {
    const dev = new FakeDevice(dir, 'hung');
    dev.script([{ delayMs: 2000 }]);
    const pending = one(dev.path);
    await waitFor(() => dev.calls().length > 0, 1800, 20);
    expect(dev.calls()).toHaveLength(1);
    expect((await pending).ret).toBe(0);
  });

  describe('malformed scripts answer EIO without crashing', () => {
    // [name, script, error word, results of two calls as [ret, errno]]
    const eio: Array<[number, number]> = [
      [-1, 5],
      [-1, 5],
    ];
    const cases: Array<[string, string | Buffer, string, Array<[number, number]>?]> = [
      ['unknown key', 'colour=blue\n', 'unknown-key'],
      ['line without =', 'status\n', 'malformed-line'],
      ['odd hex digits', 'sense=700\n', 'bad-sense'],
      ['non-hex data', 'data=zz\n', 'bad-data'],
      ['status out of range', 'status=0x100\n', 'bad-status'],
      ['trailing junk in a number', 'resid=12abc\n', 'bad-resid'],
      ['negative delay', 'delay_ms=-1\n', 'bad-delay_ms'],
      ['empty errno', 'errno=\n', 'bad-errno'],
      ['binary garbage', Buffer.from([0xfe, 0x80, 0x3d, 0x0a, 0xfe, 0x3d, 0x3d]), 'unknown-key'],
      ['NUL byte', Buffer.from('status=0\n\0status=2\n'), 'nul-byte'],
      ['error in the queued section', 'status=0\n---\nhost_status=x\n', 'bad-host_status', [[0, 0], [-1, 5]]],
    ];
    for (const [name, text, error, expected = eio] of cases) {
      it(name, async () => {
        const dev = new FakeDevice(dir, `bad-${name.replace(/\W+/g, '-')}`);
        dev.scriptRaw(text);
        const results = await probeRun(dev.path, ['-n', '2']);
        expect(results.map((r) => [r.ret, r.errno])).toEqual(expected);
        const calls = dev.calls();
        expect(calls.at(-1)!.error).toBe(error);
        expect(calls.at(-1)!.errno).toBe(5);
      });
    }

    it('missing script', async () => {
      const dev = new FakeDevice(dir, 'noscript');
      rmSync(`${dev.path}.sg`);
      const r = await one(dev.path);
      expect(r).toMatchObject({ ret: -1, errno: 5 });
      expect(dev.calls()[0]!.error).toBe('no-script');
    });
  });

  it('is thread-safe: every queue slot used once, log lines intact', async () => {
    const dev = new FakeDevice(dir, 'threads');
    const threads = 8;
    const perThread = 25;
    const total = threads * perThread;
    dev.script(Array.from({ length: total + 1 }, (_, i) => ({ status: i % 256, resid: i })));
    const payload = Buffer.alloc(8192, 0x5a);
    const results = await probeRun(dev.path, [
      '-t', String(threads), '-n', String(perThread), '-d', 'to', '-l', '8192', '-w', payload.toString('hex'),
    ], PR_OUT_REGISTER);
    expect(results).toHaveLength(total);
    expect(results.map((r) => r.resid).sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i));

    const calls = dev.calls();
    expect(calls).toHaveLength(total);
    expect(calls.map((c) => c.slot).sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i));
    for (const c of calls) expect(c.dataOut.equals(payload)).toBe(true);
    expect(new Set(calls.map((c) => c.tid)).size).toBeGreaterThan(1);
  });
});
