/**
 * One pass for one ExternalSecret:
 *
 * 1. read the ExternalSecret and its store(s) (ClusterSecretStore conditions checked);
 * 2. fetch `dataFrom[].extract` (merged in order) and then `data[]` (which wins), applying
 *    property paths and decoding; identical remote reads within a pass are made once;
 * 3. apply `target.template`;
 * 4. write the files (atomic swap, nothing when unchanged);
 * 5. create or update the Secret (nothing when unchanged);
 * 6. update status and emit Events, only on change.
 *
 * Nothing is written unless steps 2 and 3 succeeded for every key, so a failure leaves the last
 * good files and Secret in place. A pass never throws: it returns a SyncOutcome whose message
 * names the ExternalSecret, the store, the key and the cause, and never a value. Failures are
 * reported in status and Events here; logging a failure is the caller's decision (init and
 * sidecar judge its severity differently).
 */
import type { Config } from './config.ts';
import { applyDecoding } from './decoding.ts';
import { parseDuration } from './duration.ts';
import { AgentError, ConfigError, UnsupportedError } from './errors.ts';
import { targetWrittenAt, writeTargetFiles } from './files.ts';
import type { Logger } from './log.ts';
import { extractEntries, selectProperty } from './properties.ts';
import {
  loadProvider,
  storeLabel,
  type Provider,
  type ProviderContext,
} from './providers/provider.ts';
import { writeSecret, type WriteOutcome } from './secret-writer.ts';
import {
  EVENT_UPDATED,
  EVENT_UPDATE_FAILED,
  REASON_SYNCED,
  REASON_SYNC_ERROR,
  emitEvent,
  isNewFailure,
  updateStatus,
} from './status.ts';
import { getExternalSecret, getStore } from './store.ts';
import type {
  ExternalSecret,
  ExternalSecretData,
  ExternalSecretDataFrom,
  KubeApi,
  RemoteRef,
  SecretStore,
  SourceRef,
  StoreRef,
} from './types.ts';

/** ESO's default when spec.refreshInterval is absent. */
export const DEFAULT_REFRESH_INTERVAL = '1h';
/** Events' reportingComponent. */
const COMPONENT = 'external-secrets-agent';

export interface SyncDeps {
  kube: KubeApi;
  config: Config;
  log: Logger;
  /** Environment for providers (AWS_* and the like); defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
  /** Replaces the provider lookup (tests). */
  loadProvider?: (ctx: ProviderContext) => Promise<Provider>;
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
  /** Whether the files or the Secret were written. */
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

/** Marks which stage failed; the stage picks ESO's condition message. */
class StageError extends Error {
  readonly stage: 'fetch' | 'update';
  readonly error: AgentError;
  constructor(stage: 'fetch' | 'update', error: AgentError) {
    super(error.message);
    this.stage = stage;
    this.error = error;
  }
}

const stageMessages = {
  fetch: 'could not get secret data from provider',
  update: 'could not update secret',
} as const;

function asAgentError(err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  return new AgentError('ERR_UNEXPECTED', err instanceof Error ? err.message : String(err));
}

/** A fetch-stage failure whose message says where it happened; the code is kept. */
function fetchError(err: unknown, where: string): StageError {
  const e = asAgentError(err);
  return new StageError('fetch', new AgentError(e.code, `${where}: ${e.message}`));
}

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

  let es: ExternalSecret;
  try {
    es = await getExternalSecret(deps.kube, namespace, name);
  } catch (err) {
    const error = asAgentError(err);
    return {
      externalSecret: id,
      ok: false,
      changed: false,
      skipped: false,
      message: error.message,
      error,
    };
  }

  const target = es.spec.target?.name || name;
  let intervalMs: number | undefined;
  try {
    intervalMs = refreshIntervalMs(es, deps.config);
    if (options.skipIfFresh) {
      const skip = await freshness(deps.config.outputDir, target, intervalMs, now());
      if (skip)
        return {
          externalSecret: id,
          ok: true,
          changed: false,
          skipped: true,
          refreshIntervalMs: intervalMs,
          ...skip,
        };
    }
    const signal = withTimeout(options.signal, deps.config.syncTimeoutMs);
    const data = await stage('fetch', () => fetchData(deps, es, signal));
    const written = await stage('update', () => writeTarget(deps, es, target, data));
    await reportSuccess(deps, es, target, written, now());
    deps.log.debug('sync pass done', {
      externalSecret: id,
      keys: Object.keys(data),
      durationMs: Date.now() - started,
    });
    return {
      externalSecret: id,
      ok: true,
      changed: written.changed,
      skipped: false,
      refreshIntervalMs: intervalMs,
    };
  } catch (err) {
    const stageName = err instanceof StageError ? err.stage : 'fetch';
    const error = err instanceof StageError ? err.error : asAgentError(err);
    const message = `${stageMessages[stageName]}: ${error.message}`;
    // A pass cut short by the sidecar stopping is not a sync failure: report nothing.
    if (!options.signal?.aborted) await reportFailure(deps, es, target, message, now());
    const outcome: SyncOutcome = {
      externalSecret: id,
      ok: false,
      changed: false,
      skipped: false,
      message: `ExternalSecret ${id}: ${message}`,
      error,
    };
    if (intervalMs !== undefined) outcome.refreshIntervalMs = intervalMs;
    return outcome;
  }
}

