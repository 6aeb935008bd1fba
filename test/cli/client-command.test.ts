/**
 * `pr-helper client` end to end: the compiled CLI against a daemon serving a
 * simulated LUN reached by two initiators through two image files.
 */
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { writeSimConfig } from '../helpers/sim-config.js';

const NODE_A = 'iqn.2008-11.org.linux-kvm:node-a';
const NODE_B = 'iqn.2008-11.org.linux-kvm:node-b';

let dir: string;
let socket: string;
let imageA: string;
let imageB: string;
let daemon: RunningDaemon;

/** The client as node A (target port 1) or node B (target port 2). */
const asA = (...args: string[]) => runCli(['client', '--socket', socket, '--device', imageA, ...args]);
const asB = (...args: string[]) => runCli(['client', '--socket', socket, '--device', imageB, ...args]);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'prh-client-'));
  socket = join(dir, 'prh.sock');
  imageA = join(dir, 'a.img');
  imageB = join(dir, 'b.img');
  for (const image of [imageA, imageB]) {
    writeFileSync(image, '');
    truncateSync(image, 1 << 20);
  }
  const config = writeSimConfig(dir, [{ name: 'disk0', paths: [{ path: imageA, initiator: NODE_A }, { path: imageB, initiator: NODE_B, targetPort: 2 }] }]);
  daemon = await startDaemon(socket, ['--simulate', config]);
});

