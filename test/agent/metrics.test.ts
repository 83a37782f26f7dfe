import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createAgentMetrics } from '../../agent/metrics.ts';
import { formatLabels } from '../../agent/prometheus.ts';
import { runSidecar } from '../../agent/sidecar.ts';
import { FakeKube } from './fake-kube.ts';
import { NS, externalSecret, paths, secretStore } from './helpers.ts';

describe('agent metrics', () => {
  it('renders HELP and TYPE for each family even before the first pass', () => {
    assert.equal(
      createAgentMetrics().render(),
      [
        '# HELP externalsecret_sync_calls_total Sync passes, by ExternalSecret.',
        '# TYPE externalsecret_sync_calls_total counter',
        '# HELP externalsecret_sync_calls_error Failed sync passes, by ExternalSecret.',
        '# TYPE externalsecret_sync_calls_error counter',
        '# HELP externalsecret_status_condition Ready condition after the last pass.',
        '# TYPE externalsecret_status_condition gauge',
        '',
      ].join('\n'),
    );
  });

  it('counts passes and errors per ExternalSecret and flips the Ready gauge', () => {
    const m = createAgentMetrics();
    m.observePass({ externalSecret: 'app-ns/db', ok: true });
    m.observePass({ externalSecret: 'app-ns/db', ok: false });
    m.observePass({ externalSecret: 'app-ns/api', ok: true });
    const lines = m.render().split('\n');
    const has = (line: string) => assert.ok(lines.includes(line), `missing ${line}`);

    has('externalsecret_sync_calls_total{name="db",namespace="app-ns"} 2');
    has('externalsecret_sync_calls_error{name="db",namespace="app-ns"} 1');
    has('externalsecret_sync_calls_total{name="api",namespace="app-ns"} 1');
    has('externalsecret_sync_calls_error{name="api",namespace="app-ns"} 0');
    const ready = 'externalsecret_status_condition{name="db",namespace="app-ns",condition="Ready"';
    has(`${ready},status="True"} 0`);
    has(`${ready},status="False"} 1`);

    m.observePass({ externalSecret: 'app-ns/db', ok: true });
    const after = m.render().split('\n');
    assert.ok(after.includes(`${ready},status="True"} 1`));
    assert.ok(after.includes(`${ready},status="False"} 0`));
  });

  it('lists ExternalSecrets in a stable order', () => {
    const m = createAgentMetrics();
    m.observePass({ externalSecret: 'ns/b', ok: true });
    m.observePass({ externalSecret: 'ns/a', ok: true });
    const totals = m
      .render()
      .split('\n')
      .filter((l) => l.startsWith('externalsecret_sync_calls_total{'));
    assert.deepEqual(totals, [
      'externalsecret_sync_calls_total{name="a",namespace="ns"} 1',
      'externalsecret_sync_calls_total{name="b",namespace="ns"} 1',
    ]);
  });

  it('escapes label values as the text format requires', () => {
    assert.equal(formatLabels({ a: 'x"y\\z\nw', b: 'v' }), '{a="x\\"y\\\\z\\nw",b="v"}');
    assert.equal(formatLabels({}), '');
  });
});

/** A port that was free a moment ago on 127.0.0.1. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('sidecar metrics server', () => {
  it('serves GET /metrics on ESA_METRICS_ADDRESS and stops with the sidecar', async () => {
    const kube = new FakeKube();
    kube.put(
      paths.secretStore('fake'),
      secretStore('fake', { fake: { data: [{ key: 'db', value: '{"password":"p1"}' }] } }),
    );
    kube.put(
      paths.externalSecret('database'),
      externalSecret('database', {
        refreshInterval: '1h',
        secretStoreRef: { name: 'fake' },
        dataFrom: [{ extract: { key: 'db' } }],
      }),
    );
    const port = await freePort();
    const env = {
      ESA_POD_NAME: 'app-1',
      ESA_POD_NAMESPACE: NS,
      ESA_EXTERNAL_SECRETS: 'database',
      ESA_OUTPUT_DIR: join(mkdtempSync(join(tmpdir(), 'esa-metrics-')), 'out'),
      ESA_METRICS_ADDRESS: `127.0.0.1:${port}`,
    };
    const controller = new AbortController();
    const done = runSidecar([], { env, kube, logLine: () => {}, signal: controller.signal });
    const url = `http://127.0.0.1:${port}/metrics`;
    const total = `externalsecret_sync_calls_total{name="database",namespace="${NS}"} 1`;

    let body = '';
    await until('a scrape with one pass', async () => {
      const res = await fetch(url).catch(() => undefined);
      body = res?.ok ? await res.text() : '';
      if (res) assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      return body.includes(total);
    });
    const errors = `externalsecret_sync_calls_error{name="database",namespace="${NS}"} 0`;
    assert.ok(body.includes(errors));
    assert.ok(body.includes('condition="Ready",status="True"} 1'));
    assert.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404);

    controller.abort();
    assert.equal(await done, 0);
    await assert.rejects(fetch(url));
  });
});