async function stage<T>(name: 'fetch' | 'update', run: () => Promise<T>): Promise<T> {
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
  root: string,
  target: string,
  intervalMs: number,
  now: Date,
): Promise<{ nextInMs?: number } | undefined> {
  const writtenAt = await targetWrittenAt(root, target);
  if (!writtenAt) return undefined;
  if (intervalMs === 0) return {};
  const age = now.getTime() - writtenAt.getTime();
  return age >= 0 && age < intervalMs ? { nextInMs: intervalMs - age } : undefined;
}

/** Reads the stores and fetches every entry; returns the merged data (dataFrom, then data). */
async function fetchData(
  deps: SyncDeps,
  es: ExternalSecret,
  signal: AbortSignal,
): Promise<Record<string, Buffer>> {
  const sources = new Sources(deps, es, signal);
  try {
    // All entries are fetched at once, but the failure reported is the first in spec order, so
    // the same outage gives the same message every pass (and so no new status write or Event).
    const settled = await Promise.allSettled([
      ...(es.spec.dataFrom ?? []).map((entry, i) => sources.extract(entry, i)),
      ...(es.spec.data ?? []).map((entry, i) => sources.dataEntry(entry, i)),
    ]);
    const out: Record<string, Buffer> = {};
    for (const result of settled) {
      if (result.status === 'rejected') throw result.reason;
      Object.assign(out, result.value);
    }
    return out;
  } finally {
    sources.close();
  }
}

/** The stores and providers one pass uses, each built once, and its remote reads, each made once. */
class Sources {
  readonly #deps: SyncDeps;
  readonly #es: ExternalSecret;
  readonly #signal: AbortSignal;
  readonly #stores = new Map<string, Promise<{ store: SecretStore; provider: Provider }>>();
  readonly #reads = new Map<string, Promise<Buffer | string>>();

  constructor(deps: SyncDeps, es: ExternalSecret, signal: AbortSignal) {
    this.#deps = deps;
    this.#es = es;
    this.#signal = signal;
  }

  async extract(entry: ExternalSecretDataFrom, i: number): Promise<Record<string, Buffer>> {
    const where = `spec.dataFrom[${i}]`;
    if (entry.find) throw new UnsupportedError(`${where}.find is not supported yet (only extract)`);
    if (entry.rewrite?.length) throw new UnsupportedError(`${where}.rewrite is not supported yet`);
    if (!entry.extract) throw new UnsupportedError(`${where}: only extract is supported yet`);
    const ref = entry.extract;
    const { label, value } = await this.#read(entry.sourceRef, ref, `${where}.extract`);

    const out: Record<string, Buffer> = {};
    try {
      for (const [key, text] of extractEntries(value, ref.key)) {
        out[key] = applyDecoding(Buffer.from(text, 'utf8'), ref.decodingStrategy, `key ${key}`);
      }
    } catch (err) {
      throw fetchError(err, `error processing ${where}.extract: ${label}`);
    }
    return out;
  }

  async dataEntry(entry: ExternalSecretData, i: number): Promise<Record<string, Buffer>> {
    const where = `spec.data[${i}]`;
    const ref = entry.remoteRef;
    const { label, value } = await this.#read(entry.sourceRef, ref, where);
    try {
      const selected =
        ref.property === undefined ? value : selectProperty(value, ref.property, ref.key);
      const bytes = typeof selected === 'string' ? Buffer.from(selected, 'utf8') : selected;
      return { [entry.secretKey]: applyDecoding(bytes, ref.decodingStrategy, `key ${ref.key}`) };
    } catch (err) {
      throw fetchError(err, `error processing ${where}: ${label}`);
    }
  }

  async #read(sourceRef: SourceRef | undefined, ref: RemoteRef, where: string) {
    if (sourceRef?.generatorRef)
      throw new UnsupportedError(`${where}: sourceRef.generatorRef is not supported yet`);
    if (ref.metadataPolicy === 'Fetch')
      throw new UnsupportedError(`${where}: metadataPolicy Fetch is not supported yet`);
    if (ref.conversionStrategy && ref.conversionStrategy !== 'Default') {
      throw new UnsupportedError(
        `${where}: conversionStrategy ${ref.conversionStrategy} is not supported yet`,
      );
    }
    const storeRef = sourceRef?.storeRef ?? this.#es.spec.secretStoreRef;
    if (!storeRef?.name)
      throw new ConfigError(`${where}: no store: spec.secretStoreRef.name is not set`);

