/**
 * The CRDs against a real kube-apiserver (test/harness): they install, every manifest in samples/
 * applies unchanged with kubectl and reads back through the other version, the valid fixtures
 * are accepted, each bad manifest in test/fixtures/crd-invalid is rejected with a message naming
 * its field (CEL rules included), and `kubectl get` shows the printer columns.
 *
 * Objects live in namespaces and cluster-scoped names of their own (crd-*), except the samples,
 * which any test may apply: applying them twice is an ordinary update.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { useControlPlane, type ControlPlane } from '../harness/control-plane.ts';
import { kubectl, type ToolResult } from '../harness/tools.ts';
import {
  crdDir,
  GROUP,
  loadManifests,
  repoRoot,
  yamlFiles,
  type Manifest,
} from './schema-check.ts';

const samplesDir = path.join(repoRoot, 'samples');
const validDir = path.join(repoRoot, 'test/crds/valid');
const invalidDir = path.join(repoRoot, 'test/fixtures/crd-invalid');

const PLURALS: Record<string, string> = {
  ExternalSecret: 'externalsecrets',
  SecretStore: 'secretstores',
  ClusterSecretStore: 'clustersecretstores',
};

/** Files holding a Namespace come first, as a user applying a folder would order them. */
function namespacesFirst(files: string[]): string[] {
  const hasNamespace = (f: string) =>
    loadManifests(path.dirname(f)).some((m) => m.file === f && m.object.kind === 'Namespace');
  return [...files.filter(hasNamespace), ...files.filter((f) => !hasNamespace(f))];
}

/** Asserts that every field of `expected` is in `actual` with the same value; extras are fine. */
function assertContains(actual: unknown, expected: unknown, at: string): void {
  if (expected !== null && typeof expected === 'object') {
    assert.equal(typeof actual, 'object', `${at} is an object or list`);
    assert.equal(Array.isArray(actual), Array.isArray(expected), `${at} keeps its shape`);
    if (Array.isArray(expected))
      assert.equal((actual as unknown[]).length, expected.length, `${at} length`);
    for (const [key, value] of Object.entries(expected)) {
      assertContains((actual as Record<string, unknown>)[key], value, `${at}.${key}`);
    }
    return;
  }
  assert.equal(actual, expected, at);
}

/** The header and the row of one object in `kubectl get` output, columns split on 2+ spaces. */
function table(r: ToolResult, name: string): { header: string[]; row: string[] } {
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s{2,}/));
  const row = lines.find((cells) => cells[0] === name);
  assert.ok(row, `${name} is listed:\n${r.stdout}`);
  return { header: lines[0]!, row };
}

