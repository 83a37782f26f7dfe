/**
 * One pass for one ExternalSecret:
 *
 * 1. read the ExternalSecret and its target Secret; when no refresh is due (refreshInterval 0
 *    or refreshPolicy CreatedOnce after the first sync, OnChange while the ExternalSecret is
 *    unchanged) and the Secret is intact (managed label, data hash matches its data), the pass
 *    serves the files from that Secret and reads no provider;
 * 2. fetch `dataFrom` and `data` through their stores (fetch.ts), applying property paths,
 *    key rewrites and decoding;
 * 3. when nothing was found (remote secrets that no longer exist are left out under
 *    deletionPolicy Delete and Merge): Delete deletes the Secret, Retain keeps it as it is;
 * 4. build the target from the template (target.ts);
 * 5. create or update the Secret per creationPolicy (nothing when unchanged: a hand-edited or
 *    deleted Secret is repaired here, because the comparison is with the live object);
 * 6. write the files (atomic swap, nothing when unchanged);
 * 7. update status and emit Events, only on change.
 *
 * Nothing is written unless steps 2 to 4 succeeded for every key, and the files follow the
 * Secret, so a failure leaves the last good Secret and files in place. A pass never throws: it
 * returns a SyncOutcome whose message names the ExternalSecret, the store, the key and the
 * cause, and never a value. Failures are reported in status and Events here; logging a failure
 * is the caller's decision (init and sidecar judge its severity differently).
 */
import type { Config } from './config.ts';
import { parseDuration } from './duration.ts';
import { AgentError, ConfigError } from './errors.ts';
import { fetchData, type MissingEntry } from './fetch.ts';
import { targetWrittenAt, writeTargetFiles } from './files.ts';
import type { Logger } from './log.ts';
import type { Provider, ProviderContext } from './providers/provider.ts';
import {
  deleteSecret,
  isSecretValid,
  readSecret,
  writeSecret,
  type WriteOutcome,
} from './secret-writer.ts';
import {
  EVENT_CREATED,
  EVENT_DELETED,
  EVENT_MISSING_PROVIDER_SECRET,
  EVENT_UPDATED,
  EVENT_UPDATE_FAILED,
  REASON_DELETED,
  REASON_MISSING,
  REASON_SYNCED,
  REASON_SYNC_ERROR,
  emitEvent,
  isNewFailure,
  syncedResourceVersion,
  updateStatus,
} from './status.ts';
import { getExternalSecret } from './store.ts';
import { buildTarget } from './target.ts';
import type { CreationPolicy, ExternalSecret, KubeApi, OwnerReference, Secret } from './types.ts';

/** ESO's default when spec.refreshInterval is absent. */
export const DEFAULT_REFRESH_INTERVAL = '1h';
/** Events' reportingComponent. */
const COMPONENT = 'external-secrets-agent';

/** Where a pass puts the files of a target; `render` passes one that keeps nothing. */
export interface TargetFiles {
  /** When the target's current set was written; undefined when there is none. */
  writtenAt(target: string): Promise<Date | undefined>;
  write(target: string, data: Record<string, Buffer>): Promise<{ changed: boolean }>;
}

export interface SyncDeps {
  kube: KubeApi;
  config: Config;
  log: Logger;
  /** Environment for providers (AWS_* and the like); defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
  /** Replaces the provider lookup (tests). */
  loadProvider?: (ctx: ProviderContext) => Promise<Provider>;
  /** Replaces the files under config.outputDir (render). */
  files?: TargetFiles;
}

export interface SyncOptions {
  signal?: AbortSignal;
  /**
   * Skip the pass when the target's files were written less than one refresh interval ago (or
   * exist at all, for interval 0). The sidecar's first pass uses this, because the init
   * container synced moments before.
   */
  skipIfFresh?: boolean;
}

export interface SyncOutcome {
  /** "namespace/name" of the ExternalSecret. */
  externalSecret: string;
  ok: boolean;
  /** Whether the files or the Secret were written (or the Secret deleted). */
  changed: boolean;
  /** The pass was skipped (skipIfFresh); `nextInMs` says when the next one is due. */
  skipped: boolean;
  /** The interval the ExternalSecret asks for (or the override); undefined if unreadable. */
  refreshIntervalMs?: number;
  /** For a skipped pass: time until the next one (less than refreshIntervalMs). */
  nextInMs?: number;
  /** One line naming the ExternalSecret and the cause; set when !ok. */
  message?: string;
  error?: AgentError;
}

