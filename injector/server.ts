/**
 * The admission webhook over HTTPS: decode the AdmissionReview, call `mutate`, encode the answer.
 *
 * Routes:
 * - `POST /mutate`: AdmissionReview `admission.k8s.io/v1` in and out.
 * - `GET /healthz`: 200 while the process serves. `GET /readyz`: 200 until `close()` begins.
 * - `GET /metrics`: Prometheus text (metrics.ts): reviews by result, latency, injections by
 *   namespace, expiry of the serving certificate.
 *
 * What it answers:
 * - A Pod CREATE: the patch (or no patch for a pod already injected), with `mutate`'s warnings;
 *   a pod `mutate` refuses gets `allowed: false` with a message naming each annotation or field.
 * - A Pod on any other operation: allowed, no patch. The webhook configuration registers CREATE
 *   only; a pod's spec cannot gain containers after creation anyway.
 * - Anything that is not JSON, not an AdmissionReview v1, or whose object is not a Pod: HTTP 400
 *   with a plain-text reason. The API server then fails the call, and with failurePolicy Fail
 *   the object is refused: a webhook configuration that sends us Deployments is a mistake that
 *   should surface, not a request to wave through.
 * - `dryRun: true` needs nothing special: answering has no side effects (no API writes, no
 *   state), so the webhook declares `sideEffects: None`.
 *
 * Logs name the pod (`namespace/name`) and outcome only, never the review, the spec or env.
 */
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import type { Logger } from '../agent/log.ts';
import {
  createInjectorMetrics,
  type InjectorMetrics,
  METRICS_CONTENT_TYPE,
  type ReviewResult,
} from './metrics.ts';
import { type InjectorSettings, mutate } from './mutate.ts';
import { type Pod, podRef } from './pod.ts';

/** The API server keeps a Pod object under 1.5 MiB; a review carries it once for CREATE. */
export const MAX_BODY_BYTES = 8 * 2 ** 20;
/** The webhook's timeoutSeconds is at most 10; a slower request has already failed upstream. */
const REQUEST_TIMEOUT_MS = 10_000;

export interface InjectorServerOptions {
  /** 0 picks a free port (see `InjectorServer.port`). */
  port: number;
  host: string;
  certPem: string | Buffer;
  keyPem: string | Buffer;
  settings: InjectorSettings;
  log: Logger;
  /** Where the server counts reviews; a fresh set when omitted. */
  metrics?: InjectorMetrics;
}

export interface InjectorServer {
  /** The port actually bound. */
  readonly port: number;
  readonly metrics: InjectorMetrics;
  /**
   * Serves a new certificate to new connections, for example after cert-manager renewed it;
   * connections already open keep the one they started with. Throws, and keeps the current
   * certificate, if TLS refuses the pair (check it first with `checkKeyPair` from tls.ts).
   */
  updateCertificate(certPem: string | Buffer, keyPem: string | Buffer): void;
  /** Turns /readyz to 503, stops accepting connections and waits for open requests to finish. */
  close(): Promise<void>;
}

/**
 * Starts the HTTPS server and resolves once it listens. Rejects if the certificate or key is
 * unusable or the port cannot be bound.
 */
