/**
 * The agent's own path to the Kubernetes API: node:https, JSON in and out, nothing else.
 *
 * NOTE: the agent deliberately does not use @kubernetes/client-node. A sidecar runs in every
 * opted-in pod, and that library adds about 27 MiB resident and 0.2 s of start-up to each one
 * (measured, see DESIGN.md). The injector, the CLI helpers and the tests use the library.
 *
 * The bearer token is read from its file before every request, because the kubelet rotates
 * projected tokens in place and a token read once at start-up expires under a long-running
 * sidecar.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import { ConfigError, KubeApiError } from './errors.ts';

export interface KubeClientOptions {
  /** Base URL, for example https://10.0.0.1:443. */
  server: string;
  /** PEM bundle that signs the API server's certificate; absent means Node's own roots. */
  caPem?: string;
  /** File holding the bearer token; re-read before each request. */
  tokenFile?: string;
  /**
   * A bearer token held in memory (a token from a Secret, or one the agent requested), used
   * when there is no `tokenFile`. With neither, requests carry no Authorization header.
   */
  token?: string;
  /** Client certificate and its key (PEM), for certificate authentication. */
  certPem?: string;
  keyPem?: string;
  /** Per-request timeout in milliseconds (default 30_000). */
  timeoutMs?: number;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * Options for a process running in a pod, from the environment the kubelet gives every
 * container. `ESA_KUBE_TOKEN_FILE` and `ESA_KUBE_CA_FILE` override the default file paths (the
 * injector points them at the agent's own projected token).
 */
export function inClusterOptions(env: NodeJS.ProcessEnv = process.env): KubeClientOptions {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new ConfigError(
      'KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: the agent must run in a pod ' +
        '(or have both set to the API server address)',
    );
  }
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    throw new ConfigError(`KUBERNETES_SERVICE_PORT: expected a port number, got "${port}"`);
  }
  const caFile = env.ESA_KUBE_CA_FILE || `${SERVICE_ACCOUNT_DIR}/ca.crt`;
  let caPem: string;
  try {
    caPem = readFileSync(caFile, 'utf8');
  } catch (cause) {
    throw new ConfigError(`cannot read the API server CA from ${caFile} (ESA_KUBE_CA_FILE): ${(cause as Error).message}`);
  }
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return {
    server: `https://${hostPart}:${port}`,
    caPem,
    tokenFile: env.ESA_KUBE_TOKEN_FILE || `${SERVICE_ACCOUNT_DIR}/token`,
  };
}

export interface RequestOptions {
  /** Content type for PATCH; defaults to JSON merge patch. */
  patchType?: 'merge' | 'json' | 'strategic';
  /** Query string parameters (for example fieldManager, dryRun). */
  query?: Record<string, string>;
}

const patchContentTypes = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
} as const;

export class KubeClient {
  readonly server: string;
  readonly #agent: https.Agent;
  readonly #tokenFile: string | undefined;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;

  constructor(options: KubeClientOptions) {
    this.server = options.server.replace(/\/+$/, '');
    this.#agent = new https.Agent({
      ...(options.caPem ? { ca: options.caPem } : {}),
      ...(options.certPem && options.keyPem ? { cert: options.certPem, key: options.keyPem } : {}),
      keepAlive: true,
      maxSockets: 4,
    });
    this.#tokenFile = options.tokenFile;
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  get<T>(path: string, options?: RequestOptions): Promise<T> {
    return this.request<T>('GET', path, undefined, options);
  }
  create<T>(path: string, body: unknown, options?: RequestOptions): Promise<T> {
    return this.request<T>('POST', path, body, options);
  }
  replace<T>(path: string, body: unknown, options?: RequestOptions): Promise<T> {
    return this.request<T>('PUT', path, body, options);
  }
  patch<T>(path: string, body: unknown, options?: RequestOptions): Promise<T> {
    return this.request<T>('PATCH', path, body, options);
  }
  delete<T>(path: string, options?: RequestOptions): Promise<T> {
    return this.request<T>('DELETE', path, undefined, options);
  }

  /**
   * Sends one request and parses the JSON answer. A non-2xx answer becomes a KubeApiError whose
   * message holds the verb, the path and the API server's own Status message (which names the
   * resource and, for 403, the user and the missing verb; it never holds object data).
   */
  async request<T>(method: string, path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
    let token = this.#token;
    if (this.#tokenFile) {
      try {
        token = (await readFile(this.#tokenFile, 'utf8')).trim();
      } catch (cause) {
        throw new ConfigError(
          `cannot read the service account token ${this.#tokenFile} (ESA_KUBE_TOKEN_FILE): ${(cause as Error).message}`,
        );
      }
    }
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    if (payload !== undefined) {
      headers['content-type'] = method === 'PATCH' ? patchContentTypes[options.patchType ?? 'merge'] : 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }

    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = https.request(url, { method, headers, agent: this.#agent, timeout: this.#timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.#timeoutMs} ms`)));
      req.on('error', (err) => reject(new KubeApiError(0, 'Unreachable', `${method} ${path}: API server ${this.server} unreachable: ${err.message}`)));
      if (payload !== undefined) req.write(payload);
      req.end();
    });

    if (status >= 200 && status < 300) return (text ? JSON.parse(text) : {}) as T;
    let reason = 'Unknown';
    let message = text.slice(0, 300);
    try {
      const s = JSON.parse(text) as { reason?: string; message?: string };
      reason = s.reason ?? reason;
      message = s.message ?? message;
    } catch {
      // not a Status object; keep the (truncated) body text, which is the API server's own error
    }
    throw new KubeApiError(status, reason, `${method} ${path}: ${status} ${reason}: ${message}`);
  }

  /** Closes idle keep-alive sockets so the process can exit. */
  close(): void {
    this.#agent.destroy();
  }
}