describe('CRDs on a real API server', () => {
  let cp: ControlPlane;
  let custom: k8s.CustomObjectsApi;
  const run = (args: string[], input?: string) => kubectl(cp.kubeconfigFile, args, input);

  before(async () => {
    cp = await useControlPlane();
    custom = cp.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    const apply = run(['apply', '--server-side', '-f', crdDir]);
    assert.equal(apply.status, 0, apply.stderr);
    const wait = run([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      ...Object.values(PLURALS).map((p) => `crd/${p}.${GROUP}`),
    ]);
    assert.equal(wait.status, 0, wait.stderr);
  });
  after(async () => cp?.stop());

  it('serves v1 and v1beta1 of external-secrets.io, preferring v1', async () => {
    const r = run(['get', '--raw', `/apis/${GROUP}`]);
    assert.equal(r.status, 0, r.stderr);
    const group = JSON.parse(r.stdout) as {
      versions: { version: string }[];
      preferredVersion: { version: string };
    };
    assert.deepEqual(group.versions.map((v) => v.version).sort(), ['v1', 'v1beta1']);
    assert.equal(group.preferredVersion.version, 'v1');
  });

  it('applies every file in samples/ unchanged with kubectl apply, namespaces first', () => {
    for (const file of namespacesFirst(yamlFiles(samplesDir))) {
      const r = run(['apply', '-f', file]);
      assert.equal(r.status, 0, `${path.relative(repoRoot, file)}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /unknown field|Warning/, path.relative(repoRoot, file));
    }
  });

  it('reads every sample back through the other version with the fields it was written with', async () => {
    const ours = loadManifests(samplesDir)
      .map((m) => m.object)
      .filter((o) => o.apiVersion.startsWith(`${GROUP}/`));
    assert.ok(ours.length >= 10, 'samples hold both versions of the quick-start objects');
    for (const o of ours) {
      const other = o.apiVersion.endsWith('/v1') ? 'v1beta1' : 'v1';
      const ref = { group: GROUP, version: other, plural: PLURALS[o.kind]!, name: o.metadata.name };
      const read = (
        o.metadata.namespace
          ? await custom.getNamespacedCustomObject({ ...ref, namespace: o.metadata.namespace })
          : await custom.getClusterCustomObject(ref)
      ) as Manifest;
      assert.equal(read.apiVersion, `${GROUP}/${other}`);
      // What comes back may also hold the schema's defaults (creationPolicy Owner, ...).
      assertContains(read.spec, o.spec, `${o.kind} ${o.metadata.name} as ${other}: spec`);
    }
  });

  it('fills in ESO defaults: creationPolicy Owner, deletionPolicy Retain, template engineVersion v2', async () => {
    const read = (await custom.getNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      plural: 'externalsecrets',
      namespace: 'production',
      name: 'db-connection-string',
    })) as { spec: { target: Record<string, unknown> & { template: Record<string, unknown> } } };
    assert.equal(read.spec.target.creationPolicy, 'Owner');
    assert.equal(read.spec.target.deletionPolicy, 'Retain');
    assert.equal(read.spec.target.template.engineVersion, 'v2');
    assert.equal(read.spec.target.template.mergePolicy, 'Replace');
  });

  it('accepts the acceptance-case manifests and the other valid fixtures', () => {
    for (const file of namespacesFirst(yamlFiles(validDir))) {
      const r = run(['apply', '-f', file]);
      assert.equal(r.status, 0, `${path.relative(repoRoot, file)}: ${r.stderr}`);
    }
  });

  it('keeps the settings of a provider the agent does not read exactly as written', async () => {
    const store = (await custom.getNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      plural: 'secretstores',
      namespace: 'crd-valid',
      name: 'onepassword',
    })) as { spec: { provider: Record<string, unknown> } };
    assert.deepEqual(store.spec.provider, {
      onepassword: {
        connectHost: 'https://onepassword-connect.example',
        vaults: { production: 1 },
        auth: { secretRef: { connectTokenSecretRef: { name: 'op-token', key: 'token' } } },
      },
    });
  });

  it('rejects a misspelt field of a provider the agent reads, naming it', () => {
    const r = run(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: `${GROUP}/v1`,
        kind: 'SecretStore',
        metadata: { name: 'typo', namespace: 'crd-valid' },
        spec: { provider: { aws: { service: 'SecretsManager', region: 'us-east-1', rgion: 'x' } } },
      }),
    );
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /unknown field "spec\.provider\.aws\.rgion"/);
  });

  describe('bad manifests (test/fixtures/crd-invalid)', () => {
    const { cases } = JSON.parse(readFileSync(path.join(invalidDir, 'cases.json'), 'utf8')) as {
      cases: { name: string; file: string; field: string }[];
    };

    before(() => {
      const r = run(
        ['apply', '-f', '-'],
        JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'crd-invalid' } }),
      );
      assert.equal(r.status, 0, r.stderr);
    });

    for (const c of cases) {
      it(`rejects ${c.name} with a message naming ${c.field}`, () => {
        const r = run(['apply', '-f', path.join(invalidDir, c.file)]);
        assert.notEqual(r.status, 0, `${c.file} was accepted`);
        assert.ok(r.stderr.includes(c.field), `the rejection names ${c.field}:\n${r.stderr}`);
      });
    }
  });

  it('shows STORE, REFRESH INTERVAL, STATUS, READY and AGE in kubectl get externalsecrets', () => {
    const patch = run([
      'patch',
      'externalsecrets',
      'c01',
      '-n',
      'crd-app-ns',
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({
        status: {
          refreshTime: '2026-01-01T00:00:00Z',
          conditions: [
            {
              type: 'Ready',
              status: 'True',
              reason: 'SecretSynced',
              message: 'secret synced',
              lastTransitionTime: '2026-01-01T00:00:00Z',
            },
          ],
        },
      }),
    ]);
    assert.equal(patch.status, 0, patch.stderr);

    const { header, row } = table(run(['get', 'externalsecrets', '-n', 'crd-app-ns']), 'c01');
    assert.deepEqual(header, ['NAME', 'STORE', 'REFRESH INTERVAL', 'STATUS', 'READY', 'AGE']);
    assert.deepEqual(row.slice(0, 5), ['c01', 'aws-sm', '1h', 'SecretSynced', 'True']);
  });

  it('shows AGE, STATUS, CAPABILITIES and READY for SecretStores and ClusterSecretStores', () => {
    const status = JSON.stringify({
      status: {
        capabilities: 'ReadOnly',
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'Valid',
            message: 'store validated',
            lastTransitionTime: '2026-01-01T00:00:00Z',
          },
        ],
      },
    });
    for (const [resource, name, ns] of [
      ['secretstores', 'aws-sm', ['-n', 'crd-app-ns']],
      ['clustersecretstores', 'crd-shared', []],
    ] as const) {
      const patch = run([
        'patch',
        resource,
        name,
        ...ns,
        '--subresource=status',
        '--type=merge',
        '-p',
        status,
      ]);
      assert.equal(patch.status, 0, patch.stderr);
      const { header, row } = table(run(['get', resource, ...ns]), name);
      assert.deepEqual(header, ['NAME', 'AGE', 'STATUS', 'CAPABILITIES', 'READY'], resource);
      assert.deepEqual([row[0], ...row.slice(2)], [name, 'Valid', 'ReadOnly', 'True'], resource);
    }
  });

  it('ignores status sent with a spec write, so only the status subresource sets it', () => {
    const patch = run([
      'patch',
      'externalsecrets',
      'c03',
      '-n',
      'crd-app-ns',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { refreshTime: '2026-01-01T00:00:00Z' } }),
    ]);
    assert.equal(patch.status, 0, patch.stderr);
    const read = run([
      'get',
      'externalsecrets',
      'c03',
      '-n',
      'crd-app-ns',
      '-o',
      'jsonpath={.status}',
    ]);
    assert.equal(read.stdout, '');
  });

  it('lists every kind under kubectl get external-secrets, and by the short names es, ss and css', () => {
    const all = run(['get', 'external-secrets', '-A', '-o', 'name']);
    assert.equal(all.status, 0, all.stderr);
    for (const kind of ['externalsecret', 'secretstore', 'clustersecretstore']) {
      assert.match(all.stdout, new RegExp(`^${kind}\\.${GROUP.replace('.', '\\.')}/`, 'm'));
    }
    for (const [short, name] of [
      ['es', 'c01'],
      ['ss', 'aws-sm'],
    ] as const) {
      assert.match(
        run(['get', short, '-n', 'crd-app-ns', '-o', 'name']).stdout,
        new RegExp(`/${name}$`, 'm'),
      );
    }
    assert.match(run(['get', 'css', '-o', 'name']).stdout, /\/crd-shared$/m);
  });
});
