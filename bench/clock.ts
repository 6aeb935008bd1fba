/**
 * One time base for every process of a benchmark run: CLOCK_MONOTONIC in
 * milliseconds, as process.hrtime() reads it. performance.now() shares that
 * clock (libuv's uv_hrtime) and is cheaper per call, so it is only offset once.
 */
const offset = Number(process.hrtime.bigint()) / 1e6 - performance.now();

export function nowMs(): number {
  return performance.now() + offset;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
