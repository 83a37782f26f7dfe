/**
 * Every case of shared/acceptance/externalsecret-cases.md, from the fixtures in
 * test/fixtures/externalsecret-cases/ (see the README there for the case → test table).
 *
 * Each fixture holds the manifests (stores with the provider data, ExternalSecrets, existing
 * Secrets) and one `Expectation` document that `render` skips. Here every expected result runs:
 * - through `render` (renderManifests, and for files marked `spawn` also `node cli.ts render`);
 * - through the agent's sync (syncExternalSecret) against the in-memory API server, where the
 *   status condition, the Events and the files are checked too.
 * acceptance-live.test.ts runs the same against a real API server; steps over time (C11, C13,
 * C14, C19) are in acceptance-steps.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../../agent/log.ts';
import { loadObjects, renderManifests, type RenderedItem } from '../../agent/render.ts';
import { syncExternalSecret } from '../../agent/sync.ts';
import type { ExternalSecret, Secret } from '../../agent/types.ts';
import {
  assertSecret,
  loadFixtures,
  providerValues,
  renderedEvents,
  type ExpectedResult,
  type ExpectedSecret,
  type Fixture,
} from './acceptance-fixtures.ts';
import { FakeKube } from './fake-kube.ts';
import { testConfig } from './helpers.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function caseName(f: Fixture, r: ExpectedResult): string {
  return `${f.expectation.metadata.name}: ${r.title}`;
}

function checkRendered(item: RenderedItem | undefined, r: ExpectedResult, f: Fixture): void {
  assert.ok(item, `render produced a result for ${r.externalSecret}`);
  const ns = r.externalSecret.split('/')[0] as string;
  if (r.error) {
    assert.equal(item.ok, false, 'render fails');
    assert.equal(item.secret, undefined);
    assert.ok(
      item.message?.startsWith(`ExternalSecret ${r.externalSecret}: ${r.error.condition}: `),
      item.message,
    );
    for (const text of r.error.contains)
      assert.ok(item.message?.includes(text), `"${item.message}" contains "${text}"`);
    for (const value of providerValues(f.manifests)) assert.ok(!item.message?.includes(value));
    return;
  }
  assert.equal(item.ok, true, item.message);
  if (r.deleted) {
    assert.equal(item.secret, undefined);
    assert.ok(
      item.notes.some((n) => n.includes('DeletionPolicy=Delete')),
      item.notes.join('; '),
    );
  }
  for (const want of renderedEvents(r))
    assert.ok(
      item.notes.some((n) => n.includes(want.contains)),
      `a note "${want.contains}" among ${JSON.stringify(item.notes)}`,
    );
  for (const text of r.absentEvents ?? [])
    assert.ok(!item.notes.some((n) => n.includes(text)), `no note says "${text}"`);
  if (r.secret) {
    // an ExternalSecret without a uid in the input gets no owner reference in render's output
    const es = f.manifests.find(
      (m) =>
        (m as { kind?: string }).kind === 'ExternalSecret' &&
        `${(m as { metadata: { namespace?: string } }).metadata.namespace ?? 'default'}/${(m as { metadata: { name: string } }).metadata.name}` ===
          r.externalSecret,
    ) as { metadata: { uid?: string } } | undefined;
    const want =
      r.secret.ownerReferences && !es?.metadata.uid ? { ...r.secret, ownerReferences: [] } : r.secret;
    assertSecret(item.secret, want, ns);
  }
}

describe('ExternalSecret acceptance cases through render', async () => {
  const fixtures = await loadFixtures();
  for (const f of fixtures) {
    const rendered = renderManifests(f.manifests, { env: {} });
    for (const r of f.expectation.results) {
      it(`${caseName(f, r)} [render ${f.file}]`, async () => {
        const { items } = await rendered;
        checkRendered(
          items.find((i) => i.externalSecret === r.externalSecret),
          r,
          f,
        );
      });
    }
    if (f.expectation.spawn) {
      it(`${f.expectation.metadata.name}: every result of ${f.file} through "external-secrets-agent render -o json"`, () => {
        const run = spawnSync(process.execPath, ['cli.ts', 'render', '-f', f.path, '-o', 'json'], {
          cwd: root,
          encoding: 'utf8',
          env: { PATH: process.env.PATH ?? '' },
        });
        const failing = f.expectation.results.filter((r) => r.error);
        assert.equal(run.status, failing.length ? 1 : 0, run.stderr);
        const doc = JSON.parse(run.stdout) as Secret | { kind: 'List'; items: Secret[] };
        const secrets = 'items' in doc ? doc.items : [doc];
        const wanted = f.expectation.results.filter((r) => r.secret);
        assert.equal(secrets.length, wanted.length);
        for (const r of wanted) {
          const ns = r.externalSecret.split('/')[0] as string;
          const s = secrets.find(
            (x) => x.metadata.namespace === ns && x.metadata.name === r.secret?.name,
          );
          assertSecret(s, r.secret as ExpectedSecret, ns);
        }
        for (const r of failing) {
          assert.match(
            run.stderr,
            new RegExp(
              `error: ExternalSecret ${r.externalSecret}: ${escape(r.error?.condition ?? '')}`,
            ),
          );
          for (const text of r.error?.contains ?? []) assert.ok(run.stderr.includes(text), text);
        }
        assert.match(run.stderr, /note: skipped Expectation/);
      });
    }
  }
});

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('ExternalSecret acceptance cases through the agent sync', async () => {
  const fixtures = await loadFixtures();
  for (const f of fixtures) {
    for (const r of f.expectation.results) {
      it(`${caseName(f, r)} [sync ${f.file}]`, async () => {
        const kube = new FakeKube();
        loadObjects(kube, f.manifests);
        const [ns, name] = r.externalSecret.split('/') as [string, string];
        const esPath = `/apis/external-secrets.io/v1/namespaces/${ns}/externalsecrets/${name}`;
        const es = kube.object<ExternalSecret>(esPath) as ExternalSecret;
        const target = es.spec.target?.name || name;
        const secretPath = `/api/v1/namespaces/${ns}/secrets/${target}`;
        const before = kube.object<Secret>(secretPath);
        const config = testConfig({ ESA_POD_NAMESPACE: ns, ESA_EXTERNAL_SECRETS: name });
        const log = createLogger('error', { component: 'agent' }, () => {});
        const out = await syncExternalSecret({ kube, config, log, env: {} }, name);

        const after = kube.object<ExternalSecret>(esPath) as ExternalSecret;
        const ready = after.status?.conditions?.find((c) => c.type === 'Ready');
        const events = kube
          .events()
          .filter((e) => {
            const o = e.involvedObject as { name?: string; namespace?: string };
            return o.name === name && o.namespace === ns;
          })
          .map((e) => ({
            type: String(e.type),
            reason: String(e.reason),
            message: String(e.message),
          }));
        const filesDir = join(config.outputDir, target);

        if (r.error) {
          assert.equal(out.ok, false);
          assert.equal(ready?.status, 'False');
          assert.equal(ready?.reason, 'SecretSyncedError');
          assert.ok(ready?.message?.startsWith(`${r.error.condition}: `), ready?.message);
          const warning = events.find((e) => e.type === 'Warning' && e.reason === 'UpdateFailed');
          assert.ok(warning, 'a Warning UpdateFailed Event');
          for (const text of r.error.contains)
            assert.ok(warning.message.includes(text), `"${warning.message}" contains "${text}"`);
          for (const value of providerValues(f.manifests)) {
            assert.ok(!ready?.message?.includes(value) && !warning.message.includes(value));
          }
          assert.deepEqual(kube.object(secretPath), before, 'the Secret is left as it was');
          if (r.unchanged) assert.ok(before, 'the input holds the Secret');
          assert.equal(existsSync(filesDir), false, 'no files are written');
          return;
        }

        assert.equal(out.ok, true, out.message);
        assert.equal(ready?.status, 'True');
        assert.equal(ready?.reason, r.ready?.reason ?? 'SecretSynced');
        if (r.ready?.message) assert.equal(ready?.message, r.ready.message);
        if (r.ready?.refreshTime) assert.ok(after.status?.refreshTime);
        for (const want of r.events ?? []) {
          assert.ok(
            events.some(
              (e) =>
                e.type === want.type &&
                e.reason === want.reason &&
                e.message.includes(want.contains),
            ),
            `an Event ${want.type} ${want.reason} "${want.contains}" among ${JSON.stringify(events)}`,
          );
        }
        for (const text of r.absentEvents ?? [])
          assert.ok(!events.some((e) => e.message.includes(text)), `no Event says "${text}"`);
        if (r.deleted) {
          assert.equal(kube.object(secretPath), undefined);
          assert.deepEqual(readdirSync(filesDir), []);
        }
        if (r.secret) {
          assertSecret(kube.object<Secret>(secretPath), r.secret, ns);
          const files = Object.fromEntries(
            readdirSync(filesDir).map((k) => [k, readFileSync(join(filesDir, k), 'utf8')]),
          );
          assert.deepEqual(files, r.files ?? r.secret.data);
        }
      });
    }
  }
});
