/**
 * The acceptance fixtures (test/fixtures/externalsecret-cases/*.yaml) and the checks shared by
 * the tests that run them through render, the in-memory sync and the real API server.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseManifests } from '../../agent/render.ts';
import type { OwnerReference, Secret } from '../../agent/types.ts';

export const fixtureDir = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'fixtures',
  'externalsecret-cases',
);

export interface ExpectedSecret {
  name: string;
  namespace?: string;
  type?: string;
  immutable?: boolean;
  /** Decoded values as text. */
  data: Record<string, string>;
  /** Labels that must be present with these values. */
  labels?: Record<string, string>;
  /** The exact owner references ([] for none). */
  ownerReferences?: OwnerReference[];
}

export interface ExpectedResult {
  externalSecret: string;
  title: string;
  secret?: ExpectedSecret;
  error?: { condition: string; contains: string[] };
  /** The input's Secret is left exactly as it was (error cases). */
  unchanged?: boolean;
  /** The target no longer exists after the pass. */
  deleted?: boolean;
  ready?: { reason?: string; message?: string; refreshTime?: boolean };
  /** The files the pod gets, when they differ from the Secret's data (Merge targets). */
  files?: Record<string, string>;
  events?: { type: string; reason: string; contains: string }[];
  /** Texts no Event (and no render note) may contain. */
  absentEvents?: string[];
}

/**
 * The expected Events that `render` reports as notes: Warnings, deletions and missing remote
 * secrets (render.ts); Normal Created/Updated Events are not notes.
 */
export function renderedEvents(r: ExpectedResult): { contains: string }[] {
  return (r.events ?? []).filter(
    (e) => e.type === 'Warning' || e.reason === 'Deleted' || e.reason === 'MissingProviderSecret',
  );
}

export interface Expectation {
  kind: 'Expectation';
  metadata: { name: string };
  spawn?: boolean;
  provider?: string;
  results: ExpectedResult[];
}

export interface Fixture {
  file: string;
  path: string;
  manifests: unknown[];
  expectation: Expectation;
}

/** Every fixture file with its parsed manifests and Expectation. */
export async function loadFixtures(): Promise<Fixture[]> {
  const out: Fixture[] = [];
  for (const file of readdirSync(fixtureDir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    const path = join(fixtureDir, file);
    const manifests = await parseManifests(readFileSync(path, 'utf8'), file);
    const expectation = manifests.find(
      (m) => (m as { kind?: string }).kind === 'Expectation',
    ) as Expectation;
    assert.ok(expectation, `${file} has no Expectation document`);
    out.push({ file, path, manifests, expectation });
  }
  return out;
}

export const decode = (data: Record<string, string> = {}) =>
  Object.fromEntries(
    Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
  );

/** Compares a Secret (as stored, data base64) with the expectation. */
export function assertSecret(secret: Secret | undefined, want: ExpectedSecret, ns: string): void {
  assert.ok(secret, `Secret ${ns}/${want.name} exists`);
  assert.equal(secret.metadata.name, want.name);
  assert.equal(secret.metadata.namespace, want.namespace ?? ns);
  assert.equal(secret.type ?? 'Opaque', want.type ?? 'Opaque');
  assert.deepEqual(decode(secret.data), want.data);
  if (want.immutable !== undefined) assert.equal(Boolean(secret.immutable), want.immutable);
  for (const [k, v] of Object.entries(want.labels ?? {}))
    assert.equal(secret.metadata.labels?.[k], v);
  assert.equal(secret.metadata.labels?.['reconcile.external-secrets.io/managed'], 'true');
  assert.match(
    secret.metadata.annotations?.['reconcile.external-secrets.io/data-hash'] ?? '',
    /^[0-9a-f]{56}$/,
  );
  if (want.ownerReferences)
    assert.deepEqual(secret.metadata.ownerReferences ?? [], want.ownerReferences);
}

/** Provider values long enough to recognise, which no message may contain. */
export function providerValues(manifests: unknown[]): string[] {
  const out: string[] = [];
  for (const m of manifests) {
    const fake = (m as { spec?: { provider?: { fake?: { data?: { value?: string }[] } } } }).spec
      ?.provider?.fake;
    for (const entry of fake?.data ?? [])
      if (entry.value && entry.value.length >= 6) out.push(entry.value);
  }
  return out;
}
