import { describe, expect, it } from 'vitest';
import { DEFAULT_SOCKET, parseArguments } from '../../src/cli/options.js';

const parse = (...argv: string[]) => parseArguments(argv, '9.9.9');

describe('command line', () => {
  it('accepts every qemu-pr-helper option with its meaning', () => {
    const outcome = parse('-d', '-f', '/run/x.pid', '-k', '/run/x.sock', '-T', 'pr_*', '-u', 'nobody', '-g', 'nogroup', '-v', '-v', 'stray', 'words');
    expect(outcome).toMatchObject({
      kind: 'run',
      options: { daemon: true, pidfile: '/run/x.pid', socket: '/run/x.sock', socketGiven: true, trace: ['pr_*'], user: 'nobody', group: 'nogroup', verbose: 2, quiet: false },
    });
  });

  it('uses the original defaults', () => {
    expect(parse()).toMatchObject({ kind: 'run', options: { socket: DEFAULT_SOCKET, socketGiven: false, pidfile: null, daemon: false, simulate: null, sgioTimeoutMs: 30000, socketMode: 0o600 } });
    expect(parse('-d')).toMatchObject({ options: { pidfile: '/var/run/qemu-pr-helper.pid' } });
  });

  it('accepts our options', () => {
    expect(parse('--simulate')).toMatchObject({ options: { simulate: '' } });
    expect(parse('--simulate', '/etc/sim.json', '--socket-mode', '0660', '--allow-uid', '1,2', '--allow-uid', '3', '--allow-gid', '36', '--log-format', 'pretty', '--sgio-timeout', '5000', '--max-connections', '10', '-q')).toMatchObject({
      options: { simulate: '/etc/sim.json', socketMode: 0o660, allowUids: [1, 2, 3], allowGids: [36], logFormat: 'pretty', sgioTimeoutMs: 5000, maxConnections: 10, quiet: true },
    });
  });

  it('bounds resources by default; each bound is an option', () => {
    expect(parse()).toMatchObject({
      options: { maxConnections: 1024, maxConnectionsPerUid: 512, frameTimeoutMs: 10_000, maxSgioCommands: 256, maxDeviceCommands: 64, simMaxLuns: 1024, allowPartialDevices: false },
    });
    expect(parse('--max-connections-per-uid', '8', '--frame-timeout', '0', '--max-sgio-commands', '32', '--max-device-commands', '4', '--sim-max-luns', '16', '--allow-partial-devices')).toMatchObject({
      options: { maxConnectionsPerUid: 8, frameTimeoutMs: 0, maxSgioCommands: 32, maxDeviceCommands: 4, simMaxLuns: 16, allowPartialDevices: true },
    });
    expect(parse('--max-sgio-commands', '0')).toMatchObject({ kind: 'exit', code: 1, stderr: 'pr-helper: --max-sgio-commands must be between 1 and 4096, got 0\n' });
  });

  it('--metrics takes a Unix socket path or a loopback HOST:PORT', () => {
    expect(parse('--metrics', '/run/pr-helper/metrics.sock')).toMatchObject({ options: { metrics: { kind: 'unix', path: '/run/pr-helper/metrics.sock' } } });
    expect(parse('--metrics', '127.0.0.1:9100')).toMatchObject({ options: { metrics: { kind: 'tcp', host: '127.0.0.1', port: 9100 } } });
    expect(parse('--metrics', '[::1]:9100')).toMatchObject({ options: { metrics: { kind: 'tcp', host: '::1', port: 9100 } } });
    expect(parse('--metrics', 'localhost:9100')).toMatchObject({ options: { metrics: { kind: 'tcp', host: 'localhost', port: 9100 } } });
    expect(parse()).toMatchObject({ options: { metrics: null } });
  });

  it('prints help and version to stdout with status 0', () => {
    const help = parse('--help');
    expect(help).toMatchObject({ kind: 'exit', code: 0 });
    expect(help.kind === 'exit' && help.stdout).toContain('--socket <path>');
    expect(parse('-V')).toEqual({ kind: 'exit', code: 0, stdout: 'pr-helper 9.9.9\n' });
  });

  it.each([
    [['--bogus'], "pr-helper: unknown option '--bogus'\nTry 'pr-helper --help' for more information.\n"],
    [['-k', 'relative.sock'], 'pr-helper: socket path must be absolute\n'],
    [['-k', '/' + 'a'.repeat(110)], `pr-helper: UNIX socket path '/${'a'.repeat(110)}' is too long\n`],
    [['--socket-mode', '999'], "pr-helper: --socket-mode must be octal like 0660, got '999'\n"],
    [['--sgio-timeout', '0'], 'pr-helper: --sgio-timeout must be between 1 and 3600000, got 0\n'],
    [['--allow-uid', 'root'], "pr-helper: --allow-uid must be a number, got 'root'\n"],
    [['--log-format', 'xml'], "pr-helper: option '--log-format <format>' argument 'xml' is invalid. Allowed choices are json, pretty.\nTry 'pr-helper --help' for more information.\n"],
    [['-k'], "pr-helper: option '-k, --socket <path>' argument missing\nTry 'pr-helper --help' for more information.\n"],
  ])('rejects %j with one clear message and status 1', (argv, stderr) => {
    expect(parse(...argv)).toEqual({ kind: 'exit', code: 1, stderr });
  });
});

