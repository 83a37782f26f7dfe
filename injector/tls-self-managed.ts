/**
 * A CA and serving certificate the injector manages itself (`--tls-self-managed`), for clusters
 * without cert-manager.
 *
 * The source of truth is one Secret with `ca.crt`, `ca.key`, `tls.crt` and `tls.key` (created as
 * type kubernetes.io/tls; one made beforehand keeps its type, labels and annotations). Every
 * replica runs the same steps, with no leader:
 *
 * 1. Read the Secret. If it holds a CA and a serving certificate that parse, match their keys,
 *    belong together, cover every host and are not yet due for renewal, use them.
 * 2. Otherwise make what is missing or due (a serving certificate under the same CA; a new CA
 *    too when the CA is the problem) and write the Secret, conditional on what step 1 read:
 *    create when there was none, update with its resourceVersion when there was. If another
 *    replica wrote first, the API server answers 409 Conflict: go back to step 1 and use the
 *    winner's certificate.
 * 3. Make every webhook of the MutatingWebhookConfiguration trust the CA: append it to each
 *    caBundle that lacks it (a JSON Patch that first tests the resourceVersion it read).
 *    Certificates already in a caBundle stay until they expire: a replica still serving under
 *    the previous CA stays trusted until it has moved on, and a replica that read an old Secret
 *    can add but never remove, so the replicas cannot undo each other.
 * 4. Serve the serving certificate. Right after step 3 added a CA, wait `caPropagationMs`
 *    first: the API server applies a changed webhook configuration a moment after storing it.
 *
 * The loop repeats at the earlier of the next renewal and `resyncMs`, which also puts back a
 * caBundle that something reset (a `helm upgrade` that renders an empty one, for example).
 * A certificate is renewed at 2/3 of its lifetime, so a replica that cannot reach the API
 * server for a while still serves a valid one. Certificates are ECDSA P-256, built by x509.ts.
 *
 * NOTE: when the CA itself rotates (every few years; a serving-certificate renewal keeps the
 * CA), the replica that adds the new CA waits `caPropagationMs` before serving under it, but
 * another replica that reads the new Secret within that moment does not wait, and the API
 * server may refuse its certificate for about a second: an opted-in pod created through that
 * replica then is refused (a controller retries; a bare `kubectl apply` must be run again).
 *
 * Permissions: get, create and update on the Secret; get and patch on the
 * MutatingWebhookConfiguration. The configuration itself is created elsewhere (the chart).
 *
 * NOTE: a CA stays in the caBundle until it expires, also one that this injector no longer
 * uses (or one from an earlier TLS setup). Rotating a CA because its key leaked therefore
 * needs the caBundle cleared by hand as well.
 */
import { X509Certificate, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { AgentError } from '../agent/errors.ts';
import type { Logger } from '../agent/log.ts';
import { checkKeyPair, type KeyPair } from './tls.ts';
import { createCertificate, generateKeys } from './x509.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Long enough that the CA rotates rarely; a CA rotation changes the caBundle. */
export const DEFAULT_CA_LIFETIME_MS = 5 * 365 * DAY_MS;
/** One year, renewed after eight months. */
export const DEFAULT_CERT_LIFETIME_MS = 365 * DAY_MS;
export const DEFAULT_RESYNC_MS = 60_000;
export const DEFAULT_CA_PROPAGATION_MS = 5_000;
/** Renew when this fraction of the lifetime has passed. */
export const RENEW_AT = 2 / 3;
/**
 * Certificates start a little in the past, for clients whose clocks run behind: five minutes,
 * or a twentieth of a (test's) short lifetime.
 */
const BACKDATE_MS = 5 * 60 * 1000;
/** Conflicts in a row before a sync gives up until the next attempt. */
const MAX_CONFLICTS = 5;
/** Wait after a failed sync before the next attempt. */
const RETRY_MS = 10_000;

const MANAGED_BY = 'app.kubernetes.io/managed-by';
const MANAGER = 'external-secrets-agent-injector';

export const CA_CERT_KEY = 'ca.crt';
export const CA_KEY_KEY = 'ca.key';
export const CERT_KEY = 'tls.crt';
export const KEY_KEY = 'tls.key';

export interface SelfManagedTlsOptions {
  kubeConfig: k8s.KubeConfig;
  namespace: string;
  secretName: string;
  webhookConfigName: string;
  /** DNS names and IP addresses the serving certificate must cover. */
  hosts: string[];
  log: Logger;
  caLifetimeMs?: number;
  certLifetimeMs?: number;
  resyncMs?: number;
  caPropagationMs?: number;
  /** The clock; tests move it. */
  now?: () => Date;
}

/** A failed step against the API server; the message names the object and the HTTP status. */
export class SelfManagedTlsError extends AgentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_TLS_SELF_MANAGED', message, options);
  }
}

