import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createLogger } from '../../agent/log.ts';
import { createNotifier, postChange, signalProcesses } from '../../agent/notify.ts';
import { formatOnChange, type OnChange, parseOnChange } from '../../agent/on-change.ts';
import { runSidecar } from '../../agent/sidecar.ts';
import { FakeKube } from './fake-kube.ts';
import { NS, externalSecret, paths, secretStore } from './helpers.ts';

/** A logger that keeps its lines, parsed. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('debug', {}, (line) => lines.push(JSON.parse(line)));
  return { log, lines, text: () => lines.map((l) => JSON.stringify(l)).join('\n') };
}

/**
 * A stand-in for the app's reload endpoint on 127.0.0.1: records each request and answers with
 * the next status in `statuses` (the last one repeats). The body is a marker that must never
 * reach a log.
 */
async function reloadServer(statuses: number[] = [200]) {
  const requests: { method: string; url: string }[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '' });
    const status = statuses[Math.min(requests.length, statuses.length) - 1]!;
    res.writeHead(status).end('BODY-MUST-NOT-BE-LOGGED');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  after(() => server.close());
  return { port, requests, close: () => new Promise((r) => server.close(r)) };
}

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const fast = { retryDelayMs: 10, debounceMs: 20 };

describe('parseOnChange and formatOnChange', () => {
  it('gives back the same value after a round trip', () => {
    for (const raw of ['http:8080/-/reload', 'http:1/?a=b', 'signal:SIGUSR2:my-app']) {
      const parsed = parseOnChange(raw);
      assert.ok(parsed.ok, raw);
      assert.equal(formatOnChange(parsed.value), raw);
    }
  });
});

