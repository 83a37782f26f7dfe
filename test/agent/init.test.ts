import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runInit } from '../../agent/init.ts';
import type { Secret } from '../../agent/types.ts';
import { FakeKube } from './fake-kube.ts';
import { NS, externalSecret, paths, secretStore } from './helpers.ts';

const cli = fileURLToPath(new URL('../../cli.ts', import.meta.url));

function setup(names: string) {
  const dir = mkdtempSync(join(tmpdir(), 'esa-init-'));
  const kube = new FakeKube();
  kube.put(
    paths.secretStore('fake'),
    secretStore('fake', { fake: { data: [{ key: 'db', value: '{"password":"p1"}' }] } }),
  );
  kube.put(
    paths.externalSecret('database'),
    externalSecret('database', {
      secretStoreRef: { name: 'fake' },
      dataFrom: [{ extract: { key: 'db' } }],
    }),
  );
  const env = {
    ESA_POD_NAME: 'app-1',
    ESA_POD_NAMESPACE: NS,
    ESA_EXTERNAL_SECRETS: names,
    ESA_OUTPUT_DIR: join(dir, 'out'),
    ESA_TERMINATION_LOG: join(dir, 'termination-log'),
  };
  const logs: string[] = [];
  return { kube, env, dir, logs, options: { env, kube, logLine: (l: string) => logs.push(l) } };
}

describe('external-secrets-agent init', () => {
  it('syncs every ExternalSecret, exits 0 and leaves no termination message', async () => {
    const s = setup('database');
    assert.equal(await runInit([], s.options), 0);
    assert.equal(readFileSync(join(s.env.ESA_OUTPUT_DIR, 'database', 'password'), 'utf8'), 'p1');
    assert.ok(s.kube.object<Secret>(paths.secret('database')));
    assert.equal(existsSync(s.env.ESA_TERMINATION_LOG), false);
    assert.ok(s.logs.some((l) => JSON.parse(l).msg === 'init done'));
  });

  it('exits 1 with a one-line termination message naming an unknown ExternalSecret, and still syncs the others', async () => {
    const s = setup('database,does-not-exist');
    assert.equal(await runInit([], s.options), 1);
    assert.equal(
      readFileSync(s.env.ESA_TERMINATION_LOG, 'utf8'),
      `ExternalSecret ${NS}/does-not-exist does not exist`,
    );
    assert.ok(s.kube.object<Secret>(paths.secret('database')));
    const error = s.logs.map((l) => JSON.parse(l)).find((l) => l.level === 'error');
    assert.deepEqual(
      [error.msg, error.externalSecret, error.errCode],
      ['sync failed', `${NS}/does-not-exist`, 'ERR_NOT_FOUND'],
    );
  });

  it('names the setting in the termination message when the configuration is bad', async () => {
    const s = setup('database');
    const env = { ...s.env, ESA_POD_NAMESPACE: '' };
    assert.equal(await runInit([], { ...s.options, env }), 1);
    assert.match(readFileSync(s.env.ESA_TERMINATION_LOG, 'utf8'), /^ESA_POD_NAMESPACE is not set/);
  });

  it('still exits 1 when the termination-message file cannot be written', async () => {
    const s = setup('does-not-exist');
    const env = { ...s.env, ESA_TERMINATION_LOG: join(s.dir, 'missing-dir', 'termination-log') };
    assert.equal(await runInit([], { ...s.options, env }), 1);
  });

  it('runs from the command line and fails clearly outside a pod', () => {
    const s = setup('database');
    const env = { PATH: process.env.PATH, ...s.env };
    const r = spawnSync(process.execPath, [cli, 'init'], {
      env,
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 1);
    assert.match(
      readFileSync(s.env.ESA_TERMINATION_LOG, 'utf8'),
      /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set/,
    );
    assert.match(r.stderr, /"level":"error"/);
  });
});