export interface SelfManagedTls {
  /** Steps 1 to 3, then the wait of step 4 if a CA was added; resolves with the pair to serve. */
  sync(): Promise<KeyPair>;
  /**
   * Repeats `sync` in the background and calls `onChange` with every pair that differs from
   * the one served. Failures are logged and retried; the current pair stays in use.
   */
  start(current: KeyPair, onChange: (pair: KeyPair) => void): void;
  /** Stops the loop; a sync already running finishes first. */
  stop(): Promise<void>;
}

/** The CA as read from, or written to, the Secret. */
interface Ca {
  certPem: string;
  keyPem: string;
  cert: X509Certificate;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** The four PEM texts the Secret holds. */
interface Material {
  caCertPem: string;
  caKeyPem: string;
  certPem: string;
  keyPem: string;
}

export function createSelfManagedTls(options: SelfManagedTlsOptions): SelfManagedTls {
  const { namespace, secretName, webhookConfigName, log } = options;
  const core = options.kubeConfig.makeApiClient(k8s.CoreV1Api);
  const admission = options.kubeConfig.makeApiClient(k8s.AdmissionregistrationV1Api);
  const now = options.now ?? (() => new Date());
  const caLifetimeMs = options.caLifetimeMs ?? DEFAULT_CA_LIFETIME_MS;
  const certLifetimeMs = options.certLifetimeMs ?? DEFAULT_CERT_LIFETIME_MS;
  const resyncMs = options.resyncMs ?? DEFAULT_RESYNC_MS;
  const caPropagationMs = options.caPropagationMs ?? DEFAULT_CA_PROPAGATION_MS;
  const secretRef = `${namespace}/${secretName}`;

  /** Steps 1 and 2: the Secret's material, renewed and written if it had to be. */
  const ensureSecret = async (): Promise<Material> => {
    for (let attempt = 1; attempt <= MAX_CONFLICTS; attempt++) {
      const secret = await readSecret();
      const found = secret ? decode(secret) : undefined;
      const ca = found ? usableCa(found, now()) : undefined;
      if (found && ca && isServingUsable(found, ca, now(), options.hosts)) return found;

      const next = issue(ca);
      const isWritten = await writeSecret(next, secret);
      if (isWritten) {
        log.info(ca ? 'serving certificate renewed' : 'CA and serving certificate created', {
          target: secretRef,
        });
        return next;
      }
      log.info('another replica wrote the TLS secret first, using its certificate', {
        target: secretRef,
        attempt,
      });
    }
    throw new SelfManagedTlsError(
      `TLS secret ${secretRef}: still conflicting after ${MAX_CONFLICTS} attempts`,
    );
  };

  /** A new serving certificate under `ca`, or a new CA and serving certificate. */
  const issue = (ca: Ca | undefined): Material => {
    const issuedAt = now().getTime();
    const backdated = (lifetimeMs: number) =>
      new Date(issuedAt - Math.min(BACKDATE_MS, lifetimeMs / 20));
    let signer = ca;
    if (!signer) {
      const keys = generateKeys();
      const certPem = createCertificate({
        kind: 'ca',
        commonName: `${namespace}/${secretName} CA`.slice(-64),
        notBefore: backdated(caLifetimeMs),
        notAfter: new Date(issuedAt + caLifetimeMs),
        publicKey: keys.publicKey,
        privateKey: keys.privateKey,
      });
      signer = {
        certPem,
        keyPem: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
        cert: new X509Certificate(certPem),
        ...keys,
      };
    }
    const keys = generateKeys();
    const caEnd = new Date(signer.cert.validTo).getTime();
    const certPem = createCertificate({
      kind: 'serving',
      commonName: (options.hosts[0] ?? secretName).slice(0, 64),
      hosts: options.hosts,
      notBefore: backdated(certLifetimeMs),
      notAfter: new Date(Math.min(issuedAt + certLifetimeMs, caEnd)),
      publicKey: keys.publicKey,
      issuer: { certificate: signer.cert, privateKey: signer.privateKey },
    });
    return {
      caCertPem: signer.certPem,
      caKeyPem: signer.keyPem,
      certPem,
      keyPem: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    };
  };

  const readSecret = async (): Promise<k8s.V1Secret | undefined> => {
    try {
      return await core.readNamespacedSecret({ namespace, name: secretName });
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw apiError(`reading TLS secret ${secretRef}`, err);
    }
  };

  /**
   * Creates the Secret, or updates the one read (conditional on its resourceVersion, keeping its
   * type, labels and annotations, for example a chart's ownership marks). False when another
   * replica changed it first (409).
   */
  const writeSecret = async (m: Material, existing: k8s.V1Secret | undefined) => {
    const data = {
      [CA_CERT_KEY]: base64(m.caCertPem),
      [CA_KEY_KEY]: base64(m.caKeyPem),
      [CERT_KEY]: base64(m.certPem),
      [KEY_KEY]: base64(m.keyPem),
    };
    try {
      if (existing === undefined) {
        const metadata = { name: secretName, namespace, labels: { [MANAGED_BY]: MANAGER } };
        const body = { apiVersion: 'v1', kind: 'Secret', metadata, type: 'kubernetes.io/tls', data };
        await core.createNamespacedSecret({ namespace, body });
      } else {
        const metadata = { ...existing.metadata, managedFields: undefined };
        const body = { ...existing, metadata, data: { ...existing.data, ...data } };
        await core.replaceNamespacedSecret({ namespace, name: secretName, body });
      }
      return true;
    } catch (err) {
      if (statusOf(err) === 409) return false;
      throw apiError(`writing TLS secret ${secretRef}`, err);
    }
  };

  /** Step 3; true when a caBundle changed. */
  const trustCa = async (caCertPem: string): Promise<boolean> => {
    for (let attempt = 1; attempt <= MAX_CONFLICTS; attempt++) {
      let config: k8s.V1MutatingWebhookConfiguration;
      try {
        config = await admission.readMutatingWebhookConfiguration({ name: webhookConfigName });
      } catch (err) {
        throw apiError(`reading MutatingWebhookConfiguration ${webhookConfigName}`, err);
      }
      const ops = caBundlePatch(config, caCertPem, now());
      if (ops.length === 0) return false;
      try {
        await admission.patchMutatingWebhookConfiguration({ name: webhookConfigName, body: ops });
        // NOTE: no field names the configuration: log.ts has none for it, and there is one.
        log.info('webhook caBundle updated');
        return true;
      } catch (err) {
        // A failed `test` (422) or a stale resourceVersion (409): someone else changed it.
        const status = statusOf(err);
        if (status !== 409 && status !== 422) {
          throw apiError(`patching the caBundle of ${webhookConfigName}`, err);
        }
      }
    }
    throw new SelfManagedTlsError(
      `MutatingWebhookConfiguration ${webhookConfigName}: ` +
        `still conflicting after ${MAX_CONFLICTS} attempts`,
    );
  };

  const sync = async (): Promise<KeyPair> => {
    const material = await ensureSecret();
    const isCaAdded = await trustCa(material.caCertPem);
    if (isCaAdded) await sleep(caPropagationMs);
    return checkKeyPair(material.certPem, material.keyPem, now());
  };

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let isStopped = false;

  const start = (current: KeyPair, onChange: (pair: KeyPair) => void) => {
    let served = current;
    const schedule = (delayMs: number) => {
      if (isStopped) return;
      timer = setTimeout(() => {
        running = pass();
      }, delayMs);
      timer.unref();
    };
    const pass = async () => {
      try {
        const pair = await sync();
        if (pair.fingerprint !== served.fingerprint) {
          served = pair;
          onChange(pair);
        }
        schedule(nextSyncDelayMs(served, now(), resyncMs));
      } catch (err) {
        log.warn('managing the serving certificate failed, keeping the current one', {
          target: secretRef,
          errCode: err instanceof AgentError ? err.code : 'ERR_TLS_SELF_MANAGED',
          err: (err as Error).message,
          delayMs: Math.min(RETRY_MS, resyncMs),
        });
        schedule(Math.min(RETRY_MS, resyncMs));
      }
    };
    schedule(nextSyncDelayMs(served, now(), resyncMs));
  };

  return {
    sync,
    start,
    async stop() {
      isStopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

/** The Kubernetes-style service names a Service is called by, in the order a cert lists them. */
export function serviceHosts(service: string, namespace: string): string[] {
  return [
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.cluster.local`,
    `${service}.${namespace}`,
    service,
  ];
}

/** Milliseconds until the pair is due for renewal, at most `resyncMs`, at least one second. */
export function nextSyncDelayMs(pair: KeyPair, now: Date, resyncMs: number): number {
  const untilRenewal = renewalTime(pair.notBefore, pair.notAfter) - now.getTime();
  return Math.max(1_000, Math.min(resyncMs, untilRenewal));
}

function renewalTime(notBefore: Date, notAfter: Date): number {
  return notBefore.getTime() + (notAfter.getTime() - notBefore.getTime()) * RENEW_AT;
}

function decode(secret: k8s.V1Secret): Material | undefined {
  const data = secret.data ?? {};
  const text = (key: string) =>
    data[key] === undefined ? undefined : Buffer.from(data[key], 'base64').toString('utf8');
  const [caCertPem, caKeyPem, certPem, keyPem] = [CA_CERT_KEY, CA_KEY_KEY, CERT_KEY, KEY_KEY].map(
    text,
  );
  if (!caCertPem || !caKeyPem || !certPem || !keyPem) return undefined;
  return { caCertPem, caKeyPem, certPem, keyPem };
}

/** The Secret's CA if it parses, matches its key, can sign, and is not due for renewal. */
function usableCa(m: Material, now: Date): Ca | undefined {
  try {
    const cert = new X509Certificate(m.caCertPem);
    const privateKey = createPrivateKey(m.caKeyPem);
    if (!cert.ca || !cert.checkPrivateKey(privateKey)) return undefined;
    const due = renewalTime(new Date(cert.validFrom), new Date(cert.validTo));
    if (now.getTime() >= due) return undefined;
    return {
      certPem: m.caCertPem,
      keyPem: m.caKeyPem,
      cert,
      privateKey,
      publicKey: createPublicKey(privateKey),
    };
  } catch {
    return undefined;
  }
}

/** The serving pair is good, signed by `ca`, covers every host, and is not due for renewal. */
function isServingUsable(m: Material, ca: Ca, now: Date, hosts: string[]): boolean {
  try {
    const pair = checkKeyPair(m.certPem, m.keyPem, now);
    const cert = new X509Certificate(m.certPem);
    if (!cert.verify(ca.publicKey)) return false;
    const covers = (h: string) =>
      (h.includes(':') || /^[\d.]+$/.test(h) ? cert.checkIP(h) : cert.checkHost(h)) !== undefined;
    if (!hosts.every(covers)) return false;
    return now.getTime() < renewalTime(pair.notBefore, pair.notAfter);
  } catch {
    return false;
  }
}

/**
 * JSON Patch operations that add `caCertPem` to every caBundle that lacks it, dropping expired
 * or unreadable certificates on the way; none when every caBundle already trusts it. The first
 * operation tests the resourceVersion, so the patch applies only to what was read.
 */
export function caBundlePatch(
  config: k8s.V1MutatingWebhookConfiguration,
  caCertPem: string,
  now: Date,
): object[] {
  const ours = new X509Certificate(caCertPem).fingerprint256;
  const ops: object[] = [];
  (config.webhooks ?? []).forEach((webhook, i) => {
    const current = webhook.clientConfig.caBundle
      ? Buffer.from(webhook.clientConfig.caBundle, 'base64').toString('utf8')
      : '';
    const blocks = pemBlocks(current);
    const kept = blocks.filter((pem) => isUnexpired(pem, now));
    const hasOurs = kept.some((pem) => new X509Certificate(pem).fingerprint256 === ours);
    if (hasOurs && kept.length === blocks.length) return;

    const bundle = [...kept, ...(hasOurs ? [] : [caCertPem.trim() + '\n'])].join('');
    ops.push(
      { op: 'test', path: `/webhooks/${i}/name`, value: webhook.name },
      { op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: base64(bundle) },
    );
  });
  if (ops.length === 0) return [];
  const resourceVersion = config.metadata?.resourceVersion;
  return [{ op: 'test', path: '/metadata/resourceVersion', value: resourceVersion }, ...ops];
}

function pemBlocks(text: string): string[] {
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map(
    (b) => b + '\n',
  );
}

function isUnexpired(pem: string, now: Date): boolean {
  try {
    return new Date(new X509Certificate(pem).validTo).getTime() > now.getTime();
  } catch {
    return false;
  }
}

function base64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

function statusOf(err: unknown): number | undefined {
  return err instanceof k8s.ApiException ? err.code : undefined;
}

/** The API server's own Status message (it names the object and, for 403, the verb). */
function apiError(what: string, err: unknown): SelfManagedTlsError {
  if (!(err instanceof k8s.ApiException)) {
    // fetch() says only "fetch failed"; the reason (ECONNREFUSED, a TLS error) is its cause.
    const cause = (err as { cause?: { message?: string } }).cause?.message;
    const message = `${(err as Error).message}${cause ? ` (${cause})` : ''}`;
    return new SelfManagedTlsError(`${what}: ${message}`, { cause: err });
  }
  let message = '';
  try {
    const body = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
    message = (body as { message?: string } | undefined)?.message ?? '';
  } catch {
    // Not a Status object; the HTTP code alone says enough.
  }
  return new SelfManagedTlsError(`${what}: HTTP ${err.code}${message ? ` ${message}` : ''}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
