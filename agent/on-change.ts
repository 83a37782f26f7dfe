/**
 * The grammar of the `on-change` annotation and of ESA_ON_CHANGE, the injector's and the
 * agent's shared contract for telling the app about changed files (notify.ts does the telling):
 *
 * - `http:<port><path>`: POST to `http://127.0.0.1:<port><path>`; the grammar has no room for a
 *   host, so the call never leaves the pod's own network namespace.
 * - `signal:<SIGNAL>:<process-name>`: send SIGNAL to the processes named so in /proc.
 *
 * Pure: the injector's mutate imports it, and mutate does no I/O.
 */

/** Signals an app may ask for; the ones servers commonly use to reload or restart. */
export const ON_CHANGE_SIGNALS = [
  'SIGHUP',
  'SIGUSR1',
  'SIGUSR2',
  'SIGTERM',
  'SIGINT',
  'SIGQUIT',
  'SIGWINCH',
] as const;
export type OnChangeSignal = (typeof ON_CHANGE_SIGNALS)[number];

export type OnChange =
  | { kind: 'http'; port: number; path: string }
  | { kind: 'signal'; signal: OnChangeSignal; processName: string };

/** Longest process name the kernel keeps in `/proc/<pid>/comm` (TASK_COMM_LEN - 1). */
export const MAX_PROCESS_NAME_LENGTH = 15;
const MAX_PATH_LENGTH = 1024;

const EXAMPLES = 'such as http:8080/-/reload or signal:SIGHUP:nginx';

/**
 * Parses an on-change value. Returns the problem as a sentence (without the name of the
 * annotation or variable, which the caller adds) when the value does not fit the grammar.
 */
export function parseOnChange(
  raw: string,
): { ok: true; value: OnChange } | { ok: false; problem: string } {
  const bad = (why: string) => ({ ok: false as const, problem: `${why}, got ${quote(raw)}` });

  if (raw.startsWith('http:')) {
    const match = /^http:(\d{1,5})(.*)$/s.exec(raw);
    const port = match ? Number(match[1]) : NaN;
    if (!(port >= 1 && port <= 65_535)) {
      return bad(
        'expected http:<port><path> with a port from 1 to 65535, such as http:8080/-/reload',
      );
    }
    const path = match![2]!;
    if (!path.startsWith('/')) return bad('expected the path after the port to start with /');
    if (path.length > MAX_PATH_LENGTH || /[\s\u0000-\u001f\u007f]/.test(path)) {
      return bad(`expected a path of at most ${MAX_PATH_LENGTH} characters without whitespace`);
    }
    return { ok: true, value: { kind: 'http', port, path } };
  }

  if (raw.startsWith('signal:')) {
    const [, signal = '', ...rest] = raw.split(':');
    const processName = rest.join(':');
    if (!(ON_CHANGE_SIGNALS as readonly string[]).includes(signal)) {
      const signals = ON_CHANGE_SIGNALS.join(', ');
      return bad(`expected signal:<SIGNAL>:<process-name> with one of ${signals}`);
    }
    if (!/^[A-Za-z0-9._+-]{1,15}$/.test(processName)) {
      return bad(
        'expected a process name as in /proc/<pid>/comm: 1 to 15 letters, digits, ".", "_", "+" ' +
          'or "-" (the kernel keeps only the first 15 characters of the executable name)',
      );
    }
    return { ok: true, value: { kind: 'signal', signal: signal as OnChangeSignal, processName } };
  }

  return bad(`expected http:<port><path> or signal:<SIGNAL>:<process-name>, ${EXAMPLES}`);
}

/** The value in the grammar {@link parseOnChange} reads; parsing it gives `onChange` back. */
export function formatOnChange(onChange: OnChange): string {
  return onChange.kind === 'http'
    ? `http:${onChange.port}${onChange.path}`
    : `signal:${onChange.signal}:${onChange.processName}`;
}

function quote(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}
