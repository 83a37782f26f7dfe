/**
 * The injector's core: pod in, JSON Patch out.
 *
 * `mutate` is pure. It does no I/O and reads no clock or environment; everything it depends on
 * is the pod and the injector settings passed in. The HTTPS server and the offline `inject`
 * command are thin wrappers around it, and every pod shape can be tested from a fixture.
 *
 * What a patch adds to an opted-in pod (DESIGN.md, "What the injector adds"):
 *
 * 1. `inject-init`, an init container running `external-secrets-agent init`: the first sync.
 *    Last among the init containers, or first with `init-first`.
 * 2. `inject-sidecar`, running `external-secrets-agent sidecar`: keeps the secrets fresh. With
 *    native sidecars it is an init container with `restartPolicy: Always` right after
 *    `inject-init`, and a startup probe that holds back the containers after it until the agent
 *    has written the files. Without them it is an ordinary container appended to the pod.
 *    With `metrics-port`, it serves /metrics on that port (container port `metrics`).
 * 3. A memory-backed emptyDir for the files: read-write in the agent, read-only in the app's
 *    containers and init containers (all of them, or those the `containers` annotation names).
 * 4. A projected volume, for the agent only, holding its own service-account tokens, the
 *    cluster CA and the namespace. It does not depend on `automountServiceAccountToken`.
 * 5. The agent's uid, gid and file mode, chosen so the app can read the files (see
 *    `chooseFileAccess`); the pod's own security context is never changed.
 * 6. With a signal `on-change`, `shareProcessNamespace: true`, so the sidecar sees the app's
 *    processes.
 * 7. The status annotation, which turns every later pass into an empty patch.
 *
 * A pod that cannot be injected as asked is refused with an AdmissionError that names every
 * annotation or field at fault. The result is returned, never thrown: a throw from here is a bug.
 */
import { AdmissionError, type AdmissionProblem } from '../agent/errors.ts';
import {
  AGENT_CPU_LIMIT_ANNOTATION,
  AGENT_CPU_REQUEST_ANNOTATION,
  AGENT_MEMORY_LIMIT_ANNOTATION,
  AGENT_MEMORY_REQUEST_ANNOTATION,
  INJECT_LABEL,
  isAbove,
  MODE_ANNOTATION,
  MOUNT_PATH_ANNOTATION,
  METRICS_PORT_ANNOTATION,
  ON_CHANGE_ANNOTATION,
  parseAnnotations,
  type LogLevel,
  type PodOptions,
  RUN_AS_USER_ANNOTATION,
  STATUS_ANNOTATION,
  STATUS_INJECTED,
} from './annotations.ts';
import { formatOnChange } from '../agent/on-change.ts';
import { type JsonPatchOp, pointer } from './json-patch.ts';
import type {
  Container,
  EnvVar,
  Pod,
  PodSecurityContext,
  Probe,
  ResourceRequirements,
  SecurityContext,
  Volume,
  VolumeMount,
} from './pod.ts';
import { podRef, podShapeProblems, requiresWindowsNodes } from './pod.ts';

/**
 * command[0] of every agent container.
 * NOTE: the test kubelet recognises agent containers by it; keep it the bare program name.
 */
export const AGENT_COMMAND = 'external-secrets-agent';
export const INIT_CONTAINER_NAME = 'inject-init';
export const SIDECAR_CONTAINER_NAME = 'inject-sidecar';
/** Default volume names; another free name is chosen when the pod already declares one. */
export const SECRETS_VOLUME_NAME = 'inject-secrets';
export const TOKEN_VOLUME_NAME = 'inject-token';

/** Where the agent's projected volume is mounted, in the agent containers only. */
export const AGENT_TOKEN_DIR = '/var/run/secrets/external-secrets-agent';
/** Token for the Kubernetes API: no explicit audience, so the API server's own audiences apply. */
export const KUBE_TOKEN_FILE = 'token';
/**
 * Token for the secret provider, with the provider's audience (`token-audience`), handed to the
 * agent as ESA_PROVIDER_TOKEN_FILE. One file serves whichever provider the pod uses: AWS web
 * identity (audience sts.amazonaws.com), a Vault role bound to an audience, and so on.
 */
export const PROVIDER_TOKEN_FILE = 'provider-token';
/** The audience AWS STS expects in a web-identity token (the default provider audience). */
export const AWS_STS_AUDIENCE = 'sts.amazonaws.com';
export const CA_FILE = 'ca.crt';
export const NAMESPACE_FILE = 'namespace';

