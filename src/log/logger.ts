import { constants, openSync } from 'node:fs';
import { pino, type Level, type Logger } from 'pino';
import { formatPretty, syslogPriority, type LogFormat } from './format.js';
import { isJournalStream } from './journald.js';
import { RepeatedLines } from './repeated-lines.js';
import { LogSink } from './sink.js';

/**
 * qemu-pr-helper's verbosity (scsi/qemu-pr-helper.c: -q silences the
 * per-connection messages, -v/-vv raise loglevel) on pino levels:
 * -q keeps errors only, the default shows connections, the audit trail and
 * failures, -v adds one line per request, -vv everything.
 */
export function levelFor(verbose: number, quiet: boolean): Level {
  if (quiet) return 'error';
  if (verbose >= 2) return 'trace';
  if (verbose === 1) return 'debug';
  return 'info';
}

export interface LoggingOptions {
  readonly level: Level;
  /** null: pretty under journald (which stamps its own time), json elsewhere. */
  readonly format: LogFormat | null;
  /** Append to this file instead of stderr. */
  readonly file: string | null;
}

export interface Logging {
  readonly log: Logger;
  /** For lines a peer can repeat at will; see RepeatedLines. */
  readonly repeated: RepeatedLines;
  /** Where the lines go, in words: "stderr", "journald (stderr)" or the file. */
  readonly destination: string;
  /** Log lines lost so far (reader too slow, or gone). */
  droppedLines(): number;
  /** Opens the log file again under its name (after rotation); a no-op for stderr. */
  reopen(): void;
}

/** The log file cannot be opened: a start-up error. */
export class LogFileError extends Error {}

const STDERR = 2;

function openLogFile(path: string): number {
  // O_APPEND: every write lands at the current end, so copytruncate by
  // logrotate leaves no hole. O_NONBLOCK: a FIFO given as the file cannot
  // block us either. Node adds O_CLOEXEC itself.
  return openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK, 0o600);
}

/** Turns pino's JSON lines into what the destination wants, then hands them to the sink. */
function lineWriter(sink: LogSink, format: LogFormat, journal: boolean): { write(line: string): void } {
  if (!journal) return format === 'json' ? sink : { write: (line) => sink.write(formatPretty(line)) };
  // pino sets lastLevel before each write on destinations that ask for it (docs/api.md, "metadata").
  const writer = {
    [Symbol.for('pino.metadata')]: true,
    lastLevel: 30,
    write(line: string) {
      sink.write(`<${syslogPriority(writer.lastLevel)}>${format === 'json' ? line : formatPretty(line, false)}`);
    },
  };
  return writer;
}

/**
 * The daemon's log: pino records, formatted for their destination, written
 * through a bounded non-blocking sink so that the log can never stall or kill
 * the daemon (see LogSink).
 */
export function createLogging(options: LoggingOptions, env: NodeJS.ProcessEnv = process.env): Logging {
  let fd = STDERR;
  if (options.file !== null) {
    try {
      fd = openLogFile(options.file);
    } catch (err) {
      throw new LogFileError(`--log-file: ${(err as Error).message}`);
    }
  }
  const journal = options.file === null && isJournalStream(env, STDERR);
  const format = options.format ?? (journal ? 'pretty' : 'json');
  let log: Logger | null = null;
  const sink = new LogSink(fd, options.file !== null, (count) =>
    log?.warn({ dropped: count }, 'log lines dropped: the log reader did not keep up'),
  );
  // Whatever is still queued gets one last chance, and stderr gets its flags back.
  process.on('exit', () => {
    sink.flushNow();
    sink.restore();
  });
  log = pino({ level: options.level, base: { pid: process.pid }, name: 'pr-helper' }, lineWriter(sink, format, journal));
  const logger = log;
  return {
    log: logger,
    repeated: new RepeatedLines(logger),
    destination: options.file ?? (journal ? 'journald (stderr)' : 'stderr'),
    droppedLines: () => sink.dropped,
    reopen() {
      if (options.file === null) {
        logger.info('no --log-file to reopen');
        return;
      }
      try {
        sink.replace(openLogFile(options.file));
        logger.info({ file: options.file }, 'log file reopened');
      } catch (err) {
        logger.error({ file: options.file, err }, 'cannot reopen the log file; still writing to the old one');
      }
    },
  };
}
