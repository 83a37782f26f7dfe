/**
 * A small kubelet stand-in. Given a pod as the API server stored it (after admission, so with
 * whatever the injector added), it runs the pod's *agent* containers as local processes the way
 * a kubelet would run them in a cluster:
 *
 * 1. Volumes become temporary folders: emptyDir empty; projected, secret, configMap and
 *    downwardAPI filled from the API server. A projected serviceAccountToken source is obtained
 *    through TokenRequest, bound to this pod (name and uid), with the audience and expiry the
 *    spec asks for, exactly as the kubelet does.
 * 2. Init containers run in order, each to completion, before anything else; a native sidecar
 *    (init container with restartPolicy: Always) is started and, if it has a startupProbe, must
 *    pass it before the next init container starts. Then the ordinary containers start.
 * 3. Environment: literal values, downward-API fieldRefs, secretKeyRef/configMapKeyRef, and
 *    KUBERNETES_SERVICE_HOST/PORT pointing at the test API server.
 *
 * Agent containers are those whose command[0] is `external-secrets-agent`; the stand-in runs
 * that command with this checkout's Node (or the esbuild bundle). Any other container (the
 * app's) is recorded as skipped: there is no container runtime here.
 *
 * NOTE: processes cannot mount folders at the container's paths, so every mountPath that
 * appears as a prefix in an env value or an argument is rewritten to its host folder. The
 * container's terminationMessagePath cannot be mounted either; its host file is handed to the
 * agent as ESA_TERMINATION_LOG. Pod status is not written back to the API server (the pod stays
 * Pending there); callers read the results from the returned PodRun.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from './control-plane.ts';
import { logRoot, startProcess, waitFor, type Managed } from './processes.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const AGENT_COMMAND = 'external-secrets-agent';

export interface ContainerRun {
  name: string;
  kind: 'init' | 'sidecar' | 'container';
  process: Managed;
  /** Set once the process has exited. */
  exitCode?: number | null;
  /** What the container wrote to its termination-message file (trimmed), if anything. */
  terminationMessage(): string;
}

export interface PodRun {
  pod: k8s.V1Pod;
  /** Running: all init containers succeeded; InitFailed: one exited non-zero (see `failed`). */
  phase: 'Running' | 'InitFailed';
  failed?: ContainerRun;
  containers: ContainerRun[];
  /** Names of containers that are not agent containers and so were not run. */
  skipped: string[];
  /** Host folder backing volume `name`. */
  volumeDir(name: string): string;
  /** All agent output so far, every container's stdout and stderr. */
  output(): string;
  /** Fetches fresh tokens for every projected token source, as the kubelet does before expiry. */
  rotateTokens(): Promise<void>;
  /** Stops every process this run started (SIGTERM, then SIGKILL) and removes its folders. */
  stop(): Promise<void>;
}

export interface RunPodOptions {
  /** Extra environment for every agent process (for example AWS_ENDPOINT_URL for moto). */
  env?: Record<string, string>;
  /** Run the esbuild bundle at this path instead of cli.ts from the checkout. */
  bundle?: string;
  /** How long an init container may run (default 60 s). */
  initTimeoutMs?: number;
  logDir?: string;
}

type TokenSource = { dir: string; file: string; audience?: string; expirationSeconds: number };