/**
 * The startup probe of the native sidecar: `external-secrets-agent ready` (agent/sidecar.ts)
 * exits 0 once the sidecar has synced every ExternalSecret and written its ready marker, and
 * non-zero before that, so the containers after it start only once the files exist. An exec
 * probe needs no port (which could clash with the app's) and no shell (the image has none).
 */
export const STARTUP_PROBE: Probe = {
  exec: { command: [AGENT_COMMAND, 'ready'] },
  periodSeconds: 1,
  timeoutSeconds: 5,
  // 120 attempts a second apart: two minutes for a first sync before the kubelet restarts it.
  failureThreshold: 120,
};

export interface AgentResources {
  requests: { cpu?: string; memory?: string };
  limits: { cpu?: string; memory?: string };
}

/** Injector-wide settings: the defaults that annotations override, and facts about the cluster. */
export interface InjectorSettings {
  /** Image of the agent containers (normally the injector's own image). */
  agentImage: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /**
   * Whether the API server accepts init containers with `restartPolicy: Always` (Kubernetes
   * 1.29+, or 1.28 with the SidecarContainers feature gate).
   */
  hasNativeSidecars: boolean;
  /** Requests and limits of each agent container; a missing value sets none. */
  resources: AgentResources;
  /** Default of the `mount-path` annotation. */
  mountPath: string;
  /** Default of `token-audience`; when neither is set the agent gets no provider token. */
  tokenAudience?: string;
  /** Default of `token-expiration-seconds`. */
  tokenExpirationSeconds: number;
  /** Default of `log-level`. */
  logLevel: LogLevel;
  /**
   * Non-zero uid and gid of the agent containers when neither the app's securityContext nor an
   * annotation decides them (see `chooseFileAccess`).
   */
  agentUid: number;
}

/** Settings other than the image, as the injector uses them unless configured otherwise. */
export const DEFAULT_INJECTOR_SETTINGS: Omit<InjectorSettings, 'agentImage'> = {
  imagePullPolicy: 'IfNotPresent',
  hasNativeSidecars: true,
  // An idle agent is a Node process: about 40-80 MiB resident (DESIGN.md). The request covers
  // the idle case; the limit leaves room for a sync pass. No CPU limit, so a sync is not
  // throttled to a crawl; no ephemeral-storage, as the agent writes only to memory.
  resources: { requests: { cpu: '10m', memory: '48Mi' }, limits: { memory: '128Mi' } },
  mountPath: '/run/secrets/inject',
  tokenAudience: AWS_STS_AUDIENCE,
  tokenExpirationSeconds: 3600,
  logLevel: 'info',
  agentUid: 65532,
};

export type MutateResult =
  { ok: true; patch: JsonPatchOp[]; warnings: string[] } | { ok: false; error: AdmissionError };

/**
 * Computes the JSON Patch that injects the agent into `pod`.
 *
 * - A pod without the opt-in label gets an empty patch and a warning (the webhook's
 *   objectSelector should not have sent it).
 * - A pod that carries `status: injected` gets an empty patch and no warning.
 * - A pod that cannot be injected as its annotations ask gets `{ ok: false, error }`, where the
 *   error lists every problem, each naming the annotation or field.
 *
 * Warnings are short sentences meant for the AdmissionReview response (kubectl prints them).
 */
export function mutate(pod: Pod, settings: InjectorSettings): MutateResult {
  const shape = podShapeProblems(pod);
  if (shape.length > 0) return { ok: false, error: new AdmissionError(podRef(pod), shape) };

  const meta = pod.metadata ?? {};
  if (meta.labels?.[INJECT_LABEL] !== 'true') {
    return {
      ok: true,
      patch: [],
      warnings: [`pod is not labelled ${INJECT_LABEL}=true; not injected`],
    };
  }
  // NOTE: the status annotation alone does not make a pod "injected": anyone can set it. Only
  // when our containers are there too is a second pass a no-op; otherwise the pod is injected
  // (and the annotation rewritten), so an opted-in pod never starts without its secrets.
  if (meta.annotations?.[STATUS_ANNOTATION] === STATUS_INJECTED && hasAgentContainer(pod)) {
    return { ok: true, patch: [], warnings: [] };
  }

  const parsed = parseAnnotations(pod);
  if (!parsed.ok) return { ok: false, error: new AdmissionError(podRef(pod), parsed.problems) };

  const plan = planInjection(pod, parsed.options, settings);
  if (plan.problems.length > 0) {
    return { ok: false, error: new AdmissionError(podRef(pod), plan.problems) };
  }
  return { ok: true, patch: buildPatch(pod, plan, settings), warnings: plan.warnings };
}