describe('notify over HTTP', () => {
  it('POSTs once to 127.0.0.1 after several changes in a row', async () => {
    const app = await reloadServer();
    const { log, lines } = capture();
    const target: OnChange = { kind: 'http', port: app.port, path: '/-/reload' };
    const notifier = createNotifier(target, { log, ...fast });
    notifier.changed();
    notifier.changed();
    notifier.changed();
    await notifier.idle();
    assert.deepEqual(app.requests, [{ method: 'POST', url: '/-/reload' }]);
    assert.ok(lines.some((l) => l.msg === 'app notified of changed files' && l.level === 'info'));
    notifier.close();
  });

  it('sends nothing when nothing changed', async () => {
    const app = await reloadServer();
    const { log } = capture();
    const notifier = createNotifier({ kind: 'http', port: app.port, path: '/r' }, { log, ...fast });
    await new Promise((r) => setTimeout(r, 100));
    await notifier.idle();
    assert.equal(app.requests.length, 0);
    notifier.close();
  });

  it('retries after a 500 and stops at the first 2xx', async () => {
    const app = await reloadServer([500, 204]);
    const { log, lines } = capture();
    const ok = await postChange({ kind: 'http', port: app.port, path: '/r' }, { log, ...fast });
    assert.equal(ok, true);
    assert.equal(app.requests.length, 2);
    const warn = lines.find((l) => l.level === 'warn');
    assert.equal(warn?.msg, 'could not notify the app, retrying');
    assert.match(String(warn?.err), /HTTP 500/);
  });

  it('gives up after 3 attempts and never logs the response body', async () => {
    const app = await reloadServer([500]);
    const { log, lines, text } = capture();
    const ok = await postChange({ kind: 'http', port: app.port, path: '/r' }, { log, ...fast });
    assert.equal(ok, false);
    assert.equal(app.requests.length, 3);
    const warnings = lines.filter((l) => l.level === 'warn');
    assert.deepEqual(
      warnings.map((w) => w.attempt),
      [1, 2, 3],
    );
    assert.equal(warnings[2]!.msg, 'could not notify the app, giving up until the next change');
    assert.ok(!text().includes('BODY-MUST-NOT-BE-LOGGED'));
  });

  it('cuts an attempt that gets no answer at the timeout', async () => {
    const held: import('node:http').ServerResponse[] = [];
    const server = createServer((_req, res) => void held.push(res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const { log, lines } = capture();
    const started = Date.now();
    const ok = await postChange(
      { kind: 'http', port, path: '/r' },
      { log, ...fast, timeoutMs: 50, attempts: 2 },
    );
    assert.equal(ok, false);
    assert.ok(Date.now() - started < 2_000);
    assert.match(String(lines.at(-1)?.err), /no answer within 50 ms/);
    for (const res of held) res.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('logs a refused connection without throwing', async () => {
    const app = await reloadServer();
    await app.close(); // the port is now (very likely) free
    const { log, lines } = capture();
    const ok = await postChange({ kind: 'http', port: app.port, path: '/r' }, { log, ...fast });
    assert.equal(ok, false);
    assert.match(String(lines.at(-1)?.err), /ECONNREFUSED/);
  });
});

describe('notify by signal', () => {
  it('signals a real process by its /proc comm', { timeout: 10_000 }, async () => {
    // A copy of bash under a name unique to this run, so no other process on the machine can
    // match it; /proc/<pid>/comm is the executable's name.
    const dir = mkdtempSync(join(tmpdir(), 'esa-notify-'));
    const name = `esa${process.pid.toString(36)}${Math.floor(Math.random() * 1e4)}`.slice(0, 15);
    const exe = join(dir, name);
    copyFileSync('/bin/bash', exe);
    const marker = join(dir, 'marker');
    const ready = join(dir, 'ready');
    const script =
      `trap 'echo hup > "${marker}"' HUP; touch "${ready}"; ` +
      'while :; do sleep 0.05; done';
    const child = spawn(exe, ['-c', script], { stdio: 'ignore' });
    try {
      await until('trap installed', () => existsSync(ready));
      assert.equal(readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim(), name);

      const { log } = capture();
      const target = { kind: 'signal', signal: 'SIGHUP', processName: name } as const;
      const sent = await signalProcesses(target, { log });
      assert.equal(sent, 1);
      await until('the trap ran', () => existsSync(marker));
      assert.equal(readFileSync(marker, 'utf8'), 'hup\n');
      assert.equal(child.exitCode, null, 'the process handled the signal and kept running');
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** A fake /proc with `comm` files, for cases a real process cannot set up safely. */
  function fakeProc(processes: Record<number, string>): string {
    const dir = mkdtempSync(join(tmpdir(), 'esa-proc-'));
    for (const [pid, comm] of Object.entries(processes)) {
      mkdirSync(join(dir, pid));
      writeFileSync(join(dir, pid, 'comm'), `${comm}\n`);
    }
    mkdirSync(join(dir, 'self'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  const hup = { kind: 'signal', signal: 'SIGHUP', processName: 'app' } as const;

  it('signals every matching process but never the agent itself', async () => {
    const procDir = fakeProc({ 10: 'app', 11: 'app', 12: 'sidecar', [process.pid]: 'app' });
    const calls: [number, string][] = [];
    const { log } = capture();
    const sent = await signalProcesses(hup, {
      log,
      procDir,
      kill: (pid, sig) => void calls.push([pid, sig]),
    });
    assert.equal(sent, 2);
    assert.deepEqual(
      calls.sort((a, b) => a[0] - b[0]),
      [
        [10, 'SIGHUP'],
        [11, 'SIGHUP'],
      ],
    );
  });

  it('says which uid to set when the kernel refuses with EPERM', async () => {
    const procDir = fakeProc({ 10: 'app' });
    const { log, lines } = capture();
    const sent = await signalProcesses(hup, {
      log,
      procDir,
      kill: () => {
        throw Object.assign(new Error('kill EPERM'), { code: 'EPERM' });
      },
    });
    assert.equal(sent, 0);
    const warn = lines.find((l) => l.level === 'warn');
    assert.equal(warn?.errCode, 'EPERM');
    assert.match(String(warn?.err), /runAsUser.*agent\.external-secrets\.io\/run-as-user/);
    assert.match(String(warn?.err), /agent\.external-secrets\.io\/on-change/);
  });

  it('warns when no process has the name', async () => {
    const procDir = fakeProc({ 10: 'other' });
    const { log, lines } = capture();
    const kill = () => assert.fail('nothing to signal');
    const sent = await signalProcesses(hup, { log, procDir, kill });
    assert.equal(sent, 0);
    assert.match(String(lines.find((l) => l.level === 'warn')?.err), /shareProcessNamespace/);
  });
});

describe('sidecar with ESA_ON_CHANGE', () => {
  it('notifies once per change, never for the first sync', { timeout: 15_000 }, async () => {
    const app = await reloadServer();
    const dir = mkdtempSync(join(tmpdir(), 'esa-notify-sidecar-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const kube = new FakeKube();
    const setValue = (v: string) =>
      kube.put(
        paths.secretStore('fake'),
        secretStore('fake', { fake: { data: [{ key: 'db', value: v }] } }),
      );
    setValue('{"password":"p1"}');
    for (const name of ['database', 'cache']) {
      kube.put(
        paths.externalSecret(name),
        externalSecret(name, {
          refreshInterval: '50ms',
          secretStoreRef: { name: 'fake' },
          dataFrom: [{ extract: { key: 'db' } }],
        }),
      );
    }
    const out = join(dir, 'out');
    const env = {
      ESA_POD_NAME: 'app-1',
      ESA_POD_NAMESPACE: NS,
      ESA_EXTERNAL_SECRETS: 'database,cache',
      ESA_OUTPUT_DIR: out,
      ESA_ON_CHANGE: `http:${app.port}/-/reload`,
    };
    const controller = new AbortController();
    const done = runSidecar([], { env, kube, signal: controller.signal, logLine: () => {} });

    await until('ready', () => existsSync(join(out, '..ready')));
    await new Promise((r) => setTimeout(r, 1_300)); // past the 1 s debounce
    assert.equal(app.requests.length, 0, 'the first sync is not a change');

    setValue('{"password":"p2"}'); // both ExternalSecrets change: one notification
    await until('notified', () => app.requests.length > 0, 5_000);
    assert.equal(readFileSync(join(out, 'database', 'password'), 'utf8'), 'p2');
    await new Promise((r) => setTimeout(r, 1_300));
    assert.deepEqual(app.requests, [{ method: 'POST', url: '/-/reload' }]);

    controller.abort();
    assert.equal(await done, 0);
  });
});
