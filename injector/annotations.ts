/**
 * The public contract of the injector: the opt-in label and every annotation under
 * `agent.external-secrets.io/`, each with what it controls, the values it accepts and its default.
 *
 * Annotations are read from the pod (for a workload, from its pod template). Each one is checked
 * at admission; a bad value refuses the pod with a message that names the annotation, because a
 * pod that starts without its secrets, or with a setting silently ignored, is worse than a pod
 * that does not start. An unknown key under the prefix is refused too, so a typo such as
 * `mount-pth` does not go unnoticed.
 */
import type { AdmissionProblem } from '../agent/errors.ts';
import { type OnChange, parseOnChange } from '../agent/on-change.ts';
import type { Pod } from './pod.ts';
import { parseGoDurationMs, parseQuantity } from './units.ts';

/** The prefix shared by the label and every annotation. */
export const PREFIX = 'agent.external-secrets.io/';

/**
 * Label (not annotation) that opts a pod in. Only the value `"true"` opts in. The webhook's
 * `objectSelector` matches it, so pods without it are never sent to the injector, and an
 * injector outage cannot block them.
 */
export const INJECT_LABEL = `${PREFIX}inject`;

/**
 * Required. Comma-separated names of the ExternalSecrets, in the pod's namespace, that the
 * agent syncs for this pod, for example `"db-creds,api-key"`. Each name must be a valid object
 * name (DNS-1123 subdomain). Whitespace around names is ignored; a name listed twice counts once.
 */
export const EXTERNAL_SECRETS_ANNOTATION = `${PREFIX}external-secrets`;

/**
 * Set by the injector, not by users: `"injected"` once the pod has been mutated. A pod that
 * already carries it gets an empty patch, which makes reinvocation and re-admission no-ops.
 * Any other value is refused.
 */
export const STATUS_ANNOTATION = `${PREFIX}status`;

/** The only value of {@link STATUS_ANNOTATION}. */
export const STATUS_INJECTED = 'injected';

/**
 * Which agent containers are added:
 * - `init+sidecar` (default): an init container performs the first sync, a sidecar keeps the
 *   secrets fresh. On clusters without native sidecars, a pod that runs to completion
 *   (`restartPolicy` `Never` or `OnFailure`, as every Job's pod) gets `init-only` instead, with a
 *   warning, because a plain sidecar container would keep it from ever completing.
 * - `init-only`: sync once before the app starts; nothing refreshes afterwards.
 * - `sidecar-only`: no init container. With native sidecars, the sidecar's startup probe still
 *   holds the app back until the first sync; without them, the app may start before the files
 *   exist (warned), and a pod that runs to completion is refused.
 */
export const MODE_ANNOTATION = `${PREFIX}mode`;

/**
 * `"true"` puts our init container (and the native sidecar) first among the init containers,
 * so the app's own init containers can read the secrets. `"false"` (default) puts them last, so
 * that init containers the pod already has (a network setup step, for example) run first.
 */
export const INIT_FIRST_ANNOTATION = `${PREFIX}init-first`;

/**
 * Comma-separated names of the pod's containers and init containers that get the secrets volume
 * mounted (read-only). Default: every container and init container the pod has at admission.
 * Each name must exist in the pod.
 */
export const CONTAINERS_ANNOTATION = `${PREFIX}containers`;

/**
 * Absolute path where the secrets volume is mounted, in the app containers and the agent. The
 * agent writes one folder per ExternalSecret below it. Default: the injector's setting, itself
 * `/run/secrets/inject` unless configured. No `.` or `..` segments, no `:`, not `/`.
 */
export const MOUNT_PATH_ANNOTATION = `${PREFIX}mount-path`;

/**
 * Overrides every named ExternalSecret's `refreshInterval` for this pod's sidecar. A Go duration
 * of at least one second, such as `30s`, `5m` or `1h30m`. Default: each ExternalSecret's own
 * interval. To stop refreshing, use `mode: init-only` rather than `0`.
 */
export const REFRESH_INTERVAL_ANNOTATION = `${PREFIX}refresh-interval`;

/**
 * Log level of the agent containers: `debug`, `info`, `warn` or `error`. Default: the
 * injector's setting (`info` unless configured). Logs never contain secret values at any level.
 */
export const LOG_LEVEL_ANNOTATION = `${PREFIX}log-level`;

/**
 * CPU request of each agent container, a Kubernetes quantity (`10m`, `0.1`). Default: the
 * injector's setting.
 */