/** Runs the agent containers of pod `namespace/name` as local processes. */
export async function runPod(cp: ControlPlane, namespace: string, name: string, options: RunPodOptions = {}): Promise<PodRun> {
  const core = cp.kubeConfig.makeApiClient(k8s.CoreV1Api);
  const pod = await core.readNamespacedPod({ namespace, name });
  const spec = pod.spec!;
  const root = mkdtempSync(path.join(tmpdir(), `esa-pod-${name}-`));
  const logDir = path.join(options.logDir ?? logRoot(), `pod-${namespace}-${name}`);
  mkdirSync(logDir, { recursive: true });

  const volumes = new Map<string, string>();
  const tokens: TokenSource[] = [];
  const requestToken = async (t: TokenSource) => {
    const review = await core.createNamespacedServiceAccountToken({
      namespace,
      name: spec.serviceAccountName ?? 'default',
      body: {
        spec: {
          audiences: t.audience ? [t.audience] : [],
          expirationSeconds: t.expirationSeconds,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name, uid: pod.metadata!.uid! },
        },
      },
    });
    const token = review.status?.token;
    if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
    writeAtomically(path.join(t.dir, t.file), token);
  };

  for (const volume of spec.volumes ?? []) {
    const dir = path.join(root, 'volumes', volume.name);
    mkdirSync(dir, { recursive: true });
    volumes.set(volume.name, dir);
    if (volume.secret) {
      const secret = await core.readNamespacedSecret({ namespace, name: volume.secret.secretName! });
      for (const [k, v] of Object.entries(secret.data ?? {})) writeFileSync(path.join(dir, k), Buffer.from(v, 'base64'));
    }
    if (volume.configMap) await fillConfigMap(core, namespace, volume.configMap.name!, volume.configMap.items, dir);
    if (volume.downwardAPI) fillDownward(pod, volume.downwardAPI.items ?? [], dir);
    for (const source of volume.projected?.sources ?? []) {
      if (source.serviceAccountToken) {
        const t: TokenSource = {
          dir,
          file: source.serviceAccountToken.path,
          audience: source.serviceAccountToken.audience,
          expirationSeconds: source.serviceAccountToken.expirationSeconds ?? 3600,
        };
        tokens.push(t);
        await requestToken(t);
      }
      if (source.configMap) await fillConfigMap(core, namespace, source.configMap.name!, source.configMap.items, dir);
      if (source.downwardAPI) fillDownward(pod, source.downwardAPI.items ?? [], dir);
      if (source.secret) {
        const secret = await core.readNamespacedSecret({ namespace, name: source.secret.name! });
        for (const item of source.secret.items ?? Object.keys(secret.data ?? {}).map((key) => ({ key, path: key }))) {
          const v = secret.data?.[item.key];
          if (v !== undefined) writeFileSync(path.join(dir, item.path), Buffer.from(v, 'base64'));
        }
      }
    }
  }

  const runs: ContainerRun[] = [];
  const skipped: string[] = [];
  const stop = async () => {
    for (const r of [...runs].reverse()) await r.process.stop();
    if (process.env.ESA_KEEP_TEST_DIRS !== 'true') rmSync(root, { recursive: true, force: true });
  };
  const start = async (c: k8s.V1Container, kind: ContainerRun['kind']): Promise<ContainerRun> => {
    const termFile = path.join(root, 'termination', c.name);
    mkdirSync(path.dirname(termFile), { recursive: true });
    writeFileSync(termFile, '');
    const mounts = mountMap(c, volumes);
    const env = await containerEnv(core, cp, pod, c, mounts, termFile, options.env ?? {});
    const args = [...(c.command ?? []).slice(1), ...(c.args ?? [])].map((a) => rewritePaths(a, mounts));
    const [cmd, prefix] = agentInvocation(options.bundle);
    const proc = startProcess(`${kind}-${c.name}`, cmd, [...prefix, ...args], { env, logDir, cwd: root });
    const run: ContainerRun = {
      name: c.name,
      kind,
      process: proc,
      terminationMessage: () => (existsSync(termFile) ? readFileSync(termFile, 'utf8').trim() : ''),
    };
    void proc.exited.then((code) => (run.exitCode = code));
    runs.push(run);
    return run;
  };

  const result = (phase: PodRun['phase'], failed?: ContainerRun): PodRun => ({
    pod,
    phase,
    failed,
    containers: runs,
    skipped,
    volumeDir: (n) => {
      const d = volumes.get(n);
      if (!d) throw new Error(`pod ${namespace}/${name} has no volume ${n}`);
      return d;
    },
    output: () => runs.map((r) => r.process.output()).join('\n'),
    rotateTokens: async () => {
      for (const t of tokens) await requestToken(t);
    },
    stop,
  });

  try {
    for (const c of spec.initContainers ?? []) {
      if (!isAgent(c)) {
        skipped.push(c.name);
        continue;
      }
      if (c.restartPolicy === 'Always') {
        const run = await start(c, 'sidecar');
        if (c.startupProbe?.exec?.command) {
          const probe = c.startupProbe;
          const mounts = mountMap(c, volumes);
          const env = await containerEnv(core, cp, pod, c, mounts, '/dev/null', options.env ?? {});
          const periodMs = (probe.periodSeconds ?? 10) * 1000;
          const budgetMs = periodMs * (probe.failureThreshold ?? 3) + (probe.initialDelaySeconds ?? 0) * 1000;
          await waitFor(`startupProbe of ${namespace}/${name} container ${c.name}`,
            () => runProbe(probe.exec!.command!, mounts, env, options.bundle),
            { proc: run.process, timeoutMs: budgetMs, intervalMs: Math.min(periodMs, 500) });
        }
        continue;
      }
      const run = await start(c, 'init');
      const timeoutMs = options.initTimeoutMs ?? 60_000;
      const timer = setTimeout(() => void run.process.stop(), timeoutMs);
      const code = await run.process.exited;
      clearTimeout(timer);
      run.exitCode = code;
      if (code !== 0) return result('InitFailed', run);
    }
    for (const c of spec.containers) {
      if (isAgent(c)) await start(c, 'container');
      else skipped.push(c.name);
    }
    return result('Running');
  } catch (err) {
    await stop();
    throw err;
  }
}

function isAgent(c: k8s.V1Container): boolean {
  return c.command?.[0] === AGENT_COMMAND;
}

function agentInvocation(bundle?: string): [string, string[]] {
  return [process.execPath, [bundle ?? path.join(repoRoot, 'cli.ts')]];
}