type Stage = 'fetch' | 'update' | 'delete';

const stageMessages = {
  fetch: 'could not get secret data from provider',
  update: 'could not update secret',
  delete: 'could not delete secret',
} as const;

/** Marks which stage failed; the stage picks ESO's condition message. */
class StageError extends Error {
  readonly stage: Stage;
  readonly error: AgentError;
  constructor(stage: Stage, error: AgentError) {
    super(error.message);
    this.stage = stage;
    this.error = error;
  }

  /** ESO's condition message for this failure, then the cause. */
  get conditionMessage(): string {
    const head =
      this.error.code === 'ERR_TARGET_IMMUTABLE'
        ? 'could not update secret, target is immutable'
        : stageMessages[this.stage];
    return `${head}: ${this.error.message}`;
  }
}

function asAgentError(err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  return new AgentError('ERR_UNEXPECTED', err instanceof Error ? err.message : String(err));
}

/** What a pass did, for the report. */
type PassResult =
  | { kind: 'written'; secret: WriteOutcome; filesChanged: boolean; missing: MissingEntry[] }
  | { kind: 'checked'; filesChanged: boolean }
  | { kind: 'deleted'; deleted: boolean; filesChanged: boolean; missing: MissingEntry[] }
  | { kind: 'retained' };

/** Runs one pass for the ExternalSecret `name` in the pod's namespace. Never throws. */
export async function syncExternalSecret(
  deps: SyncDeps,
  name: string,
  options: SyncOptions = {},
): Promise<SyncOutcome> {
  const namespace = deps.config.podNamespace;
  const id = `${namespace}/${name}`;
  const now = deps.now ?? (() => new Date());
  const started = Date.now();
  const base = { externalSecret: id, skipped: false };

  let es: ExternalSecret;
  try {
    es = await getExternalSecret(deps.kube, namespace, name);
  } catch (err) {
    const error = asAgentError(err);
    return { ...base, ok: false, changed: false, message: error.message, error };
  }

  const target = es.spec.target?.name || name;
  const files = deps.files ?? diskFiles(deps.config);
  let intervalMs: number | undefined;
  try {
    intervalMs = refreshIntervalMs(es, deps.config);
    if (options.skipIfFresh) {
      const skip = await freshness(files, target, intervalMs, now());
      if (skip)
        return {
          ...base,
          ok: true,
          changed: false,
          skipped: true,
          refreshIntervalMs: intervalMs,
          ...skip,
        };
    }
    const signal = withTimeout(options.signal, deps.config.syncTimeoutMs);
    const result = await runPass(deps, es, target, intervalMs, files, signal);
    await reportSuccess(deps, es, target, result, now());
    deps.log.debug('sync pass done', {
      externalSecret: id,
      durationMs: Date.now() - started,
    });
    return { ...base, ok: true, changed: hasChanged(result), refreshIntervalMs: intervalMs };
  } catch (err) {
    const failure = err instanceof StageError ? err : new StageError('fetch', asAgentError(err));
    const message = failure.conditionMessage;
    // A pass cut short by the sidecar stopping is not a sync failure: report nothing.
    if (!options.signal?.aborted) await reportFailure(deps, es, target, message, now());
    const outcome: SyncOutcome = {
      ...base,
      ok: false,
      changed: false,
      message: `ExternalSecret ${id}: ${message}`,
      error: failure.error,
    };
    if (intervalMs !== undefined) outcome.refreshIntervalMs = intervalMs;
    return outcome;
  }
}

function hasChanged(result: PassResult): boolean {
  switch (result.kind) {
    case 'written':
      return (
        result.filesChanged ||
        result.secret.action === 'created' ||
        result.secret.action === 'updated'
      );
    case 'checked':
      return result.filesChanged;
    case 'deleted':
      return result.deleted || result.filesChanged;
    case 'retained':
      return false;
  }
}