export const AGENT_CPU_REQUEST_ANNOTATION = `${PREFIX}agent-cpu-request`;

/**
 * Memory request of each agent container, a Kubernetes quantity of at least 1Mi (`48Mi`, `64M`).
 * Must not exceed the memory limit in force (annotation or injector default). Default: injector's.
 */
export const AGENT_MEMORY_REQUEST_ANNOTATION = `${PREFIX}agent-memory-request`;

/**
 * CPU limit of each agent container, a Kubernetes quantity. Must not be below the CPU request.
 * Default: the injector's setting, which sets no CPU limit unless configured.
 */
export const AGENT_CPU_LIMIT_ANNOTATION = `${PREFIX}agent-cpu-limit`;

/**
 * Memory limit of each agent container, a Kubernetes quantity of at least 1Mi. Must not be below
 * the memory request. Default: injector's.
 */
export const AGENT_MEMORY_LIMIT_ANNOTATION = `${PREFIX}agent-memory-limit`;

/**
 * Audience of the service-account token the agent presents to the secret provider (file
 * `provider-token`, see mutate.ts), for example `sts.amazonaws.com` for AWS web identity or
 * `vault` for a Vault role bound to that audience. One value, no spaces or commas. Default: the
 * injector's setting. The agent's own token for the Kubernetes API is not affected.
 */
export const TOKEN_AUDIENCE_ANNOTATION = `${PREFIX}token-audience`;

/**
 * Requested lifetime, in seconds, of the agent's projected tokens: an integer from 600 (the
 * kubelet's minimum) to 86400. Default 3600. The kubelet renews a projected token at 80% of its
 * lifetime and the agent re-reads the file before each login, so a longer lifetime buys nothing
 * but a longer window for a leaked token.
 */
export const TOKEN_EXPIRATION_SECONDS_ANNOTATION = `${PREFIX}token-expiration-seconds`;

/**
 * Octal mode of the secret files the agent writes, from `0400` to `0777`, such as `"0440"` or
 * `"0444"`; the folders get the matching read and search bits (`0440` files, `0750` folders).
 * Default: `0440` when every container that mounts the files runs as the agent's uid (see
 * {@link RUN_AS_USER_ANNOTATION}) or its gid, else `0444`, with an admission warning, because the
 * files must stay readable by an app whose uid the injector cannot tell. The agent always needs
 * to read its own files, hence the `0400` floor.
 */
export const FILE_MODE_ANNOTATION = `${PREFIX}file-mode`;

/**
 * uid of the agent containers, a whole number from 1 to 2147483647 (the agent never runs as
 * root, so the pod passes Pod Security "restricted"). The agent owns the files it writes, so
 * set this to the uid the app runs as when only its image's `USER` says so, which the injector
 * cannot see; the files are then `0440`. Default: the `runAsUser` that every container that
 * mounts the files shares (container level, else pod level) when there is one and it is not 0,
 * else 65532. The pod's own `securityContext` (its `fsGroup` included) is never changed.
 */
export const RUN_AS_USER_ANNOTATION = `${PREFIX}run-as-user`;

/**
 * gid of the agent containers, a whole number from 1 to 2147483647; files the agent writes
 * belong to it (unless the pod's `fsGroup` owns the volume). Default: when the agent runs as the
 * app's uid, the `runAsGroup` every container that mounts the files shares, if any; else the
 * same number as the agent's uid.
 */
export const RUN_AS_GROUP_ANNOTATION = `${PREFIX}run-as-group`;

/**
 * How the sidecar tells the app that its secret files changed. Default: it does not. One of:
 * - `http:<port><path>`, such as `http:8080/-/reload`: a POST with an empty body to
 *   `http://127.0.0.1:<port><path>`, the pod's own loopback (never another host), port 1 to
 *   65535, path starting with `/`. Each attempt times out after 5 s; up to 3 attempts, then the
 *   failure is logged at warn and dropped until the next change.
 * - `signal:<SIGNAL>:<process-name>`, such as `signal:SIGHUP:nginx`: the signal goes to every
 *   process whose `/proc/<pid>/comm` is `process-name` (at most 15 characters, as the kernel
 *   keeps it). SIGNAL is one of SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGQUIT, SIGWINCH.
 *   The injector sets the pod's `shareProcessNamespace: true` (with a warning: every container
 *   of the pod then sees the others' processes) and refuses a pod that sets it to false.
 *   NOTE: a non-root process can signal only processes of its own uid, so the app must run as
 *   the agent's uid: give the app containers a `runAsUser`, or set {@link RUN_AS_USER_ANNOTATION}
 *   to the uid of the image's `USER`. Otherwise each signal fails with EPERM, logged at warn.
 *
 * The sidecar notifies once after a pass that changed files (changes of several ExternalSecrets
 * within about a second count as one), never for the first write; the init container never
 * notifies. Needs a sidecar, so `mode: init-only` is refused.
 */