function hasAgentContainer(pod: Pod): boolean {
  const names = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => c.name);
  return names.includes(INIT_CONTAINER_NAME) || names.includes(SIDECAR_CONTAINER_NAME);
}

/** Every decision about one pod, made before any patch operation is written. */
interface Plan {
  options: PodOptions;
  problems: AdmissionProblem[];
  warnings: string[];
  mountPath: string;
  secretsVolume: string;
  tokenVolume: string;
  hasInit: boolean;
  sidecar: 'native' | 'plain' | 'none';
  resources: ResourceRequirements;
  /** Indices into spec.initContainers and spec.containers of the app's containers to mount into. */
  initTargets: number[];
  containerTargets: number[];
  tokenAudience?: string;
  tokenExpirationSeconds: number;
  logLevel: LogLevel;
  access: FileAccess;
  /** Whether the patch turns on spec.shareProcessNamespace (signal on-change). */
  shareProcessNamespace: boolean;
}

function planInjection(pod: Pod, options: PodOptions, settings: InjectorSettings): Plan {
  const spec = pod.spec ?? { containers: [] };
  const initContainers = spec.initContainers ?? [];
  const containers = Array.isArray(spec.containers) ? spec.containers : [];
  const problems: AdmissionProblem[] = [];
  const warnings: string[] = [];
  const fail = (field: string, message: string) => problems.push({ field, message });

  checkPodShape(initContainers, containers, pod, fail);

  // Which app containers get the mount, and where.
  const selected = (c: Container) => options.containers?.includes(c.name) ?? true;
  const initTargets = indicesWhere(initContainers, selected);
  const containerTargets = indicesWhere(containers, selected);
  const mountPath = options.mountPath ?? settings.mountPath;
  const targets = [
    ...initTargets.map((i) => initContainers[i]!),
    ...containerTargets.map((i) => containers[i]!),
  ];
  checkMountPathIsFree(mountPath, options.mountPath !== undefined, targets, fail);
  if (options.containers !== undefined && !options.initFirst) {
    for (const i of initTargets) {
      const name = initContainers[i]!.name;
      warnings.push(`init container ${name} runs before the agent's first sync; set init-first`);
    }
  }

  const access = chooseFileAccess(targets, spec.securityContext ?? {}, options, settings, warnings);
  const { hasInit, sidecar } = chooseAgentContainers(options, spec, settings, warnings, fail);
  const { secretsVolume, tokenVolume } = chooseVolumeNames(pod, warnings);
  const shareProcessNamespace = checkOnChange(pod, options, sidecar, access, warnings, fail);
  if (options.metricsPort !== undefined && sidecar === 'none') {
    warnings.push(`${METRICS_PORT_ANNOTATION} has no effect: the pod gets no sidecar`);
  }

  return {
    options,
    problems,
    warnings,
    mountPath,
    secretsVolume,
    tokenVolume,
    hasInit,
    sidecar,
    resources: mergeResources(options, settings, fail),
    initTargets,
    containerTargets,
    tokenAudience: options.tokenAudience ?? settings.tokenAudience,
    tokenExpirationSeconds: options.tokenExpirationSeconds ?? settings.tokenExpirationSeconds,
    logLevel: options.logLevel ?? settings.logLevel,
    access,
    shareProcessNamespace,
  };
}

/**
 * What the `on-change` annotation needs from the pod, with warnings for what it costs. Returns
 * whether the patch must turn on shareProcessNamespace.
 */
function checkOnChange(
  pod: Pod,
  options: PodOptions,
  sidecar: Plan['sidecar'],
  access: FileAccess,
  warnings: string[],
  fail: Fail,
): boolean {
  const onChange = options.onChange;
  if (onChange === undefined) return false;
  if (sidecar === 'none') {
    warnings.push(`${ON_CHANGE_ANNOTATION} has no effect: the pod gets no sidecar`);
    return false;
  }
  if (onChange.kind === 'http') {
    if (pod.spec?.hostNetwork) {
      warnings.push(
        `with hostNetwork, ${ON_CHANGE_ANNOTATION} posts to port ${onChange.port} on the node's ` +
          'loopback, wherever that port is bound',
      );
    }
    return false;
  }

  const spec = (pod.spec ?? {}) as { shareProcessNamespace?: unknown };
  if (spec.shareProcessNamespace === false) {
    fail(
      ON_CHANGE_ANNOTATION,
      'a signal needs spec.shareProcessNamespace, which the pod sets to false',
    );
    return false;
  }
  // NOTE: without CAP_KILL a process may signal only processes of its own uid.
  const all = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  const podUid = pod.spec?.securityContext?.runAsUser;
  const sameUid = all.some((c) => (c.securityContext?.runAsUser ?? podUid) === access.uid);
  if (options.runAsUser === undefined && !sameUid) {
    warnings.push(
      `${ON_CHANGE_ANNOTATION}: the agent runs as uid ${access.uid} and can signal only ` +
        `processes of that uid; set runAsUser on the app or ${RUN_AS_USER_ANNOTATION}`,
    );
  }
  if (spec.shareProcessNamespace === true) return false;
  warnings.push(
    `${ON_CHANGE_ANNOTATION}: shareProcessNamespace is turned on, so the pod's containers ` +
      "see each other's processes (and their environment, to the same uid)",
  );
  return true;
}

