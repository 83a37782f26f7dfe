/**
 * The acceptance cases that unfold over time (shared/acceptance/externalsecret-cases.md C01,
 * C11, C13, C14, C19): the fixture of the first step is loaded into the in-memory API server,
 * then the provider data, the Secret or the ExternalSecret change between passes of the
 * agent's sync. The README in test/fixtures/externalsecret-cases maps the cases to these tests.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ProviderError } from '../../agent/errors.ts';
import { createLogger } from '../../agent/log.ts';
import { createAgentMetrics } from '../../agent/metrics.ts';
import { loadProvider, type Provider } from '../../agent/providers/provider.ts';
import { nextDelay } from '../../agent/refresh.ts';
import { loadObjects, parseManifests } from '../../agent/render.ts';
import { syncExternalSecret, type SyncDeps } from '../../agent/sync.ts';
import type { ExternalSecret, Secret, SecretStore } from '../../agent/types.ts';
import { FakeKube } from './fake-kube.ts';
import { testConfig } from './helpers.ts';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'externalsecret-cases');
const NS = 'app-ns';
const paths = {
  es: (name: string) => `/apis/external-secrets.io/v1/namespaces/${NS}/externalsecrets/${name}`,
  store: (name: string) => `/apis/external-secrets.io/v1/namespaces/${NS}/secretstores/${name}`,
  secret: (name: string) => `/api/v1/namespaces/${NS}/secrets/${name}`,
};

interface World {
  kube: FakeKube;
  deps: SyncDeps;
  /** Provider reads so far (getSecret calls). */
  reads: () => number;
  /** Makes every provider read fail with `error` (undefined: back to normal). */
  failWith: (error: Error | undefined) => void;
  sync: (name: string) => ReturnType<typeof syncExternalSecret>;
  files: (target: string) => Record<string, string>;
}

async function world(fixture: string): Promise<World> {
  const kube = new FakeKube();
  loadObjects(kube, await parseManifests(readFileSync(join(dir, fixture), 'utf8'), fixture));
  const config = testConfig({ ESA_POD_NAMESPACE: NS });
  let reads = 0;
  let failure: Error | undefined;
  const deps: SyncDeps = {
    kube,
    config,
    log: createLogger('error', { component: 'agent' }, () => {}),
    env: {},
    // the real provider, counted, and able to fail like an unreachable server
    loadProvider: async (ctx): Promise<Provider> => {
      const real = await loadProvider(ctx);
      return {
        name: real.name,
        getSecret: async (ref, signal) => {
          reads++;
          if (failure) throw failure;
          return real.getSecret(ref, signal);
        },
      };
    },
  };
  return {
    kube,
    deps,
    reads: () => reads,
    failWith: (e) => {
      failure = e;
    },
    sync: (name) => syncExternalSecret(deps, name),
    files: (target) => {
      const d = join(config.outputDir, target);
      return Object.fromEntries(readdirSync(d).map((k) => [k, readFileSync(join(d, k), 'utf8')]));
    },
  };
}

function setStoreData(w: World, store: string, data: { key: string; value: string }[]): void {
  const s = w.kube.object<SecretStore>(paths.store(store)) as SecretStore;
  (s.spec.provider as { fake: { data: unknown[] } }).fake.data = data;
  w.kube.put(paths.store(store), s);
}

