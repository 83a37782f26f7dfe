/**
 * The agent's settings, each declared once: the environment variable, the default, one line of
 * help and the parser. The injector sets these on the agent containers; `loadConfig` reads them
 * all up front and returns one frozen Config, so a bad setting stops the agent at start with an
 * error that names the variable, never halfway through a sync.
 */
import { join } from 'node:path';
import { parseDuration } from './duration.ts';
import { ConfigError } from './errors.ts';
import { SERVICE_ACCOUNT_DIR } from './kube-client.ts';
import { type OnChange, parseOnChange } from './on-change.ts';

interface Setting<T> {
  env: string;
  help: string;
  /** Raw text used when the variable is unset or empty; absent means the setting is required. */
  default?: string;
  parse(raw: string, env: string): T;
}

const text = (raw: string) => raw;

const dnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function objectName(raw: string, env: string): string {
  if (raw.length > 253 || !dnsSubdomain.test(raw)) {
    throw new ConfigError(`${env}: "${raw}" is not a valid Kubernetes object name`);
  }
  return raw;
}

function nameList(raw: string, env: string): readonly string[] {
  const names = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0)
    throw new ConfigError(`${env}: expected at least one ExternalSecret name`);
  return Object.freeze([...new Set(names.map((n) => objectName(n, env)))]);
}

function duration(raw: string, env: string): number {
  try {
    return parseDuration(raw);
  } catch (err) {
    throw new ConfigError(`${env}: ${(err as Error).message}`);
  }
}

function optionalDuration(raw: string, env: string): number | undefined {
  return raw === '' ? undefined : duration(raw, env);
}

/**
 * An octal mode from 0400 to 0777: the agent itself must be able to read its files back, to
 * tell whether a set changed.
 */
function fileMode(raw: string, env: string): number {
  const mode = /^0?[0-7]{3}$/.test(raw) ? parseInt(raw, 8) : NaN;
  if (!(mode >= 0o400 && mode <= 0o777)) {
    throw new ConfigError(
      `${env}: expected an octal file mode from 0400 to 0777 such as 0440, got "${raw}"`,
    );
  }
  return mode;
}

function absolutePath(raw: string, env: string): string {
  if (!raw.startsWith('/')) throw new ConfigError(`${env}: expected an absolute path, got "${raw}"`);
  return raw;
}

function optionalAbsolutePath(raw: string, env: string): string {
  return raw === '' ? raw : absolutePath(raw, env);
}

const LOG_LEVELS = ['debug', 'info', 'warn', 'error'];

function logLevel(raw: string, env: string): string {
  const level = raw.toLowerCase();
  if (!LOG_LEVELS.includes(level)) {
    throw new ConfigError(`${env}: expected one of ${LOG_LEVELS.join(', ')}, got "${raw}"`);
  }
  return level;
}

function positiveDuration(raw: string, env: string): number {
  const ms = duration(raw, env);
  if (ms <= 0) throw new ConfigError(`${env}: expected a duration above zero, got "${raw}"`);
  return ms;
}

function optionalOnChange(raw: string, env: string): OnChange | undefined {
  if (raw === '') return undefined;
  const parsed = parseOnChange(raw);
  if (!parsed.ok) throw new ConfigError(`${env}: ${parsed.problem}`);
  return parsed.value;
}

/** Where the sidecar serves /metrics; absent when the setting is empty (no server). */
export interface ListenAddress {
  host: string;
  port: number;
}

/** `host:port` with a port from 1 to 65535; an IPv6 host goes in brackets (`[::]:9090`). */
function optionalListenAddress(raw: string, env: string): ListenAddress | undefined {
  if (raw === '') return undefined;
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):(\d{1,5})$/.exec(raw);
  const port = match ? Number(match[2]) : NaN;
  if (!match || !(port >= 1 && port <= 65535)) {
    throw new ConfigError(
      `${env}: expected host:port with a port from 1 to 65535 such as 0.0.0.0:9090, got "${raw}"`,
    );
  }
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
}

