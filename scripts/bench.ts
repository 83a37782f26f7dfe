/**
 * `npm run bench`: the performance figures DESIGN.md asks for, each as a ratio against a
 * baseline measured in the same run on the same machine, median of several runs. Targets live
 * here, never in timed tests: the machines are shared and noisy.
 *
 * 1. Idle sidecar memory: resident set of the agent's sidecar (the esbuild bundle, AWS provider)
 *    after it synced the quick-start, against a bare Node 24 process that made the same kind of
 *    HTTPS calls (API server over TLS with the pod's token, moto over HTTP) with Node's own client.
 * 2. Time to first sync: start of the init container to its exit with files and Secrets written,
 *    against the start-up time of a bare `node -e 0`.
 * 3. Injector: admission reviews per second and p99 latency over HTTPS with 8 concurrent
 *    clients, against a bare Node HTTPS server that answers every request with the same fixed
 *    AdmissionReview (the TLS and HTTP cost without our code).
 *
 *   npm run bench              # all, 5 runs each
 *   ESA_BENCH_RUNS=3 npm run bench
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { createNamespace, startControlPlane, type ControlPlane } from '../test/harness/control-plane.ts';
import { startInjector, type RunningInjector } from '../test/harness/injector.ts';
import { runPod, type PodRun } from '../test/harness/kubelet.ts';
import { startMoto, type Moto } from '../test/harness/moto.ts';
import { issueCert } from '../test/harness/pki.ts';
import { freePort, sleep } from '../test/harness/processes.ts';
import {
  applyObjects, installCrds, optedInPod, putAwsSecrets, QUICKSTART_AWS_DATA, QUICKSTART_EXTERNAL_SECRETS, quickstartObjects,
} from '../test/harness/quickstart.ts';
import { tempBundle } from '../test/harness/tools.ts';

const RUNS = Number(process.env.ESA_BENCH_RUNS || 5);
const NS = 'bench';
const say = (m: string) => process.stderr.write(`[bench] ${m}\n`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const rssMiB = (pid: number) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
};

let cp: ControlPlane | undefined;
let moto: Moto | undefined;
let injector: RunningInjector | undefined;
const pods: PodRun[] = [];

async function cleanUp() {
  for (const p of pods) await p.stop();
  await injector?.stop();
  await moto?.stop();
  await cp?.stop();
}

/** A bare Node process making the agent's kind of calls with node:https/node:http, then idling. */
const BASELINE = `
const https = require('node:https'), http = require('node:http'), fs = require('node:fs');
const [server, ca, tokenFile, ns, moto] = process.argv.slice(2);
const agent = new https.Agent({ ca: fs.readFileSync(ca), keepAlive: true });
const get = (p) => new Promise((ok, ko) => https.get(server + p, { agent, headers: { authorization: 'Bearer ' + fs.readFileSync(tokenFile, 'utf8').trim() } },
  (r) => { let b = ''; r.on('data', (c) => (b += c)); r.on('end', () => ok(b)); }).on('error', ko));
const aws = (name) => new Promise((ok, ko) => { const body = JSON.stringify({ SecretId: name });
  const req = http.request(moto, { method: 'POST', headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'secretsmanager.GetSecretValue',
    authorization: 'AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0' } },
    (r) => { let b = ''; r.on('data', (c) => (b += c)); r.on('end', () => ok(b)); }); req.on('error', ko); req.end(body); });
(async () => {
  for (const es of ['app-credentials', 'database', 'db-connection-string']) {
    await get('/apis/external-secrets.io/v1/namespaces/' + ns + '/externalsecrets/' + es);
    await get('/apis/external-secrets.io/v1/namespaces/' + ns + '/secretstores/aws-secrets');
    await get('/api/v1/namespaces/' + ns + '/secrets/' + es).catch(() => {});
    await aws('prod/database'); await aws('prod/api-keys');
  }
  process.stdout.write('ready\\n');
  setInterval(() => {}, 1 << 30);
})();
`;

