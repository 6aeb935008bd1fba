import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readlinkSync, rmSync, writeFileSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import * as native from '../../src/native/binding.js';
import { countOpenFds } from '../helpers/fds.js';
import { sleep } from '../helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'pr-native-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pair(): [number, number] {
  return native.socketPair();
}

function openFiles(count: number): number[] {
  return Array.from({ length: count }, (_, i) => {
    const path = join(dir, `f${i}`);
    writeFileSync(path, String(i));
    return openSync(path, 'r');
  });
}

function target(fd: number): string {
  return readlinkSync(`/proc/self/fd/${fd}`);
}

describe('fd passing', () => {
  for (const count of [0, 1, 2, 10]) {
    it(`passes ${count} descriptors in one message, both directions`, () => {
      const [a, b] = pair();
      const files = openFiles(count);
      for (const [from, to] of [[a, b], [b, a]] as const) {
        expect(native.sendmsg(from, Buffer.from('hello'), 0, 5, files)).toBe(5);
        const buf = Buffer.alloc(16);
        const got = native.recvmsg(to, buf, 0, 16)!;
        expect(got.bytes).toBe(5);
        expect(buf.subarray(0, 5).toString()).toBe('hello');
        expect(got.fds).toHaveLength(count);
        expect(got.truncated).toBe(false);
        // Received descriptors are new numbers for the same open files.
        got.fds.forEach((fd, i) => {
          expect(fd).not.toBe(files[i]);
          expect(target(fd)).toBe(target(files[i]!));
          closeSync(fd);
        });
      }
      files.forEach((fd) => closeSync(fd));
      closeSync(a);
      closeSync(b);
    });
  }

  it('delivers the descriptor with the first read of the bytes it was sent with', () => {
    const [a, b] = pair();
    const [file] = openFiles(1);
    native.sendmsg(a, Buffer.alloc(16, 0x5e), 0, 16, [file!]);
    const buf = Buffer.alloc(16);
    const first = native.recvmsg(b, buf, 0, 5)!;
    expect(first.bytes).toBe(5);
    expect(first.fds).toHaveLength(1);
    const rest = native.recvmsg(b, buf, 5, 11)!;
    expect(rest.bytes).toBe(11);
    expect(rest.fds).toHaveLength(0);
    closeSync(first.fds[0]!);
    closeSync(file!);
    closeSync(a);
    closeSync(b);
  });

  it('merges a plain segment with a later one that carries a descriptor (why the server reads exact sizes)', () => {
    const [a, b] = pair();
    const [file] = openFiles(1);
    native.sendmsg(a, Buffer.from('AAAAAAAA'), 0, 8);
    native.sendmsg(a, Buffer.from('BBBBBBBB'), 0, 8, [file!]);
    const buf = Buffer.alloc(16);
    const exact = native.recvmsg(b, buf, 0, 8)!;
    expect(buf.subarray(0, exact.bytes).toString()).toBe('AAAAAAAA');
    expect(exact.fds).toHaveLength(0);
    native.sendmsg(a, Buffer.from('CCCCCCCC'), 0, 8);
    native.sendmsg(a, Buffer.from('DDDDDDDD'), 0, 8, [file!]);
    const rest = native.recvmsg(b, buf, 0, 16)!;
    expect(buf.subarray(0, rest.bytes).toString()).toBe('BBBBBBBB');
    expect(rest.fds).toHaveLength(1);
    const merged = native.recvmsg(b, buf, 0, 16)!;
    expect(buf.subarray(0, merged.bytes).toString()).toBe('CCCCCCCCDDDDDDDD');
    expect(merged.fds).toHaveLength(1);
    [...rest.fds, ...merged.fds].forEach((fd) => closeSync(fd));
    closeSync(file!);
    closeSync(a);
    closeSync(b);
  });

  it('reports EAGAIN as null and end of stream as 0 bytes', () => {
    const [a, b] = pair();
    expect(native.recvmsg(b, Buffer.alloc(4), 0, 4)).toBeNull();
    closeSync(a);
    expect(native.recvmsg(b, Buffer.alloc(4), 0, 4)).toEqual({ bytes: 0, fds: [], truncated: false });
    closeSync(b);
  });

  it('reports a vanished peer on send as EPIPE instead of raising SIGPIPE', () => {
    const [a, b] = pair();
    closeSync(b);
    expect(() => native.sendmsg(a, Buffer.from('x'), 0, 1)).toThrow(expect.objectContaining({ code: 'EPIPE', syscall: 'sendmsg' }));
    closeSync(a);
  });

  it('rejects out-of-range buffer windows before touching the socket', () => {
    const [a, b] = pair();
    expect(() => native.recvmsg(b, Buffer.alloc(4), 2, 4)).toThrow(TypeError);
    expect(() => native.sendmsg(a, Buffer.alloc(4), 0, 5)).toThrow(TypeError);
    closeSync(a);
    closeSync(b);
  });

  it('leaks no descriptor over 10k passes', () => {
    const [a, b] = pair();
    const [file] = openFiles(1);
    const before = countOpenFds();
    const buf = Buffer.alloc(16);
    for (let i = 0; i < 10_000; i++) {
      native.sendmsg(a, buf, 0, 16, [file!]);
      const got = native.recvmsg(b, buf, 0, 16)!;
      closeSync(got.fds[0]!);
    }
    expect(countOpenFds()).toBe(before);
    closeSync(file!);
    closeSync(a);
    closeSync(b);
  });
});

