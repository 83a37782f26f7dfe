/**
 * One sync pass end to end inside the process: fake provider (ESO's `fake` store), the
 * in-memory API stand-in (fake-kube.ts), real files in a temp folder. What crosses to a real
 * API server and moto is the end-to-end test's job.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Config } from '../../agent/config.ts';
import { createLogger } from '../../agent/log.ts';
import { syncExternalSecret, type SyncDeps } from '../../agent/sync.ts';
import type { ExternalSecret, Secret } from '../../agent/types.ts';
import { FakeKube } from './fake-kube.ts';
import {
  NS,
  clusterSecretStore,
  externalSecret,
  paths,
  secretStore,
  testConfig,
} from './helpers.ts';

// The quick-start's provider data (shared/acceptance/quickstart-manifests.yaml), in a fake store.
const database =
  '{"host": "db.example.com", "username": "app", "password": "secret123", "port": "5432"}';
const apiKeys = '{"primary-key": "pk-1", "secondary-key": "pk-2"}';
const fakeData = [
  { key: 'prod/database', value: database },
  { key: 'prod/api-keys', value: apiKeys },
];

interface World {
  kube: FakeKube;
  config: Config;
  deps: SyncDeps;
  logs: string[];
}

function world(
  esList: ExternalSecret[],
  options: { data?: unknown[]; config?: Config } = {},
): World {
  const kube = new FakeKube();
  kube.put(
    paths.secretStore('fake'),
    secretStore('fake', { fake: { data: options.data ?? fakeData } }),
  );
  for (const es of esList) kube.put(paths.externalSecret(es.metadata.name), es);
  const config = options.config ?? testConfig();
  const logs: string[] = [];
  const log = createLogger('debug', { component: 'agent' }, (line) => logs.push(line));
  return { kube, config, logs, deps: { kube, config, log, env: {} } };
}

const fakeRef = { name: 'fake', kind: 'SecretStore' as const };

const dbConnection = externalSecret('db-connection-string', {
  refreshInterval: '1h',
  secretStoreRef: fakeRef,
  target: {
    name: 'db-connection-string',
    template: {
      type: 'Opaque',
      data: { CONNECTION_STRING: 'postgresql://{{ .user }}:{{ .password }}@{{ .host }}:5432/mydb' },
    },
  },
  data: [
    { secretKey: 'user', remoteRef: { key: 'prod/database', property: 'username' } },
    { secretKey: 'password', remoteRef: { key: 'prod/database', property: 'password' } },
    { secretKey: 'host', remoteRef: { key: 'prod/database', property: 'host' } },
  ],
});

const appCredentials = externalSecret('app-credentials', {
  refreshInterval: '1h',
  secretStoreRef: fakeRef,
  target: { name: 'app-credentials', creationPolicy: 'Owner' },
  data: [
    { secretKey: 'DATABASE_PASSWORD', remoteRef: { key: 'prod/database', property: 'password' } },
    { secretKey: 'API_KEY', remoteRef: { key: 'prod/api-keys', property: 'primary-key' } },
  ],
});

const decoded = (s: Secret | undefined) =>
  Object.fromEntries(
    Object.entries(s?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
  );

const files = (config: Config, target: string) =>
  Object.fromEntries(
    readdirSync(join(config.outputDir, target)).map((f) => [
      f,
      readFileSync(join(config.outputDir, target, f), 'utf8'),
    ]),
  );

const readyOf = (w: World, name: string) =>
  w.kube
    .object<ExternalSecret>(paths.externalSecret(name))
    ?.status?.conditions?.find((c) => c.type === 'Ready');

describe('syncExternalSecret', () => {
  it("materializes the quick-start's templated Secret, its files, owner, status and Event", async () => {
    const w = world([dbConnection]);
    const out = await syncExternalSecret(w.deps, 'db-connection-string');
    assert.deepEqual(out, {
      externalSecret: `${NS}/db-connection-string`,
      ok: true,
      changed: true,
      skipped: false,
      refreshIntervalMs: 3_600_000,
    });

    const secret = w.kube.object<Secret>(paths.secret('db-connection-string'));
    assert.deepEqual(decoded(secret), {
      CONNECTION_STRING: 'postgresql://app:secret123@db.example.com:5432/mydb',
    });
    assert.deepEqual(files(w.config, 'db-connection-string'), decoded(secret));
    const es = w.kube.object<ExternalSecret>(
      paths.externalSecret('db-connection-string'),
    ) as ExternalSecret;
    assert.deepEqual(secret?.metadata.ownerReferences, [
      {
        apiVersion: 'external-secrets.io/v1',
        kind: 'ExternalSecret',
        name: 'db-connection-string',
        uid: es.metadata.uid,
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);

    assert.equal(readyOf(w, 'db-connection-string')?.status, 'True');
    assert.equal(readyOf(w, 'db-connection-string')?.reason, 'SecretSynced');
    assert.deepEqual(es.status?.binding, { name: 'db-connection-string' });
    assert.ok(es.status?.refreshTime);
    assert.match(es.status?.syncedResourceVersion ?? '', /^1-[0-9a-f]{32}$/);
    assert.deepEqual(
      w.kube.events().map((e) => [e.type, e.reason, e.message]),
      [['Normal', 'Created', `Created Secret ${NS}/db-connection-string`]],
    );
  });

  it('reads one remote secret once per pass, however many entries use it', async () => {
    let reads = 0;
    const w = world([dbConnection]);
    w.deps.loadProvider = async () => ({
      name: 'counting',
      getSecret: async () => {
        reads++;
        return { value: database };
      },
    });
    await syncExternalSecret(w.deps, 'db-connection-string');
    assert.equal(reads, 1);
  });

  it('fetches properties from several remote secrets into one Secret (app-credentials)', async () => {
    const w = world([appCredentials]);
    assert.equal((await syncExternalSecret(w.deps, 'app-credentials')).ok, true);
    assert.deepEqual(decoded(w.kube.object(paths.secret('app-credentials'))), {
      DATABASE_PASSWORD: 'secret123',
      API_KEY: 'pk-1',
    });
  });

  it('merges dataFrom entries in order and lets data win', async () => {
    const es = externalSecret('merged', {
      secretStoreRef: fakeRef,
      dataFrom: [{ extract: { key: 'a' } }, { extract: { key: 'b' } }],
      data: [{ secretKey: 'x', remoteRef: { key: 'plain' } }],
    });
    const w = world([es], {
      data: [
        { key: 'a', value: '{"x":"from-a","y":"from-a","z":"from-a"}' },
        { key: 'b', value: '{"y":"from-b","n":1.50}' },
        { key: 'plain', value: 'from-data' },
      ],
    });
    await syncExternalSecret(w.deps, 'merged');
    assert.deepEqual(decoded(w.kube.object(paths.secret('merged'))), {
      x: 'from-data',
      y: 'from-b',
      z: 'from-a',
      n: '1.50',
    });
  });

  it('makes no write to the API server and no file change when nothing changed', async () => {
    const w = world([dbConnection]);
    await syncExternalSecret(w.deps, 'db-connection-string');
    const writes = w.kube.writes().length;
    const dirs = readdirSync(w.config.outputDir);

    const again = await syncExternalSecret(w.deps, 'db-connection-string');
    assert.equal(again.ok, true);
    assert.equal(again.changed, false);
    assert.equal(w.kube.writes().length, writes);
    assert.deepEqual(readdirSync(w.config.outputDir), dirs);
  });

  it('picks up a rotated value: Secret, files and one Updated Event', async () => {
    const w = world([appCredentials]);
    await syncExternalSecret(w.deps, 'app-credentials');
    const store = w.kube.object<{
      spec: { provider: { fake: { data: { key: string; value: string }[] } } };
    }>(paths.secretStore('fake'));
    (store!.spec.provider.fake.data[1] as { value: string }).value =
      '{"primary-key": "pk-ROTATED"}';
    w.kube.put(paths.secretStore('fake'), store!);

    assert.equal((await syncExternalSecret(w.deps, 'app-credentials')).changed, true);
    assert.equal(decoded(w.kube.object(paths.secret('app-credentials'))).API_KEY, 'pk-ROTATED');
    assert.equal(files(w.config, 'app-credentials').API_KEY, 'pk-ROTATED');
    assert.deepEqual(
      w.kube.events().map((e) => e.message),
      [`Created Secret ${NS}/app-credentials`, `Updated Secret ${NS}/app-credentials`],
    );
  });

  it('keeps the last good Secret and files on a fetch failure and reports it once (C01 negative, C13)', async () => {
    const w = world([appCredentials]);
    await syncExternalSecret(w.deps, 'app-credentials');
    const es = w.kube.object<ExternalSecret>(
      paths.externalSecret('app-credentials'),
    ) as ExternalSecret;
    es.spec.data!.push({ secretKey: 'X', remoteRef: { key: 'prod/database', property: 'nope' } });
    w.kube.put(paths.externalSecret('app-credentials'), es);
    const secretBefore = w.kube.object(paths.secret('app-credentials'));
    const refreshTime = es.status?.refreshTime;

    const out = await syncExternalSecret(w.deps, 'app-credentials');
    assert.equal(out.ok, false);
    assert.equal(out.error?.code, 'ERR_NOT_FOUND');
    const expected =
      `could not get secret data from provider: error processing spec.data[2] (key prod/database): SecretStore ${NS}/fake: ` +
      'key nope does not exist in secret prod/database';
    assert.equal(out.message, `ExternalSecret ${NS}/app-credentials: ${expected}`);
    assert.deepEqual(w.kube.object(paths.secret('app-credentials')), secretBefore);
    assert.deepEqual(files(w.config, 'app-credentials'), {
      DATABASE_PASSWORD: 'secret123',
      API_KEY: 'pk-1',
    });

    const ready = readyOf(w, 'app-credentials');
    assert.deepEqual(
      [ready?.status, ready?.reason, ready?.message],
      ['False', 'SecretSyncedError', expected],
    );
    assert.equal(
      w.kube.object<ExternalSecret>(paths.externalSecret('app-credentials'))?.status?.refreshTime,
      refreshTime,
    );
    const warning = w.kube.events().filter((e) => e.type === 'Warning');
    assert.deepEqual(
      warning.map((e) => [e.reason, e.message]),
      [['UpdateFailed', expected]],
    );

    // the same failure again: no second Event, no status write
    const writes = w.kube.writes().length;
    await syncExternalSecret(w.deps, 'app-credentials');
    assert.equal(w.kube.writes().length, writes);
  });

  it('reports the first failing entry in spec order, whichever fails first in time', async () => {
    const w = world([appCredentials]);
    w.deps.loadProvider = async () => ({
      name: 'slow-first',
      getSecret: async (ref) => {
        await new Promise((r) => setTimeout(r, ref.key === 'prod/database' ? 30 : 0));
        throw new Error(`${ref.key} unreachable`);
      },
    });
    const out = await syncExternalSecret(w.deps, 'app-credentials');
    assert.match(
      out.message ?? '',
      /error processing spec\.data\[0\] \(key prod\/database\): SecretStore app-ns\/fake: prod\/database unreachable$/,
    );
  });

  it('reports a template failure as "could not update secret" and writes nothing (C04 negative)', async () => {
    const es = externalSecret('bad-template', {
      secretStoreRef: fakeRef,
      target: { template: { data: { pw: '{{ .pw }}' } } },
      dataFrom: [{ extract: { key: 'prod/database' } }],
    });
    const w = world([es]);
    const out = await syncExternalSecret(w.deps, 'bad-template');
    assert.equal(out.ok, false);
    assert.equal(
      out.message,
      `ExternalSecret ${NS}/bad-template: could not update secret: template data key "pw": map has no entry for key "pw"`,
    );
    assert.equal(w.kube.object(paths.secret('bad-template')), undefined);
    assert.deepEqual(readdirSync(w.config.outputDir), []);
  });

  it('recovers to Ready True after a failure', async () => {
    const w = world([appCredentials], { data: [] });
    assert.equal((await syncExternalSecret(w.deps, 'app-credentials')).ok, false);
    w.kube.put(paths.secretStore('fake'), secretStore('fake', { fake: { data: fakeData } }));
    assert.equal((await syncExternalSecret(w.deps, 'app-credentials')).ok, true);
    assert.deepEqual(
      [readyOf(w, 'app-credentials')?.status, readyOf(w, 'app-credentials')?.reason],
      ['True', 'SecretSynced'],
    );
  });

  it('names an ExternalSecret that does not exist', async () => {
    const w = world([]);
    const out = await syncExternalSecret(w.deps, 'nope');
    assert.equal(out.message, `ExternalSecret ${NS}/nope does not exist`);
    assert.equal(out.error?.code, 'ERR_NOT_FOUND');
  });

  it('passes on the API server reason when the ExternalSecret may not be read', async () => {
    const w = world([appCredentials]);
    w.kube.forbid.push(paths.externalSecret('app-credentials'));
    const out = await syncExternalSecret(w.deps, 'app-credentials');
    assert.equal(out.error?.code, 'ERR_KUBE_FORBIDDEN');
    assert.match(
      out.message ?? '',
      new RegExp(`^ExternalSecret ${NS}/app-credentials: cannot read it: GET .*403 Forbidden`),
    );
  });

  it('reads and reports through v1beta1 when the server does not serve v1', async () => {
    const w = world([]);
    w.kube.servedVersions = ['v1beta1'];
    w.kube.put(
      paths.secretStore('fake', 'v1beta1'),
      secretStore('fake', { fake: { data: fakeData } }),
    );
    w.kube.put(paths.externalSecret('app-credentials', 'v1beta1'), {
      ...appCredentials,
      apiVersion: 'external-secrets.io/v1beta1',
    });
    assert.equal((await syncExternalSecret(w.deps, 'app-credentials')).ok, true);
    assert.ok(
      w.kube.calls.some(
        (c) =>
          c.method === 'PATCH' &&
          c.path === `${paths.externalSecret('app-credentials', 'v1beta1')}/status`,
      ),
    );
  });

  it('uses ESA_REFRESH_INTERVAL over spec.refreshInterval', async () => {
    const w = world([appCredentials], { config: testConfig({ ESA_REFRESH_INTERVAL: '30s' }) });
    assert.equal((await syncExternalSecret(w.deps, 'app-credentials')).refreshIntervalMs, 30_000);
  });

  it('skips a pass whose files are fresh, without calling the provider', async () => {
    const w = world([appCredentials]);
    await syncExternalSecret(w.deps, 'app-credentials');
    const calls = w.kube.calls.length;
    const out = await syncExternalSecret(w.deps, 'app-credentials', { skipIfFresh: true });
    assert.equal(out.skipped, true);
    assert.ok(out.nextInMs !== undefined && out.nextInMs > 3_500_000 && out.nextInMs <= 3_600_000);
    // one discovery-free GET of the ExternalSecret, nothing else
    assert.deepEqual(
      w.kube.calls.slice(calls).map((c) => c.method),
      ['GET'],
    );
  });

  it('keeps the files of an immutable target at their first value, as the Secret (C19)', async () => {
    const es = externalSecret('c19', {
      secretStoreRef: fakeRef,
      target: { name: 'c19', immutable: true },
      data: [{ secretKey: 'k', remoteRef: { key: 'k' } }],
    });
    const w = world([es], { data: [{ key: 'k', value: 'v1' }] });
    await syncExternalSecret(w.deps, 'c19');
    w.kube.put(
      paths.secretStore('fake'),
      secretStore('fake', { fake: { data: [{ key: 'k', value: 'v2' }] } }),
    );
    const out = await syncExternalSecret(w.deps, 'c19');
    assert.deepEqual([out.ok, out.changed], [true, false]);
    assert.deepEqual(decoded(w.kube.object(paths.secret('c19'))), { k: 'v1' });
    assert.deepEqual(files(w.config, 'c19'), { k: 'v1' });
    assert.equal(w.kube.object<Secret>(paths.secret('c19'))?.immutable, true);
  });

  it('emits a Warning naming the keys an adopting Owner write removed (C17 decision)', async () => {
    const w = world([appCredentials]);
    w.kube.put(paths.secret('app-credentials'), {
      metadata: { name: 'app-credentials', namespace: NS },
      data: { other: 'eA==' },
    });
    await syncExternalSecret(w.deps, 'app-credentials');
    const warning = w.kube.events().find((e) => e.type === 'Warning');
    assert.match(
      String(warning?.message),
      /removed keys the ExternalSecret does not define: other$/,
    );
  });

  it('still succeeds when the status cannot be written, and logs a warning', async () => {
    const w = world([appCredentials]);
    w.kube.forbid.push(`${paths.externalSecret('app-credentials')}/status`);
    assert.equal((await syncExternalSecret(w.deps, 'app-credentials')).ok, true);
    assert.ok(w.logs.some((l) => JSON.parse(l).msg === 'status update failed'));
  });

  it('reports nothing when the pass was cut short by a stop', async () => {
    const w = world([appCredentials]);
    const controller = new AbortController();
    w.deps.loadProvider = async () => ({
      name: 'slow',
      getSecret: () => {
        controller.abort();
        return Promise.reject(new Error('aborted'));
      },
    });
    assert.equal(
      (await syncExternalSecret(w.deps, 'app-credentials', { signal: controller.signal })).ok,
      false,
    );
    assert.equal(w.kube.writes().length, 0);
  });
});

describe('ClusterSecretStore conditions', () => {
  const es = externalSecret('c20', {
    secretStoreRef: { name: 'shared', kind: 'ClusterSecretStore' },
    target: { name: 'c20' },
    data: [{ secretKey: 'k', remoteRef: { key: 'k' } }],
  });
  const conditions = [
    { namespaces: ['team-a'] },
    { namespaceRegexes: ['^team-b-'] },
    { namespaceSelector: { matchLabels: { 'secrets-access': 'true' } } },
  ];

  const cases = [
    { name: 'admits a namespace listed by name', namespace: 'team-a', labels: {}, ok: true },
    {
      name: 'admits a namespace matched by a regex',
      namespace: 'team-b-dev',
      labels: {},
      ok: true,
    },
    {
      name: 'admits a namespace matched by the label selector',
      namespace: 'team-x',
      labels: { 'secrets-access': 'true' },
      ok: true,
    },
    { name: 'refuses any other namespace', namespace: 'team-c', labels: {}, ok: false },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const w = world([], { config: testConfig({ ESA_POD_NAMESPACE: c.namespace }) });
      w.kube.put(
        paths.clusterSecretStore('shared'),
        clusterSecretStore(
          'shared',
          { fake: { data: [{ key: 'k', value: 'v' }] } },
          { conditions },
        ),
      );
      w.kube.put(`/apis/external-secrets.io/v1/namespaces/${c.namespace}/externalsecrets/c20`, {
        ...es,
        metadata: { ...es.metadata, namespace: c.namespace },
      });
      w.kube.put(`/api/v1/namespaces/${c.namespace}`, {
        metadata: { name: c.namespace, labels: c.labels },
      });
      const out = await syncExternalSecret(w.deps, 'c20');
      assert.equal(out.ok, c.ok, out.message);
      if (!c.ok) {
        assert.match(
          out.message ?? '',
          /could not get secret data from provider: error processing spec.data\[0\] \(key k\): using cluster store "shared" is not allowed from namespace "team-c": denied by spec.condition$/,
        );
        assert.equal(out.error?.code, 'ERR_STORE_NOT_ALLOWED');
      }
    });
  }

  it('matches regexes unanchored, as ESO does ("team-b" admits "not-team-b")', async () => {
    const w = world([], { config: testConfig({ ESA_POD_NAMESPACE: 'not-team-b' }) });
    w.kube.put(
      paths.clusterSecretStore('shared'),
      clusterSecretStore(
        'shared',
        { fake: { data: [{ key: 'k', value: 'v' }] } },
        { conditions: [{ namespaceRegexes: ['team-b'] }] },
      ),
    );
    w.kube.put('/apis/external-secrets.io/v1/namespaces/not-team-b/externalsecrets/c20', {
      ...es,
      metadata: { ...es.metadata, namespace: 'not-team-b' },
    });
    assert.equal((await syncExternalSecret(w.deps, 'c20')).ok, true);
  });

  it('fails closed and says why when the namespace labels may not be read', async () => {
    const w = world([], { config: testConfig({ ESA_POD_NAMESPACE: 'team-x' }) });
    w.kube.put(
      paths.clusterSecretStore('shared'),
      clusterSecretStore('shared', { fake: { data: [] } }, { conditions }),
    );
    w.kube.put('/apis/external-secrets.io/v1/namespaces/team-x/externalsecrets/c20', {
      ...es,
      metadata: { ...es.metadata, namespace: 'team-x' },
    });
    w.kube.forbid.push('/api/v1/namespaces/team-x');
    const out = await syncExternalSecret(w.deps, 'c20');
    assert.match(
      out.message ?? '',
      /namespaceSelector not evaluated: the pod may not get namespace team-x/,
    );
  });

  it('admits every namespace when there are no conditions', async () => {
    const w = world([], { config: testConfig({ ESA_POD_NAMESPACE: 'anywhere' }) });
    w.kube.put(
      paths.clusterSecretStore('shared'),
      clusterSecretStore('shared', { fake: { data: [{ key: 'k', value: 'v' }] } }),
    );
    w.kube.put('/apis/external-secrets.io/v1/namespaces/anywhere/externalsecrets/c20', {
      ...es,
      metadata: { ...es.metadata, namespace: 'anywhere' },
    });
    assert.equal((await syncExternalSecret(w.deps, 'c20')).ok, true);
  });
});

describe('secret values on failure paths', () => {
  // Each value is distinctive, so a leak anywhere shows up in the search below.
  const values = {
    json: '{"user":"LEAK-user-7f3a","pw":"LEAK-pw-9c1d"}',
    plain: 'LEAK-plain-2b8e not json, not base64!',
  };
  const failing: { name: string; es: ExternalSecret['spec'] }[] = [
    {
      name: 'a missing property',
      es: {
        secretStoreRef: fakeRef,
        data: [{ secretKey: 'x', remoteRef: { key: 'json', property: 'nope' } }],
      },
    },
    {
      name: 'a property of a value that is not JSON',
      es: {
        secretStoreRef: fakeRef,
        data: [{ secretKey: 'x', remoteRef: { key: 'plain', property: 'p' } }],
      },
    },
    {
      name: 'extract of a value that is not JSON',
      es: { secretStoreRef: fakeRef, dataFrom: [{ extract: { key: 'plain' } }] },
    },
    {
      name: 'Base64 decoding of a value that is not base64',
      es: {
        secretStoreRef: fakeRef,
        data: [{ secretKey: 'x', remoteRef: { key: 'plain', decodingStrategy: 'Base64' } }],
      },
    },
    {
      name: 'b64dec in a template',
      es: {
        secretStoreRef: fakeRef,
        target: { template: { data: { x: '{{ .p | b64dec }}' } } },
        data: [{ secretKey: 'p', remoteRef: { key: 'plain' } }],
      },
    },
    {
      name: 'fromJson in a template',
      es: {
        secretStoreRef: fakeRef,
        target: { template: { data: { x: '{{ (.p | fromJson).a }}' } } },
        data: [{ secretKey: 'p', remoteRef: { key: 'plain' } }],
      },
    },
    {
      name: 'a field of a string in a template',
      es: {
        secretStoreRef: fakeRef,
        target: { template: { data: { x: '{{ .p.inner }}' } } },
        data: [{ secretKey: 'p', remoteRef: { key: 'plain' } }],
      },
    },
    {
      name: 'a key name Kubernetes refuses',
      es: { secretStoreRef: fakeRef, data: [{ secretKey: 'bad key', remoteRef: { key: 'json' } }] },
    },
  ];
  for (const c of failing) {
    it(`keeps them out of messages, status, Events and logs for ${c.name}`, async () => {
      const w = world([externalSecret('leak', c.es)], {
        data: Object.entries(values).map(([key, value]) => ({ key, value })),
      });
      const out = await syncExternalSecret(w.deps, 'leak');
      assert.equal(out.ok, false);
      w.deps.log.error('sync failed', { err: out.message, errCode: out.error?.code });
      const everything = [
        out.message,
        out.error?.message,
        JSON.stringify(w.kube.writes()),
        JSON.stringify(
          [...w.kube.objects.values()].filter(
            (o) => o.kind === 'ExternalSecret' || o.kind === 'Event',
          ),
        ),
        ...w.logs,
      ].join('\n');
      assert.doesNotMatch(everything, /LEAK-/);
      assert.match(everything, /SecretSyncedError/);
    });
  }
});