type Fail = (field: string, message: string) => void;

/** Refuses pods the agent cannot run in: Windows, no containers, our names already taken. */
function checkPodShape(initContainers: Container[], containers: Container[], pod: Pod, fail: Fail) {
  // Linux only: the agent image and the restricted security context assume it.
  if (pod.spec?.nodeSelector?.['kubernetes.io/os'] === 'windows') {
    fail('spec.nodeSelector["kubernetes.io/os"]', 'the agent runs on Linux nodes only');
  }
  if (pod.spec?.os?.name === 'windows') {
    fail('spec.os.name', 'the agent runs on Linux pods only');
  }
  if (requiresWindowsNodes(pod)) {
    fail(
      'spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution',
      'the pod may run only on Windows nodes, and the agent runs on Linux nodes only',
    );
  }
  if (containers.length === 0) fail('spec.containers', 'expected at least one container');

  // Our container names must be free: a pod that already has one is most likely a copy of an
  // injected pod without its status annotation, and injecting twice would break it.
  const ours = [INIT_CONTAINER_NAME, SIDECAR_CONTAINER_NAME];
  const lists = [
    ['spec.initContainers', initContainers],
    ['spec.containers', containers],
  ] as const;
  for (const [field, list] of lists) {
    list.forEach((c, i) => {
      if (ours.includes(c.name))
        fail(`${field}[${i}].name`, `"${c.name}" is reserved for the agent`);
    });
  }
}

/**
 * Init container or not, and the sidecar's form. Without native sidecars, a pod that runs to
 * completion (every Job's pod) cannot take a plain sidecar container: it would never complete.
 *
 * NOTE: such pods get init-only (acceptance case I01), so their secrets are not refreshed
 * while they run. A plain sidecar that exits once the app's containers have exited is not
 * built: the agent would need to read its own pod's status (RBAC on pods) or share the pod's
 * process namespace to see the app exit. Native sidecars (Kubernetes 1.29+) make it moot.
 */
function chooseAgentContainers(
  options: PodOptions,
  spec: NonNullable<Pod['spec']>,
  settings: InjectorSettings,
  warnings: string[],
  fail: Fail,
): { hasInit: boolean; sidecar: Plan['sidecar'] } {
  const hasInit = options.mode !== 'sidecar-only';
  if (options.mode === 'init-only') return { hasInit, sidecar: 'none' };
  if (settings.hasNativeSidecars) return { hasInit, sidecar: 'native' };

  const restartPolicy = spec.restartPolicy ?? 'Always';
  if (restartPolicy === 'Always') {
    if (!hasInit)
      warnings.push('without native sidecars the app may start before its secrets exist');
    return { hasInit, sidecar: 'plain' };
  }
  if (hasInit) {
    warnings.push(`restartPolicy ${restartPolicy}, no native sidecars: init-only, no refresh`);
  } else {
    fail(
      MODE_ANNOTATION,
      `sidecar-only needs native sidecars for a pod with restartPolicy ${restartPolicy}; ` +
        'use init-only or init+sidecar',
    );
  }
  return { hasInit, sidecar: 'none' };
}

/** Who the agent runs as and the mode of the files it writes. */
interface FileAccess {
  uid: number;
  gid: number;
  /** As a number: 0o440. */
  fileMode: number;
}

/**
 * NOTE: the API server may cut an admission warning longer than this, so longer lists of
 * container names are shortened to "N more".
 */
const MAX_WARNING_LENGTH = 256;

/** Default file mode when every container that mounts the files is their owner or group. */
export const PRIVATE_FILE_MODE = 0o440;
/** Default file mode otherwise: readable by every container that mounts the files. */
export const SHARED_FILE_MODE = 0o444;

