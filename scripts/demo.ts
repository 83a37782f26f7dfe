/**
 * `npm run demo`: the main job on local servers, end to end, narrated.
 *
 * Starts a real kube-apiserver + etcd (building them on first use) and moto for AWS, seeds AWS
 * Secrets Manager with the ESO quick-start's data, registers the injector (the esbuild bundle)
 * as a mutating webhook, applies the quick-start manifests unchanged plus the workload's RBAC
 * and an annotated Deployment, creates the Deployment's pod, runs its agent containers, shows
 * what a user would check, rotates a secret in AWS and shows the sidecar pick it up. Secret
 * values are always masked. Everything it starts is stopped before it exits.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { createNamespace, startControlPlane, type ControlPlane } from '../test/harness/control-plane.ts';
import { startInjector, type RunningInjector } from '../test/harness/injector.ts';
import { runPod, type PodRun } from '../test/harness/kubelet.ts';
import { startMoto, type Moto } from '../test/harness/moto.ts';
import { waitFor } from '../test/harness/processes.ts';
import {
  applyObjects, installCrds, putAwsSecrets, QUICKSTART_AWS_DATA, quickstartObjects, sampleObjects,
} from '../test/harness/quickstart.ts';
import { tempBundle, kubectl } from '../test/harness/tools.ts';

const NS = 'production';
const MOUNT = '/run/secrets/inject';
const REFRESH = '3s';

let step = 0;
const say = (m: string) => process.stdout.write(`\n[${++step}] ${m}\n`);
const show = (m: string) => process.stdout.write(`    ${m}\n`);
const mask = (v: string | Buffer) => `•••••••• (${Buffer.byteLength(v)} bytes)`;

let cp: ControlPlane | undefined;
let moto: Moto | undefined;
let injector: RunningInjector | undefined;
let pod: PodRun | undefined;

async function cleanUp(): Promise<void> {
  await pod?.stop();
  await injector?.stop();
  await moto?.stop();
  await cp?.stop();
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => void cleanUp().then(() => process.exit(130)));
}

async function main(): Promise<void> {
  // Keep every SDK's credential discovery on this machine.
  process.env.AWS_EC2_METADATA_DISABLED = 'true';

  say('Starting a local Kubernetes control plane (kube-apiserver + etcd on 127.0.0.1)');
  show('the first run on a machine builds both from the Go module proxy: about 6 minutes');
  let t0 = Date.now();
  cp = await startControlPlane();
  show(`API server ready at ${cp.server} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  show(`logs: ${cp.logDir}`);

  say('Starting moto (AWS Secrets Manager) and seeding the quick-start data');
  moto = await startMoto({ logDir: cp.logDir });
  await putAwsSecrets(moto.endpoint, QUICKSTART_AWS_DATA);
  for (const [name, value] of Object.entries(QUICKSTART_AWS_DATA)) show(`${name}: keys ${Object.keys(value).join(', ')}`);

  say('Bundling the CLI with esbuild: the file the image runs as injector and as agent');
  const bundle = tempBundle();
  const chunks = readdirSync(path.join(path.dirname(bundle), 'chunks'));
  show(`${bundle}, the entry, and ${chunks.length} chunks loaded on demand (each provider's SDK among them)`);

  say('Installing the CRDs and applying the quick-start manifests unchanged');
  installCrds(cp);
  await createNamespace(cp, NS);
  const objects = [...quickstartObjects(), ...sampleObjects(['deployment/app.yaml'])];
  await applyObjects(cp, objects);
  for (const o of objects) show(`${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`);

  say('Starting the injector and registering it as a mutating webhook');
  injector = await startInjector(cp, { namespaces: [NS], bundle, logDir: cp.logDir });
  show(`listening on ${injector.url}; MutatingWebhookConfiguration ${injector.webhookName}`);

  say("Creating the Deployment's pod, as its ReplicaSet would (no controller-manager runs here)");
  const apps = cp.kubeConfig.makeApiClient(k8s.AppsV1Api);
  const core = cp.kubeConfig.makeApiClient(k8s.CoreV1Api);
  const deployment = await apps.readNamespacedDeployment({ namespace: NS, name: 'app' });
  const template = structuredClone(deployment.spec!.template);
  // A short refresh so the rotation below shows within seconds; the quick-start asks for 1h.
  template.metadata!.annotations = { ...template.metadata!.annotations, 'agent.external-secrets.io/refresh-interval': REFRESH };
  const created = await core.createNamespacedPod({
    namespace: NS,
    body: { metadata: { ...template.metadata, name: 'app-demo' }, spec: template.spec },
  });
  show(`pod ${NS}/${created.metadata!.name}, as the webhook mutated it:`);
  for (const c of created.spec!.initContainers ?? []) {
    show(`  initContainer ${c.name.padEnd(15)} ${(c.command ?? []).concat(c.args ?? []).join(' ')}${c.restartPolicy === 'Always' ? '   (native sidecar)' : ''}`);
  }
  for (const c of created.spec!.containers) {
    const mount = c.volumeMounts?.find((m) => m.mountPath === MOUNT);
    show(`  container     ${c.name.padEnd(15)} ${mount ? `mounts ${MOUNT} read-only` : ''}`);
  }
  show(`  volumes: ${(created.spec!.volumes ?? []).map((v) => v.name).join(', ')}`);

  say("Running the pod's agent containers (init, then the sidecar) as the pod's service account");
  show(`the agent reaches moto through AWS_ENDPOINT_URL=${moto.endpoint}; in a cluster it reaches AWS itself`);
  t0 = Date.now();
  pod = await runPod(cp, NS, 'app-demo', { bundle, env: { AWS_ENDPOINT_URL: moto.endpoint }, logDir: cp.logDir });
  if (pod.phase !== 'Running') throw new Error(`the init container failed: ${pod.failed?.terminationMessage()}`);
  show(`init container finished and the sidecar passed its startup probe in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  say('kubectl get externalsecrets -n production');
  const table = kubectl(cp.kubeconfigFile, ['get', 'externalsecrets', '-n', NS]);
  for (const line of table.stdout.trimEnd().split('\n')) show(line);

  say('The Secrets the agent wrote (values masked)');
  const showSecrets = async () => {
    for (const name of ['app-credentials', 'database', 'db-connection-string']) {
      const s = await core.readNamespacedSecret({ namespace: NS, name });
      const owner = s.metadata?.ownerReferences?.[0];
      show(`Secret ${NS}/${name}  (owner: ${owner ? `${owner.kind} ${owner.name}` : 'none'})`);
      for (const [k, v] of Object.entries(s.data ?? {})) show(`  ${k.padEnd(18)} ${mask(Buffer.from(v, 'base64'))}`);
    }
  };
  await showSecrets();

  say(`The files the app reads under ${MOUNT} (values masked)`);
  const volume = pod.volumeDir('inject-secrets');
  const files = () => {
    const out: Record<string, string> = {};
    for (const target of readdirSync(volume).filter((d) => !d.startsWith('.')).sort()) {
      for (const key of readdirSync(path.join(volume, target)).filter((f) => !f.startsWith('.')).sort()) {
        out[`${MOUNT}/${target}/${key}`] = readFileSync(path.join(volume, target, key), 'utf8');
      }
    }
    return out;
  };
  for (const [file, value] of Object.entries(files())) {
    const mode = (statSync(path.join(volume, file.slice(MOUNT.length + 1))).mode & 0o777).toString(8);
    show(`${file.padEnd(58)} ${mask(value)} mode 0${mode}`);
  }

  say(`Rotating prod/database's password in AWS; the sidecar refreshes every ${REFRESH}`);
  const before = files()[`${MOUNT}/database/password`];
  const secretBefore = (await core.readNamespacedSecret({ namespace: NS, name: 'database' })).data?.password;
  t0 = Date.now();
  await putAwsSecrets(moto.endpoint, { 'prod/database': { ...QUICKSTART_AWS_DATA['prod/database'], password: 'rotated-on-demo-day' } });
  await waitFor('the sidecar to pick up the rotation', async () =>
    (await core.readNamespacedSecret({ namespace: NS, name: 'database' })).data?.password !== secretBefore &&
    files()[`${MOUNT}/database/password`] !== before, { timeoutMs: 30_000, intervalMs: 200 });
  show(`Secret ${NS}/database and ${MOUNT}/database/password changed after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  await waitFor('the templated Secret to follow', async () => {
    const cs = (await core.readNamespacedSecret({ namespace: NS, name: 'db-connection-string' })).data?.CONNECTION_STRING;
    return Buffer.from(cs ?? '', 'base64').toString().includes('rotated-on-demo-day');
  }, { timeoutMs: 30_000, intervalMs: 200 });
  show(`Secret ${NS}/db-connection-string re-rendered its CONNECTION_STRING template`);

  say('Stopping everything the demo started');
}

try {
  await main();
  await cleanUp();
  process.stdout.write('\nDone: every process the demo started has stopped.\n');
} catch (err) {
  process.stderr.write(`\ndemo failed: ${(err as Error).message}\n`);
  if (cp) process.stderr.write(`logs kept in ${cp.logDir}\n`);
  await cleanUp();
  process.exitCode = 1;
}
