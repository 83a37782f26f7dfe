/**
 * The CRDs in charts/external-secrets-agent/crds, the manifests in samples/ and the CRD fixtures,
 * checked offline: versions, names, subresources, printer columns, schema shape, and every
 * manifest against the structural schema. test/crds/crds-live.test.ts applies the same files to a
 * real API server, which also evaluates the CEL rules.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { V1CustomResourceDefinition } from '@kubernetes/client-node';
import {
  checkAgainstSchema,
  GROUP,
  loadCrd,
  loadManifests,
  repoRoot,
  versionSchema,
  walkSchema,
  yamlFiles,
  type Manifest,
  type Schema,
} from './schema-check.ts';

const READY_REASON = '.status.conditions[?(@.type=="Ready")].reason';
const READY_STATUS = '.status.conditions[?(@.type=="Ready")].status';
const AGE = '.metadata.creationTimestamp';

const storeColumns = [
  ['Age', AGE],
  ['Status', READY_REASON],
  ['Capabilities', '.status.capabilities'],
  ['Ready', READY_STATUS],
];

const crdCases = [
  {
    file: 'externalsecrets.yaml',
    kind: 'ExternalSecret',
    plural: 'externalsecrets',
    shortName: 'es',
    scope: 'Namespaced',
    columns: [
      ['Store', '.spec.secretStoreRef.name'],
      ['Refresh Interval', '.spec.refreshInterval'],
      ['Status', READY_REASON],
      ['Ready', READY_STATUS],
      ['Age', AGE],
    ],
  },
  {
    file: 'secretstores.yaml',
    kind: 'SecretStore',
    plural: 'secretstores',
    shortName: 'ss',
    scope: 'Namespaced',
    columns: storeColumns,
  },
  {
    file: 'clustersecretstores.yaml',
    kind: 'ClusterSecretStore',
    plural: 'clustersecretstores',
    shortName: 'css',
    scope: 'Cluster',
    columns: storeColumns,
  },
];

/** Providers with a full schema: the ones the agent reads. */
const READ_PROVIDERS = ['aws', 'azurekv', 'fake', 'gcpsm', 'kubernetes', 'vault'];

/** Every provider key of ESO's SecretStore (v1 and v1beta1), which manifests may name. */
const ESO_PROVIDERS = [
  ...READ_PROVIDERS,
  'akeyless',
  'alibaba',
  'barbican',
  'beyondtrust',
  'beyondtrustworkloadcredentials',
  'bitwardensecretsmanager',
  'chef',
  'cloudrusm',
  'conjur',
  'crd',
  'delinea',
  'device42',
  'doppler',
  'dvls',
  'fortanix',
  'github',
  'gitlab',
  'ibm',
  'infisical',
  'keepersecurity',
  'nebiusmysterybox',
  'ngrok',
  'onboardbase',
  'onepassword',
  'onepasswordSDK',
  'openBao',
  'oracle',
  'ovh',
  'passbolt',
  'passworddepot',
  'previder',
  'pulumi',
  'scaleway',
  'secretserver',
  'senhasegura',
  'volcengine',
  'webhook',
  'yandexcertificatemanager',
  'yandexlockbox',
];

const crds = new Map(crdCases.map((c) => [c.kind, loadCrd(c.file)]));
const schemaOf = (kind: string): Schema => versionSchema(crds.get(kind)!, 'v1');
const specOf = (kind: string): Schema => schemaOf(kind).properties!.spec!;

/** The CRD schema an external-secrets.io object is checked against. */
function checkManifest(object: Manifest) {
  const crd = crds.get(object.kind);
  assert.ok(crd, `no CRD for kind ${object.kind}`);
  return checkAgainstSchema(object, versionSchema(crd, object.apiVersion.split('/')[1]!));
}

function isOurs(object: Manifest): boolean {
  return object.apiVersion.startsWith(`${GROUP}/`);
}

/** The distinct field paths of a list of schema errors. */
function errorPaths(errors: { path: string }[]): string[] {
  return [...new Set(errors.map((e) => e.path))];
}

function describeErrors(errors: { path: string; reason: string }[]): string {
  return errors.map((e) => `${e.path}: ${e.reason}`).join('; ');
}