/**
 * Chooses the agent's uid and gid and the mode of its files, so the app can read the files
 * without making them world-readable where that can be avoided. The agent owns what it writes.
 *
 * - Every container that mounts the files (`targets`) runs as one known non-root uid (its
 *   `runAsUser`, else the pod's): the agent runs as that uid, with the `runAsGroup` they all
 *   share if any (else the same number), and the files are 0440.
 * - The uids differ, or one is unknown (it comes from the image's USER, which the webhook cannot
 *   see), or one is 0: the agent keeps `settings.agentUid` and the files are 0444, with a
 *   warning. A root app does not make the agent root: the agent must pass Pod Security
 *   "restricted", and 0444 is readable by root even without capabilities.
 * - The `run-as-user`, `run-as-group` and `file-mode` annotations override each part. With
 *   `run-as-user`, a container of unknown uid is taken to run as that uid.
 *
 * NOTE: the pod's `fsGroup` is never set or changed; it would change the group of every volume
 * the pod mounts, not just ours.
 */
function chooseFileAccess(
  targets: Container[],
  podContext: PodSecurityContext,
  options: PodOptions,
  settings: InjectorSettings,
  warnings: string[],
): FileAccess {
  const apps = targets.map((c) => ({
    name: c.name,
    uid: knownId(c.securityContext?.runAsUser ?? podContext.runAsUser),
    gid: knownId(c.securityContext?.runAsGroup ?? podContext.runAsGroup),
  }));

  // The agent's identity: the annotation, else the one the app containers share, else ours.
  const appUid = sharedNonRootId(apps.map((a) => a.uid));
  const appGid = sharedNonRootId(apps.map((a) => a.gid));
  const uid = options.runAsUser ?? appUid ?? settings.agentUid;
  const gid = options.runAsGroup ?? (uid === appUid ? appGid : undefined) ?? uid;

  if (options.fileMode !== undefined) return { uid, gid, fileMode: options.fileMode };

  // Containers that 0440 might shut out: neither owner nor group of the files.
  const isVouchedFor = (a: { uid?: number }) =>
    a.uid === undefined && options.runAsUser !== undefined;
  const shutOut = apps.filter((a) => a.uid !== uid && a.gid !== gid && !isVouchedFor(a));
  if (shutOut.length === 0) return { uid, gid, fileMode: PRIVATE_FILE_MODE };

  warnings.push(sharedModeWarning(shutOut));
  return { uid, gid, fileMode: SHARED_FILE_MODE };
}

/** Why the files are 0444 and how to get 0440, naming as many containers as fit. */
function sharedModeWarning(shutOut: { name: string; uid?: number | undefined }[]): string {
  const message = (who: string) =>
    `secret files are mode 0444, readable by every container that mounts them: 0440 could ` +
    `shut out ${who}; for 0440, give them one non-root runAsUser or set ${RUN_AS_USER_ANNOTATION}`;
  const who = (shown: number) => {
    const named = shutOut
      .slice(0, shown)
      .map((a) => `${a.name} (${a.uid === undefined ? 'uid unknown' : `uid ${a.uid}`})`);
    const rest = shutOut.length - shown;
    if (rest > 0 && shown > 0) named.push(`${rest} more`);
    if (rest > 0 && shown === 0) named.push(rest === 1 ? 'one container' : `${rest} containers`);
    return named.join(', ');
  };
  let shown = shutOut.length;
  while (shown > 0 && message(who(shown)).length > MAX_WARNING_LENGTH) shown--;
  return message(who(shown));
}

/** A uid or gid from a securityContext, or undefined when unset or not a valid id. */
function knownId(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : undefined;
}

/** The id every entry has, if they all have the same non-zero one. */
function sharedNonRootId(ids: (number | undefined)[]): number | undefined {
  const first = ids[0];
  if (first === undefined || first === 0) return undefined;
  return ids.every((id) => id === first) ? first : undefined;
}

/** Names for our two volumes that do not clash with the pod's, with warnings for what to know. */
function chooseVolumeNames(pod: Pod, warnings: string[]) {
  const secretsVolume = pickVolumeName(SECRETS_VOLUME_NAME, pod, true);
  const tokenVolume = pickVolumeName(TOKEN_VOLUME_NAME, pod, false);
  if (secretsVolume !== SECRETS_VOLUME_NAME) {
    warnings.push(
      `the pod has a volume ${SECRETS_VOLUME_NAME}; the secrets volume is ${secretsVolume}`,
    );
  }
  for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    for (const m of c.volumeMounts ?? []) {
      if (m.name === secretsVolume && (m.subPath || m.subPathExpr)) {
        warnings.push(
          `container ${c.name} mounts ${secretsVolume} with subPath: no refreshes there`,
        );
      }
    }
  }
  return { secretsVolume, tokenVolume };
}

