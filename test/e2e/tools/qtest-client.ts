// Line-oriented clients for QEMU's qtest protocol and QMP over unix sockets.
// Only node: built-ins; runs inside the rig VM against a QEMU started with
//   -qtest unix:SOCK,server=on,wait=off -qmp unix:SOCK2,server=on,wait=off
import { createConnection, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Connects to a unix socket, retrying while it does not exist or refuses (bounded). */
export async function connectUnix(path: string, timeoutMs: number): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const sock = createConnection(path);
        sock.once('connect', () => {
          sock.removeListener('error', reject);
          resolve(sock);
        });
        sock.once('error', reject);
      });
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`connect ${path}: ${(err as Error).message}`);
      await sleep(50);
    }
  }
}

/** Splits a socket's input into lines and hands them out one by one. */
export class LineSocket {
  private buffer = '';
  private readonly lines: string[] = [];
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        this.lines.push(this.buffer.slice(0, nl).replace(/\r$/, ''));
        this.buffer = this.buffer.slice(nl + 1);
      }
      this.wake?.();
    });
    sock.on('error', (err) => {
      this.failure = err;
      this.wake?.();
    });
    sock.on('close', () => {
      this.failure ??= new Error('connection closed');
      this.wake?.();
    });
  }

  send(line: string): void {
    this.sock.write(`${line}\n`);
  }

  async next(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.shift();
      if (line !== undefined) return line;
      if (this.failure) throw this.failure;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  close(): void {
    this.sock.destroy();
  }
}

const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

/**
 * qtest protocol (qemu/system/qtest.c): one command per line, answered by "OK [value]"
 * or "FAIL ..."/"ERR ...". Asynchronous "IRQ ..." lines only appear after
 * irq_intercept_*, which we never send, but are skipped anyway.
 */
export class Qtest {
  private constructor(private readonly io: LineSocket) {}

  static async connect(path: string, timeoutMs = 20_000): Promise<Qtest> {
    return new Qtest(new LineSocket(await connectUnix(path, timeoutMs)));
  }

  async cmd(line: string): Promise<string> {
    this.io.send(line);
    for (;;) {
      const reply = await this.io.next(10_000);
      if (reply.startsWith('IRQ')) continue;
      if (reply === 'OK') return '';
      if (reply.startsWith('OK ')) return reply.slice(3);
      throw new Error(`qtest "${line.slice(0, 60)}": ${reply}`);
    }
  }

  private async num(line: string): Promise<number> {
    return Number(BigInt(await this.cmd(line)));
  }

  outb(port: number, v: number): Promise<string> { return this.cmd(`outb ${hex(port)} ${hex(v)}`); }
  outw(port: number, v: number): Promise<string> { return this.cmd(`outw ${hex(port)} ${hex(v)}`); }
  outl(port: number, v: number): Promise<string> { return this.cmd(`outl ${hex(port)} ${hex(v >>> 0)}`); }
  inb(port: number): Promise<number> { return this.num(`inb ${hex(port)}`); }
  inw(port: number): Promise<number> { return this.num(`inw ${hex(port)}`); }
  inl(port: number): Promise<number> { return this.num(`inl ${hex(port)}`); }
  readw(addr: number): Promise<number> { return this.num(`readw ${hex(addr)}`); }

  write(addr: number, data: Buffer): Promise<string> {
    return this.cmd(`write ${hex(addr)} ${hex(data.length)} 0x${data.toString('hex')}`);
  }

  async read(addr: number, len: number): Promise<Buffer> {
    const reply = await this.cmd(`read ${hex(addr)} ${hex(len)}`);
    return Buffer.from(reply.replace(/^0x/, ''), 'hex');
  }

  memset(addr: number, len: number, value = 0): Promise<string> {
    return this.cmd(`memset ${hex(addr)} ${hex(len)} ${hex(value)}`);
  }

  close(): void {
    this.io.close();
  }
}

/** Minimal QMP client: greeting, qmp_capabilities, then execute(); events are skipped. */
export class Qmp {
  private constructor(private readonly io: LineSocket) {}

  static async connect(path: string, timeoutMs = 20_000): Promise<Qmp> {
    const qmp = new Qmp(new LineSocket(await connectUnix(path, timeoutMs)));
    await qmp.io.next(timeoutMs); // {"QMP": {...}} greeting
    await qmp.execute('qmp_capabilities');
    return qmp;
  }

  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    this.io.send(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }));
    for (;;) {
      const msg = JSON.parse(await this.io.next(20_000)) as Record<string, unknown>;
      if ('event' in msg) continue;
      if ('error' in msg) throw new Error(`QMP ${command}: ${JSON.stringify(msg.error)}`);
      return msg.return;
    }
  }

  close(): void {
    this.io.close();
  }
}
