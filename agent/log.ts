/**
 * One JSON object per line on stderr, with a fixed set of keys.
 *
 * `msg` is a fixed string; everything that varies goes in a field, so logs group by message.
 * The field list is closed on purpose: there is no way to attach an arbitrary object (a pod
 * spec, a provider response, an env array), because any of those can carry a secret value.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface LogFields {
  component?: 'injector' | 'agent' | 'harness';
  pod?: string;
  externalSecret?: string;
  store?: string;
  /** Name of a target Secret (never its data). */
  target?: string;
  provider?: string;
  key?: string;
  keys?: string[];
  file?: string;
  /** A listen address (host:port) or a signal name: process plumbing, never data. */
  address?: string;
  signal?: string;
  attempt?: number;
  durationMs?: number;
  /** Wait before the next attempt or refresh. */
  delayMs?: number;
  errCode?: string;
  err?: string;
}

const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `bound` to every line (for example the pod, once per process). */
  with(bound: LogFields): Logger;
}

/**
 * Creates a logger writing to `out` (stderr by default). Lines below `level` are dropped.
 * Unknown levels fall back to `info` rather than failing: a typo in a log-level setting
 * must not stop a pod from getting its secrets.
 */
export function createLogger(
  level: string = 'info',
  bound: LogFields = {},
  out: (line: string) => void = (line) => process.stderr.write(line + '\n'),
): Logger {
  const min = order[level as Level] ?? order.info;
  const write = (lvl: Level, msg: string, fields?: LogFields) => {
    if (order[lvl] < min) return;
    out(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...bound, ...fields }));
  };
  return {
    debug: (msg, f) => write('debug', msg, f),
    info: (msg, f) => write('info', msg, f),
    warn: (msg, f) => write('warn', msg, f),
    error: (msg, f) => write('error', msg, f),
    with: (more) => createLogger(level, { ...bound, ...more }, out),
  };
}
