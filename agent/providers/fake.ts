/**
 * ESO's `fake` provider: the store itself holds the data, for tests and demos.
 *
 *   spec.provider.fake.data: [{ key, value, version?, valueMap? }]
 *
 * An entry matches a remoteRef when both key and version are equal (an entry without version
 * answers only refs without version). `valueMap`, deprecated in ESO, is served as the JSON text
 * of the map when `value` is absent.
 */
import { NotFoundError, UnsupportedError } from '../errors.ts';
import type { Provider, ProviderContext, SecretRef, SecretValue } from './provider.ts';
import { storeLabel } from './provider.ts';

interface FakeEntry {
  key: string;
  value?: string;
  version?: string;
  valueMap?: Record<string, string>;
}

export async function createFakeProvider(spec: unknown, ctx: ProviderContext): Promise<Provider> {
  const label = storeLabel(ctx.store);
  const data = (spec as { data?: FakeEntry[] } | undefined)?.data;
  if (!Array.isArray(data))
    throw new UnsupportedError(`${label}: spec.provider.fake.data must be a list`);

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
      const value = entry.value ?? (entry.valueMap ? JSON.stringify(entry.valueMap) : '');
      return entry.version ? { value, version: entry.version } : { value };
    },
  };
}