afterAll(async () => {
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('pr-helper client against the simulated disk', () => {
  it('registers from both nodes silently', async () => {
    expect(await asA('register', '--sa-key', '0xaaaa')).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await asB('register', '--sa-key', 'bbbb')).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('read-keys, human output', async () => {
    expect(await asA('read-keys')).toEqual({
      code: 0,
      stdout: 'PR generation=0x2, 2 registered reservation keys follow:\n    0xaaaa\n    0xbbbb\n',
      stderr: '',
    });
  });

  it('read-keys --json', async () => {
    const r = await asB('read-keys', '--json');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      JSON.stringify({ action: 'read-keys', status: 'GOOD', generation: 2, keys: ['0xaaaa', '0xbbbb'], truncated: false }, null, 2) + '\n',
    );
  });

  it('read-keys with a small --alloc-length lists what fits and warns', async () => {
    const r = await asA('read-keys', '--alloc-length', '16');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('PR generation=0x2, 2 registered reservation keys follow:\n    0xaaaa\n');
    expect(r.stderr).toBe("pr-helper client: warning: the device has more data than the 16 bytes returned; raise --alloc-length\n");
  });

  it('reserve from the holder succeeds; a second reservation conflicts with exit status 24', async () => {
    expect((await asA('reserve', '--key', '0xaaaa', '--type', 'wr-ex')).code).toBe(0);
    expect(await asB('reserve', '--key', '0xbbbb', '--type', 'ex-ac')).toEqual({
      code: 24,
      stdout: '',
      stderr: 'pr-helper client: PR OUT RESERVE: RESERVATION CONFLICT\n',
    });
  });

  it('the conflict in JSON', async () => {
    const r = await asB('release', '--key', '0xbbbb', '--type', 'wr-ex', '--json');
    expect(r.code).toBe(0);
    const conflict = await asB('reserve', '--key', '0xbbbb', '--type', '3', '--json');
    expect(conflict.code).toBe(24);
    expect(JSON.parse(conflict.stdout)).toEqual({
      action: 'reserve',
      error: 'PR OUT RESERVE: RESERVATION CONFLICT',
      exitCode: 24,
      status: 'RESERVATION CONFLICT',
      statusCode: 0x18,
      sense: null,
    });
  });

  it('an obsolete type is an ILLEGAL REQUEST, exit status 5, with the sense decoded', async () => {
    expect(await asA('reserve', '--key', '0xaaaa', '--type', '2')).toEqual({
      code: 5,
      stdout: '',
      stderr: 'pr-helper client: PR OUT RESERVE: CHECK CONDITION: ILLEGAL REQUEST, asc/ascq 24/00 (invalid field in CDB)\n',
    });
  });

  it('PR OUT through a read-only descriptor is refused like QEMU read-only drives (exit status 9)', async () => {
    const r = await asA('register', '--key', '0xaaaa', '--sa-key', '0xaaaa', '--readonly');
    expect(r.code).toBe(9);
    expect(r.stderr).toBe(
      'pr-helper client: PR OUT REGISTER: CHECK CONDITION: ILLEGAL REQUEST, asc/ascq 20/00 (invalid command operation code)\n',
    );
  });

  it('read-reservation shows the holder', async () => {
    expect(await asB('read-reservation', '--readonly')).toEqual({
      code: 0,
      stdout: 'PR generation=0x2, Reservation follows:\n    Key=0xaaaa\n    scope: LU_SCOPE,  type: Write Exclusive\n',
      stderr: '',
    });
  });

  it('preempt takes the reservation; the preempted node sees UNIT ATTENTION once (exit status 6)', async () => {
    expect((await asB('preempt', '--key', '0xbbbb', '--sa-key', '0xaaaa', '--type', 'ex-ac')).code).toBe(0);
    expect(await asA('read-reservation')).toEqual({
      code: 6,
      stdout: '',
      stderr: 'pr-helper client: PR IN READ RESERVATION: CHECK CONDITION: UNIT ATTENTION, asc/ascq 2a/05 (registrations preempted)\n',
    });
    expect(await asA('read-reservation')).toEqual({
      code: 0,
      stdout: 'PR generation=0x3, Reservation follows:\n    Key=0xbbbb\n    scope: LU_SCOPE,  type: Exclusive Access\n',
      stderr: '',
    });
  });

  it('read-reservation --json', async () => {
    const r = await asB('read-reservation', '--json');
    expect(JSON.parse(r.stdout)).toEqual({
      action: 'read-reservation',
      status: 'GOOD',
      generation: 3,
      reservation: { key: '0xbbbb', scope: 0, type: 3, typeName: 'Exclusive Access' },
      truncated: false,
    });
  });

  it('register-move hands the reservation to node A on target port 1', async () => {
    const r = await asB('register-move', '--key', '0xbbbb', '--sa-key', '0xcccc', '--relative-target-port', '1', '--transport-id', NODE_A);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('read-full-status shows both registrations with their TransportIDs', async () => {
    expect(await asA('read-full-status')).toEqual({
      code: 0,
      stdout: [
        'PR generation=0x4',
        '    Key=0xbbbb',
        '      All target ports bit clear',
        '      Relative port address: 0x2',
        '      not reservation holder',
        '      Transport Id of initiator:',
        `        iSCSI name: ${NODE_B}`,
        '    Key=0xcccc',
        '      All target ports bit clear',
        '      Relative port address: 0x1',
        '      << Reservation holder >>',
        '      scope: LU_SCOPE,  type: Exclusive Access',
        '      Transport Id of initiator:',
        `        iSCSI name: ${NODE_A}`,
        '',
      ].join('\n'),
      stderr: '',
    });
    const json = JSON.parse((await asB('read-full-status', '--json')).stdout);
    expect(json).toEqual({
      action: 'read-full-status',
      status: 'GOOD',
      generation: 4,
      registrations: [
        {
          key: '0xbbbb',
          allTgPt: false,
          rHolder: false,
          scope: 0,
          type: 0,
          typeName: null,
          relativeTargetPort: 2,
          transportId: { protocol: 'iscsi', name: NODE_B, isid: null },
          initiator: NODE_B,
          transportIdError: null,
        },
        {
          key: '0xcccc',
          allTgPt: false,
          rHolder: true,
          scope: 0,
          type: 3,
          typeName: 'Exclusive Access',
          relativeTargetPort: 1,
          transportId: { protocol: 'iscsi', name: NODE_A, isid: null },
          initiator: NODE_A,
          transportIdError: null,
        },
      ],
      truncated: false,
    });
  });

  it('report-capabilities', async () => {
    expect(await asA('report-capabilities')).toEqual({
      code: 0,
      stdout: [
        'Report capabilities response:',
        '  Replace Lost Reservation Capable(RLR_C): 0',
        '  Compatible Reservation Handling(CRH): 1',
        '  Specify Initiator Ports Capable(SIP_C): 1',
        '  All Target Ports Capable(ATP_C): 1',
        '  Persist Through Power Loss Capable(PTPL_C): 1',
        '  Type Mask Valid(TMV): 1',
        '  Allow Commands: 4',
        '  Persist Through Power Loss Active(PTPL_A): 0',
        '    Support indicated in Type mask:',
        '      Write Exclusive, all registrants: 1',
        '      Exclusive Access, registrants only: 1',
        '      Write Exclusive, registrants only: 1',
        '      Exclusive Access: 1',
        '      Write Exclusive: 1',
        '      Exclusive Access, all registrants: 1',
        '',
      ].join('\n'),
      stderr: '',
    });
    expect(JSON.parse((await asA('report-capabilities', '--json')).stdout)).toMatchObject({
      action: 'report-capabilities',
      length: 8,
      sipC: true,
      tmv: true,
      allowCommands: 4,
      typeMask: { wrEx: true, exAc: true, wrExRo: true, exAcRo: true, wrExAr: true, exAcAr: true },
    });
  });

  it('clear removes everything; the other node learns it from a UNIT ATTENTION', async () => {
    expect((await asA('clear', '--key', '0xcccc')).code).toBe(0);
    expect((await asB('read-keys')).stderr).toBe(
      'pr-helper client: PR IN READ KEYS: CHECK CONDITION: UNIT ATTENTION, asc/ascq 2a/03 (reservations preempted)\n',
    );
    expect(await asA('read-keys')).toEqual({
      code: 0,
      stdout: 'PR generation=0x5, there are NO registered reservation keys\n',
      stderr: '',
    });
    expect(await asA('read-reservation')).toEqual({ code: 0, stdout: 'PR generation=0x5, there is NO reservation held\n', stderr: '' });
  });

  it('register with --transport-id also registers the named initiator (SPEC_I_PT) on the same target port', async () => {
    expect(await asB('register', '--sa-key', '0xdddd', '--transport-id', NODE_A)).toEqual({ code: 0, stdout: '', stderr: '' });
    const status = JSON.parse((await asB('read-full-status', '--json')).stdout) as { registrations: object[] };
    expect(status.registrations).toEqual([
      expect.objectContaining({ key: '0xdddd', relativeTargetPort: 2, initiator: NODE_B }),
      expect.objectContaining({ key: '0xdddd', relativeTargetPort: 2, initiator: NODE_A }),
    ]);
  });
});

describe('pr-helper client usage and local failures', () => {
  const usage = (message: string) => `pr-helper client: ${message}; see 'pr-helper client --help'\n`;

  it.each([
    [['read-keys'], usage("required option '-d, --device <path>' not specified")],
    [['--device', '/dev/null', 'frobnicate'], usage(`command-argument value 'frobnicate' is invalid for argument 'action'. Allowed choices are read-keys, read-reservation, report-capabilities, read-full-status, register, register-ignore, reserve, release, clear, preempt, preempt-abort, register-move.`)],
    [['--device', '/dev/null'], usage("missing required argument 'action'")],
    [['--device', '/dev/null', 'reserve', '--key', '1'], usage('reserve needs --type')],
    [['--device', '/dev/null', 'reserve', '--key', 'xyz', '--type', 'wr-ex'], usage("option '--key <hex>' argument 'xyz' is invalid. expected up to 16 hex digits (0x optional, as sg_persist).")],
    [['--device', '/dev/null', 'reserve', '--key', '1', '--type', 'wr'], usage("option '--type <type>' argument 'wr' is invalid. expected wr-ex, ex-ac, wr-ex-ro, ex-ac-ro, wr-ex-ar, ex-ac-ar or a number 0-15.")],
    [['--device', '/dev/null', 'read-keys', '--sa-key', '1'], usage('--sa-key does not apply to read-keys')],
    [['--device', '/dev/null', 'clear', '--type', 'wr-ex'], usage('--type does not apply to clear')],
    [['--device', '/dev/null', 'register', '--alloc-length', '100'], usage('--alloc-length applies to PR IN actions only, not register')],
    [['--device', '/dev/null', 'read-keys', '--alloc-length', '9000'], usage("option '--alloc-length <n>' argument '9000' is invalid. expected a number from 0 to 8192 (decimal or 0x hex).")],
    [['--device', '/dev/null', 'register-move', '--relative-target-port', '1'], usage('register-move needs exactly one --transport-id (the destination initiator)')],
    [['--device', '/dev/null', 'register-move', '--transport-id', NODE_A], usage('register-move needs --relative-target-port')],
    [['--device', '/dev/null', 'register', '--transport-id', 'bogus'], usage(`option '--transport-id <name>' argument 'bogus' is invalid. initiator name "bogus" is not recognised: expected an iSCSI name (iqn., eui., naa.), a SAS address (naa.<16 hex digits>) or an FC WWPN (fc. or wwpn: followed by 16 hex digits or 8 colon-separated octets).`)],
    [['--device', '/dev/null', 'read-keys', '--bogus'], usage("unknown option '--bogus'")],
  ])('%j', async (args, stderr) => {
    expect(await runCli(['client', '--socket', '/nonexistent.sock', ...args])).toEqual({ code: 1, stdout: '', stderr });
  });

  it('--help documents the actions and the exit statuses', async () => {
    const r = await runCli(['client', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: pr-helper client --socket S --device PATH ACTION [options]');
    expect(r.stdout).toContain('register-move');
    expect(r.stdout).toContain('24  RESERVATION CONFLICT');
    expect(r.stdout).toContain(' 6  CHECK CONDITION, UNIT ATTENTION');
  });

  it('a device that cannot be opened: exit status 15', async () => {
    const r = await runCli(['client', '--socket', '/nonexistent.sock', '--device', '/nonexistent/disk', 'read-keys']);
    expect(r.code).toBe(15);
    expect(r.stderr).toMatch(/^pr-helper client: cannot open \/nonexistent\/disk: ENOENT/);
  });

  it('no helper on the socket: exit status 1 with a pointer to check', async () => {
    const r = await runCli(['client', '--socket', '/nonexistent.sock', '--device', '/dev/null', 'read-keys']);
    expect(r).toEqual({
      code: 1,
      stdout: '',
      stderr: "pr-helper client: /nonexistent.sock does not exist: is pr-helper running?; try 'pr-helper check --socket /nonexistent.sock'\n",
    });
  });

  it('the daemon command line is untouched', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: pr-helper \[OPTIONS\] FILE/);
  });
});

describe('pr-helper client sequences (then)', () => {
  it('runs actions on one connection, so one process is one initiator of the embedded default', async () => {
    const sequenceDir = mkdtempSync(join(tmpdir(), 'prh-then-'));
    const sock = join(sequenceDir, 'd.sock');
    const image = join(sequenceDir, 'shared.img');
    writeFileSync(image, Buffer.alloc(4096));
    const embedded = await startDaemon(sock, ['--simulate'], { env: { XDG_STATE_HOME: sequenceDir } });
    const node1 = await runCli(['client', '--socket', sock, '--device', image, 'register', '--sa-key', '0xaa', 'then', 'reserve', '--key', '0xaa', '--type', 'wr-ex', 'then', 'read-reservation']);
    expect(node1).toEqual({ code: 0, stdout: 'PR generation=0x1, Reservation follows:\n    Key=0xaa\n    scope: LU_SCOPE,  type: Write Exclusive\n', stderr: '' });
    // Another process is another node: not registered, so its RESERVE conflicts.
    const node2 = await runCli(['client', '--socket', sock, '--device', image, 'read-keys', 'then', 'reserve', '--key', '0xbb', '--type', 'wr-ex', 'then', 'read-keys']);
    expect(node2).toEqual({
      code: 24,
      stdout: 'PR generation=0x1, 1 registered reservation key follows:\n    0xaa\n',
      stderr: 'pr-helper client: PR OUT RESERVE: RESERVATION CONFLICT\n',
    });
    await embedded.stop();
    rmSync(sequenceDir, { recursive: true, force: true });
  });

  it('prints one JSON array for a sequence with --json, the failed action last', async () => {
    const result = await asA('--json', 'read-keys', 'then', 'release', '--key', '0x12345', '--type', 'wr-ex', 'then', 'read-keys');
    expect(result.code).toBe(24);
    const parsed = JSON.parse(result.stdout) as { action: string; status?: string; error?: string }[];
    expect(parsed.map((r) => [r.action, r.error ?? r.status])).toEqual([
      ['read-keys', 'GOOD'],
      ['release', 'PR OUT RELEASE: RESERVATION CONFLICT'],
    ]);
  });

  it('rejects a usage error in any action of the sequence before sending anything', async () => {
    const result = await asA('read-keys', 'then', 'reserve', '--key', '0xaa');
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toContain('reserve needs --type');
  });
});