const decoded = (s: Secret | undefined) =>
  Object.fromEntries(
    Object.entries(s?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
  );
const secretData = (w: World, name: string) => decoded(w.kube.object<Secret>(paths.secret(name)));
const esOf = (w: World, name: string) =>
  w.kube.object<ExternalSecret>(paths.es(name)) as ExternalSecret;
const readyOf = (w: World, name: string) =>
  esOf(w, name).status?.conditions?.find((c) => c.type === 'Ready');
const eventsOf = (w: World, name: string) =>
  w.kube
    .events()
    .filter((e) => (e.involvedObject as { name?: string }).name === name)
    .map((e) => [e.type, e.reason, e.message] as [string, string, string]);

describe('C01 over time', () => {
  it('C01: a missing property added later fails the sync and leaves the synced Secret unchanged', async () => {
    const w = await world('C01.yaml');
    assert.equal((await w.sync('c01')).ok, true);
    const before = w.kube.object(paths.secret('c01'));
    const es = esOf(w, 'c01');
    es.spec.data?.push({ secretKey: 'x', remoteRef: { key: 'app/config', property: 'nope' } });
    w.kube.put(paths.es('c01'), es);

    const out = await w.sync('c01');
    assert.equal(out.ok, false);
    assert.deepEqual(w.kube.object(paths.secret('c01')), before);
    const ready = readyOf(w, 'c01');
    assert.deepEqual([ready?.status, ready?.reason], ['False', 'SecretSyncedError']);
    assert.match(ready?.message ?? '', /^could not get secret data from provider: /);
    const warning = eventsOf(w, 'c01').find((e) => e[0] === 'Warning');
    assert.match(warning?.[2] ?? '', /key nope does not exist in secret app\/config/);
  });
});

describe('C11: refreshInterval "0" syncs once, except drift repair', () => {
  it('C11: syncs once, ignores provider changes and ExternalSecret edits, repairs an edited or deleted Secret', async () => {
    const w = await world('C11.yaml');

    // (1) first sync
    const first = await w.sync('c11');
    assert.equal(first.ok, true);
    assert.equal(first.refreshIntervalMs, 0);
    assert.equal(nextDelay(first, 0, { initialMs: 1, maxMs: 2 }), 'never');
    assert.deepEqual(secretData(w, 'c11'), { db: 'v1' });
    assert.deepEqual(
      [readyOf(w, 'c11')?.status, readyOf(w, 'c11')?.reason],
      ['True', 'SecretSynced'],
    );
    const refreshTime = esOf(w, 'c11').status?.refreshTime;
    assert.ok(refreshTime);

    // (2) the provider changes: nothing happens, not even a provider read or any write
    setStoreData(w, 'fake', [{ key: 'db', value: 'v2' }]);
    let reads = w.reads();
    let writes = w.kube.writes().length;
    assert.equal((await w.sync('c11')).changed, false);
    assert.deepEqual(secretData(w, 'c11'), { db: 'v1' });
    assert.equal(w.reads(), reads);
    assert.equal(w.kube.writes().length, writes);

    // (3) force-sync annotation and a label edit: still v1, no provider call
    const es = esOf(w, 'c11');
    es.metadata.annotations = { 'force-sync': '1700000000' };
    es.metadata.labels = { team: 'edited' };
    w.kube.put(paths.es('c11'), es);
    await w.sync('c11');
    assert.deepEqual(secretData(w, 'c11'), { db: 'v1' });
    assert.equal(w.reads(), reads);
    assert.equal(esOf(w, 'c11').status?.refreshTime, refreshTime);

    // (4) a hand-edited Secret is re-synced, with the provider's current value
    const live = w.kube.object<Secret>(paths.secret('c11')) as Secret;
    w.kube.put(paths.secret('c11'), {
      ...live,
      data: { db: Buffer.from('hacked').toString('base64') },
    });
    assert.equal((await w.sync('c11')).changed, true);
    assert.deepEqual(secretData(w, 'c11'), { db: 'v2' });
    assert.equal(w.files('c11').db, 'v2');

    // (5) a deleted Secret is recreated
    await w.kube.delete(paths.secret('c11'));
    await w.sync('c11');
    assert.deepEqual(secretData(w, 'c11'), { db: 'v2' });

    // and once repaired, a pass is again free: no provider read, no write
    reads = w.reads();
    writes = w.kube.writes().length;
    await w.sync('c11');
    assert.equal(w.reads(), reads);
    assert.equal(w.kube.writes().length, writes);
  });

  it('C11: a new pod gets its files from the intact Secret without reading the provider', async () => {
    const w = await world('C11.yaml');
    await w.sync('c11');
    setStoreData(w, 'fake', [{ key: 'db', value: 'v2' }]);
    const reads = w.reads();
    const pod2 = {
      ...w.deps,
      config: testConfig({ ESA_POD_NAMESPACE: NS, ESA_POD_NAME: 'app-2' }),
    };
    assert.equal((await syncExternalSecret(pod2, 'c11')).ok, true);
    assert.equal(w.reads(), reads);
    assert.equal(readFileSync(join(pod2.config.outputDir, 'c11', 'db'), 'utf8'), 'v1');
  });
});

describe('C13: provider unreachable', () => {
  it('C13: keeps the last good Secret and files, reports the cause in status and a Warning Event, and recovers', async () => {
    const w = await world('C13.yaml');
    // the registry the sidecar feeds from each pass (onPass), fed the same way here
    const metrics = createAgentMetrics();
    const errorLine = (n: number) =>
      `externalsecret_sync_calls_error{name="c13",namespace="${NS}"} ${n}`;
    const first = await w.sync('c13');
    metrics.observePass(first);
    assert.equal(first.ok, true);
    assert.ok(metrics.render().split('\n').includes(errorLine(0)));
    const secretBefore = w.kube.object(paths.secret('c13'));
    const refreshTime = esOf(w, 'c13').status?.refreshTime;

    // the stub stands in for a Vault that cannot be reached; no test aims at vault.example
    w.failWith(
      new ProviderError(
        `SecretStore ${NS}/vault (vault): cannot read secret data from Vault: connect ECONNREFUSED 127.0.0.1:8200`,
      ),
    );
    const out = await w.sync('c13');
    metrics.observePass(out);
    assert.equal(out.ok, false);
    assert.equal(out.error?.code, 'ERR_PROVIDER');
    const scraped = metrics.render().split('\n');
    assert.ok(scraped.includes(errorLine(1)), 'externalsecret_sync_calls_error incremented');
    assert.ok(scraped.includes(`externalsecret_sync_calls_total{name="c13",namespace="${NS}"} 2`));
    const readyGauge =
      `externalsecret_status_condition{name="c13",namespace="${NS}",condition="Ready"`;
    assert.ok(scraped.includes(`${readyGauge},status="False"} 1`));
    assert.equal(typeof nextDelay(out, 1, { initialMs: 5_000, maxMs: 300_000 }), 'number');
    assert.deepEqual(w.kube.object(paths.secret('c13')), secretBefore);
    assert.deepEqual(w.files('c13'), { password: 'p1' });
    const ready = readyOf(w, 'c13');
    assert.deepEqual([ready?.status, ready?.reason], ['False', 'SecretSyncedError']);
    assert.match(
      ready?.message ?? '',
      /^could not get secret data from provider: .*cannot read secret data from Vault/,
    );
    assert.equal(esOf(w, 'c13').status?.refreshTime, refreshTime);
    const warnings = eventsOf(w, 'c13').filter((e) => e[0] === 'Warning');
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]?.[1], 'UpdateFailed');
    assert.match(warnings[0]?.[2] ?? '', /cannot read secret data from Vault/);

    // the same outage again: no second Event and no status write
    const writes = w.kube.writes().length;
    await w.sync('c13');
    assert.equal(w.kube.writes().length, writes);

    // recovery
    w.failWith(undefined);
    assert.equal((await w.sync('c13')).ok, true);
    assert.deepEqual(
      [readyOf(w, 'c13')?.status, readyOf(w, 'c13')?.reason],
      ['True', 'SecretSynced'],
    );
  });
});