function indicesWhere<T>(items: T[], predicate: (item: T) => boolean): number[] {
  return items.flatMap((item, i) => (predicate(item) ? [i] : []));
}

/** Refuses a mount path that a selected container already uses or that overlaps the token dir. */
function checkMountPathIsFree(
  mountPath: string,
  isAnnotated: boolean,
  targets: Container[],
  fail: Fail,
): void {
  const which = isAnnotated ? mountPath : `${mountPath} (the injector's default)`;
  for (const c of targets) {
    if ((c.volumeMounts ?? []).some((m) => m.mountPath.replace(/\/$/, '') === mountPath)) {
      fail(
        MOUNT_PATH_ANNOTATION,
        `container ${c.name} already mounts a volume at ${which}; choose another path`,
      );
    }
  }
  const overlaps = (a: string, b: string) => a === b || a.startsWith(b + '/');
  if (overlaps(mountPath, AGENT_TOKEN_DIR) || overlaps(AGENT_TOKEN_DIR, mountPath)) {
    fail(
      MOUNT_PATH_ANNOTATION,
      `${which} overlaps ${AGENT_TOKEN_DIR}, where the agent's own tokens are mounted`,
    );
  }
}

/**
 * Chooses a volume name the pod does not declare. `base` is kept when free. For the secrets
 * volume, a mount that already names `base` without a matching volume is the user referring to
 * our volume ahead of time (for example a subPath mount of one file), so `base` counts as free;
 * for the token volume such a reference would hand the agent's token to an app container, so a
 * referenced name is never reused.
 */
function pickVolumeName(base: string, pod: Pod, mayBeReferenced: boolean): string {
  const declared = new Set((pod.spec?.volumes ?? []).map((v) => v.name));
  const referenced = new Set(
    [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].flatMap((c) =>
      (c.volumeMounts ?? []).map((m) => m.name),
    ),
  );
  const isFree = (name: string) =>
    !declared.has(name) && (mayBeReferenced || !referenced.has(name));
  if (isFree(base)) return base;
  for (let n = 2; ; n++) {
    const name = `${base}-${n}`;
    if (!declared.has(name) && !referenced.has(name)) return name;
  }
}

/** Annotation overrides over the injector defaults, refusing a request above its limit. */
function mergeResources(options: PodOptions, settings: InjectorSettings, fail: Fail) {
  const own = options.resources;
  const { requests: defaultRequests, limits: defaultLimits } = settings.resources;
  const cpu = resolveResource(
    'cpu',
    { own: own.cpuRequest, fallback: defaultRequests.cpu, key: AGENT_CPU_REQUEST_ANNOTATION },
    { own: own.cpuLimit, fallback: defaultLimits.cpu, key: AGENT_CPU_LIMIT_ANNOTATION },
    fail,
  );
  const memory = resolveResource(
    'memory',
    {
      own: own.memoryRequest,
      fallback: defaultRequests.memory,
      key: AGENT_MEMORY_REQUEST_ANNOTATION,
    },
    { own: own.memoryLimit, fallback: defaultLimits.memory, key: AGENT_MEMORY_LIMIT_ANNOTATION },
    fail,
  );

  const result: ResourceRequirements = {};
  const requests = definedOnly({ cpu: cpu.request, memory: memory.request });
  const limits = definedOnly({ cpu: cpu.limit, memory: memory.limit });
  if (Object.keys(requests).length > 0) result.requests = requests;
  if (Object.keys(limits).length > 0) result.limits = limits;
  return result;
}

interface ResourceSource {
  /** Value from the pod's annotation. */
  own: string | undefined;
  /** The injector's default. */
  fallback: string | undefined;
  key: string;
}

