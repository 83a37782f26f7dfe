/**
 * The acceptance fixtures through the agent's sync against a real kube-apiserver (with etcd,
 * started on 127.0.0.1 by the harness; the shared one under `npm test`), with the agent's own
 * API client. This is where the in-memory API server's imitation of the real one is checked:
 * Secret validation and its messages, immutability, owner references, the status subresource,
 * Events.
 *
 * The agent authenticates with a token of a service account bound to cluster-admin: what is
 * under test here is the ExternalSecret semantics, not RBAC (the end-to-end tests run the agent
 * as the pod). Each fixture gets its own namespace in place of app-ns; C20's namespaces keep
 * their names, which its conditions test.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { KubeClient } from '../../agent/kube-client.ts';
import { createLogger } from '../../agent/log.ts';
import { syncExternalSecret } from '../../agent/sync.ts';
import type { ExternalSecret, Secret } from '../../agent/types.ts';
import { useControlPlane, type ControlPlane } from '../harness/control-plane.ts';
import { installCrds } from '../harness/quickstart.ts';
import {
  assertSecret,
  loadFixtures,
  providerValues,
  type ExpectedResult,
  type Fixture,
} from './acceptance-fixtures.ts';
import { testConfig } from './helpers.ts';

type Obj = k8s.KubernetesObject & Record<string, unknown>;

let cp: ControlPlane;
let kube: KubeClient;
let objects: k8s.KubernetesObjectApi;
let core: k8s.CoreV1Api;

before(async () => {
  cp = await useControlPlane();
  installCrds(cp);
  objects = k8s.KubernetesObjectApi.makeApiClient(cp.kubeConfig);
  core = cp.kubeConfig.makeApiClient(k8s.CoreV1Api);
  kube = new KubeClient({ server: cp.server, caPem: cp.caPem, tokenFile: await adminToken() });
});

after(async () => {
  kube?.close();
  await cp?.stop();
});

/** A token of a service account bound to cluster-admin, in a file, for the agent's client. */
async function adminToken(): Promise<string> {
  const ns = 'acceptance-live';
  await ensureNamespace(ns);
  const rbac = cp.kubeConfig.makeApiClient(k8s.RbacAuthorizationV1Api);
  await ignoreExists(() =>
    core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'agent' } } }),
  );
  await ignoreExists(() =>
    rbac.createClusterRoleBinding({
      body: {
        metadata: { name: 'acceptance-live-agent' },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: 'cluster-admin',
        },
        subjects: [{ kind: 'ServiceAccount', name: 'agent', namespace: ns }],
      },
    }),
  );
  const review = await core.createNamespacedServiceAccountToken({
    namespace: ns,
    name: 'agent',
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const file = join(mkdtempSync(join(tmpdir(), 'esa-live-')), 'token');
  writeFileSync(file, review.status?.token ?? '');
  return file;
}

async function ignoreExists(run: () => Promise<unknown>): Promise<void> {
  try {
    await run();
  } catch (err) {
    if ((err as { code?: number }).code !== 409) throw err;
  }
}

async function ensureNamespace(name: string, labels: Record<string, string> = {}): Promise<void> {
  await ignoreExists(() => core.createNamespace({ body: { metadata: { name, labels } } }));
}

/** The fixture's objects, with app-ns replaced by a namespace of its own. */
function localize(f: Fixture): { manifests: Obj[]; ns: (n: string) => string } {
  const own = `acc-${f.file.replace(/\.yaml$/, '').toLowerCase()}`;
  const ns = (n: string) => (n === 'app-ns' ? own : n);
  const manifests = (f.manifests as Obj[])
    .filter((m) => m && m.kind !== 'Expectation')
    .map((m) => {
      const copy = structuredClone(m);
      if (copy.metadata?.namespace) copy.metadata.namespace = ns(copy.metadata.namespace);
      if (copy.metadata) delete copy.metadata.uid;
      delete copy.status;
      return copy;
    });
  return { manifests, ns };
}

/** Creates the objects: namespaces, then ExternalSecrets (for their uids), then the rest. */
async function apply(manifests: Obj[]): Promise<void> {
  const namespaces = new Set(
    manifests.map((m) => m.metadata?.namespace).filter((n): n is string => !!n),
  );
  for (const m of manifests.filter((o) => o.kind === 'Namespace')) {
    await ensureNamespace(m.metadata?.name as string, m.metadata?.labels ?? {});
    namespaces.delete(m.metadata?.name as string);
  }
  for (const n of namespaces) await ensureNamespace(n);

  const uids = new Map<string, string>();
  for (const m of manifests.filter((o) => o.kind === 'ExternalSecret')) {
    const created = await objects.create(m);
    uids.set(`${m.metadata?.namespace}/${m.metadata?.name}`, created.metadata?.uid as string);
  }
  for (const m of manifests.filter((o) => o.kind !== 'ExternalSecret' && o.kind !== 'Namespace')) {
    // owner references name the ExternalSecrets by name; the uids are the server's
    for (const ref of m.metadata?.ownerReferences ?? []) {
      const uid = uids.get(`${m.metadata?.namespace}/${ref.name}`);
      if (uid) ref.uid = uid;
    }
    await objects.create(m);
  }
}

describe('ExternalSecret acceptance cases through the agent sync against a real API server', async () => {
  const fixtures = await loadFixtures();
  for (const f of fixtures) {
    describe(f.file, () => {
      const { manifests, ns } = localize(f);
      before(() => apply(manifests));
      for (const r of f.expectation.results) {
        it(`${f.expectation.metadata.name}: ${r.title} [live ${f.file}]`, () => check(f, r, ns));
      }
    });
  }
});

async function check(f: Fixture, r: ExpectedResult, rename: (n: string) => string): Promise<void> {
  const [fixtureNs, name] = r.externalSecret.split('/') as [string, string];
  const ns = rename(fixtureNs);
  const esPath = `/apis/external-secrets.io/v1/namespaces/${ns}/externalsecrets/${name}`;
  const es = await kube.get<ExternalSecret>(esPath);
  const target = es.spec.target?.name || name;
  const secretPath = `/api/v1/namespaces/${ns}/secrets/${target}`;
  const read = async () => {
    try {
      return await kube.get<Secret>(secretPath);
    } catch (err) {
      if ((err as { status?: number }).status === 404) return undefined;
      throw err;
    }
  };
  const before = await read();
  const config = testConfig({ ESA_POD_NAMESPACE: ns, ESA_EXTERNAL_SECRETS: name });
  const log = createLogger('error', { component: 'agent' }, () => {});
  const out = await syncExternalSecret({ kube, config, log, env: {} }, name);

  const after = await kube.get<ExternalSecret>(esPath);
  const ready = after.status?.conditions?.find((c) => c.type === 'Ready');
  const events = (await core.listNamespacedEvent({ namespace: ns })).items
    .filter((e) => e.involvedObject.name === name && e.involvedObject.kind === 'ExternalSecret')
    .map((e) => ({ type: e.type ?? '', reason: e.reason ?? '', message: e.message ?? '' }));

  if (r.error) {
    assert.equal(out.ok, false);
    assert.deepEqual([ready?.status, ready?.reason], ['False', 'SecretSyncedError']);
    assert.ok(ready?.message?.startsWith(`${r.error.condition}: `), ready?.message);
    const warning = events.find((e) => e.type === 'Warning' && e.reason === 'UpdateFailed');
    assert.ok(warning, 'a Warning UpdateFailed Event');
    for (const text of r.error.contains) {
      const want = text.replaceAll('app-ns', ns);
      assert.ok(warning.message.includes(want), `"${warning.message}" contains "${want}"`);
    }
    for (const value of providerValues(f.manifests)) assert.ok(!warning.message.includes(value));
    assert.deepEqual(await read(), before, 'the Secret is left as it was');
    return;
  }

  assert.equal(out.ok, true, out.message);
  assert.deepEqual([ready?.status, ready?.reason], ['True', r.ready?.reason ?? 'SecretSynced']);
  if (r.ready?.message) assert.equal(ready?.message, r.ready.message);
  for (const want of r.events ?? []) {
    const text = want.contains.replaceAll('app-ns', ns);
    assert.ok(
      events.some(
        (e) => e.type === want.type && e.reason === want.reason && e.message.includes(text),
      ),
      `an Event ${want.type} ${want.reason} "${text}" among ${JSON.stringify(events)}`,
    );
  }
  if (r.deleted) assert.equal(await read(), undefined);
  if (r.secret) {
    const want = {
      ...r.secret,
      namespace: rename(r.secret.namespace ?? fixtureNs),
      ...(r.secret.ownerReferences
        ? {
            ownerReferences: r.secret.ownerReferences.map((o) => ({
              ...o,
              uid: after.metadata.uid as string,
            })),
          }
        : {}),
    };
    assertSecret(await read(), want, ns);
    const dir = join(config.outputDir, target);
    const files = Object.fromEntries(
      readdirSync(dir).map((k) => [k, readFileSync(join(dir, k), 'utf8')]),
    );
    assert.deepEqual(files, r.files ?? r.secret.data);
  }
}

describe('the in-memory API server (render) words Secret errors as the real one', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const cases: {
    name: string;
    secret: Record<string, unknown>;
    /** Merged into the Secret's metadata (name and namespace otherwise the test's own). */
    metadata?: Record<string, unknown>;
    update?: Record<string, unknown>;
  }[] = [
    { name: 'tls without its keys', secret: { type: 'kubernetes.io/tls', data: {} } },
    {
      name: 'basic-auth without username or password',
      secret: { type: 'kubernetes.io/basic-auth', data: { x: b64('1') } },
    },
    {
      name: 'ssh-auth without ssh-privatekey',
      secret: { type: 'kubernetes.io/ssh-auth', data: {} },
    },
    {
      name: 'dockerconfigjson without its key',
      secret: { type: 'kubernetes.io/dockerconfigjson', data: {} },
    },
    {
      name: 'dockerconfigjson that is a JSON list',
      secret: { type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': b64('[1]') } },
    },
    {
      name: 'dockercfg cut short',
      secret: { type: 'kubernetes.io/dockercfg', data: { '.dockercfg': b64('{"a":') } },
    },
    { name: 'a key with a slash', secret: { data: { 'a/b': b64('1') } } },
    { name: 'a key starting with ..', secret: { data: { '..a': b64('1') } } },
    { name: 'a key of 254 characters', secret: { data: { ['k'.repeat(254)]: b64('1') } } },
    {
      name: 'a type change',
      secret: { data: {} },
      update: { type: 'kubernetes.io/tls', data: { 'tls.crt': '', 'tls.key': '' } },
    },
    {
      name: 'new data in an immutable Secret',
      secret: { immutable: true, data: { k: b64('1') } },
      update: { immutable: true, data: { k: b64('2') } },
    },
    { name: 'a name with an underscore', secret: {}, metadata: { name: 'Bad_Name' } },
    { name: 'a name of 254 characters', secret: {}, metadata: { name: 'n'.repeat(254) } },
    { name: 'a label key with a space', secret: {}, metadata: { labels: { 'bad label': 'x' } } },
    { name: 'a label value with a space', secret: {}, metadata: { labels: { ok: 'x y' } } },
    {
      name: 'a bad label key and value together',
      secret: {},
      metadata: { labels: { 'bad label': 'x y' } },
    },
    {
      name: 'a label value of 64 characters',
      secret: {},
      metadata: { labels: { ok: 'v'.repeat(64) } },
    },
    {
      name: 'a label key with an upper-case prefix',
      secret: {},
      metadata: { labels: { 'Example.com/app': 'x' } },
    },
    {
      name: 'a label key with an empty prefix and a long name',
      secret: {},
      metadata: { labels: { ['/' + 'k'.repeat(64)]: 'x' } },
    },
    {
      name: 'a label key with a prefix of 254 characters',
      secret: {},
      metadata: { labels: { [`${'p'.repeat(254)}/app`]: 'x' } },
    },
    {
      name: 'a label key with two slashes',
      secret: {},
      metadata: { labels: { 'a/b/c': 'x' } },
    },
    {
      name: 'an annotation key ending in a dash',
      secret: {},
      metadata: { annotations: { 'example.com/note-': 'anything at all' } },
    },
    {
      name: 'annotations over 256 KiB',
      secret: {},
      metadata: { annotations: { a: 'x'.repeat(256 * 1024) } },
    },
  ];
  const ns = 'acc-memory-kube';
  before(() => ensureNamespace(ns));

  for (const [i, c] of cases.entries()) {
    it(`gives the API server's message for ${c.name}`, async () => {
      const { MemoryKube } = await import('../../agent/memory-kube.ts');
      const memory = new MemoryKube();
      const own = `case-${i}`;
      const body = {
        apiVersion: 'v1',
        kind: 'Secret',
        ...c.secret,
        metadata: { name: own, namespace: ns, ...c.metadata },
      };
      const messages: string[] = [];
      const name = body.metadata.name as string;
      for (const api of [kube, memory]) {
        const collection = `/api/v1/namespaces/${ns}/secrets`;
        try {
          await api.create(collection, body);
          if (c.update) {
            const live = await api.get<Secret>(`${collection}/${name}`);
            await api.replace(`${collection}/${name}`, { ...live, ...c.update });
          }
          messages.push('accepted');
        } catch (err) {
          messages.push((err as Error).message);
        }
      }
      assert.notEqual(messages[0], 'accepted');
      assert.equal(messages[1], messages[0]);
    });
  }
});