describe('C14: provider secret deleted', () => {
  const step = async (policy: 'retain' | 'delete' | 'merge') => {
    const w = await world('C14.yaml');
    const name = `c14-${policy}`;
    assert.equal((await w.sync(name)).ok, true);
    assert.deepEqual(secretData(w, name), { a: 'A', b: 'B' });
    setStoreData(w, 'aws-sm', [{ key: 'app/a', value: 'A' }]);
    const afterB = await w.sync(name);
    const readyB = readyOf(w, name);
    const secretB = w.kube.object<Secret>(paths.secret(name));
    setStoreData(w, 'aws-sm', []);
    const afterA = await w.sync(name);
    return { w, name, afterB, readyB, secretB, afterA };
  };

  it('C14: Retain keeps the Secret and fails, naming data[1] and its key', async () => {
    const { w, name, afterB, readyB, secretB, afterA } = await step('retain');
    assert.equal(afterB.ok, false);
    assert.deepEqual(decoded(secretB), { a: 'A', b: 'B' });
    assert.deepEqual([readyB?.status, readyB?.reason], ['False', 'SecretSyncedError']);
    assert.match(
      readyB?.message ?? '',
      /error processing spec\.data\[1\] \(key app\/b\): .*secret app\/b does not exist/,
    );
    assert.doesNotMatch(readyB?.message ?? '', /spec\.dataFrom\[1\]/);
    assert.equal(afterA.ok, false);
    assert.deepEqual(secretData(w, name), { a: 'A', b: 'B' });
  });

  it('C14: Delete drops the missing key, then deletes the Secret when nothing is left', async () => {
    const { w, name, afterB, readyB, secretB, afterA } = await step('delete');
    assert.equal(afterB.ok, true);
    assert.deepEqual(decoded(secretB), { a: 'A' });
    assert.deepEqual([readyB?.status, readyB?.reason], ['True', 'SecretSynced']);
    assert.ok(
      eventsOf(w, name).some(
        (e) => e[0] === 'Normal' && e[1] === 'MissingProviderSecret' && e[2].includes('app/b'),
      ),
    );
    assert.equal(afterA.ok, true);
    assert.equal(w.kube.object(paths.secret(name)), undefined);
    const ready = readyOf(w, name);
    assert.deepEqual(
      [ready?.status, ready?.reason, ready?.message],
      ['True', 'SecretDeleted', 'secret deleted due to DeletionPolicy=Delete'],
    );
    assert.ok(eventsOf(w, name).some((e) => e[0] === 'Normal' && e[1] === 'Deleted'));
    assert.deepEqual(w.files(name), {});

    // nothing left to delete: the next pass writes nothing
    const writes = w.kube.writes().length;
    assert.equal((await w.sync(name)).ok, true);
    assert.equal(w.kube.writes().length, writes);
  });

  it('C14: Merge drops the missing keys and keeps the Secret, with empty data at the end', async () => {
    const { w, name, afterB, secretB, afterA } = await step('merge');
    assert.equal(afterB.ok, true);
    assert.deepEqual(decoded(secretB), { a: 'A' });
    assert.equal(afterA.ok, true);
    assert.deepEqual(secretData(w, name), {});
    assert.ok(w.kube.object(paths.secret(name)));
    assert.deepEqual(
      [readyOf(w, name)?.status, readyOf(w, name)?.reason],
      ['True', 'SecretSynced'],
    );
  });
});