/** Every x-kubernetes-validations rule of a schema, with the path it reports errors at. */
function celRules(schema: Schema) {
  const rules: { at: string; reportedAt: string; message: string }[] = [];
  walkSchema(schema, (node, at) => {
    for (const r of node['x-kubernetes-validations'] ?? []) {
      rules.push({ at, reportedAt: at + (r.fieldPath ?? ''), message: r.message ?? '' });
    }
  });
  return rules;
}

for (const c of crdCases) {
  describe(`${c.kind} CRD (${c.file})`, () => {
    const crd: V1CustomResourceDefinition = crds.get(c.kind)!;

    it(`is named ${c.plural}.${GROUP} with ESO's kind, plural, short name and category`, () => {
      assert.equal(crd.apiVersion, 'apiextensions.k8s.io/v1');
      assert.equal(crd.kind, 'CustomResourceDefinition');
      assert.equal(crd.metadata?.name, `${c.plural}.${GROUP}`);
      assert.equal(crd.spec.group, GROUP);
      assert.equal(crd.spec.scope, c.scope);
      assert.equal(crd.spec.names.kind, c.kind);
      assert.equal(crd.spec.names.listKind, `${c.kind}List`);
      assert.equal(crd.spec.names.plural, c.plural);
      assert.equal(crd.spec.names.singular, c.kind.toLowerCase());
      assert.deepEqual(crd.spec.names.shortNames, [c.shortName]);
      assert.deepEqual(crd.spec.names.categories, ['external-secrets']);
    });

    it('serves v1 and v1beta1 with identical schemas and printer columns', () => {
      const [v1, v1beta1] = ['v1', 'v1beta1'].map((name) =>
        crd.spec.versions.find((v) => v.name === name),
      );
      assert.ok(v1 && v1beta1, 'both versions are declared');
      assert.equal(v1.served, true);
      assert.equal(v1beta1.served, true);
      assert.deepEqual(versionSchema(crd, 'v1beta1'), versionSchema(crd, 'v1'));
      assert.deepEqual(v1beta1.additionalPrinterColumns, v1.additionalPrinterColumns);
      assert.equal(crd.spec.versions.length, 2);
    });

    it('stores v1 and only v1', () => {
      assert.deepEqual(
        crd.spec.versions.filter((v) => v.storage).map((v) => v.name),
        ['v1'],
      );
    });

    it('converts between the versions with strategy None, as their fields are the same', () => {
      assert.equal(crd.spec.conversion?.strategy, 'None');
    });

    it('enables the status subresource on every version', () => {
      for (const v of crd.spec.versions) {
        assert.ok(v.subresources?.status, `status subresource on ${v.name}`);
        assert.ok(versionSchema(crd, v.name).properties?.status, `status schema on ${v.name}`);
      }
    });

    it(`shows ${c.columns.map(([name]) => name!.toUpperCase()).join(', ')} in kubectl get`, () => {
      for (const v of crd.spec.versions) {
        const shown = (v.additionalPrinterColumns ?? [])
          .filter((col) => !col.priority)
          .map((col) => [col.name, col.jsonPath]);
        assert.deepEqual(shown, c.columns, `default columns of ${v.name}`);
      }
    });

    it('keeps the schema structural: every field is typed and no object mixes properties with additionalProperties', () => {
      walkSchema(schemaOf(c.kind), (node, at) => {
        const typed = node.type !== undefined || node['x-kubernetes-int-or-string'];
        assert.ok(typed, `${at || '<root>'} has a type`);
        assert.ok(
          !(node.properties && node.additionalProperties),
          `${at} mixes properties and additionalProperties`,
        );
        for (const key of node.required ?? []) {
          assert.ok(node.properties?.[key], `${at}: required field ${key} is declared`);
        }
      });
    });

    it('bounds the lists each CEL rule walks, so the API server can cost the rule', () => {
      const arraysAt = new Map<string, Schema>();
      walkSchema(schemaOf(c.kind), (node, at) => {
        if (node.type === 'array') arraysAt.set(at, node);
      });
      for (const { at } of celRules(schemaOf(c.kind))) {
        // Lists enclosing the rule multiply its cost; lists directly under it are what it iterates.
        const enclosing = [...arraysAt.keys()].filter((p) => at.startsWith(`${p}[]`));
        const direct = [...arraysAt.keys()].filter(
          (p) => p.startsWith(`${at}.`) && !/[.[]/.test(p.slice(at.length + 1)),
        );
        for (const p of [...enclosing, ...direct]) {
          assert.ok(
            arraysAt.get(p)!.maxItems,
            `${p} needs maxItems (a rule at ${at || '<root>'} depends on it)`,
          );
        }
      }
    });

    it('words every CEL rule message so that it names the field it is about', () => {
      for (const { at, reportedAt, message } of celRules(schemaOf(c.kind))) {
        const field = reportedAt.split('.').at(-1)!.replace(/\[\]$/, '');
        assert.ok(
          message.includes(field),
          `the message of the rule at ${reportedAt} names ${field}: "${message}"`,
        );
        assert.ok(at.startsWith('spec'), `rules sit under spec (found one at ${at})`);
      }
    });
  });
}

describe('SecretStore and ClusterSecretStore schemas', () => {
  it('share one spec, the ClusterSecretStore adding only spec.conditions', () => {
    const cluster = specOf('ClusterSecretStore');
    const { conditions, ...rest } = cluster.properties!;
    assert.ok(conditions, 'ClusterSecretStore has spec.conditions');
    assert.deepEqual({ ...cluster, properties: rest }, specOf('SecretStore'));
    assert.deepEqual(
      schemaOf('ClusterSecretStore').properties!.status,
      schemaOf('SecretStore').properties!.status,
    );
  });

  it('accepts namespaces, namespaceRegexes and a namespaceSelector in ClusterSecretStore conditions', () => {
    const condition = specOf('ClusterSecretStore').properties!.conditions!.items!;
    assert.deepEqual(Object.keys(condition.properties!).sort(), [
      'namespaceRegexes',
      'namespaceSelector',
      'namespaces',
    ]);
    assert.deepEqual(Object.keys(condition.properties!.namespaceSelector!.properties!).sort(), [
      'matchExpressions',
      'matchLabels',
    ]);
  });

  it('has a full schema for the providers the agent reads and takes every other ESO provider as written', () => {
    const provider = specOf('SecretStore').properties!.provider!;
    assert.deepEqual(Object.keys(provider.properties!).sort(), [...ESO_PROVIDERS].sort());
    assert.equal(provider.minProperties, 1);
    assert.equal(provider.maxProperties, 1);
    for (const [name, schema] of Object.entries(provider.properties!)) {
      const isRead = READ_PROVIDERS.includes(name);
      assert.equal(
        Boolean(schema['x-kubernetes-preserve-unknown-fields']),
        !isRead,
        `${name}: preserve-unknown-fields`,
      );
      assert.equal(Boolean(schema.properties), isRead, `${name}: explicit properties`);
    }
  });

  it('takes refreshInterval as whole seconds (as v1beta1 wrote it) or as a duration', () => {
    assert.equal(
      specOf('SecretStore').properties!.refreshInterval!['x-kubernetes-int-or-string'],
      true,
    );
  });
});

describe('ExternalSecret schema', () => {
  const spec = specOf('ExternalSecret');
  const es = (fields: Record<string, unknown>): Manifest => ({
    apiVersion: `${GROUP}/v1`,
    kind: 'ExternalSecret',
    metadata: { name: 'x', namespace: 'y' },
    spec: {
      secretStoreRef: { name: 'store' },
      data: [{ secretKey: 'k', remoteRef: { key: 'r' } }],
      ...fields,
    },
  });

  it('accepts the creation policies Owner, Orphan, Merge, None and CreateOrMerge, and no other', () => {
    for (const creationPolicy of ['Owner', 'Orphan', 'Merge', 'None', 'CreateOrMerge']) {
      assert.deepEqual(checkManifest(es({ target: { creationPolicy } })), []);
    }
    const errors = checkManifest(es({ target: { creationPolicy: 'Always' } }));
    assert.deepEqual(errorPaths(errors), ['spec.target.creationPolicy']);
  });

  it('rejects a secretKey that is not a valid Secret key, such as one with "/"', () => {
    for (const secretKey of ['db/password', '', 'a b']) {
      const errors = checkManifest(es({ data: [{ secretKey, remoteRef: { key: 'r' } }] }));
      assert.deepEqual(
        errorPaths(errors),
        ['spec.data[0].secretKey'],
        `secretKey ${JSON.stringify(secretKey)}`,
      );
    }
    assert.deepEqual(
      checkManifest(
        es({ data: [{ secretKey: '.docker-config_json.1', remoteRef: { key: 'r' } }] }),
      ),
      [],
    );
  });

  it('takes refreshInterval as a Go duration such as 1h, 1h30m, 500ms or "0"', () => {
    for (const refreshInterval of ['1h', '1h30m', '500ms', '0', '1.5h', '15s']) {
      assert.deepEqual(checkManifest(es({ refreshInterval })), [], refreshInterval);
    }
    for (const refreshInterval of ['daily', '1d', '-1h', '']) {
      assert.notDeepEqual(checkManifest(es({ refreshInterval })), [], refreshInterval);
    }
  });

  it('requires spec.secretStoreRef through a rule that lets every entry bring its own sourceRef instead', () => {
    const rule = spec['x-kubernetes-validations']!.find((r) => r.fieldPath === '.secretStoreRef');
    assert.ok(rule, 'a rule reports at spec.secretStoreRef');
    assert.match(rule.message!, /spec\.secretStoreRef/);
    assert.match(rule.rule, /self\.data\.all\(d, has\(d\.sourceRef\)\)/);
    assert.match(rule.rule, /self\.dataFrom\.all\(d, has\(d\.sourceRef\)\)/);
    assert.equal(spec.required, undefined, 'secretStoreRef is not a plain required field');
  });

  it('defaults target.creationPolicy to Owner, deletionPolicy to Retain and refreshInterval to 1h, as ESO does', () => {
    const target = spec.properties!.target!;
    assert.deepEqual(target.default, { creationPolicy: 'Owner', deletionPolicy: 'Retain' });
    assert.equal(target.properties!.creationPolicy!.default, 'Owner');
    assert.equal(target.properties!.deletionPolicy!.default, 'Retain');
    assert.equal(spec.properties!.refreshInterval!.default, '1h');
  });
});

describe('samples/', () => {
  const samples = loadManifests(path.join(repoRoot, 'samples'));
  const inFolder = (folder: string) =>
    samples.filter((s) =>
      path.relative(path.join(repoRoot, 'samples'), s.file).startsWith(`${folder}/`),
    );

  it('holds the quick-start stores and ExternalSecrets as v1beta1 manifests', () => {
    const quickstart = inFolder('quickstart')
      .map((s) => s.object)
      .filter(isOurs);
    assert.deepEqual(
      quickstart.map(
        (o) => `${o.apiVersion} ${o.kind} ${o.metadata.namespace ?? '-'}/${o.metadata.name}`,
      ),
      [
        'external-secrets.io/v1beta1 SecretStore production/aws-secrets',
        'external-secrets.io/v1beta1 ClusterSecretStore -/vault-store',
        'external-secrets.io/v1beta1 ExternalSecret production/app-credentials',
        'external-secrets.io/v1beta1 ExternalSecret production/database',
        'external-secrets.io/v1beta1 ExternalSecret production/db-connection-string',
      ],
    );
  });

  it('writes samples/v1 as the same objects with apiVersion external-secrets.io/v1', () => {
    const asV1 = inFolder('quickstart')
      .map((s) => s.object)
      .filter(isOurs)
      .map((o) => ({ ...o, apiVersion: `${GROUP}/v1` }));
    assert.deepEqual(
      inFolder('v1').map((s) => s.object),
      asV1,
    );
  });

  it('creates the namespace and the credentials Secret the quick-start store refers to', () => {
    const objects = samples.map((s) => s.object);
    const namespaces = objects.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name);
    for (const o of objects.filter((x) => x.metadata.namespace)) {
      assert.ok(
        namespaces.includes(o.metadata.namespace!),
        `namespace ${o.metadata.namespace} is in samples/`,
      );
    }
    const secret = objects.find(
      (o) => o.kind === 'Secret' && o.metadata.name === 'aws-credentials',
    ) as (Manifest & { stringData?: Record<string, string> }) | undefined;
    assert.ok(secret, 'Secret aws-credentials');
    assert.equal(secret.metadata.namespace, 'production');
    assert.deepEqual(Object.keys(secret.stringData ?? {}).sort(), [
      'access-key-id',
      'secret-access-key',
    ]);
    for (const value of Object.values(secret.stringData ?? {})) assert.match(value, /placeholder/);
    assert.match(
      readFileSync(path.join(repoRoot, 'samples/quickstart/aws-credentials-secret.yaml'), 'utf8'),
      /TEST PLACEHOLDERS/,
    );
  });

  it('points every ExternalSecret at a store that samples/ defines', () => {
    const objects = samples.map((s) => s.object).filter(isOurs);
    for (const es of objects.filter((o) => o.kind === 'ExternalSecret')) {
      const ref = (es.spec as { secretStoreRef: { name: string; kind?: string } }).secretStoreRef;
      const kind = ref.kind ?? 'SecretStore';
      const found = objects.some(
        (o) =>
          o.kind === kind &&
          o.metadata.name === ref.name &&
          (kind === 'ClusterSecretStore' || o.metadata.namespace === es.metadata.namespace),
      );
      assert.ok(found, `${es.metadata.name} refers to ${kind} ${ref.name}`);
    }
  });

  it('passes the structural schema check for every external-secrets.io object', () => {
    for (const { file, object } of samples.filter((s) => isOurs(s.object))) {
      assert.deepEqual(
        checkManifest(object),
        [],
        `${path.relative(repoRoot, file)} ${object.metadata.name}`,
      );
    }
  });

  it('describes every sample file in samples/README.md', () => {
    const readme = readFileSync(path.join(repoRoot, 'samples/README.md'), 'utf8');
    for (const file of yamlFiles(path.join(repoRoot, 'samples'))) {
      const rel = path.relative(path.join(repoRoot, 'samples'), file);
      assert.ok(readme.includes(rel), `README mentions ${rel}`);
    }
  });
});

