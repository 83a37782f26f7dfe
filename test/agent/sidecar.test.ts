import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runInit } from '../../agent/init.ts';
import type { Provider, ProviderContext } from '../../agent/providers/provider.ts';
import { loadProvider } from '../../agent/providers/provider.ts';
import { runReadyProbe, runSidecar } from '../../agent/sidecar.ts';
import { FakeKube } from './fake-kube.ts';
import { NS, externalSecret, paths, secretStore } from './helpers.ts';

function setup(refreshInterval: string, extraEnv: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'esa-sidecar-'));
  const kube = new FakeKube();
  const setValue = (v: string) =>
    kube.put(
      paths.secretStore('fake'),
      secretStore('fake', { fake: { data: v ? [{ key: 'db', value: v }] : [] } }),
    );
  setValue('{"password":"p1"}');
  kube.put(
    paths.externalSecret('database'),
    externalSecret('database', {
      refreshInterval,
      secretStoreRef: { name: 'fake' },
      dataFrom: [{ extract: { key: 'db' } }],
    }),
  );
  const env: Record<string, string> = {
    ESA_POD_NAME: 'app-1',
    ESA_POD_NAMESPACE: NS,
    ESA_EXTERNAL_SECRETS: 'database',
    ESA_OUTPUT_DIR: join(dir, 'out'),
    ESA_RETRY_INITIAL: '20ms',
    ESA_RETRY_MAX: '40ms',
    ...extraEnv,
  };
  let reads = 0;
  const countingLoader = async (ctx: ProviderContext): Promise<Provider> => {
    const inner = await loadProvider(ctx);
    return {
      name: inner.name,
      getSecret: (ref, signal) => (reads++, inner.getSecret(ref, signal)),
    };
  };
  const logs: string[] = [];
  const options = { env, kube, loadProvider: countingLoader, logLine: (l: string) => logs.push(l) };
  const password = () =>
    readFileSync(join(env.ESA_OUTPUT_DIR as string, 'database', 'password'), 'utf8');
  return { kube, env, logs, options, setValue, password, reads: () => reads };
}

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('external-secrets-agent sidecar', () => {
  it('syncs, becomes ready, picks up a rotation and stops cleanly on the signal', async () => {
    const s = setup('50ms');
    const controller = new AbortController();
    assert.equal(await runReadyProbe([], s.env), 1);
    const done = runSidecar([], { ...s.options, signal: controller.signal, random: () => 0.5 });

    await until('ready', () => existsSync(join(s.env.ESA_OUTPUT_DIR as string, '..ready')));
    assert.equal(await runReadyProbe([], s.env), 0);
    assert.equal(s.password(), 'p1');

    s.setValue('{"password":"p2"}');
    await until('rotation', () => s.password() === 'p2');
    controller.abort();
    assert.equal(await done, 0);
  });

  it('keeps the last good files while the provider fails, backs off, and recovers', async () => {
    const s = setup('30ms');
    const controller = new AbortController();
    const done = runSidecar([], { ...s.options, signal: controller.signal });
    await until('first sync', () => existsSync(join(s.env.ESA_OUTPUT_DIR as string, '..ready')));

    s.setValue('');
    await until(
      'two failed passes',
      () =>
        s.logs.filter((l) => JSON.parse(l).msg === 'sync failed, keeping the last good secret')
          .length >= 2,
    );
    assert.equal(s.password(), 'p1');
    const warnings = s.logs.map((l) => JSON.parse(l)).filter((l) => l.level === 'warn');
    assert.deepEqual(
      warnings.slice(0, 2).map((w) => w.attempt),
      [1, 2],
    );
    assert.ok(
      existsSync(join(s.env.ESA_OUTPUT_DIR as string, '..ready')),
      'readiness is kept while serving the last good secret',
    );

    s.setValue('{"password":"p3"}');
    await until('recovery', () => s.password() === 'p3');
    controller.abort();
    assert.equal(await done, 0);
  });

  it('makes no provider read when the init container has just synced', async () => {
    const s = setup('1h');
    assert.equal(await runInit([], s.options), 0);
    const readsAfterInit = s.reads();
    const writesAfterInit = s.kube.writes().length;

    const controller = new AbortController();
    const done = runSidecar([], { ...s.options, signal: controller.signal });
    await until('ready', () => existsSync(join(s.env.ESA_OUTPUT_DIR as string, '..ready')));
    controller.abort();
    assert.equal(await done, 0);
    assert.equal(s.reads(), readsAfterInit);
    assert.equal(s.kube.writes().length, writesAfterInit);
  });

  it('never refreshes an ExternalSecret with refreshInterval 0 (C11)', async () => {
    const s = setup('0');
    assert.equal(await runInit([], s.options), 0);
    s.setValue('{"password":"p2"}');
    const controller = new AbortController();
    const done = runSidecar([], { ...s.options, signal: controller.signal });
    await until('ready', () => existsSync(join(s.env.ESA_OUTPUT_DIR as string, '..ready')));
    await new Promise((r) => setTimeout(r, 100));
    controller.abort();
    assert.equal(await done, 0);
    assert.equal(s.password(), 'p1');
  });
});