describe('C19: target.immutable', () => {
  it('C19: keeps the immutable value, recreates a deleted Secret fresh, and fails when immutability is dropped', async () => {
    const w = await world('C19.yaml');
    // (1)
    assert.equal((await w.sync('c19')).ok, true);
    assert.equal(w.kube.object<Secret>(paths.secret('c19'))?.immutable, true);
    assert.deepEqual(secretData(w, 'c19'), { k: 'v1' });

    // (2) provider v2: the Secret and the files keep v1, no error
    setStoreData(w, 'fake', [{ key: 'k', value: 'v2' }]);
    const second = await w.sync('c19');
    assert.deepEqual([second.ok, second.changed], [true, false]);
    assert.deepEqual(secretData(w, 'c19'), { k: 'v1' });
    assert.deepEqual(w.files('c19'), { k: 'v1' });
    assert.deepEqual(
      [readyOf(w, 'c19')?.status, readyOf(w, 'c19')?.reason],
      ['True', 'SecretSynced'],
    );

    // (3) deleted: recreated, immutable, with v2 (this pod's files stay at v1)
    await w.kube.delete(paths.secret('c19'));
    assert.equal((await w.sync('c19')).ok, true);
    assert.equal(w.kube.object<Secret>(paths.secret('c19'))?.immutable, true);
    assert.deepEqual(secretData(w, 'c19'), { k: 'v2' });
    assert.deepEqual(w.files('c19'), { k: 'v1' });

    // (4) immutable dropped while the live Secret is immutable and the provider has v3
    setStoreData(w, 'fake', [{ key: 'k', value: 'v3' }]);
    const es = esOf(w, 'c19');
    es.spec.target = { ...es.spec.target, immutable: false };
    w.kube.put(paths.es('c19'), es);
    const out = await w.sync('c19');
    assert.equal(out.ok, false);
    const ready = readyOf(w, 'c19');
    assert.deepEqual([ready?.status, ready?.reason], ['False', 'SecretSyncedError']);
    assert.match(ready?.message ?? '', /^could not update secret, target is immutable: /);
    assert.deepEqual(secretData(w, 'c19'), { k: 'v2' });
  });
});