async function stage<T>(name: Stage, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw err instanceof StageError ? err : new StageError(name, asAgentError(err));
  }
}

function withTimeout(signal: AbortSignal | undefined, ms: number): AbortSignal {
  const timeout = AbortSignal.timeout(ms);
  return signal ? AbortSignal.any([signal, timeout]) : timeout;
}

/** The files under config.outputDir, with config.fileMode. */
function diskFiles(config: Config): TargetFiles {
  return {
    writtenAt: (target) => targetWrittenAt(config.outputDir, target),
    write: (target, data) => writeTargetFiles(config.outputDir, target, data, config.fileMode),
  };
}

/** ESA_REFRESH_INTERVAL if set, else spec.refreshInterval, else ESO's default of one hour. */
export function refreshIntervalMs(es: ExternalSecret, config: Config): number {
  if (config.refreshInterval !== undefined) return config.refreshInterval;
  try {
    return parseDuration(es.spec.refreshInterval ?? DEFAULT_REFRESH_INTERVAL);
  } catch (err) {
    throw new ConfigError(`spec.refreshInterval: ${(err as Error).message}`);
  }
}

async function freshness(
  files: TargetFiles,
  target: string,
  intervalMs: number,
  now: Date,
): Promise<{ nextInMs?: number } | undefined> {
  const writtenAt = await files.writtenAt(target);
  if (!writtenAt) return undefined;
  if (intervalMs === 0) return {};
  const age = now.getTime() - writtenAt.getTime();
  return age >= 0 && age < intervalMs ? { nextInMs: intervalMs - age } : undefined;
}

/**
 * ESO's shouldRefresh, without its clock: the sidecar's loop decides when a pass runs, and a
 * pass under the default Periodic policy always reads the provider. Only after a first sync
 * (`status.syncedResourceVersion` set) do these stop: refreshInterval 0 and CreatedOnce for
 * good, OnChange until the ExternalSecret's generation, labels or annotations change.
 */
export function isRefreshDue(es: ExternalSecret, intervalMs: number): boolean {
  const syncedVersion = es.status?.syncedResourceVersion;
  if (!syncedVersion || !es.status?.refreshTime) return true;
  switch (es.spec.refreshPolicy) {
    case 'CreatedOnce':
      return false;
    case 'OnChange':
      return syncedVersion !== syncedResourceVersion(es);
    default:
      return intervalMs > 0;
  }
}

async function runPass(
  deps: SyncDeps,
  es: ExternalSecret,
  target: string,
  intervalMs: number,
  files: TargetFiles,
  signal: AbortSignal,
): Promise<PassResult> {
  const { kube, config } = deps;
  const t = es.spec.target ?? {};
  const policy = t.creationPolicy ?? 'Owner';
  const namespace = config.podNamespace;
  const owner = ownerOf(es);

  // 1. nothing due and the Secret intact: the files come from it, the provider is not read
  let live: { secret: Secret | undefined } | undefined; // undefined: not read yet
  if (!isRefreshDue(es, intervalMs) && policy !== 'None') {
    live = { secret: await stage('update', () => readSecret(kube, namespace, target)) };
    const checked = await serveFromSecret(live.secret, policy, target, files);
    if (checked) return checked;
  }

  // 2. fetch
  const fetched = await stage('fetch', () => fetchData(deps, es, signal));

  // 3. nothing found: Delete removes the Secret, Retain keeps it, Merge writes it empty
  const deletion = t.deletionPolicy ?? 'Retain';
  if (Object.keys(fetched.data).length === 0 && deletion !== 'Merge') {
    if (deletion === 'Retain') return { kind: 'retained' };
    const deleted = await stage('delete', async () => {
      const secret = live ? live.secret : await readSecret(kube, namespace, target);
      return deleteSecret(kube, { namespace, name: target, owner, creationPolicy: policy }, secret);
    });
    const written = await stage('update', () => files.write(target, {}));
    return { kind: 'deleted', deleted, filesChanged: written.changed, missing: fetched.missing };
  }

  // 4. the target's content; 5. the Secret
  const content = await stage('update', () => buildTarget(kube, es, fetched.data));
  const desired = {
    namespace,
    name: target,
    data: content.data,
    labels: content.labels,
    annotations: content.annotations,
    finalizers: content.finalizers,
    ...(content.type ? { type: content.type } : {}),
    ...(t.immutable ? { immutable: true } : {}),
    creationPolicy: policy,
    owner,
  };
  const secret = await stage('update', () =>
    writeSecret(kube, desired, live ? (live.secret ?? null) : undefined),
  );

  // 6. the files: what the ExternalSecret defines; for an immutable target the Secret's kept
  // value, so that the files and the Secret agree (C19).
  // NOTE: with target.immutable the files, once written, keep their first value for the life
  // of the pod, as the Secret keeps its own; a recreated Secret reaches new pods only.
  if (t.immutable && (await files.writtenAt(target)) !== undefined)
    return { kind: 'written', secret, filesChanged: false, missing: fetched.missing };
  const fileData =
    t.immutable && secret.data && (policy === 'Owner' || policy === 'Orphan')
      ? decodeData(secret.data)
      : content.data;
  const written = await stage('update', () => files.write(target, fileData));
  return { kind: 'written', secret, filesChanged: written.changed, missing: fetched.missing };
}

