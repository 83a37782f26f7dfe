/**
 * The serving certificate from files (for example a cert-manager Secret mounted as a volume):
 * checked before use, and reloaded without a restart when the files change.
 *
 * How a mounted Secret changes: the kubelet writes the new files into a fresh hidden folder and
 * then swaps a `..data` symlink to it in one rename; `tls.crt` and `tls.key` are symlinks
 * through `..data`. So the watcher looks at the folders that hold the two files, not at the
 * files (a watch on the file would follow the old target), and re-reads both files after any
 * change there, once things have been quiet for `debounceMs`. Files written in place, one after
 * the other, work too: a half-written pair fails the check and is retried on the next change.
 *
 * Guarantees: a pair is served only if the certificate parses, has not expired, and matches the
 * key; a bad pair is logged and the current certificate stays in use, so a broken renewal never
 * takes the webhook down. A missed file event is caught by a slow re-check (`recheckMs`).
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { watch } from 'chokidar';
import { AgentError } from '../agent/errors.ts';
import type { Logger } from '../agent/log.ts';

/** A certificate and key that belong together, with what callers need to know about them. */
export interface KeyPair {
  certPem: string;
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 fingerprint of the (first) certificate, to tell two pairs apart. */
  fingerprint: string;
}

/** Why a certificate and key cannot be served; never holds key material. */
export class KeyPairError extends AgentError {
  constructor(message: string) {
    super('ERR_TLS_KEY_PAIR', message);
  }
}

/**
 * Checks that `certPem` (a certificate, or a chain with the serving certificate first) and
 * `keyPem` form a usable pair at time `now`: both parse, the key is the certificate's, the
 * certificate has not expired, and Node's TLS layer accepts them. Throws KeyPairError saying
 * which check failed.
 */
export function checkKeyPair(certPem: string, keyPem: string, now = new Date()): KeyPair {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new KeyPairError(`the certificate is not a PEM X.509 certificate (${reason(err)})`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    // NOTE: the parser's message never quotes the key, but keep only its first line anyway.
    throw new KeyPairError(`the key is not a PEM private key (${reason(err)})`);
  }
  if (!cert.checkPrivateKey(key)) {
    throw new KeyPairError(`the key does not belong to the certificate (${cert.subject.trim()})`);
  }
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (notAfter.getTime() <= now.getTime()) {
    throw new KeyPairError(`the certificate expired at ${notAfter.toISOString()}`);
  }
  try {
    tls.createSecureContext({ cert: certPem, key: keyPem, minVersion: 'TLSv1.2' });
  } catch (err) {
    throw new KeyPairError(`TLS refuses the pair (${reason(err)})`);
  }
  return { certPem, keyPem, notBefore, notAfter, fingerprint: cert.fingerprint256 };
}

function reason(err: unknown): string {
  return ((err as Error).message ?? String(err)).split('\n')[0]!;
}

/** Reads both files and checks them. Throws KeyPairError naming the file that is unreadable. */
export async function readKeyPair(certFile: string, keyFile: string): Promise<KeyPair> {
  const read = async (file: string) => {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
      throw new KeyPairError(`cannot read ${file} (${code})`);
    }
  };
  const [certPem, keyPem] = await Promise.all([read(certFile), read(keyFile)]);
  return checkKeyPair(certPem, keyPem);
}

export interface KeyPairWatchOptions {
  certFile: string;
  keyFile: string;
  /** The pair in use now; a re-read that finds the same certificate and key changes nothing. */
  current: KeyPair;
  /** Called with each new good pair, for example `server.updateCertificate`. */
  onChange(pair: KeyPair): void;
  log: Logger;
  /** Quiet time after the last file event before the files are read (default 500 ms). */
  debounceMs?: number;
  /** Re-read this often even without a file event (default 60 s). */
  recheckMs?: number;
}

export interface KeyPairWatch {
  /** Resolves once the watcher has read the folders and reports changes. */
  readonly ready: Promise<void>;
  /** Stops watching; a reload already running finishes first. */
  close(): Promise<void>;
}

const DEFAULT_DEBOUNCE_MS = 500;
const DEFAULT_RECHECK_MS = 60_000;

/** Watches the folders of both files and reloads the pair when they change. */
export function watchKeyPair(options: KeyPairWatchOptions): KeyPairWatch {
  const { certFile, keyFile, log } = options;
  const debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  let current = options.current;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let isClosed = false;
  // The last bad pair we warned about, so a re-check does not repeat the warning every minute.
  let lastProblem = '';

  const reload = async () => {
    let next: KeyPair;
    try {
      next = await readKeyPair(certFile, keyFile);
    } catch (err) {
      const message = (err as Error).message;
      if (message !== lastProblem) {
        log.warn('new serving certificate rejected, keeping the current one', {
          file: certFile,
          errCode: err instanceof AgentError ? err.code : 'ERR_TLS_KEY_PAIR',
          err: message,
        });
      }
      lastProblem = message;
      return;
    }
    lastProblem = '';
    if (next.certPem === current.certPem && next.keyPem === current.keyPem) return;
    current = next;
    options.onChange(next);
  };
  const schedule = () => {
    if (isClosed) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      running = running.then(reload);
    }, debounceMs);
  };

  // depth 1: the `..data` swap shows as events at depth 0, an in-place write into the
  // timestamped folder at depth 1. Symlinks are not followed: the swap itself is the event.
  const folders = [...new Set([path.dirname(certFile), path.dirname(keyFile)])];
  const watcher = watch(folders, { ignoreInitial: true, depth: 1, followSymlinks: false });
  watcher.on('all', schedule);
  watcher.on('error', (err: unknown) => {
    log.warn('watching the certificate files failed', { file: certFile, err: reason(err) });
  });
  const ready = new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  const recheck = setInterval(schedule, options.recheckMs ?? DEFAULT_RECHECK_MS);
  recheck.unref();

  return {
    ready,
    async close() {
      isClosed = true;
      clearTimeout(timer);
      clearInterval(recheck);
      await watcher.close();
      await running;
    },
  };
}