async function sidecarMemory(bundle: string): Promise<{ agent: number[]; baseline: number[]; initMs: number[]; nodeStartMs: number[] }> {
  const core = cp!.kubeConfig.makeApiClient(k8s.CoreV1Api);
  const out = { agent: [] as number[], baseline: [] as number[], initMs: [] as number[], nodeStartMs: [] as number[] };
  const baselineFile = path.join(mkdtempSync(path.join(tmpdir(), 'esa-bench-')), 'baseline.cjs');
  writeFileSync(baselineFile, BASELINE);
  for (let i = 0; i < RUNS; i++) {
    const name = `bench-${i}`;
    await core.createNamespacedPod({ namespace: NS, body: optedInPod(name, QUICKSTART_EXTERNAL_SECRETS) });
    const run = await runPod(cp!, NS, name, { bundle, env: { AWS_ENDPOINT_URL: moto!.endpoint } });
    pods.push(run);
    if (run.phase !== 'Running') throw new Error(`bench pod ${name} failed: ${run.failed?.terminationMessage()}`);
    const init = run.containers.find((c) => c.kind === 'init')!;
    out.initMs.push(init.process.durationMs());
    const sidecar = run.containers.find((c) => c.kind === 'sidecar')!;
    await sleep(3_000); // idle: the first refresh is an hour away
    out.agent.push(rssMiB(sidecar.process.child.pid!));

    const tokenFile = path.join(run.volumeDir('inject-token'), 'token');
    const ca = path.join(run.volumeDir('inject-token'), 'ca.crt');
    const child = spawn(process.execPath, [baselineFile, cp!.server, ca, tokenFile, NS, moto!.endpoint], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await sleep(3_000);
    out.baseline.push(rssMiB(child.pid!));
    child.kill('SIGTERM');

    const t0 = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    out.nodeStartMs.push(performance.now() - t0);
    await run.stop();
  }
  return out;
}

/** Fires reviews from `concurrency` clients for `seconds`; returns per-second rate and p99 ms. */
async function load(url: string, ca: string, body: string, seconds: number, concurrency = 8): Promise<{ rps: number; p99: number }> {
  const agent = new https.Agent({ ca, keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  const end = Date.now() + seconds * 1000;
  const worker = async () => {
    while (Date.now() < end) {
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        const req = https.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
        });
        req.on('error', reject);
        req.end(body);
      });
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / seconds, p99: latencies[Math.floor(latencies.length * 0.99)] ?? NaN };
}

function reviewBody(): string {
  const pod = optedInPod('load', ['database']);
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: { uid: '00000000-0000-0000-0000-000000000001', kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' }, namespace: NS, operation: 'CREATE',
      userInfo: { username: 'bench' }, object: { ...pod, metadata: { ...pod.metadata, namespace: NS } }, dryRun: false },
  });
}

async function bareServer(): Promise<{ url: string; close: () => void }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'esa-bench-tls-'));
  const cert = issueCert(dir, cp!.ca, 'bare', { commonName: 'bare', hosts: ['127.0.0.1'] });
  const answer = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: '00000000-0000-0000-0000-000000000001', allowed: true } });
  const port = await freePort();
  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(answer));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { url: `https://127.0.0.1:${port}/mutate`, close: () => server.close() };
}

async function main() {
  say('starting the control plane and moto');
  cp = await startControlPlane();
  moto = await startMoto({ logDir: cp.logDir });
  await putAwsSecrets(moto.endpoint, QUICKSTART_AWS_DATA);
  const bundle = tempBundle();
  installCrds(cp);
  await createNamespace(cp, NS);
  await applyObjects(cp, quickstartObjects(NS));
  injector = await startInjector(cp, { namespaces: [NS], bundle, args: ['--log-level=warn'] });

  say(`sidecar memory and time to first sync, ${RUNS} runs`);
  const m = await sidecarMemory(bundle);

  say(`injector throughput, ${RUNS} runs of 5 s each`);
  const bare = await bareServer();
  const body = reviewBody();
  const ours: { rps: number; p99: number }[] = [];
  const base: { rps: number; p99: number }[] = [];
  for (let i = 0; i < RUNS; i++) {
    ours.push(await load(`${injector.url}/mutate`, cp.caPem, body, 5));
    base.push(await load(bare.url, cp.caPem, body, 5));
  }
  bare.close();

  const row = (what: string, value: number, unit: string, baseline: number, ratio = value / baseline) =>
    `| ${what} | ${value.toFixed(1)} ${unit} | ${baseline.toFixed(1)} ${unit} | ${ratio.toFixed(2)} |`;
  const lines = [
    `Median of ${RUNS} runs; Node ${process.version}; ${new Date().toISOString()}`,
    '',
    '| measure | ours | baseline | ratio |',
    '|---|---|---|---|',
    row('idle sidecar RSS (bare Node that made the same calls)', median(m.agent), 'MiB', median(m.baseline)),
    row('init: start to synced (bare `node -e 0` start)', median(m.initMs), 'ms', median(m.nodeStartMs)),
    row('injector reviews/s, 8 clients (bare HTTPS server)', median(ours.map((o) => o.rps)), '/s', median(base.map((b) => b.rps))),
    row('injector p99 latency (bare HTTPS server)', median(ours.map((o) => o.p99)), 'ms', median(base.map((b) => b.p99))),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

try {
  await main();
} finally {
  await cleanUp();
}