export const ON_CHANGE_ANNOTATION = `${PREFIX}on-change`;

/**
 * Port on which the sidecar serves Prometheus metrics at `/metrics` over plain HTTP, a whole
 * number from 1024 to 65535, such as `"9090"`. The sidecar listens on `0.0.0.0:<port>`
 * (ESA_METRICS_ADDRESS) and gets a container port named `metrics`, for a PodMonitor. Default:
 * no metrics server. The metrics carry ExternalSecret names and namespaces, never keys or
 * values. NOTE: the port shares the pod's network namespace with the app, so it must not be
 * one the app listens on. Needs a sidecar, so `mode: init-only` is refused.
 */
export const METRICS_PORT_ANNOTATION = `${PREFIX}metrics-port`;

/** Every key under {@link PREFIX} that the injector understands, as an annotation. */
export const KNOWN_ANNOTATIONS: readonly string[] = [
  INJECT_LABEL, // accepted (and ignored) as an annotation too: opting in is done by the label
  EXTERNAL_SECRETS_ANNOTATION,
  STATUS_ANNOTATION,
  MODE_ANNOTATION,
  INIT_FIRST_ANNOTATION,
  CONTAINERS_ANNOTATION,
  MOUNT_PATH_ANNOTATION,
  REFRESH_INTERVAL_ANNOTATION,
  LOG_LEVEL_ANNOTATION,
  AGENT_CPU_REQUEST_ANNOTATION,
  AGENT_MEMORY_REQUEST_ANNOTATION,
  AGENT_CPU_LIMIT_ANNOTATION,
  AGENT_MEMORY_LIMIT_ANNOTATION,
  TOKEN_AUDIENCE_ANNOTATION,
  TOKEN_EXPIRATION_SECONDS_ANNOTATION,
  FILE_MODE_ANNOTATION,
  RUN_AS_USER_ANNOTATION,
  RUN_AS_GROUP_ANNOTATION,
  ON_CHANGE_ANNOTATION,
  METRICS_PORT_ANNOTATION,
];

const knownNames = KNOWN_ANNOTATIONS.slice(1)
  .map((k) => k.slice(PREFIX.length))
  .join(', ');

export const MODES = ['init+sidecar', 'init-only', 'sidecar-only'] as const;
export type InjectionMode = (typeof MODES)[number];

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const MIN_TOKEN_EXPIRATION_SECONDS = 600;
export const MAX_TOKEN_EXPIRATION_SECONDS = 86_400;
export const MIN_REFRESH_INTERVAL_MS = 1000;
/** Unprivileged ports only: the agent runs without capabilities. */
export const MIN_METRICS_PORT = 1024;
export const MAX_METRICS_PORT = 65_535;
const MIN_MEMORY_BYTES = 2 ** 20;
export const MIN_FILE_MODE = 0o400;
export const MAX_FILE_MODE = 0o777;
/** Highest uid or gid Kubernetes accepts in a securityContext. */
export const MAX_ID = 2_147_483_647;

/** Agent resources set by annotations; a field is absent when the injector default applies. */
export interface ResourceOverrides {
  cpuRequest?: string;
  memoryRequest?: string;
  cpuLimit?: string;
  memoryLimit?: string;
}

/**
 * What a pod's annotations ask for. Optional fields are absent when the annotation is not set,
 * so the injector's own setting applies; `mode` and `initFirst` carry their defaults.
 */
export interface PodOptions {
  externalSecrets: string[];
  mode: InjectionMode;
  initFirst: boolean;
  /** Names of the containers and init containers that get the mount; absent means all. */
  containers?: string[];
  mountPath?: string;
  /** The Go duration as written (handed to the agent unchanged). */
  refreshInterval?: string;
  logLevel?: LogLevel;
  resources: ResourceOverrides;
  tokenAudience?: string;
  tokenExpirationSeconds?: number;
  /** Mode of the secret files, as a number (`0o440`). */
  fileMode?: number;
  runAsUser?: number;
  runAsGroup?: number;
  onChange?: OnChange;
  /** Port of the sidecar's metrics server. */
  metricsPort?: number;
}

