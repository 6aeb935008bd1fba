import { readdirSync } from 'node:fs';
import { sleep } from './wait.js';

/** Number of descriptors open in this process, or in another one by pid. */
export function countOpenFds(pid: number | 'self' = 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The descriptor count of `pid` once it has stopped changing (connections close asynchronously). */
export async function settledFdCount(pid: number, target?: number): Promise<number> {
  let last = countOpenFds(pid);
  for (let stable = 0, i = 0; stable < 3 && i < 100; i++) {
    await sleep(20);
    const now = countOpenFds(pid);
    stable = now === last || now === target ? stable + 1 : 0;
    last = now;
  }
  return last;
}
