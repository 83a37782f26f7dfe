/**
 * Process plumbing for the harness: free loopback ports, child processes whose output goes to a
 * log file (kept when a test fails), readiness polling, and stopping by PID only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A port that was free on 127.0.0.1 a moment ago (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** The folder for this run's server logs: $ESA_TEST_LOG_DIR, or a fresh temp folder. */
export function logRoot(): string {
  const dir = process.env.ESA_TEST_LOG_DIR || mkdtempSync(path.join(tmpdir(), 'esa-logs-'));
  mkdirSync(dir, { recursive: true });
  return dir;
}

export interface Managed {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Resolves with the exit code (or null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Everything the process wrote so far, stdout and stderr interleaved. */
  output(): string;
  /** Milliseconds from spawn to exit (or to now while it runs). */
  durationMs(): number;
  /** SIGTERM, then SIGKILL after `graceMs`; only this child's PID is signalled. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  logDir: string;
  /** Keep at most this many characters of output in memory (default 4 MiB). */
  keepChars?: number;
}

export function startProcess(name: string, command: string, args: string[], options: StartOptions): Managed {
  const logFile = path.join(options.logDir, `${name}.log`);
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(command, args, {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const startedAt = performance.now();
  let exitedAt: number | undefined;
  const keep = options.keepChars ?? 4 * 1024 * 1024;
  let buffer = '';
  const collect = (chunk: Buffer) => {
    log.write(chunk);
    buffer += chunk.toString('utf8');
    if (buffer.length > keep) buffer = buffer.slice(buffer.length - keep);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', (err) => {
      collect(Buffer.from(`\n[harness] could not start ${command}: ${err.message}\n`));
      resolve(127);
    });
    child.on('exit', (code) => {
      exitedAt = performance.now();
      log.end();
      resolve(code);
    });
  });
  let hasExited = false;
  void exited.then(() => (hasExited = true));

  return {
    name,
    child,
    logFile,
    exited,
    output: () => buffer,
    durationMs: () => (exitedAt ?? performance.now()) - startedAt,
    stop: async (graceMs = 5_000) => {
      if (hasExited || child.pid === undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Polls `check` until it returns true. Fails with `what` and the last error after `timeoutMs`,
 * or at once if `proc` exits first (with the tail of its log, which usually says why).
 */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  { timeoutMs = 60_000, intervalMs = 200, proc }: { timeoutMs?: number; intervalMs?: number; proc?: Managed } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  let procExit: number | null | undefined;
  void proc?.exited.then((code) => (procExit = code));
  while (Date.now() < deadline) {
    if (procExit !== undefined && proc) {
      throw new Error(`${what}: ${proc.name} exited with ${procExit} before it was ready; log ${proc.logFile}:\n${proc.output().slice(-2000)}`);
    }
    try {
      if (await check()) return;
    } catch (err) {
      lastError = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`${what}: not ready after ${timeoutMs} ms${lastError ? ` (last error: ${lastError})` : ''}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