export type ParseResult =
  { ok: true; options: PodOptions } | { ok: false; problems: AdmissionProblem[] };

/**
 * Reads and validates every annotation under {@link PREFIX} on `pod`. Pure. Returns all problems
 * at once (not just the first), each naming the annotation and what it expected, so a user fixes
 * a manifest in one round. Checks that need the injector's defaults (a request above the default
 * limit, a mount path already used by a container) are made by `mutate`.
 */
export function parseAnnotations(pod: Pod): ParseResult {
  const annotations = pod.metadata?.annotations ?? {};
  const problems: AdmissionProblem[] = [];
  const fail = (field: string, message: string) => problems.push({ field, message });
  const get = (key: string): string | undefined => annotations[key];

  for (const key of Object.keys(annotations)) {
    if (key.startsWith(PREFIX) && !KNOWN_ANNOTATIONS.includes(key)) {
      fail(key, `unknown annotation; known under ${PREFIX}: ${knownNames}`);
    }
  }

  const status = get(STATUS_ANNOTATION);
  if (status !== undefined && status !== STATUS_INJECTED) {
    fail(
      STATUS_ANNOTATION,
      `is set by the injector; expected "${STATUS_INJECTED}" or no value, got ${quote(status)}`,
    );
  }

  const options: PodOptions = {
    externalSecrets: parseExternalSecrets(get(EXTERNAL_SECRETS_ANNOTATION), fail),
    mode: parseChoice(MODE_ANNOTATION, get(MODE_ANNOTATION), MODES, 'init+sidecar', fail),
    initFirst: parseBoolean(INIT_FIRST_ANNOTATION, get(INIT_FIRST_ANNOTATION), false, fail),
    resources: parseResources(get, fail),
  };

  const containers = get(CONTAINERS_ANNOTATION);
  if (containers !== undefined) options.containers = parseContainers(pod, containers, fail);

  const mountPath = get(MOUNT_PATH_ANNOTATION);
  if (mountPath !== undefined) {
    const problem = checkMountPath(mountPath);
    if (problem) fail(MOUNT_PATH_ANNOTATION, `${problem}, got ${quote(mountPath)}`);
    else options.mountPath = mountPath.replace(/\/$/, '');
  }

  const refresh = get(REFRESH_INTERVAL_ANNOTATION);
  if (refresh !== undefined) {
    const ms = parseGoDurationMs(refresh.trim());
    if (ms === undefined || ms < MIN_REFRESH_INTERVAL_MS) {
      fail(
        REFRESH_INTERVAL_ANNOTATION,
        `expected a Go duration of at least 1s such as 30s, 5m or 1h30m, got ${quote(refresh)}` +
          (ms === 0 ? ' (to stop refreshing, set mode init-only)' : ''),
      );
    } else options.refreshInterval = refresh.trim();
  }

  const logLevel = get(LOG_LEVEL_ANNOTATION);
  if (logLevel !== undefined) {
    options.logLevel = parseChoice(LOG_LEVEL_ANNOTATION, logLevel, LOG_LEVELS, 'info', fail);
  }

  const audience = get(TOKEN_AUDIENCE_ANNOTATION);
  if (audience !== undefined) {
    if (audience === '' || /[\s,]/.test(audience) || audience.length > 253) {
      fail(
        TOKEN_AUDIENCE_ANNOTATION,
        `expected one audience without spaces or commas, got ${quote(audience)}`,
      );
    } else options.tokenAudience = audience;
  }

  const expiration = get(TOKEN_EXPIRATION_SECONDS_ANNOTATION);
  if (expiration !== undefined) {
    const seconds = /^\d+$/.test(expiration) ? Number(expiration) : NaN;
    if (!(seconds >= MIN_TOKEN_EXPIRATION_SECONDS && seconds <= MAX_TOKEN_EXPIRATION_SECONDS)) {
      fail(
        TOKEN_EXPIRATION_SECONDS_ANNOTATION,
        `expected a whole number of seconds from ${MIN_TOKEN_EXPIRATION_SECONDS} to ` +
          `${MAX_TOKEN_EXPIRATION_SECONDS}, got ${quote(expiration)}`,
      );
    } else options.tokenExpirationSeconds = seconds;
  }

  const fileMode = get(FILE_MODE_ANNOTATION);
  if (fileMode !== undefined) {
    const mode = /^0?[0-7]{3}$/.test(fileMode) ? parseInt(fileMode, 8) : NaN;
    if (!(mode >= MIN_FILE_MODE && mode <= MAX_FILE_MODE)) {
      fail(
        FILE_MODE_ANNOTATION,
        `expected an octal file mode from 0400 to 0777 such as 0440, got ${quote(fileMode)}`,
      );
    } else options.fileMode = mode;
  }

  const runAsUser = parseId(RUN_AS_USER_ANNOTATION, get(RUN_AS_USER_ANNOTATION), 'uid', fail);
  if (runAsUser !== undefined) options.runAsUser = runAsUser;
  const runAsGroup = parseId(RUN_AS_GROUP_ANNOTATION, get(RUN_AS_GROUP_ANNOTATION), 'gid', fail);
  if (runAsGroup !== undefined) options.runAsGroup = runAsGroup;

  const onChange = get(ON_CHANGE_ANNOTATION);
  if (onChange !== undefined) {
    const parsed = parseOnChange(onChange);
    if (!parsed.ok) fail(ON_CHANGE_ANNOTATION, parsed.problem);
    else if (options.mode === 'init-only') {
      fail(ON_CHANGE_ANNOTATION, 'needs the sidecar, which mode init-only leaves out');
    } else options.onChange = parsed.value;
  }

  const metricsPort = get(METRICS_PORT_ANNOTATION);
  if (metricsPort !== undefined) {
    const port = /^\d+$/.test(metricsPort) ? Number(metricsPort) : NaN;
    if (!(port >= MIN_METRICS_PORT && port <= MAX_METRICS_PORT)) {
      fail(
        METRICS_PORT_ANNOTATION,
        `expected a port from ${MIN_METRICS_PORT} to ${MAX_METRICS_PORT}, ` +
          `got ${quote(metricsPort)}`,
      );
    } else if (options.mode === 'init-only') {
      fail(METRICS_PORT_ANNOTATION, 'needs the sidecar, which mode init-only leaves out');
    } else options.metricsPort = port;
  }

  return problems.length > 0 ? { ok: false, problems } : { ok: true, options };
}

