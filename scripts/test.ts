/**
 * `npm test`: type-checks, starts the shared real servers once (kube-apiserver + etcd, moto),
 * runs every test file with node:test against them, then stops what it started.
 *
 * Test files find the servers through $ESA_TEST_ENV (a JSON file written here). A file run on
 * its own (`node --test test/x.test.ts`) starts private servers instead. Server logs go to
 * $ESA_TEST_LOG_DIR (default .test-logs/<time>/) and are kept when anything fails.
 *
 *   npm test                      # everything
 *   npm test -- test/injector     # only files under these paths
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane } from '../test/harness/control-plane.ts';
import { startMoto } from '../test/harness/moto.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const logDirGiven = Boolean(process.env.ESA_TEST_LOG_DIR);
const logDir = process.env.ESA_TEST_LOG_DIR || path.join(root, '.test-logs', stamp);
mkdirSync(logDir, { recursive: true });
process.env.ESA_TEST_LOG_DIR = logDir;
const say = (m: string) => process.stderr.write(`[npm test] ${m}\n`);

say('type-checking (tsc --noEmit)');
const tsc = spawnSync(path.join(root, 'node_modules', '.bin', 'tsc'), ['--noEmit', '-p', root], { stdio: 'inherit' });
if (tsc.status !== 0) {
  say('type check failed');
  process.exit(1);
}

let t0 = Date.now();
say('starting kube-apiserver + etcd (first run on a machine builds them; see README)');
const controlPlane = await startControlPlane({ logDir });
say(`control plane ready at ${controlPlane.server} in ${Date.now() - t0} ms`);
t0 = Date.now();
const moto = await startMoto({ logDir });
say(`moto ready at ${moto.endpoint} in ${Date.now() - t0} ms`);

const envFile = path.join(logDir, 'test-env.json');
const { stop: _a, kubeConfig: _k, ca: _c, caPem: _p, ...cpInfo } = controlPlane;
writeFileSync(envFile, JSON.stringify({ controlPlane: cpInfo, moto: { endpoint: moto.endpoint } }, null, 2));

let stopping = false;
const stopServers = async () => {
  if (stopping) return;
  stopping = true;
  await moto.stop();
  await controlPlane.stop();
};
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => void stopServers().then(() => process.exit(130)));
}

const targets = process.argv.slice(2);
const patterns = targets.length
  ? targets.map((t) => (t.endsWith('.ts') ? t : `${t.replace(/\/$/, '')}/**/*.test.ts`))
  : ['test/**/*.test.ts'];
const child = spawn(process.execPath, ['--test', '--test-timeout=300000', ...patterns], {
  cwd: root,
  stdio: 'inherit',
  env: {
    ...process.env,
    ESA_TEST_ENV: envFile,
    AWS_EC2_METADATA_DISABLED: 'true',
    METADATA_SERVER_DETECTION: 'none',
    GCE_METADATA_HOST: '127.0.0.1:9',
  },
});
const code: number = await new Promise((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
await stopServers();
if (code === 0 && !logDirGiven) rmSync(logDir, { recursive: true, force: true });
else say(`server and agent logs kept in ${logDir}`);
process.exit(code);
