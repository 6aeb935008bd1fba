/** Command line of `npm run bench` (node dist/bench/run.js [options]). */
import { availableParallelism } from 'node:os';

export interface BenchOptions {
  readonly reps: number;
  readonly json: string;
  readonly quick: boolean;
  /** Requests of the long run (RSS and descriptor growth). */
  readonly soakRequests: number;
  /** Load-generator processes. */
  readonly procs: number;
  readonly warmupMs: number;
  readonly windowMs: number;
  readonly isolationDelayMs: number;
  readonly isolationWindowMs: number;
  readonly blockedClients: number;
  /** Pause before reading idle RSS and between soak phases. */
  readonly settleMs: number;
  /** Sections to run; all by default. */
  readonly only: ReadonlySet<Section>;
}

export const SECTIONS = ['devnull', 'sim', 'isolation', 'soak'] as const;
export type Section = (typeof SECTIONS)[number];

export const USAGE = `usage: node dist/bench/run.js [options]
  --quick            1 repetition, short windows, 20k long-run requests (< 20 s)
  --reps N           repetitions, alternating the daemons' order (default 5)
  --json FILE        where to write the results (default bench-results/latest.json)
  --requests N       requests of the long run (default 1000000)
  --procs N          load-generator processes (default: number of CPUs, at least 2)
  --window-ms N      measuring window per load case (default 2000)
  --warmup-ms N      load before each window (default 500)
  --only LIST        comma-separated sections: devnull (also start-up and idle RSS), sim, isolation, soak
`;

function positive(flag: string, value: string | undefined): number {
  const n = Number(value);
  if (value === undefined || !Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a positive integer, got ${value ?? 'nothing'}`);
  return n;
}

export function parseBenchOptions(argv: readonly string[]): BenchOptions | 'help' {
  const quick = argv.includes('--quick');
  let reps = quick ? 1 : 5;
  let json = 'bench-results/latest.json';
  let soakRequests = quick ? 20_000 : 1_000_000;
  let procs = Math.max(2, availableParallelism());
  let windowMs = quick ? 300 : 2000;
  let warmupMs = quick ? 150 : 500;
  let only = new Set<Section>(SECTIONS);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    switch (arg) {
      case '--quick':
        break;
      case '--help':
      case '-h':
        return 'help';
      case '--reps':
        reps = positive(arg, argv[++i]);
        break;
      case '--json':
        json = argv[++i] ?? '';
        if (!json) throw new Error('--json needs a file name');
        break;
      case '--requests':
        soakRequests = positive(arg, argv[++i]);
        break;
      case '--procs':
        procs = positive(arg, argv[++i]);
        break;
      case '--window-ms':
        windowMs = positive(arg, argv[++i]);
        break;
      case '--warmup-ms':
        warmupMs = positive(arg, argv[++i]);
        break;
      case '--only': {
        const list = (argv[++i] ?? '').split(',').filter(Boolean);
        const bad = list.find((x) => !(SECTIONS as readonly string[]).includes(x));
        if (list.length === 0 || bad !== undefined) throw new Error(`--only takes a list of ${SECTIONS.join(', ')}`);
        only = new Set(list as Section[]);
        break;
      }
      default:
        throw new Error(`unknown option ${arg}`);
    }
  }
  return {
    reps,
    json,
    quick,
    soakRequests,
    procs,
    warmupMs,
    windowMs,
    isolationDelayMs: quick ? 800 : 2000,
    isolationWindowMs: quick ? 300 : 1000,
    blockedClients: 16,
    settleMs: quick ? 200 : 1000,
    only,
  };
}