type Fail = (field: string, message: string) => void;

const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function parseExternalSecrets(value: string | undefined, fail: Fail): string[] {
  if (value === undefined || value.trim() === '') {
    fail(
      EXTERNAL_SECRETS_ANNOTATION,
      'is required: name the ExternalSecrets this pod consumes, for example "db-creds,api-key"',
    );
    return [];
  }
  const names = splitList(value);
  const bad = names.filter((n) => n.length > 253 || !dns1123Subdomain.test(n));
  if (names.includes('')) {
    fail(EXTERNAL_SECRETS_ANNOTATION, `has an empty name in ${quote(value)}`);
  } else if (bad.length > 0) {
    fail(
      EXTERNAL_SECRETS_ANNOTATION,
      `expected ExternalSecret names (lower-case DNS-1123 subdomains), got ${bad.map(quote).join(', ')}`,
    );
  }
  return [...new Set(names)];
}

function parseContainers(pod: Pod, value: string, fail: Fail): string[] {
  const names = [...new Set(splitList(value))];
  const existing = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map(
    (c) => c.name,
  );
  if (names.includes('')) {
    fail(
      CONTAINERS_ANNOTATION,
      `expected a comma-separated list of container names, got ${quote(value)}`,
    );
    return names;
  }
  const unknown = names.filter((n) => !existing.includes(n));
  if (unknown.length > 0) {
    fail(
      CONTAINERS_ANNOTATION,
      `names ${unknown.map(quote).join(', ')}, not a container or init container of this pod ` +
        `(it has: ${existing.join(', ') || 'none'})`,
    );
  }
  return names;
}

/** Why `path` cannot be a mount path, or `undefined` if it can. A trailing `/` is allowed. */
function checkMountPath(path: string): string | undefined {
  const trimmed = path.replace(/\/$/, '');
  if (!trimmed.startsWith('/') || trimmed === '') return 'expected an absolute path other than /';
  if (path.length > 1024) return 'expected a path of at most 1024 characters';
  if (/[:\s\\]/.test(path) || /[\u0000-\u001f]/.test(path)) {
    return 'expected a path without colons, whitespace, backslashes or control characters';
  }
  const segments = trimmed.slice(1).split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..')) {
    return 'expected a normalised path (no empty, "." or ".." segments)';
  }
  return undefined;
}