describe('unix listening sockets', () => {
  it('accepts with the peer credentials and creates the socket with the requested mode', async () => {
    const path = join(dir, 'listen.sock');
    const lfd = native.listenUnix(path, 4, 0o600, -1);
    const { statSync } = await import('node:fs');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const grouped = join(dir, 'grouped.sock');
    closeSync(native.listenUnix(grouped, 4, 0o660, 65534));
    expect(statSync(grouped)).toMatchObject({ gid: 65534 });
    expect(statSync(grouped).mode & 0o777).toBe(0o660);
    expect(native.accept(lfd)).toBeNull();
    const cfd = native.connectUnix(path);
    const conn = native.accept(lfd)!;
    expect(conn).toMatchObject({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    expect(native.getStatusFlags(conn.fd) & native.O_NONBLOCK).toBe(native.O_NONBLOCK);
    for (const fd of [cfd, conn.fd, lfd]) closeSync(fd);
  });

  it('refuses missing or mistyped arguments with a TypeError naming the call', () => {
    const call = (fn: unknown, ...args: unknown[]) => () => (fn as (...a: unknown[]) => unknown)(...args);
    expect(call(native.listenUnix, join(dir, 'short.sock'), 4, 0o600)).toThrow(new TypeError('listenUnix(path, backlog, mode, gid)'));
    expect(call(native.accept, 'x')).toThrow(new TypeError('accept(fd)'));
    expect(call(native.poll, 0, native.PollEvent.READABLE)).toThrow(new TypeError('poll(fd, events, callback)'));
  });

  it('fails with a coded error when nothing listens', () => {
    expect(() => native.connectUnix(join(dir, 'nobody.sock'))).toThrow(
      expect.objectContaining({ code: 'ENOENT', syscall: 'connect' }),
    );
  });
});

describe('fcntl', () => {
  it('reads and sets the status flags', () => {
    const [file] = openFiles(1);
    expect(native.getStatusFlags(file!) & native.O_ACCMODE).toBe(native.O_RDONLY);
    native.setStatusFlags(file!, native.getStatusFlags(file!) | native.O_NONBLOCK);
    expect(native.getStatusFlags(file!) & native.O_NONBLOCK).toBe(native.O_NONBLOCK);
    closeSync(file!);
  });

  it('raises EBADF with errno name and syscall', () => {
    expect(() => native.getStatusFlags(1_000_000)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'fcntl', errno: 9 }));
  });
});