    const { store, provider } = await this.#source(storeRef).catch((err: unknown) => {
      throw fetchError(err, where);
    });
    const readKey = `${storeRef.kind ?? 'SecretStore'}/${storeRef.name}\u0000${ref.key}\u0000${ref.version ?? ''}`;
    let pending = this.#reads.get(readKey);
    if (!pending) {
      pending = provider
        .getSecret(
          ref.version ? { key: ref.key, version: ref.version } : { key: ref.key },
          this.#signal,
        )
        .then((v) => v.value);
      this.#reads.set(readKey, pending);
    }
    try {
      return { label: storeLabel(store), value: await pending };
    } catch (err) {
      throw fetchError(err, `error processing ${where}`);
    }
  }

  #source(ref: StoreRef): Promise<{ store: SecretStore; provider: Provider }> {
    const key = `${ref.kind ?? 'SecretStore'}/${ref.name}`;
    let pending = this.#stores.get(key);
    if (!pending) {
      pending = this.#build(ref);
      this.#stores.set(key, pending);
    }
    return pending;
  }

  async #build(ref: StoreRef): Promise<{ store: SecretStore; provider: Provider }> {
    const { kube, config } = this.#deps;
    const store = await getStore(kube, config.podNamespace, ref);
    const ctx: ProviderContext = {
      store,
      namespace: config.podNamespace,
      kube,
      config,
      env: this.#deps.env ?? process.env,
    };
    const provider = await (this.#deps.loadProvider ?? loadProvider)(ctx);
    return { store, provider };
  }

  close(): void {
    for (const pending of this.#stores.values()) {
      pending.then(
        (s) => s.provider.close?.(),
        () => {},
      );
    }
  }
}

interface Written {
  changed: boolean;
  secret: WriteOutcome;
}

/** Steps 3 to 5: template, files, Secret. */
async function writeTarget(
  deps: SyncDeps,
  es: ExternalSecret,
  target: string,
  fetched: Record<string, Buffer>,
): Promise<Written> {
  const t = es.spec.target ?? {};
  const template = t.template;
  if (template?.templateFrom?.length)
    throw new UnsupportedError('spec.target.template.templateFrom is not supported yet');

  let data = fetched;
  if (template?.data && Object.keys(template.data).length > 0) {
    // Loaded on first use: nunjucks costs memory in every sidecar, and many have no template.
    const { renderTemplateData } = await import('./template.ts');
    const rendered = renderTemplateData(template.data, fetched);
    data = template.mergePolicy === 'Merge' ? { ...fetched, ...rendered } : rendered;
  }

  // NOTE: with target.immutable the files, once written, keep their first value for the life
  // of the pod, as the Secret keeps its own (C19); a recreated Secret reaches new pods only.
  const { outputDir, fileMode } = deps.config;
  const keepFiles =
    t.immutable === true && (await targetWrittenAt(outputDir, target)) !== undefined;
  const files = keepFiles
    ? { changed: false }
    : await writeTargetFiles(outputDir, target, data, fileMode);
  const secret = await writeSecret(deps.kube, {
    namespace: deps.config.podNamespace,
    name: target,
    data,
    ...(template?.type ? { type: template.type } : {}),
    ...(template?.metadata?.labels ? { labels: template.metadata.labels } : {}),
    ...(template?.metadata?.annotations ? { annotations: template.metadata.annotations } : {}),
    ...(t.immutable ? { immutable: true } : {}),
    creationPolicy: t.creationPolicy ?? 'Owner',
    owner: {
      apiVersion: es.apiVersion,
      kind: 'ExternalSecret',
      name: es.metadata.name,
      uid: es.metadata.uid ?? '',
    },
  });
  const changed = files.changed || secret.action === 'created' || secret.action === 'updated';
  return { changed, secret };
}

async function reportSuccess(
  deps: SyncDeps,
  es: ExternalSecret,
  target: string,
  written: Written,
  now: Date,
): Promise<void> {
  const id = `${es.metadata.namespace}/${es.metadata.name}`;
  const wroteSecret = written.secret.action === 'created' || written.secret.action === 'updated';
  const source = { component: COMPONENT, instance: deps.config.podName };
  await bestEffort(deps, id, 'status update failed', () =>
    updateStatus(
      deps.kube,
      es,
      { ready: true, reason: REASON_SYNCED, message: 'Secret was synced', target },
      now,
      wroteSecret,
    ),
  );
  if (wroteSecret) {
    const msg = `${written.secret.action === 'created' ? 'Created' : 'Updated'} Secret ${es.metadata.namespace}/${target}`;
    await bestEffort(deps, id, 'event failed', () =>
      emitEvent(deps.kube, es, 'Normal', EVENT_UPDATED, msg, source, now),
    );
  }
  if (written.secret.removedKeys.length) {
    const msg = `adopted Secret ${es.metadata.namespace}/${target} and removed keys the ExternalSecret does not define: ${written.secret.removedKeys.join(', ')}`;
    await bestEffort(deps, id, 'event failed', () =>
      emitEvent(deps.kube, es, 'Warning', EVENT_UPDATED, msg, source, now),
    );
  }
  if (written.changed) deps.log.info('secret synced', { externalSecret: id, target });
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