export async function startInjectorServer(options: InjectorServerOptions): Promise<InjectorServer> {
  const { settings, log } = options;
  const metrics = options.metrics ?? createInjectorMetrics();
  let isReady = true;
  const server = https.createServer({
    cert: options.certPem,
    key: options.keyPem,
    minVersion: 'TLSv1.2',
    requestTimeout: REQUEST_TIMEOUT_MS,
    headersTimeout: REQUEST_TIMEOUT_MS,
  });

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    const isReview = (req.url ?? '/').split('?')[0] === '/mutate';
    const context: RouteContext = { settings, log, metrics, isReady: () => isReady };
    route(req, res, context).then(
      (outcome) => {
        if (isReview && outcome) observe(metrics, started, outcome);
      },
      (err: unknown) => {
        log.error('request failed', { errCode: 'ERR_INTERNAL', err: (err as Error).message });
        if (isReview) observe(metrics, started, { result: 'error' });
        if (!res.headersSent) sendText(res, 500, 'internal error');
        else res.destroy();
      },
    );
  });
  // A failed TLS handshake or a malformed request line: drop that socket, keep serving.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    log.debug('client connection error', { errCode: err.code ?? 'ERR_CLIENT', err: err.message });
    socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info('injector listening', { address: `${options.host}:${port}` });
  recordNotAfter(metrics, options.certPem);

  return {
    port,
    metrics,
    updateCertificate(certPem, keyPem) {
      server.setSecureContext({ cert: certPem, key: keyPem, minVersion: 'TLSv1.2' });
      recordNotAfter(metrics, certPem);
      log.info('serving certificate updated');
    },
    close() {
      isReady = false;
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}

interface RouteContext {
  settings: InjectorSettings;
  log: Logger;
  metrics: InjectorMetrics;
  isReady: () => boolean;
}

/** What a request to /mutate came to, for the metrics; `undefined` for a non-review answer. */
interface ReviewOutcome {
  result: ReviewResult;
  namespace?: string;
}

async function route(
  req: IncomingMessage,
  res: ServerResponse,
  { settings, log, metrics, isReady }: RouteContext,
): Promise<ReviewOutcome | undefined> {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/healthz' && isRead(req)) return sendText(res, 200, 'ok');
  if (path === '/readyz' && isRead(req)) {
    return isReady() ? sendText(res, 200, 'ok') : sendText(res, 503, 'shutting down');
  }
  if (path === '/metrics' && isRead(req)) {
    res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE });
    res.end(metrics.render());
    return undefined;
  }
  if (path !== '/mutate') return sendText(res, 404, `no route ${req.method} ${path}`);
  if (req.method !== 'POST') {
    res.setHeader('Allow', 'POST');
    sendText(res, 405, '/mutate takes POST with an AdmissionReview');
    return { result: 'bad_request' };
  }

  const body = await readBody(req, MAX_BODY_BYTES);
  if (body === undefined) {
    sendText(res, 413, `request body is larger than ${MAX_BODY_BYTES} bytes`);
    return { result: 'bad_request' };
  }
  const started = performance.now();
  const answer = reviewAdmission(body, settings);
  const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
  logOutcome(log, answer, durationMs);
  if (answer.kind === 'bad-request') {
    sendText(res, 400, answer.message);
    return { result: 'bad_request' };
  }
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(answer.review));
  return { result: RESULT_OF[answer.kind], namespace: answer.namespace };
}

const RESULT_OF = {
  injected: 'injected',
  unchanged: 'unchanged',
  refused: 'refused',
  failed: 'error',
} as const satisfies Record<string, ReviewResult>;

function observe(metrics: InjectorMetrics, started: number, outcome: ReviewOutcome): void {
  const seconds = (performance.now() - started) / 1000;
  metrics.observeReview(outcome.result, seconds, outcome.namespace);
}

/** Sets the certificate-expiry gauge; a PEM the server accepted always parses. */
function recordNotAfter(metrics: InjectorMetrics, certPem: string | Buffer): void {
  try {
    metrics.setCertificateNotAfter(new Date(new X509Certificate(certPem).validTo));
  } catch {
    // NOTE: only reachable with a PEM that TLS accepted and X509Certificate did not; the
    // gauge then keeps its last value rather than failing the certificate update.
  }
}

function isRead(req: IncomingMessage): boolean {
  return req.method === 'GET' || req.method === 'HEAD';
}

export type ReviewAnswer =
  | { kind: 'bad-request'; message: string }
  | {
      kind: 'injected' | 'unchanged' | 'refused' | 'failed';
      pod: string;
      /** The pod's namespace, as the review gave it (the pod may not carry one yet). */
      namespace: string;
      review: AdmissionReviewOut;
      /** For `refused` and `failed`: the reason, as sent to the API server. */
      message?: string;
      errCode?: string;
    };

export interface AdmissionReviewOut {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  response: {
    uid: string;
    allowed: boolean;
    patchType?: 'JSONPatch';
    /** Base64 of the JSON Patch. */
    patch?: string;
    warnings?: string[];
    status?: { code: number; message: string };
  };
}

/**
 * Answers one AdmissionReview given as raw bytes. Pure, like `mutate`: the HTTP layer around it
 * only moves bytes and logs. A `bad-request` answer becomes HTTP 400 with its message.
 */