function resolveResource(kind: string, request: ResourceSource, limit: ResourceSource, fail: Fail) {
  const resolved = { request: request.own ?? request.fallback, limit: limit.own ?? limit.fallback };
  if (resolved.request === undefined || resolved.limit === undefined) return resolved;
  if (!isAbove(resolved.request, resolved.limit)) return resolved;

  // NOTE: both values from annotations was already refused by parseAnnotations; both from the
  // defaults is a configuration error the injector's own settings check catches.
  if (request.own !== undefined && limit.own === undefined) {
    fail(
      request.key,
      `${resolved.request} is more than the injector's default ${kind} limit ${resolved.limit}; ` +
        `set ${limit.key} too`,
    );
  } else if (request.own === undefined && limit.own !== undefined) {
    fail(
      limit.key,
      `${resolved.limit} is less than the injector's default ${kind} request ${resolved.request}; ` +
        `set ${request.key} too`,
    );
  }
  return resolved;
}

function definedOnly(values: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(values).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}

/**
 * Writes the plan as JSON Patch operations. Ordering matters: mounts are added to the app's init
 * containers by their original index before our init containers are inserted ahead of them.
 */
function buildPatch(pod: Pod, plan: Plan, settings: InjectorSettings): JsonPatchOp[] {
  const spec = pod.spec ?? { containers: [] };
  const patch: JsonPatchOp[] = [];

  // Status annotation: makes the next pass a no-op. The annotations object always exists on an
  // accepted pod, since external-secrets is required.
  patch.push({
    op: 'add',
    path: pointer('metadata', 'annotations', STATUS_ANNOTATION),
    value: STATUS_INJECTED,
  });

  // A signal on-change: the sidecar must see the app's processes.
  if (plan.shareProcessNamespace) {
    patch.push({ op: 'add', path: '/spec/shareProcessNamespace', value: true });
  }

  // Volumes: the secrets emptyDir and the agent's projected volume.
  appendAll(patch, '/spec/volumes', spec.volumes, [secretsVolume(plan), tokenVolume(plan)]);

  // Read-only mounts in the selected app containers, init containers first (original indices).
  const appMount: VolumeMount = {
    name: plan.secretsVolume,
    mountPath: plan.mountPath,
    readOnly: true,
  };
  for (const i of plan.initTargets) {
    const mounts = spec.initContainers?.[i]?.volumeMounts;
    appendAll(patch, pointer('spec', 'initContainers', i, 'volumeMounts'), mounts, [
      { ...appMount },
    ]);
  }
  for (const i of plan.containerTargets) {
    const mounts = spec.containers[i]?.volumeMounts;
    appendAll(patch, pointer('spec', 'containers', i, 'volumeMounts'), mounts, [{ ...appMount }]);
  }

  // Agent init containers: inject-init, then the native sidecar right after it.
  const agentInits: Container[] = [];
  if (plan.hasInit) agentInits.push(agentContainer(INIT_CONTAINER_NAME, 'init', plan, settings));
  if (plan.sidecar === 'native') {
    const sidecar = agentContainer(SIDECAR_CONTAINER_NAME, 'sidecar', plan, settings);
    agentInits.push({
      ...sidecar,
      restartPolicy: 'Always',
      startupProbe: structuredClone(STARTUP_PROBE),
    });
  }
  if (agentInits.length > 0 && plan.options.initFirst && (spec.initContainers ?? []).length > 0) {
    agentInits.forEach((c, i) =>
      patch.push({ op: 'add', path: pointer('spec', 'initContainers', i), value: c }),
    );
  } else {
    appendAll(patch, '/spec/initContainers', spec.initContainers, agentInits);
  }

  // Without native sidecars: an ordinary container at the end.
  if (plan.sidecar === 'plain') {
    const sidecar = agentContainer(SIDECAR_CONTAINER_NAME, 'sidecar', plan, settings);
    patch.push({ op: 'add', path: '/spec/containers/-', value: sidecar });
  }
  return patch;
}

/** Adds `items` to the array at `path`, creating the array when the pod has none (or null). */
function appendAll(
  patch: JsonPatchOp[],
  path: string,
  existing: unknown[] | null | undefined,
  items: unknown[],
): void {
  if (items.length === 0) return;
  if (!Array.isArray(existing)) {
    patch.push({ op: 'add', path, value: items });
    return;
  }
  for (const item of items) patch.push({ op: 'add', path: `${path}/-`, value: item });
}

function secretsVolume(plan: Plan): Volume {
  // NOTE: memory-backed so secrets never touch the node's disk. Its size counts against the
  // pod's memory; the files of a few ExternalSecrets are kilobytes.
  return { name: plan.secretsVolume, emptyDir: { medium: 'Memory' } };
}