/**
 * Step 1 when no refresh is due: an intact Secret stands for the provider. The pod's files are
 * kept, or written from the Secret when the pod has none. Returns undefined when the provider
 * must be read after all: the Secret is missing or edited (drift repair), or it is a Merge
 * target whose foreign keys must not become files.
 */
async function serveFromSecret(
  live: Secret | undefined,
  policy: CreationPolicy,
  target: string,
  files: TargetFiles,
): Promise<PassResult | undefined> {
  if (!isSecretValid(live)) return undefined;
  if ((await files.writtenAt(target)) !== undefined)
    return { kind: 'checked', filesChanged: false };
  if (policy !== 'Owner' && policy !== 'Orphan') return undefined;
  const written = await stage('update', () => files.write(target, decodeData(live?.data)));
  return { kind: 'checked', filesChanged: written.changed };
}

function ownerOf(es: ExternalSecret): OwnerReference {
  return {
    apiVersion: es.apiVersion,
    kind: 'ExternalSecret',
    name: es.metadata.name,
    uid: es.metadata.uid ?? '',
  };
}

/** The Secret key a missing `spec.data[i]` entry writes; undefined for dataFrom entries. */
function secretKeyOf(es: ExternalSecret, m: MissingEntry): string | undefined {
  const i = /^spec\.data\[(\d+)\]/.exec(m.where)?.[1];
  return i === undefined ? undefined : es.spec.data?.[Number(i)]?.secretKey;
}

/** Secret data (base64) as bytes. */
function decodeData(data: Record<string, string> = {}): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(data)) out[k] = Buffer.from(v, 'base64');
  return out;
}

/** The Ready condition a successful pass reports. */
function successCondition(result: PassResult): {
  reason: string;
  message: string;
  synced: boolean;
} {
  switch (result.kind) {
    case 'checked':
      return { reason: REASON_SYNCED, message: 'Secret was synced', synced: false };
    case 'retained':
      return {
        reason: REASON_SYNCED,
        message: 'secret retained due to DeletionPolicy=Retain',
        synced: true,
      };
    case 'deleted':
      return {
        reason: REASON_DELETED,
        message: 'secret deleted due to DeletionPolicy=Delete',
        synced: true,
      };
    case 'written':
      return result.secret.action === 'missing'
        ? {
            reason: REASON_MISSING,
            message: 'secret will not be created due to CreationPolicy=Merge',
            synced: true,
          }
        : { reason: REASON_SYNCED, message: 'Secret was synced', synced: true };
  }
}

