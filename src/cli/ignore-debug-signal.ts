/**
 * Node opens its inspector, an unauthenticated debugger on 127.0.0.1:9229, when
 * it receives SIGUSR1; in a daemon that holds CAP_SYS_RAWIO that is code
 * execution for whoever may signal it (after -u, any process of that user).
 * qemu-pr-helper ignores SIGUSR1. Any listener replaces Node's handler, and
 * main.ts imports this module first, so it is in place before other modules run.
 */
process.on('SIGUSR1', () => undefined);