describe('readiness watching', () => {
  it('calls back when readable, pauses, resumes and stops', async () => {
    const [a, b] = pair();
    const seen: number[] = [];
    let wake: () => void = () => {};
    const handle = native.poll(b, native.PollEvent.READABLE, (_status, events) => {
      seen.push(events);
      native.recvmsg(b, Buffer.alloc(8), 0, 8);
      wake();
    });
    const fired = () => new Promise<void>((resolve) => (wake = resolve));
    let next = fired();
    native.sendmsg(a, Buffer.from('x'), 0, 1);
    await next;
    expect(seen).toEqual([native.PollEvent.READABLE]);
    native.pollUpdate(handle, 0);
    native.sendmsg(a, Buffer.from('y'), 0, 1);
    await sleep(50);
    expect(seen).toHaveLength(1);
    next = fired();
    native.pollUpdate(handle, native.PollEvent.READABLE);
    await next;
    expect(seen).toHaveLength(2);
    native.pollClose(handle);
    native.sendmsg(a, Buffer.from('z'), 0, 1);
    await sleep(50);
    expect(seen).toHaveLength(2);
    closeSync(a);
    closeSync(b);
  });

  it('keeps an unreferenced watch alive through garbage collection', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const [a, b] = pair();
    let count = 0;
    native.poll(b, native.PollEvent.READABLE, () => {
      count++;
      native.recvmsg(b, Buffer.alloc(8), 0, 8);
    });
    for (let i = 0; i < 3; i++) {
      gc();
      await sleep(10);
    }
    native.sendmsg(a, Buffer.from('x'), 0, 1);
    await sleep(50);
    expect(count).toBe(1);
    closeSync(a);
  });
});

describe('SG_IO', () => {
  const readKeys = Buffer.from('5e000000000000200000000000000000', 'hex');

  async function sgioErrno(fd: number): Promise<number> {
    const res = await native.sgio(fd, readKeys, native.SgDirection.FROM_DEV, 8192, 1000);
    expect(res.sense).toHaveLength(96);
    expect(res.data).toHaveLength(8192);
    return res.errno;
  }

  it('returns the kernel errno for descriptors that are not SCSI devices', async () => {
    const nullFd = openSync('/dev/null', 'r');
    const urandom = openSync('/dev/urandom', 'r');
    const pathFd = openSync('/dev/null', native.O_PATH);
    expect(await sgioErrno(nullFd)).toBe(25);
    expect(await sgioErrno(urandom)).toBe(22);
    expect(await sgioErrno(pathFd)).toBe(9);
    [nullFd, urandom, pathFd].forEach((fd) => closeSync(fd));
  });

  it('runs many commands concurrently and returns no data for TO_DEV', async () => {
    const nullFd = openSync('/dev/null', constants.O_RDWR);
    const results = await Promise.all(
      Array.from({ length: 32 }, () =>
        native.sgio(nullFd, Buffer.from('5f000000000000001800', 'hex'), native.SgDirection.TO_DEV, Buffer.alloc(24), 1000),
      ),
    );
    expect(results.every((r) => r.errno === 25 && r.data === undefined && r.durationNs >= 0)).toBe(true);
    closeSync(nullFd);
  });

  it('validates its arguments', () => {
    expect(() => native.sgio(0, Buffer.alloc(17), native.SgDirection.NONE, 0, 1)).toThrow(TypeError);
    expect(() => native.sgio(0, Buffer.alloc(10), 7, 0, 1)).toThrow(TypeError);
  });
});

describe('sd_notify', () => {
  async function receiveDatagram(address: string, send: () => void): Promise<string> {
    const script = [
      'import socket, sys',
      'a = sys.argv[1]',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
      "s.bind('\\0' + a[1:] if a.startswith('@') else a)",
      "print('ready', flush=True)",
      's.settimeout(5)',
      'print(s.recv(4096).decode(), flush=True)',
    ].join('\n');
    const child = spawn('/usr/bin/python3', ['-c', script, address], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.startsWith('ready\n')) resolve();
      });
    });
    send();
    await new Promise((resolve) => child.on('exit', resolve));
    return out.slice('ready\n'.length).trim();
  }

  it('sends one datagram to a path socket', async () => {
    const path = join(dir, 'notify.sock');
    expect(await receiveDatagram(path, () => native.sdNotify(path, 'READY=1\nSTATUS=up'))).toBe('READY=1\nSTATUS=up');
  });

  it('sends to an abstract socket named with @', async () => {
    const name = `@pr-helper-test-${process.pid}`;
    expect(await receiveDatagram(name, () => native.sdNotify(name, 'STOPPING=1'))).toBe('STOPPING=1');
  });

  it('fails with a coded error when nobody listens', () => {
    expect(() => native.sdNotify(join(dir, 'none.sock'), 'READY=1')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });
});

describe('capabilities', () => {
  it('reads the calling thread capability sets', () => {
    const caps = native.capGet();
    expect(typeof caps.effective).toBe('bigint');
    if (process.getuid!() === 0) expect(caps.effective & (1n << 17n)).toBe(1n << 17n);
  });
});
