/**
 * ESO's `fake` provider: the store itself holds the data, for tests, demos and `render`.
 *
 *   spec.provider.fake.data: [{ key, value, version?, valueMap?, tags? }]
 *
 * An entry matches a remoteRef when both key and version are equal (an entry without version
 * answers only refs without version). `valueMap`, deprecated in ESO, is served as the JSON text
 * of the map when `value` is absent.
 *
 * `dataFrom.find` lists the entries whose key matches `name.regexp` (Go syntax, unanchored),
 * starts with `path`, and carries every tag of `tags` (an extension: ESO's fake has no tags).
 * Where a key has several versions, the greatest version string wins, as in ESO.
 */
import { NotFoundError, UnsupportedError } from '../errors.ts';
import { compileGoRegexp, matchesGo } from '../go-regexp.ts';
import type { FindRef, Provider, ProviderContext, SecretRef, SecretValue } from './provider.ts';
import { storeLabel } from './provider.ts';

interface FakeEntry {
  key: string;
  value?: string;
  version?: string;
  valueMap?: Record<string, string>;
  tags?: Record<string, string>;
}

const valueOf = (entry: FakeEntry) =>
  entry.value ?? (entry.valueMap ? JSON.stringify(entry.valueMap) : '');

/**
 * Refuses an entry the API server would refuse (the CRD types key, value and version as
 * strings). YAML turns unquoted `0777`, `yes` or `1.0` into a number or boolean; the message
 * names the entry and the field, and the value's type, never the value.
 */
function checkEntry(entry: unknown, where: string): void {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry))
    throw new UnsupportedError(`${where}: must be an object with key and value`);
  const e = entry as Record<string, unknown>;
  if (typeof e.key !== 'string')
    throw new UnsupportedError(`${where}.key: must be a string, got ${typeName(e.key)}`);
  for (const field of ['value', 'version'] as const) {
    const v = e[field];
    if (v !== undefined && v !== null && typeof v !== 'string')
      throw new UnsupportedError(
        `${where} (key ${e.key}).${field}: must be a string, got ${typeName(v)} (quote it in YAML: unquoted numbers and yes/no/on/off are not strings)`,
      );
  }
}

const typeName = (v: unknown) =>
  v === undefined || v === null ? 'nothing' : Array.isArray(v) ? 'a list' : `a ${typeof v}`;

export async function createFakeProvider(spec: unknown, ctx: ProviderContext): Promise<Provider> {
  const label = storeLabel(ctx.store);
  const data = (spec as { data?: FakeEntry[] } | undefined)?.data;
  if (!Array.isArray(data))
    throw new UnsupportedError(`${label}: spec.provider.fake.data must be a list`);

  data.forEach((entry, i) => checkEntry(entry, `${label} (fake): spec.provider.fake.data[${i}]`));
  const entries = new Map<string, FakeEntry>();
  for (const entry of data) entries.set(`${entry.key}\u0000${entry.version ?? ''}`, entry);

  return {
    name: 'fake',
    async getSecret(ref: SecretRef): Promise<SecretValue> {
      const entry = entries.get(`${ref.key}\u0000${ref.version ?? ''}`);
      if (!entry) {
        const version = ref.version ? ` version ${ref.version}` : '';
        throw new NotFoundError(`${label} (fake): secret ${ref.key}${version} does not exist`);
      }
      const value = valueOf(entry);
      return entry.version ? { value, version: entry.version } : { value };
    },

    async getAllSecrets(find: FindRef): Promise<Map<string, Buffer | string>> {
      const re =
        find.name?.regexp !== undefined
          ? compileGoRegexp(find.name.regexp, `${label} (fake): find.name.regexp`)
          : undefined;
      const latest = new Map<string, FakeEntry>();
      for (const entry of data) {
        if (re && !matchesGo(re, entry.key)) continue;
        if (find.path !== undefined && !entry.key.startsWith(find.path)) continue;
        const tags = entry.tags ?? {};
        if (!Object.entries(find.tags ?? {}).every(([k, v]) => tags[k] === v)) continue;
        const seen = latest.get(entry.key);
        if (!seen || (seen.version ?? '') < (entry.version ?? '')) latest.set(entry.key, entry);
      }
      const out = new Map<string, Buffer | string>();
      for (const [key, entry] of latest) out.set(key, valueOf(entry));
      return out;
    },
  };
}
