/**
 * ExternalSecret features through one pass of the agent's sync, against the in-memory API
 * server and the fake provider: dataFrom.find, rewrite, conversionStrategy, per-entry stores,
 * templateFrom, templated metadata, Secret types, creation and refresh policies.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createLogger } from '../../agent/log.ts';
import { loadProvider } from '../../agent/providers/provider.ts';
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

const fakeRef = { name: 'fake', kind: 'SecretStore' as const };
const data = [
  { key: 'app/db_user', value: 'u', tags: { team: 'db' } },
  { key: 'app/db_pass', value: 'cA==', tags: { team: 'db', env: 'prod' } },
  { key: 'app/api key', value: 'k', tags: { team: 'api' } },
  { key: 'other/x', value: 'x' },
  { key: 'versioned', value: 'new' },
  { key: 'versioned', value: 'old', version: 'v1' },
  { key: 'json', value: '{"user":"u","pw":"p","a/b":"1","a_b":"2"}' },
  { key: 'cert', value: '{"tls.crt":"C","tls.key":"K"}' },
];

function world(es: ExternalSecret[], more: (kube: FakeKube) => void = () => {}) {
  const kube = new FakeKube();
  kube.put(paths.secretStore('fake'), secretStore('fake', { fake: { data } }));
  for (const e of es) kube.put(paths.externalSecret(e.metadata.name), e);
  more(kube);
  const config = testConfig();
  let reads = 0;
  const deps: SyncDeps = {
    kube,
    config,
    log: createLogger('error', { component: 'agent' }, () => {}),
    env: {},
    loadProvider: async (ctx) => {
      const p = await loadProvider(ctx);
      return {
        ...p,
        name: p.name,
        getSecret: (ref, signal) => {
          reads++;
          return p.getSecret(ref, signal);
        },
        ...(p.getAllSecrets ? { getAllSecrets: p.getAllSecrets.bind(p) } : {}),
      };
    },
  };
  const secret = (name: string) => kube.object<Secret>(paths.secret(name));
  const decoded = (name: string) =>
    Object.fromEntries(
      Object.entries(secret(name)?.data ?? {}).map(([k, v]) => [
        k,
        Buffer.from(v, 'base64').toString(),
      ]),
    );
  const ready = (name: string) =>
    kube
      .object<ExternalSecret>(paths.externalSecret(name))
      ?.status?.conditions?.find((c) => c.type === 'Ready');
  return {
    kube,
    config,
    deps,
    secret,
    decoded,
    ready,
    reads: () => reads,
    sync: (n: string) => syncExternalSecret(deps, n),
  };
}

const es = (spec: ExternalSecret['spec'], name = 'es') =>
  externalSecret(name, { secretStoreRef: fakeRef, ...spec });

describe('dataFrom.find', () => {
  const cases: {
    name: string;
    find: NonNullable<ExternalSecret['spec']['dataFrom']>[number];
    want: Record<string, string>;
  }[] = [
    {
      name: 'finds by name.regexp and converts "/" with the Default strategy',
      find: { find: { name: { regexp: '^app/db_' } } },
      want: { app_db_user: 'u', app_db_pass: 'cA==' },
    },
    {
      name: 'lets rewrite see the provider names, and skips conversion',
      find: {
        find: { name: { regexp: '^app/db_' } },
        rewrite: [{ regexp: { source: '^app/db_(.*)$', target: 'DB_$1' } }],
      },
      want: { DB_user: 'u', DB_pass: 'cA==' },
    },
    {
      name: 'finds by tags, all of them',
      find: { find: { tags: { team: 'db', env: 'prod' } } },
      want: { app_db_pass: 'cA==' },
    },
    {
      name: 'finds by path',
      find: { find: { path: 'other/' } },
      want: { other_x: 'x' },
    },
    {
      name: 'converts with the Unicode strategy',
      find: { find: { name: { regexp: 'api' }, conversionStrategy: 'Unicode' } },
      want: { app_U002f_api_U0020_key: 'k' },
    },
    {
      name: 'decodes what it found',
      find: { find: { name: { regexp: 'db_pass' }, decodingStrategy: 'Base64' } },
      want: { app_db_pass: 'p' },
    },
    {
      name: 'takes the greatest version of a key',
      find: { find: { name: { regexp: '^versioned$' } } },
      want: { versioned: 'old' },
    },
    {
      name: 'gives nothing (and no error) when nothing matches',
      find: { find: { name: { regexp: '^nothing' } } },
      want: {},
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const w = world([
        es({ dataFrom: [c.find], data: [{ secretKey: 'pin', remoteRef: { key: 'other/x' } }] }),
      ]);
      const out = await w.sync('es');
      assert.equal(out.ok, true, out.message);
      assert.deepEqual(w.decoded('es'), { ...c.want, pin: 'x' });
    });
  }

  it('needs name.regexp, tags or path', async () => {
    const w = world([es({ dataFrom: [{ find: {} }] })]);
    assert.match(
      (await w.sync('es')).message ?? '',
      /spec\.dataFrom\[0\]\.find: needs name\.regexp, tags or path/,
    );
  });

  it('says so when the provider cannot list secrets', async () => {
    const w = world([es({ dataFrom: [{ find: { name: { regexp: '.' } } }] })]);
    w.deps.loadProvider = async () => ({ name: 'plain', getSecret: async () => ({ value: 'x' }) });
    const out = await w.sync('es');
    assert.equal(out.error?.code, 'ERR_UNSUPPORTED');
    assert.match(out.message ?? '', /provider plain cannot list secrets \(find\)/);
  });

  it('fails on a key Kubernetes refuses, naming it and suggesting rewrite', async () => {
    const w = world([
      es({
        dataFrom: [
          {
            find: { name: { regexp: 'api' } },
            rewrite: [{ regexp: { source: '^app/', target: '' } }],
          },
        ],
      }),
    ]);
    const out = await w.sync('es');
    assert.equal(out.ok, false);
    assert.match(
      out.message ?? '',
      /could not get secret data from provider: error processing spec\.dataFrom\[0\]\.find: SecretStore app-ns\/fake: spec\.dataFrom\[0\]\.find: invalid secret key "api key": character " " is not allowed.*TIP: use rewrite or conversionStrategy/,
    );
  });
});

describe('dataFrom.extract keys', () => {
  it('rewrites with a transform template', async () => {
    const w = world([
      es({
        dataFrom: [
          {
            extract: { key: 'json' },
            rewrite: [
              { regexp: { source: '/', target: '-' } },
              { transform: { template: '{{ .value | upper }}' } },
            ],
          },
        ],
      }),
    ]);
    const out = await w.sync('es');
    assert.equal(out.ok, true, out.message);
    assert.deepEqual(w.decoded('es'), { USER: 'u', PW: 'p', 'A-B': '1', A_B: '2' });
  });

  it('reports keys that collide after conversion, naming both', async () => {
    const w = world([es({ dataFrom: [{ extract: { key: 'json' } }] })]);
    const out = await w.sync('es');
    assert.match(
      out.message ?? '',
      /error processing spec\.dataFrom\[0\]\.extract \(key json\): SecretStore app-ns\/fake: spec\.dataFrom\[0\]\.extract: conversionStrategy Default: keys "a\/b" and "a_b" both become "a_b"/,
    );
  });
});

describe('remoteRef', () => {
  it('reads a version', async () => {
    const w = world([
      es({ data: [{ secretKey: 'v', remoteRef: { key: 'versioned', version: 'v1' } }] }),
    ]);
    await w.sync('es');
    assert.deepEqual(w.decoded('es'), { v: 'old' });
  });

  it('reads each entry from its own sourceRef.storeRef', async () => {
    const w = world(
      [
        es({
          dataFrom: [
            {
              extract: { key: 'cfg' },
              sourceRef: { storeRef: { name: 'cluster', kind: 'ClusterSecretStore' } },
            },
          ],
          data: [
            { secretKey: 'u', remoteRef: { key: 'app/db_user' } },
            {
              secretKey: 'c',
              remoteRef: { key: 'c' },
              sourceRef: { storeRef: { name: 'cluster', kind: 'ClusterSecretStore' } },
            },
          ],
        }),
      ],
      (kube) =>
        kube.put(
          paths.clusterSecretStore('cluster'),
          clusterSecretStore('cluster', {
            fake: {
              data: [
                { key: 'c', value: 'from-cluster' },
                { key: 'cfg', value: '{"k":"v"}' },
              ],
            },
          }),
        ),
    );
    const out = await w.sync('es');
    assert.equal(out.ok, true, out.message);
    assert.deepEqual(w.decoded('es'), { k: 'v', u: 'u', c: 'from-cluster' });
  });

  it('refuses a secretKey Kubernetes does not accept (render has no CRD to check it)', async () => {
    const w = world([es({ data: [{ secretKey: 'a/b', remoteRef: { key: 'other/x' } }] })]);
    assert.match(
      (await w.sync('es')).message ?? '',
      /spec\.data\[0\]\.secretKey: invalid secret key "a\/b"/,
    );
  });
});

describe('templates', () => {
  it('renders templated labels and annotations, and mergePolicy Merge keeps the fetched keys', async () => {
    const w = world([
      es({
        target: {
          template: {
            mergePolicy: 'Merge',
            metadata: {
              labels: { team: '{{ .team | lower }}' },
              annotations: { owner: 'user-{{ .user }}' },
            },
            data: { dsn: '{{ .user }}@db' },
          },
        },
        data: [
          { secretKey: 'user', remoteRef: { key: 'app/db_user' } },
          { secretKey: 'team', remoteRef: { key: 'other/x' } },
        ],
      }),
    ]);
    assert.equal((await w.sync('es')).ok, true);
    assert.deepEqual(w.decoded('es'), { user: 'u', team: 'x', dsn: 'u@db' });
    assert.equal(w.secret('es')?.metadata.labels?.team, 'x');
    assert.equal(w.secret('es')?.metadata.annotations?.owner, 'user-u');
  });

  it("copies the ExternalSecret's labels and annotations when there is no template, as ESO does", async () => {
    const e = es({ data: [{ secretKey: 'u', remoteRef: { key: 'app/db_user' } }] });
    e.metadata.labels = { app: 'web' };
    e.metadata.annotations = { note: 'n' };
    const w = world([e]);
    await w.sync('es');
    assert.equal(w.secret('es')?.metadata.labels?.app, 'web');
    assert.equal(w.secret('es')?.metadata.annotations?.note, 'n');
  });

  it('applies templateFrom ConfigMap (Values), Secret (KeysAndValues) and literal into Data, Labels and Annotations', async () => {
    const w = world(
      [
        es({
          target: {
            template: {
              templateFrom: [
                { configMap: { name: 'tpl', items: [{ key: 'config.yaml' }] } },
                {
                  secret: {
                    name: 'tpl-secret',
                    items: [{ key: 'kv', templateAs: 'KeysAndValues' }],
                  },
                },
                { literal: 'tier: "{{ .user }}-tier"', target: 'Labels' },
                { literal: 'checksum: {{ .user | sha256sum }}', target: 'Annotations' },
              ],
              data: { 'config.yaml': 'overridden by template.data: {{ .user }}' },
            },
          },
          data: [{ secretKey: 'user', remoteRef: { key: 'app/db_user' } }],
        }),
      ],
      (kube) => {
        kube.put('/api/v1/namespaces/app-ns/configmaps/tpl', {
          metadata: { name: 'tpl', namespace: NS },
          data: { 'config.yaml': 'user: {{ .user }}' },
        });
        kube.put(paths.secret('tpl-secret'), {
          metadata: { name: 'tpl-secret', namespace: NS },
          data: {
            kv: Buffer.from('port: 0800\nratio: 1.50\nlogin: "{{ .user }}"').toString('base64'),
          },
        });
      },
    );
    const out = await w.sync('es');
    assert.equal(out.ok, true, out.message);
    assert.deepEqual(w.decoded('es'), {
      'config.yaml': 'overridden by template.data: u',
      port: '0800',
      ratio: '1.50',
      login: 'u',
    });
    assert.equal(w.secret('es')?.metadata.labels?.tier, 'u-tier');
    assert.match(w.secret('es')?.metadata.annotations?.checksum ?? '', /^[0-9a-f]{64}$/);
  });

  const failing = [
    {
      name: 'a templateFrom ConfigMap that does not exist',
      template: { templateFrom: [{ configMap: { name: 'nope', items: [{ key: 'k' }] } }] },
      message: /could not update secret: templateFrom\[0\]: ConfigMap app-ns\/nope does not exist/,
    },
    {
      name: 'a templateFrom item key the ConfigMap lacks',
      template: { templateFrom: [{ configMap: { name: 'tpl', items: [{ key: 'missing' }] } }] },
      message: /templateFrom\[0\]: ConfigMap app-ns\/tpl has no key "missing"/,
    },
    {
      name: 'a KeysAndValues template that does not render a YAML map',
      template: { templateFrom: [{ literal: '- {{ .user }}' }] },
      message: /templateFrom\[0\] \(literal\): the rendered template is not a YAML map/,
    },
    {
      name: 'a template data key Kubernetes refuses',
      template: { data: { 'a b': 'x' } },
      message: /spec\.target\.template\.data: invalid secret key "a b"/,
    },
    {
      name: 'a failing function in a label template',
      template: { metadata: { labels: { l: '{{ .user | b64dec }}' } } },
      message: /template label "l": b64dec: the input is not valid base64/,
    },
  ];
  for (const c of failing) {
    it(`fails on ${c.name}, naming it, with nothing written`, async () => {
      const w = world(
        [
          es({
            target: { template: c.template },
            data: [{ secretKey: 'user', remoteRef: { key: 'app/db_user' } }],
          }),
        ],
        (kube) =>
          kube.put('/api/v1/namespaces/app-ns/configmaps/tpl', {
            metadata: { name: 'tpl', namespace: NS },
            data: { k: 'v' },
          }),
      );
      const out = await w.sync('es');
      assert.equal(out.ok, false);
      assert.match(out.message ?? '', c.message);
      assert.equal(w.secret('es'), undefined);
      assert.equal(existsSync(join(w.config.outputDir, 'es')), false);
    });
  }
});

describe('Secret types', () => {
  const types = [
    { name: 'kubernetes.io/tls from extract', type: 'kubernetes.io/tls', key: 'cert', ok: true },
    {
      name: 'kubernetes.io/basic-auth from extract',
      type: 'kubernetes.io/basic-auth',
      key: 'json',
      rewrite: true,
      ok: true,
    },
    {
      name: 'kubernetes.io/tls without tls.key',
      type: 'kubernetes.io/tls',
      key: 'json',
      rewrite: true,
      ok: false,
      message: /data\[tls\.crt\]: Required value, data\[tls\.key\]: Required value/,
    },
    {
      name: 'kubernetes.io/ssh-auth without ssh-privatekey',
      type: 'kubernetes.io/ssh-auth',
      key: 'cert',
      ok: false,
      message: /data\[ssh-privatekey\]: Required value/,
    },
  ];
  for (const c of types) {
    it(`${c.ok ? 'writes' : 'reports the API error for'} ${c.name}`, async () => {
      const w = world([
        es({
          target: {
            template: {
              type: c.type,
              mergePolicy: 'Merge',
              data: c.rewrite ? { username: '{{ .user }}', password: '{{ .pw }}' } : {},
            },
          },
          dataFrom: [
            {
              extract: { key: c.key },
              ...(c.rewrite ? { rewrite: [{ regexp: { source: '/', target: '.' } }] } : {}),
            },
          ],
        }),
      ]);
      const out = await w.sync('es');
      assert.equal(out.ok, c.ok, out.message);
      if (c.ok) assert.equal(w.secret('es')?.type, c.type);
      else assert.match(out.message ?? '', c.message as RegExp);
    });
  }
});

describe('creationPolicy', () => {
  it('Merge without a Secret to merge into writes none, reports SecretMissing (Ready True) and still writes the files', async () => {
    const w = world([
      es({
        target: { creationPolicy: 'Merge' },
        data: [{ secretKey: 'u', remoteRef: { key: 'app/db_user' } }],
      }),
    ]);
    const out = await w.sync('es');
    assert.equal(out.ok, true);
    assert.equal(w.secret('es'), undefined);
    assert.deepEqual(
      [w.ready('es')?.status, w.ready('es')?.reason, w.ready('es')?.message],
      ['True', 'SecretMissing', 'secret will not be created due to CreationPolicy=Merge'],
    );
    assert.equal(readFileSync(join(w.config.outputDir, 'es', 'u'), 'utf8'), 'u');
  });

  it('None writes only the files', async () => {
    const w = world([
      es({
        target: { creationPolicy: 'None' },
        data: [{ secretKey: 'u', remoteRef: { key: 'app/db_user' } }],
      }),
    ]);
    assert.equal((await w.sync('es')).ok, true);
    assert.equal(w.kube.writes().filter((c) => c.path.includes('/secrets')).length, 0);
    assert.deepEqual(readdirSync(join(w.config.outputDir, 'es')), ['u']);
  });

  it('Orphan writes no owner reference and no created-by label', async () => {
    const w = world([
      es({
        target: { creationPolicy: 'Orphan' },
        data: [{ secretKey: 'u', remoteRef: { key: 'app/db_user' } }],
      }),
    ]);
    await w.sync('es');
    assert.equal(w.secret('es')?.metadata.ownerReferences, undefined);
    assert.equal(
      w.secret('es')?.metadata.labels?.['reconcile.external-secrets.io/created-by'],
      undefined,
    );
  });

  it('refuses to merge into a Secret another ExternalSecret controls', async () => {
    const w = world(
      [
        es({
          target: { creationPolicy: 'CreateOrMerge' },
          data: [{ secretKey: 'u', remoteRef: { key: 'app/db_user' } }],
        }),
      ],
      (kube) =>
        kube.put(paths.secret('es'), {
          metadata: {
            name: 'es',
            namespace: NS,
            ownerReferences: [
              {
                apiVersion: 'external-secrets.io/v1',
                kind: 'ExternalSecret',
                name: 'other',
                uid: 'u-other',
                controller: true,
              },
            ],
          },
          data: {},
        }),
    );
    assert.match((await w.sync('es')).message ?? '', /is controlled by ExternalSecret other/);
  });
});

describe('refreshPolicy', () => {
  it('CreatedOnce reads the provider once, then only checks the Secret', async () => {
    const w = world([
      es({
        refreshPolicy: 'CreatedOnce',
        refreshInterval: '1m',
        data: [{ secretKey: 'u', remoteRef: { key: 'app/db_user' } }],
      }),
    ]);
    await w.sync('es');
    const reads = w.reads();
    await w.sync('es');
    assert.equal(w.reads(), reads);
  });

  it('OnChange reads the provider again only after the ExternalSecret changed', async () => {
    const w = world([
      es({
        refreshPolicy: 'OnChange',
        refreshInterval: '1m',
        data: [{ secretKey: 'u', remoteRef: { key: 'app/db_user' } }],
      }),
    ]);
    await w.sync('es');
    const reads = w.reads();
    await w.sync('es');
    assert.equal(w.reads(), reads);
    const e = w.kube.object<ExternalSecret>(paths.externalSecret('es')) as ExternalSecret;
    e.metadata.generation = 2;
    w.kube.put(paths.externalSecret('es'), e);
    await w.sync('es');
    assert.equal(w.reads(), reads + 1);
  });

  it('Periodic (the default) reads the provider on every pass', async () => {
    const w = world([es({ data: [{ secretKey: 'u', remoteRef: { key: 'app/db_user' } }] })]);
    await w.sync('es');
    await w.sync('es');
    assert.equal(w.reads(), 2);
  });
});