function parseResources(get: (key: string) => string | undefined, fail: Fail): ResourceOverrides {
  const result: ResourceOverrides = {};
  const read = (key: string, kind: 'cpu' | 'memory'): string | undefined => {
    const value = get(key);
    if (value === undefined) return undefined;
    const problem = checkResourceQuantity(kind, value);
    if (problem) {
      fail(key, problem);
      return undefined;
    }
    return value;
  };
  const cpuRequest = read(AGENT_CPU_REQUEST_ANNOTATION, 'cpu');
  const memoryRequest = read(AGENT_MEMORY_REQUEST_ANNOTATION, 'memory');
  const cpuLimit = read(AGENT_CPU_LIMIT_ANNOTATION, 'cpu');
  const memoryLimit = read(AGENT_MEMORY_LIMIT_ANNOTATION, 'memory');
  if (cpuRequest !== undefined) result.cpuRequest = cpuRequest;
  if (memoryRequest !== undefined) result.memoryRequest = memoryRequest;
  if (cpuLimit !== undefined) result.cpuLimit = cpuLimit;
  if (memoryLimit !== undefined) result.memoryLimit = memoryLimit;

  // When both ends come from annotations the pair is checked here; a request or limit that
  // clashes with the injector's default is checked by mutate, which knows the defaults.
  const pairs = [
    [AGENT_CPU_REQUEST_ANNOTATION, cpuRequest, AGENT_CPU_LIMIT_ANNOTATION, cpuLimit],
    [AGENT_MEMORY_REQUEST_ANNOTATION, memoryRequest, AGENT_MEMORY_LIMIT_ANNOTATION, memoryLimit],
  ] as const;
  for (const [requestKey, request, limitKey, limit] of pairs) {
    if (request !== undefined && limit !== undefined && isAbove(request, limit)) {
      fail(
        requestKey,
        `${request} is more than ${limitKey} ${limit}; a request may not exceed its limit`,
      );
    }
  }
  return result;
}

/** Why `value` is not an acceptable CPU or memory quantity, or `undefined` if it is. */
export function checkResourceQuantity(kind: 'cpu' | 'memory', value: string): string | undefined {
  const amount = parseQuantity(value);
  const example = kind === 'cpu' ? '10m or 0.5' : '48Mi or 128M';
  if (amount === undefined || amount <= 0) {
    return `expected a positive Kubernetes quantity such as ${example}, got ${quote(value)}`;
  }
  if (kind === 'memory' && amount < MIN_MEMORY_BYTES) {
    const hint = /m$/.test(value)
      ? ` ("m" means thousandths: did you mean ${value.slice(0, -1)}Mi?)`
      : '';
    return `expected at least 1Mi of memory, got ${quote(value)}${hint}`;
  }
  return undefined;
}

/** True when quantity `a` is larger than quantity `b` (both already validated). */
export function isAbove(a: string, b: string): boolean {
  return (parseQuantity(a) ?? 0) > (parseQuantity(b) ?? Infinity);
}

function parseChoice<T extends string>(
  key: string,
  value: string | undefined,
  choices: readonly T[],
  fallback: T,
  fail: Fail,
): T {
  if (value === undefined) return fallback;
  if ((choices as readonly string[]).includes(value)) return value as T;
  fail(key, `expected one of ${choices.join(', ')}, got ${quote(value)}`);
  return fallback;
}

function parseBoolean(
  key: string,
  value: string | undefined,
  fallback: boolean,
  fail: Fail,
): boolean {
  if (value === undefined) return fallback;
  if (value === 'true' || value === 'false') return value === 'true';
  fail(key, `expected "true" or "false", got ${quote(value)}`);
  return fallback;
}

/** A non-zero uid or gid; 0 is refused because the agent must not run as root. */
function parseId(
  key: string,
  value: string | undefined,
  kind: 'uid' | 'gid',
  fail: Fail,
): number | undefined {
  if (value === undefined) return undefined;
  const id = /^\d{1,10}$/.test(value) ? Number(value) : NaN;
  if (id >= 1 && id <= MAX_ID) return id;
  fail(
    key,
    `expected a ${kind} from 1 to ${MAX_ID} (the agent never runs as root), got ${quote(value)}`,
  );
  return undefined;
}

function splitList(value: string): string[] {
  return value.split(',').map((s) => s.trim());
}

/** Quotes an annotation value for a message, cut short so one bad value cannot flood a log. */
function quote(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}