async function runProbe(command: string[], mounts: Map<string, string>, env: NodeJS.ProcessEnv, bundle?: string): Promise<boolean> {
  if (command[0] !== AGENT_COMMAND) throw new Error(`cannot run probe command ${command[0]}: not the agent`);
  const [cmd, prefix] = agentInvocation(bundle);
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(cmd, [...prefix, ...command.slice(1).map((a) => rewritePaths(a, mounts))], { env, timeout: 10_000 });
  return r.status === 0;
}

/** mountPath → host folder for one container, longest paths first so nested mounts win. */
function mountMap(c: k8s.V1Container, volumes: Map<string, string>): Map<string, string> {
  const entries: [string, string][] = [];
  for (const m of c.volumeMounts ?? []) {
    const dir = volumes.get(m.name);
    if (!dir) throw new Error(`container ${c.name} mounts volume ${m.name}, which the pod does not define`);
    entries.push([m.mountPath, m.subPath ? path.join(dir, m.subPath) : dir]);
  }
  entries.sort((a, b) => b[0].length - a[0].length);
  return new Map(entries);
}

function rewritePaths(value: string, mounts: Map<string, string>): string {
  for (const [mountPath, dir] of mounts) {
    if (value === mountPath || value.startsWith(mountPath.endsWith('/') ? mountPath : mountPath + '/')) {
      return dir + value.slice(mountPath.length);
    }
  }
  return value;
}

async function containerEnv(
  core: k8s.CoreV1Api,
  cp: ControlPlane,
  pod: k8s.V1Pod,
  c: k8s.V1Container,
  mounts: Map<string, string>,
  termFile: string,
  extra: Record<string, string>,
): Promise<NodeJS.ProcessEnv> {
  const namespace = pod.metadata!.namespace!;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: tmpdir(),
    // Keep every SDK's credential discovery on loopback.
    AWS_EC2_METADATA_DISABLED: 'true',
    METADATA_SERVER_DETECTION: 'none',
    GCE_METADATA_HOST: '127.0.0.1:9',
    KUBERNETES_SERVICE_HOST: '127.0.0.1',
    KUBERNETES_SERVICE_PORT: String(cp.port),
    ESA_TERMINATION_LOG: termFile,
  };
  for (const e of c.env ?? []) {
    let value: string | undefined = e.value;
    const from = e.valueFrom;
    if (from?.fieldRef) value = fieldValue(pod, from.fieldRef.fieldPath);
    if (from?.secretKeyRef) {
      const s = await core.readNamespacedSecret({ namespace, name: from.secretKeyRef.name! });
      const raw = s.data?.[from.secretKeyRef.key];
      value = raw === undefined ? undefined : Buffer.from(raw, 'base64').toString('utf8');
    }
    if (from?.configMapKeyRef) {
      const m = await core.readNamespacedConfigMap({ namespace, name: from.configMapKeyRef.name! });
      value = m.data?.[from.configMapKeyRef.key];
    }
    if (value !== undefined) env[e.name] = rewritePaths(value, mounts);
  }
  return { ...env, ...extra };
}

function fieldValue(pod: k8s.V1Pod, fieldPath: string): string {
  const meta = pod.metadata!;
  const annotation = /^metadata\.annotations\['(.+)'\]$/.exec(fieldPath);
  if (annotation) return meta.annotations?.[annotation[1]!] ?? '';
  const label = /^metadata\.labels\['(.+)'\]$/.exec(fieldPath);
  if (label) return meta.labels?.[label[1]!] ?? '';
  switch (fieldPath) {
    case 'metadata.name': return meta.name ?? '';
    case 'metadata.namespace': return meta.namespace ?? '';
    case 'metadata.uid': return meta.uid ?? '';
    case 'spec.serviceAccountName': return pod.spec?.serviceAccountName ?? 'default';
    case 'spec.nodeName': return 'esa-test-node';
    case 'status.podIP': case 'status.hostIP': return '127.0.0.1';
    default: throw new Error(`kubelet stand-in: unsupported fieldRef ${fieldPath}`);
  }
}

function fillDownward(pod: k8s.V1Pod, items: k8s.V1DownwardAPIVolumeFile[], dir: string): void {
  for (const item of items) {
    if (item.fieldRef) writeFileSync(path.join(dir, item.path), fieldValue(pod, item.fieldRef.fieldPath));
  }
}

async function fillConfigMap(core: k8s.CoreV1Api, namespace: string, name: string, items: k8s.V1KeyToPath[] | undefined, dir: string): Promise<void> {
  const cm = await core.readNamespacedConfigMap({ namespace, name });
  const pairs = items ?? Object.keys(cm.data ?? {}).map((key) => ({ key, path: key }));
  for (const item of pairs) {
    const v = cm.data?.[item.key];
    if (v !== undefined) {
      mkdirSync(path.dirname(path.join(dir, item.path)), { recursive: true });
      writeFileSync(path.join(dir, item.path), v);
    }
  }
}

function writeAtomically(file: string, content: string): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  // rename is atomic on one filesystem: a reader sees the old token or the new one, never half.
  renameSync(tmp, file);
}