describe('CRD fixtures', () => {
  const valid = loadManifests(path.join(repoRoot, 'test/crds/valid')).filter((s) =>
    isOurs(s.object),
  );
  const invalidDir = path.join(repoRoot, 'test/fixtures/crd-invalid');
  const { cases } = JSON.parse(readFileSync(path.join(invalidDir, 'cases.json'), 'utf8')) as {
    cases: { name: string; file: string; field: string; issue2?: boolean }[];
  };

  it('accepts the acceptance-case manifests and the other valid fixtures structurally', () => {
    assert.ok(valid.length > 30, 'the valid fixtures load');
    for (const { file, object } of valid) {
      const errors = checkManifest(object);
      assert.deepEqual(
        errors,
        [],
        `${path.basename(file)} ${object.kind} ${object.metadata.name}: ${describeErrors(errors)}`,
      );
    }
  });

  it('lists every invalid fixture in cases.json with the field its rejection must name', () => {
    const files = yamlFiles(invalidDir).map((f) => path.basename(f));
    assert.deepEqual(cases.map((c) => c.file).sort(), files);
    for (const c of cases) assert.ok(c.name && c.field, `${c.file} has a name and a field`);
  });

  it('covers the rejections issue 2 names: missing secretStoreRef, secretKey with "/", unknown creationPolicy', () => {
    assert.deepEqual(
      cases.filter((c) => c.issue2).map((c) => c.field),
      ['spec.secretStoreRef', 'spec.data[0].secretKey', 'spec.target.creationPolicy'],
    );
  });

  for (const c of cases) {
    it(`rejects "${c.name}" at ${c.field}, by the schema or by a CEL rule naming it`, () => {
      const objects = loadManifests(invalidDir).filter((s) => path.basename(s.file) === c.file);
      assert.equal(objects.length, 1, `${c.file} holds one object`);
      const object = objects[0]!.object;
      const errors = checkManifest(object);
      if (errors.length > 0) {
        assert.ok(
          errors.some((e) => e.path === c.field),
          `an error at ${c.field}: ${describeErrors(errors)}`,
        );
        return;
      }
      // Structurally fine, so a CEL rule must reject it (crds-live.test.ts checks that it does).
      const field = c.field.replace(/\[\d+\]/g, '[]');
      const rules = celRules(schemaOf(object.kind));
      assert.ok(
        rules.some(
          (r) => r.reportedAt === field || r.message.includes(c.field.replace(/\[\d+\]/g, '')),
        ),
        `a CEL rule reports at or names ${c.field}`,
      );
    });
  }
});
