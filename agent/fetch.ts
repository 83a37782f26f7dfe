/**
 * Step 2 of a pass: reads every `dataFrom` and `data` entry through its store and returns the
 * Secret data they define, in ESO's order: `dataFrom` entries merged in spec order (a later
 * entry's key wins), then `data` entries, which win over all of them.
 *
 * Per entry, as ESO does it:
 * - `data[]`: read the remote secret (`remoteRef.key`/`version`), take `property` (one resolver
 *   for every provider, properties.ts), then decode (`decodingStrategy`).
 * - `dataFrom[].extract`: read one JSON object secret and take each top-level key (non-string
 *   values as their JSON text, null as empty).
 * - `dataFrom[].find`: every remote secret matching `name.regexp`, `tags` and `path`, by name.
 * - for both: `rewrite` the key names, or else apply `conversionStrategy`; check the names;
 *   then decode the values.
 *
 * `sourceRef.storeRef` reads an entry from another store. Each store and provider is built
 * once per pass, and each identical remote read made once.
 *
 * A remote secret that does not exist fails the pass under deletionPolicy Retain (the default);
 * under Delete and Merge the entry is left out and reported in `missing`.
 */
import { applyDecoding } from './decoding.ts';
import { AgentError, ConfigError, UnsupportedError } from './errors.ts';
import { convertKeys, rewriteKeys, validateKey, validateKeys } from './keys.ts';
import { extractEntries, selectProperty } from './properties.ts';
import {
  loadProvider,
  storeLabel,
  type Provider,
  type ProviderContext,
} from './providers/provider.ts';
import { getStore } from './store.ts';
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
import type { Config } from './config.ts';

export interface FetchDeps {
  kube: KubeApi;
  config: Config;
  env?: NodeJS.ProcessEnv;
  loadProvider?: (ctx: ProviderContext) => Promise<Provider>;
}

/** A remote secret that does not exist, left out under deletionPolicy Delete or Merge. */
export interface MissingEntry {
  /** `spec.data[1]` or `spec.dataFrom[0]` */
  where: string;
  key: string;
  store: string;
}

export interface Fetched {
  data: Record<string, Buffer>;
  missing: MissingEntry[];
}

function asAgentError(err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  return new AgentError('ERR_UNEXPECTED', err instanceof Error ? err.message : String(err));
}

/** A failure whose message says where it happened; the code is kept. */
export function locate(err: unknown, where: string): AgentError {
  const e = asAgentError(err);
  return new AgentError(e.code, `${where}: ${e.message}`);
}

/** The marker of an entry skipped because its remote secret is gone. */
const MISSING = Symbol('missing');

/** Fetches everything `es` asks for. Throws an AgentError for the first failing entry. */
export async function fetchData(
  deps: FetchDeps,
  es: ExternalSecret,
  signal: AbortSignal,
): Promise<Fetched> {
  const sources = new Sources(deps, es, signal);
  try {
    // All entries are fetched at once, but the failure reported is the first in spec order, so
    // the same outage gives the same message every pass (and so no new status write or Event).
    const settled = await Promise.allSettled([
      ...(es.spec.dataFrom ?? []).map((entry, i) => sources.dataFrom(entry, i)),
      ...(es.spec.data ?? []).map((entry, i) => sources.dataEntry(entry, i)),
    ]);
    const out: Fetched = { data: {}, missing: [] };
    for (const result of settled) {
      if (result.status === 'rejected') throw result.reason;
      if ('missing' in result.value) out.missing.push(result.value.missing);
      else for (const [k, v] of result.value.data) out.data[k] = v;
    }
    return out;
  } finally {
    sources.close();
  }
}

type EntryResult = { data: Map<string, Buffer> } | { missing: MissingEntry };

/** The stores and providers one pass uses, each built once, and its remote reads, each made once. */
class Sources {
  readonly #deps: FetchDeps;
  readonly #es: ExternalSecret;
  readonly #signal: AbortSignal;
  readonly #skipMissing: boolean;
  readonly #stores = new Map<string, Promise<{ store: SecretStore; provider: Provider }>>();
  readonly #reads = new Map<string, Promise<Buffer | string>>();