export function reviewAdmission(body: Buffer | string, settings: InjectorSettings): ReviewAnswer {
  let input: unknown;
  try {
    input = JSON.parse(body.toString());
  } catch {
    return {
      kind: 'bad-request',
      message: 'request body is not JSON; expected an AdmissionReview',
    };
  }
  const request = readRequest(input);
  if (typeof request === 'string') return { kind: 'bad-request', message: request };

  // The pod in a CREATE review may have no namespace yet; the request carries it.
  const pod: Pod = {
    ...request.object,
    metadata: {
      ...request.object.metadata,
      namespace: request.object.metadata?.namespace || request.namespace,
    },
  };
  const ref = podRef(pod);
  const namespace = typeof pod.metadata?.namespace === 'string' ? pod.metadata.namespace : '';
  const respond = (response: Omit<AdmissionReviewOut['response'], 'uid'>): AdmissionReviewOut => ({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid: request.uid, ...response },
  });

  if (request.operation !== 'CREATE') {
    return { kind: 'unchanged', pod: ref, namespace, review: respond({ allowed: true }) };
  }

  let result: ReturnType<typeof mutate>;
  try {
    result = mutate(pod, settings);
  } catch (err) {
    // A bug in mutate: refuse (the pod would otherwise start without its secrets) and say so.
    const message = `injector error while mutating pod ${ref}: ${(err as Error).message}`;
    const review = respond({ allowed: false, status: { code: 500, message } });
    return { kind: 'failed', pod: ref, namespace, review, message, errCode: 'ERR_INTERNAL' };
  }

  if (!result.ok) {
    const message = result.error.message;
    const review = respond({ allowed: false, status: { code: 400, message } });
    return { kind: 'refused', pod: ref, namespace, review, message, errCode: result.error.code };
  }
  const warnings = result.warnings.length > 0 ? { warnings: result.warnings } : {};
  if (result.patch.length === 0) {
    return {
      kind: 'unchanged',
      pod: ref,
      namespace,
      review: respond({ allowed: true, ...warnings }),
    };
  }
  const patch = Buffer.from(JSON.stringify(result.patch)).toString('base64');
  const review = respond({ allowed: true, patchType: 'JSONPatch', patch, ...warnings });
  return { kind: 'injected', pod: ref, namespace, review };
}

interface ReviewRequest {
  uid: string;
  operation: string;
  namespace: string | undefined;
  object: Pod;
}

/** The parts of `input.request` we use, or a sentence saying why `input` is not usable. */
function readRequest(input: unknown): ReviewRequest | string {
  const review = input as {
    apiVersion?: unknown;
    kind?: unknown;
    request?: {
      uid?: unknown;
      kind?: { group?: unknown; kind?: unknown };
      operation?: unknown;
      namespace?: unknown;
      object?: { kind?: unknown; spec?: { containers?: unknown } } | null;
    };
  } | null;
  if (review === null || typeof review !== 'object' || review.kind !== 'AdmissionReview') {
    return 'expected an AdmissionReview object';
  }
  if (review.apiVersion !== 'admission.k8s.io/v1') {
    const got = JSON.stringify(review.apiVersion ?? null).slice(0, 80);
    return `expected AdmissionReview apiVersion admission.k8s.io/v1, got ${got}`;
  }
  const request = review.request;
  if (!request || typeof request !== 'object' || typeof request.uid !== 'string' || !request.uid) {
    return 'expected an AdmissionReview with a request.uid';
  }
  const kind = request.kind;
  if (kind?.kind !== 'Pod' || (kind.group ?? '') !== '') {
    const got = `${kind?.group ? `${String(kind.group)}/` : ''}${String(kind?.kind ?? 'nothing')}`;
    return `this webhook mutates Pods only; got ${got.slice(0, 120)}`;
  }
  if (typeof request.operation !== 'string') return 'expected request.operation';
  const object = request.object;
  if (request.operation === 'CREATE') {
    if (!object || typeof object !== 'object' || !Array.isArray(object.spec?.containers)) {
      return 'expected request.object to be a Pod with spec.containers';
    }
  }
  return {
    uid: request.uid,
    operation: request.operation,
    namespace: typeof request.namespace === 'string' ? request.namespace : undefined,
    object: (object ?? {}) as Pod,
  };
}

function logOutcome(log: Logger, answer: ReviewAnswer, durationMs: number): void {
  switch (answer.kind) {
    case 'bad-request':
      log.warn('bad admission request', { errCode: 'ERR_BAD_REQUEST', err: answer.message });
      return;
    case 'injected':
      log.info('pod injected', { pod: answer.pod, durationMs });
      return;
    case 'unchanged':
      log.debug('pod unchanged', { pod: answer.pod, durationMs });
      return;
    case 'refused':
    case 'failed':
      log.error('pod refused', {
        pod: answer.pod,
        durationMs,
        errCode: answer.errCode,
        err: answer.message,
      });
      return;
  }
}

/**
 * Reads the whole body, or returns `undefined` once it passes `limit` bytes. The rest is read and
 * dropped rather than the socket cut, so the client still receives the 413; the request timeout
 * bounds how long a client can keep sending.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.on('end', () => resolve(size <= limit ? Buffer.concat(chunks) : undefined));
    req.on('error', reject);
  });
}

/** Returns `undefined` so a route can `return sendText(...)` for an answer that is no review. */
function sendText(res: ServerResponse, status: number, message: string): undefined {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(message + '\n');
  return undefined;
}
