import { closeSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { FdStream } from '../io/fd-stream.js';
import * as native from '../native/binding.js';
import { createListenSocket, unlinkQuietly } from '../server/listen-socket.js';
import type { StatusDocument } from './status.js';

/**
 * Where a socket-activated daemon (whose socket path it does not know) puts
 * its status socket; the shipped unit creates the directory (RuntimeDirectory=).
 */
export const ACTIVATED_STATUS_SOCKET = '/run/pr-helper/status.sock';
/** A reader that does not take the document in this time is dropped. */
const WRITE_TIMEOUT_MS = 5000;
const ACCEPT_RETRY_MS = 250;

/** The status socket of a daemon serving `helperSocket` (null: socket-activated). */
export function statusSocketPath(helperSocket: string | null): string {
  return helperSocket === null ? ACTIVATED_STATUS_SOCKET : `${helperSocket}.status`;
}

export interface StatusSocket {
  close(): void;
}

/**
 * The control socket of `pr-helper status`: whoever connects gets the
 * status document as one JSON line, then end of stream. Mode 0600, and the
 * peer must be root or the daemon's own user (SO_PEERCRED), since the
 * document names the VMs and devices behind each connection. A socket that
 * cannot be created costs a warning, not the daemon.
 */
export function openStatusSocket(path: string, document: () => StatusDocument, log: Logger): StatusSocket | null {
  let fd: number;
  try {
    if (path === ACTIVATED_STATUS_SOCKET) mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    fd = createListenSocket(path, { mode: 0o600, backlog: 8 });
  } catch (err) {
    log.warn({ statusSocket: path, err: (err as Error).message }, 'no status socket: pr-helper status will not reach this daemon');
    return null;
  }
  const self = process.geteuid!();
  let closed = false;
  const answer = (conn: native.AcceptedConnection): void => {
    const stream = new FdStream(conn.fd);
    if (conn.uid !== 0 && conn.uid !== self) {
      log.debug({ peer: { pid: conn.pid, uid: conn.uid, gid: conn.gid } }, 'status refused: root or the daemon user only');
      stream.close();
      return;
    }
    const timer = setTimeout(() => stream.close(), WRITE_TIMEOUT_MS);
    stream
      .write(Buffer.from(JSON.stringify(document()) + '\n'))
      .catch(() => {})
      .finally(() => {
        clearTimeout(timer);
        stream.close();
      });
  };
  const watch = native.poll(fd, native.PollEvent.READABLE, () => {
    for (;;) {
      let conn: native.AcceptedConnection | null;
      try {
        conn = native.accept(fd);
      } catch {
        // Out of descriptors: the connection stays queued and the socket
        // readable; polling on would spin, so pause a while.
        native.pollUpdate(watch, 0);
        setTimeout(() => closed || native.pollUpdate(watch, native.PollEvent.READABLE), ACCEPT_RETRY_MS).unref();
        return;
      }
      if (!conn) return;
      answer(conn);
    }
  });
  return {
    close() {
      closed = true;
      native.pollClose(watch);
      closeSync(fd);
      unlinkQuietly(path);
    },
  };
}