  constructor(deps: FetchDeps, es: ExternalSecret, signal: AbortSignal) {
    this.#deps = deps;
    this.#es = es;
    this.#signal = signal;
    this.#skipMissing = (es.spec.target?.deletionPolicy ?? 'Retain') !== 'Retain';
  }

  async dataFrom(entry: ExternalSecretDataFrom, i: number): Promise<EntryResult> {
    const where = `spec.dataFrom[${i}]`;
    if (entry.sourceRef?.generatorRef)
      throw new UnsupportedError(`${where}: sourceRef.generatorRef is not supported yet`);
    if (entry.find && entry.extract)
      throw new ConfigError(`${where}: set either extract or find, not both`);
    if (entry.find) return this.#find(entry, where);
    if (entry.extract) return this.#extract(entry, where);
    throw new ConfigError(`${where}: needs extract or find`);
  }

  async #extract(entry: ExternalSecretDataFrom, where: string): Promise<EntryResult> {
    const ref = entry.extract as RemoteRef;
    const at = `${where}.extract`;
    const read = await this.#read(entry.sourceRef, ref, `error processing ${at} (key ${ref.key})`);
    if (read === MISSING) return this.#missing(entry.sourceRef, ref.key, where);
    const { label, value } = read;
    try {
      const entries = new Map<string, Buffer>();
      for (const [key, text] of extractEntries(value, ref.key))
        entries.set(key, Buffer.from(text, 'utf8'));
      const data = await this.#keys(entries, entry, ref.conversionStrategy, at);
      return { data: this.#decode(data, ref.decodingStrategy, at) };
    } catch (err) {
      throw locate(err, `error processing ${at} (key ${ref.key}): ${label}`);
    }
  }