async function reportSuccess(
  deps: SyncDeps,
  es: ExternalSecret,
  target: string,
  result: PassResult,
  now: Date,
): Promise<void> {
  const namespace = es.metadata.namespace ?? deps.config.podNamespace;
  const id = `${namespace}/${es.metadata.name}`;
  const source = { component: COMPONENT, instance: deps.config.podName };
  const event = (type: 'Normal' | 'Warning', reason: string, message: string) =>
    bestEffort(deps, id, 'event failed', () =>
      emitEvent(deps.kube, es, type, reason, message, source, now),
    );

  const condition = successCondition(result);
  const wroteSecret =
    (result.kind === 'written' &&
      (result.secret.action === 'created' || result.secret.action === 'updated')) ||
    (result.kind === 'deleted' && result.deleted);
  await bestEffort(deps, id, 'status update failed', () =>
    updateStatus(deps.kube, es, { ready: true, target, ...condition }, now, wroteSecret),
  );

  if (result.kind === 'written') {
    const action = result.secret.action;
    if (action === 'created')
      await event('Normal', EVENT_CREATED, `Created Secret ${namespace}/${target}`);
    if (action === 'updated')
      await event('Normal', EVENT_UPDATED, `Updated Secret ${namespace}/${target}`);
    // keys whose remote secret is gone are reported with it (MissingProviderSecret, below)
    const gone = new Set(result.missing.flatMap((m) => secretKeyOf(es, m) ?? []));
    const foreign = result.secret.removedKeys.filter((k) => !gone.has(k));
    const unknownSource = result.missing.some((m) => secretKeyOf(es, m) === undefined);
    if (foreign.length) {
      await event(
        'Warning',
        EVENT_UPDATED,
        result.secret.adopted
          ? `adopted Secret ${namespace}/${target} and removed keys the ExternalSecret does not define: ${foreign.join(', ')}`
          : unknownSource
            ? `removed keys the ExternalSecret no longer produces from Secret ${namespace}/${target} (a remote secret of spec.dataFrom no longer exists, or they were added by hand): ${foreign.join(', ')}`
            : `removed keys the ExternalSecret does not define from Secret ${namespace}/${target} (added by hand?): ${foreign.join(', ')}`,
      );
    }
  }
  if (result.kind === 'deleted' && result.deleted)
    await event(
      'Normal',
      EVENT_DELETED,
      `Deleted Secret ${namespace}/${target}: secret deleted due to DeletionPolicy=Delete`,
    );
  // Missing remote secrets are reported when they changed the Secret, not on every pass.
  if ((result.kind === 'written' || result.kind === 'deleted') && wroteSecret) {
    const policy = es.spec.target?.deletionPolicy ?? 'Retain';
    const removed = new Set(result.kind === 'written' ? result.secret.removedKeys : []);
    for (const m of result.missing) {
      const key = secretKeyOf(es, m);
      const what =
        key !== undefined && removed.has(key)
          ? `removed key ${key} from Secret ${namespace}/${target}: its remote secret no longer exists`
          : 'its keys were left out';
      await event(
        'Normal',
        EVENT_MISSING_PROVIDER_SECRET,
        `secret ${m.key} does not exist at provider (${m.where}, ${m.store}); ${what} (DeletionPolicy=${policy})`,
      );
    }
  }
  if (hasChanged(result)) deps.log.info('secret synced', { externalSecret: id, target });
}

async function reportFailure(
  deps: SyncDeps,
  es: ExternalSecret,
  target: string,
  message: string,
  now: Date,
): Promise<void> {
  const id = `${es.metadata.namespace}/${es.metadata.name}`;
  const isNew = isNewFailure(es, message);
  await bestEffort(deps, id, 'status update failed', () =>
    updateStatus(
      deps.kube,
      es,
      { ready: false, reason: REASON_SYNC_ERROR, message, target },
      now,
      false,
    ),
  );
  if (isNew) {
    const source = { component: COMPONENT, instance: deps.config.podName };
    await bestEffort(deps, id, 'event failed', () =>
      emitEvent(deps.kube, es, 'Warning', EVENT_UPDATE_FAILED, message, source, now),
    );
  }
}

/** Status and Events are reports: failing to write one is logged, and the pass goes on. */
async function bestEffort(
  deps: SyncDeps,
  id: string,
  msg: string,
  run: () => Promise<unknown>,
): Promise<void> {
  try {
    await run();
  } catch (err) {
    const e = asAgentError(err);
    deps.log.warn(msg, { externalSecret: id, errCode: e.code, err: e.message });
  }
}