describe('-T', () => {
  it('lists the trace events with -T help', () => {
    const outcome = parse('-T', 'help');
    expect(outcome).toMatchObject({ kind: 'exit', code: 0 });
    expect(outcome.kind === 'exit' && outcome.stdout).toMatch(/^pr_helper_connection .*\npr_helper_request .*\n$/);
  });

  it.each([
    ['pr_helper_request', true],
    ['pr_helper_*', true],
    ['*', true],
    ['pr_helper_connection', false],
    ['qio_channel_*', false],
  ])('pattern %s selects pr_helper_request: %s', async (pattern, selected) => {
    const { traceSelects } = await import('../../src/log/trace-events.js');
    expect(traceSelects(pattern, 'pr_helper_request')).toBe(selected);
  });

  it("reads QEMU's -T keys: enable= and bare patterns select, file= is the log file", () => {
    expect(parse('-T', 'enable=pr_helper_request', '-T', 'pr_helper_connection,file=/var/log/pr.log')).toMatchObject({
      kind: 'run',
      options: { trace: ['pr_helper_request', 'pr_helper_connection'], logFile: '/var/log/pr.log' },
    });
    expect(parse('-T', 'file=/var/log/pr.log', '--log-file', '/var/log/pr.log')).toMatchObject({ options: { trace: [], logFile: '/var/log/pr.log' } });
    expect(parse()).toMatchObject({ options: { logFile: null, logFormat: null } });
  });

  it.each([
    [['-T', 'events=/etc/events'], "pr-helper: -T events=/etc/events: events= is not supported; give the event patterns with -T PATTERN ('-T help' lists them)\n"],
    [['-T', 'pr_*,backend=log'], "pr-helper: -T pr_*,backend=log: unknown key 'backend' (QEMU's keys are enable=, events= and file=)\n"],
    [['-T', 'file='], 'pr-helper: -T file=: file= needs a path\n'],
    [['-T', 'file=/a.log', '--log-file', '/b.log'], "pr-helper: one log file only, got '/b.log' and '/a.log' (--log-file, -T file=)\n"],
    [['--log-file', 'pr.log'], "pr-helper: log file path must be absolute, got 'pr.log'\n"],
    [['--metrics', '0.0.0.0:9100'], "pr-helper: --metrics listens on loopback (127.0.0.1, ::1, localhost) or a Unix socket only, got the address '0.0.0.0'\n"],
    [['--metrics', 'metrics.example:9100'], "pr-helper: --metrics listens on loopback (127.0.0.1, ::1, localhost) or a Unix socket only, got the host name 'metrics.example'\n"],
    [['--metrics', '9100'], "pr-helper: --metrics takes an absolute socket path or HOST:PORT, got '9100'\n"],
    [['--metrics', '127.0.0.1:70000'], 'pr-helper: --metrics port must be between 0 (any free port) and 65535, got 70000\n'],
  ])('refuses %j with one clear line', (argv, stderr) => {
    expect(parse(...argv)).toEqual({ kind: 'exit', code: 1, stderr });
  });
});