function tokenVolume(plan: Plan): Volume {
  const sources: NonNullable<Volume['projected']>['sources'] = [
    {
      serviceAccountToken: {
        path: KUBE_TOKEN_FILE,
        expirationSeconds: plan.tokenExpirationSeconds,
      },
    },
  ];
  if (plan.tokenAudience !== undefined) {
    sources.push({
      serviceAccountToken: {
        audience: plan.tokenAudience,
        path: PROVIDER_TOKEN_FILE,
        expirationSeconds: plan.tokenExpirationSeconds,
      },
    });
  }
  sources.push(
    { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: CA_FILE }] } },
    {
      downwardAPI: {
        items: [
          { path: NAMESPACE_FILE, fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } },
        ],
      },
    },
  );
  return { name: plan.tokenVolume, projected: { sources } };
}

/** A container port; pod.ts's Container leaves `ports` out, only the sidecar sets one. */
interface ContainerPort {
  name: string;
  containerPort: number;
  protocol: 'TCP';
}

function agentContainer(
  name: string,
  subcommand: 'init' | 'sidecar',
  plan: Plan,
  settings: InjectorSettings,
): Container {
  const container: Container & { ports?: ContainerPort[] } = {
    name,
    image: settings.agentImage,
    imagePullPolicy: settings.imagePullPolicy,
    command: [AGENT_COMMAND],
    args: [subcommand],
    env: agentEnv(plan, subcommand),
    volumeMounts: [
      { name: plan.secretsVolume, mountPath: plan.mountPath },
      { name: plan.tokenVolume, mountPath: AGENT_TOKEN_DIR, readOnly: true },
    ],
    securityContext: restrictedSecurityContext(plan.access.uid, plan.access.gid),
    // The agent writes a one-line reason to its termination message on failure; if it dies
    // before it can, the kubelet falls back to the last log lines, which hold no secret values.
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  if (plan.resources.requests || plan.resources.limits)
    container.resources = structuredClone(plan.resources);
  if (subcommand === 'sidecar' && plan.options.metricsPort !== undefined) {
    const port = plan.options.metricsPort;
    container.ports = [{ name: 'metrics', containerPort: port, protocol: 'TCP' }];
  }
  return container;
}

function agentEnv(plan: Plan, subcommand: 'init' | 'sidecar'): EnvVar[] {
  const field = (name: string, fieldPath: string): EnvVar => ({
    name,
    valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } },
  });
  const env: EnvVar[] = [
    field('ESA_POD_NAME', 'metadata.name'),
    field('ESA_POD_NAMESPACE', 'metadata.namespace'),
    field('ESA_POD_UID', 'metadata.uid'),
    field('ESA_SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    { name: 'ESA_EXTERNAL_SECRETS', value: plan.options.externalSecrets.join(',') },
    { name: 'ESA_OUTPUT_DIR', value: plan.mountPath },
    { name: 'ESA_FILE_MODE', value: `0${plan.access.fileMode.toString(8)}` },
    { name: 'ESA_LOG_LEVEL', value: plan.logLevel },
    { name: 'ESA_KUBE_TOKEN_FILE', value: `${AGENT_TOKEN_DIR}/${KUBE_TOKEN_FILE}` },
    { name: 'ESA_KUBE_CA_FILE', value: `${AGENT_TOKEN_DIR}/${CA_FILE}` },
  ];
  if (plan.tokenAudience !== undefined) {
    // NOTE: one variable whatever the audience; the provider that uses the file (AWS web
    // identity, Vault, Azure, ...) needs the audience its server expects, which is what the
    // token-audience annotation is for.
    const file = `${AGENT_TOKEN_DIR}/${PROVIDER_TOKEN_FILE}`;
    env.push({ name: 'ESA_PROVIDER_TOKEN_FILE', value: file });
  }
  if (plan.options.refreshInterval !== undefined) {
    env.push({ name: 'ESA_REFRESH_INTERVAL', value: plan.options.refreshInterval });
  }
  // Only the sidecar notifies: the init container's write happens before the app starts.
  if (subcommand === 'sidecar' && plan.options.onChange !== undefined) {
    env.push({ name: 'ESA_ON_CHANGE', value: formatOnChange(plan.options.onChange) });
  }
  // All interfaces: a scraper reaches the pod IP; the metrics hold names only.
  if (subcommand === 'sidecar' && plan.options.metricsPort !== undefined) {
    env.push({ name: 'ESA_METRICS_ADDRESS', value: `0.0.0.0:${plan.options.metricsPort}` });
  }
  return env;
}

/** Passes Pod Security "restricted" on its own, whatever the pod-level context says. */
function restrictedSecurityContext(uid: number, gid: number): SecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: gid,
    allowPrivilegeEscalation: false,
    privileged: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}
