import { spawn } from 'node:child_process';

/** The first datagram on a Unix datagram socket, newlines shown as '|'; null when none came in time. */
export interface NotifyReceiver {
  readonly received: Promise<string | null>;
}

/**
 * An sd_notify receiver bound at `path` (Node cannot bind Unix datagram
 * sockets), resolved once it is bound. It exits after the first datagram or
 * after `timeoutS`.
 */
export async function startNotifyReceiver(path: string, timeoutS: number): Promise<NotifyReceiver> {
  const receiver = spawn('/usr/bin/python3', ['-c', [
    'import socket, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.bind(sys.argv[1])',
    "print('bound', flush=True)",
    's.settimeout(float(sys.argv[2]))',
    'try:',
    '    print("got " + s.recv(4096).decode().replace(chr(10), "|"), flush=True)',
    'except socket.timeout:',
    '    print("nothing", flush=True)',
  ].join('\n'), path, String(timeoutS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const exited = new Promise<void>((resolve) => receiver.on('exit', () => resolve()));
  await new Promise<void>((resolve) => receiver.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('bound')) resolve(); }));
  return { received: exited.then(() => /^got (.*)$/m.exec(out)?.[1] ?? null) };
}