const settings = {
  podName: { env: 'ESA_POD_NAME', help: 'name of the pod the agent serves', parse: objectName },
  podNamespace: {
    env: 'ESA_POD_NAMESPACE',
    help: 'namespace of the pod; ExternalSecrets and target Secrets live here',
    parse: objectName,
  },
  podUid: {
    env: 'ESA_POD_UID',
    help: 'uid of the pod; binds service-account tokens the agent requests to the pod',
    default: '',
    parse: text,
  },
  serviceAccount: {
    env: 'ESA_SERVICE_ACCOUNT',
    help: "the pod's service account, the only one whose tokens the agent requests",
    default: 'default',
    parse: objectName,
  },
  externalSecrets: {
    env: 'ESA_EXTERNAL_SECRETS',
    help: 'comma-separated names of the ExternalSecrets, in the pod namespace, to sync',
    parse: nameList,
  },
  outputDir: {
    env: 'ESA_OUTPUT_DIR',
    help: 'root of the files: one folder per target Secret, one file per key (absolute path)',
    parse: absolutePath,
  },
  fileMode: {
    env: 'ESA_FILE_MODE',
    help: 'octal mode of the secret files, 0400-0777; their folders get the matching r-x bits',
    default: '0440',
    parse: fileMode,
  },
  logLevel: {
    env: 'ESA_LOG_LEVEL',
    help: 'debug, info, warn or error',
    default: 'info',
    parse: logLevel,
  },
  refreshInterval: {
    env: 'ESA_REFRESH_INTERVAL',
    help: 'overrides every ExternalSecret spec.refreshInterval (Go duration; "0" = never refresh)',
    default: '',
    parse: optionalDuration,
  },
  syncTimeoutMs: {
    env: 'ESA_SYNC_TIMEOUT',
    help: 'upper bound on one pass for one ExternalSecret (Go duration)',
    default: '2m',
    parse: positiveDuration,
  },
  retryInitialMs: {
    env: 'ESA_RETRY_INITIAL',
    help: 'sidecar: first wait after a failed pass; doubles per failure (Go duration)',
    default: '5s',
    parse: positiveDuration,
  },
  retryMaxMs: {
    env: 'ESA_RETRY_MAX',
    help: 'sidecar: longest wait between failed passes (Go duration)',
    default: '5m',
    parse: positiveDuration,
  },
  onChange: {
    env: 'ESA_ON_CHANGE',
    help: 'sidecar: tell the app about changed files, http:<port><path> or signal:<SIGNAL>:<name>',
    default: '',
    parse: optionalOnChange,
  },
  metricsAddress: {
    env: 'ESA_METRICS_ADDRESS',
    help: 'sidecar: serve Prometheus metrics at http://<host:port>/metrics (empty = off)',
    default: '',
    parse: optionalListenAddress,
  },
  terminationLog: {
    env: 'ESA_TERMINATION_LOG',
    help: 'init: file that receives a one-line reason on failure (the termination message)',
    default: '/dev/termination-log',
    parse: optionalAbsolutePath,
  },
  readyFile: {
    env: 'ESA_READY_FILE',
    help: 'sidecar: created once every ExternalSecret has synced (default <ESA_OUTPUT_DIR>/..ready)',
    default: '',
    parse: optionalAbsolutePath,
  },
  providerTokenFile: {
    env: 'ESA_PROVIDER_TOKEN_FILE',
    help: "projected token with the provider's audience; AWS: web identity for a store role",
    default: '',
    parse: optionalAbsolutePath,
  },
  kubeTokenFile: {
    env: 'ESA_KUBE_TOKEN_FILE',
    help: 'bearer token for the API server, re-read before each request',
    default: `${SERVICE_ACCOUNT_DIR}/token`,
    parse: absolutePath,
  },
  kubeCaFile: {
    env: 'ESA_KUBE_CA_FILE',
    help: "PEM bundle that signs the API server's certificate",
    default: `${SERVICE_ACCOUNT_DIR}/ca.crt`,
    parse: absolutePath,
  },
} satisfies Record<string, Setting<unknown>>;

type Settings = typeof settings;

export type Config = Readonly<{ [K in keyof Settings]: ReturnType<Settings[K]['parse']> }>;

/**
 * Reads every setting from `env`. Throws a ConfigError naming the first variable that is
 * missing or malformed. The values of unset optional settings are their parsed defaults.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(settings) as [string, Setting<unknown>][]) {
    const raw = env[s.env]?.trim() || s.default;
    if (raw === undefined) throw new ConfigError(`${s.env} is not set: ${s.help}`);
    out[key] = s.parse(raw, s.env);
  }
  const config = out as { -readonly [K in keyof Config]: Config[K] };
  config.readyFile ||= join(config.outputDir, '..ready');
  return Object.freeze(config);
}

/** One line per setting, for `--help`. */
export function describeSettings(): string {
  return Object.values(settings as Record<string, Setting<unknown>>)
    .map((s) => `  ${s.env.padEnd(24)} ${s.help}${s.default ? ` (default ${s.default})` : ''}`)
    .join('\n');
}
