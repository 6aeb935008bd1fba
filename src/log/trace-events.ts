/**
 * What -T can switch on. QEMU's trace backends do not exist here; its
 * `[enable=]PATTERN` syntax selects these events, which go to the log.
 */
export const TRACE_EVENTS: Record<string, string> = {
  pr_helper_connection: 'connection opened/closed, with peer credentials (level info)',
  pr_helper_request: 'one line per request: service action, type, keys, status, sense, latency (level debug)',
};

/** Whether a -T event pattern (glob with *) selects `event`. */
export function traceSelects(pattern: string, event: string): boolean {
  const regex = new RegExp('^' + pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
  return regex.test(event);
}