  async #find(entry: ExternalSecretDataFrom, where: string): Promise<EntryResult> {
    const find = entry.find ?? {};
    const at = `${where}.find`;
    if (find.name?.regexp === undefined && !find.tags && find.path === undefined)
      throw new ConfigError(`${at}: needs name.regexp, tags or path`);
    const storeRef = this.#storeRef(entry.sourceRef, at);
    const { store, provider } = await this.#source(storeRef).catch((err: unknown) => {
      throw locate(err, `error processing ${at}`);
    });
    const label = storeLabel(store);
    if (!provider.getAllSecrets)
      throw new UnsupportedError(
        `error processing ${at}: ${label}: provider ${provider.name} cannot list secrets (find)`,
      );
    try {
      const found = await provider.getAllSecrets(
        {
          ...(find.name ? { name: find.name } : {}),
          ...(find.tags ? { tags: find.tags } : {}),
          ...(find.path !== undefined ? { path: find.path } : {}),
        },
        this.#signal,
      );
      const entries = new Map<string, Buffer>();
      for (const [k, v] of found)
        entries.set(k, typeof v === 'string' ? Buffer.from(v, 'utf8') : v);
      const data = await this.#keys(entries, entry, find.conversionStrategy, at);
      return { data: this.#decode(data, find.decodingStrategy, at) };
    } catch (err) {
      throw locate(err, `error processing ${at}: ${label}`);
    }
  }

  /** rewrite, or else conversionStrategy; then the names are checked. */
  async #keys(
    data: Map<string, Buffer>,
    entry: ExternalSecretDataFrom,
    conversion: RemoteRef['conversionStrategy'],
    at: string,
  ): Promise<Map<string, Buffer>> {
    const rewrites = entry.rewrite ?? [];
    let out: Map<string, Buffer>;
    if (rewrites.length) {
      const transform = rewrites.some((r) => r.transform) ? await transformRenderer() : undefined;
      out = rewriteKeys(data, rewrites, at.replace(/\.(extract|find)$/, ''), transform);
    } else {
      out = convertKeys(data, conversion, at);
    }
    return validateKeys(out, at);
  }

  #decode(
    data: Map<string, Buffer>,
    strategy: RemoteRef['decodingStrategy'],
    at: string,
  ): Map<string, Buffer> {
    for (const [key, value] of data)
      data.set(key, applyDecoding(value, strategy, `${at} key ${key}`));
    return data;
  }

  async dataEntry(entry: ExternalSecretData, i: number): Promise<EntryResult> {
    const ref = entry.remoteRef;
    const where = `error processing spec.data[${i}] (key ${ref?.key})`;
    if (!ref?.key) throw new ConfigError(`spec.data[${i}]: remoteRef.key is not set`);
    validateKey(entry.secretKey ?? '', `spec.data[${i}].secretKey`);
    if (entry.sourceRef?.generatorRef)
      throw new UnsupportedError(`spec.data[${i}]: sourceRef.generatorRef is not supported yet`);
    const read = await this.#read(entry.sourceRef, ref, where);
    if (read === MISSING) return this.#missing(entry.sourceRef, ref.key, `spec.data[${i}]`);
    const { label, value } = read;
    try {
      const selected =
        ref.property === undefined ? value : selectProperty(value, ref.property, ref.key);
      const bytes = typeof selected === 'string' ? Buffer.from(selected, 'utf8') : selected;
      const decoded = applyDecoding(bytes, ref.decodingStrategy, `key ${ref.key}`);
      return { data: new Map([[entry.secretKey, decoded]]) };
    } catch (err) {
      throw locate(err, `${where}: ${label}`);
    }
  }

  #missing(sourceRef: SourceRef | undefined, key: string, where: string): EntryResult {
    const ref = this.#storeRef(sourceRef, where);
    return { missing: { where, key, store: `${ref.kind ?? 'SecretStore'} ${ref.name}` } };
  }

  #storeRef(sourceRef: SourceRef | undefined, where: string): StoreRef {
    const storeRef = sourceRef?.storeRef ?? this.#es.spec.secretStoreRef;
    if (!storeRef?.name)
      throw new ConfigError(`${where}: no store: spec.secretStoreRef.name is not set`);
    return storeRef;
  }

  async #read(
    sourceRef: SourceRef | undefined,
    ref: RemoteRef,
    where: string,
  ): Promise<{ label: string; value: Buffer | string } | typeof MISSING> {
    const storeRef = this.#storeRef(sourceRef, where);

    const { store, provider } = await this.#source(storeRef).catch((err: unknown) => {
      throw locate(err, where);
    });
    const fetchMetadata = ref.metadataPolicy === 'Fetch';
    if (fetchMetadata && !provider.supportsMetadata) {
      throw new UnsupportedError(
        `${where}: ${storeLabel(store)}: metadataPolicy Fetch is not supported by provider ${provider.name}`,
      );
    }
    const readKey = `${storeRef.kind ?? 'SecretStore'}/${storeRef.name}\u0000${ref.key}\u0000${ref.version ?? ''}\u0000${fetchMetadata ? 'metadata' : 'data'}`;
    let pending = this.#reads.get(readKey);
    if (!pending) {
      pending = provider
        .getSecret(
          {
            key: ref.key,
            ...(ref.version ? { version: ref.version } : {}),
            ...(fetchMetadata ? { metadataPolicy: 'Fetch' as const } : {}),
          },
          this.#signal,
        )
        .then((v) => v.value);
      this.#reads.set(readKey, pending);
    }
    const label = storeLabel(store);
    try {
      return { label, value: await pending };
    } catch (err) {
      const e = asAgentError(err);
      if (this.#skipMissing && e.code === 'ERR_NOT_FOUND') return MISSING;
      // providers name their store; a message that does not gets the name here
      throw locate(e, e.message.startsWith(label) ? where : `${where}: ${label}`);
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

/** `rewrite[].transform`: the template gets the key name as `.value`. */
async function transformRenderer() {
  const { createRenderer } = await import('./template.ts');
  return (label: string, template: string, key: string) =>
    createRenderer({ value: Buffer.from(key, 'utf8') })(label, template).toString('utf8');
}
