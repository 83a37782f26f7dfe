/**
 * Settings of `external-secrets-agent injector`, each declared once: flag, environment variable,
 * default, help and parser. A flag wins over its environment variable, which wins over the
 * default. Every problem is reported at start-up, naming the flag and the variable.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../agent/errors.ts';
import {
  checkResourceQuantity,
  isAbove,
  LOG_LEVELS,
  type LogLevel,
  MAX_TOKEN_EXPIRATION_SECONDS,
  MIN_TOKEN_EXPIRATION_SECONDS,
} from './annotations.ts';
import { DEFAULT_INJECTOR_SETTINGS, type InjectorSettings } from './mutate.ts';

export interface InjectorConfig {
  port: number;
  host: string;
  tlsCertFile: string;
  tlsKeyFile: string;
  /** The injector's own log level. */
  logLevel: LogLevel;
  /** What `mutate` is given. */
  settings: InjectorSettings;
}

interface Setting {
  flag: string;
  env: string;
  /** `undefined` makes the setting required; `''` means "not set" where that is allowed. */
  default: string | undefined;
  help: string;
}

const d = DEFAULT_INJECTOR_SETTINGS;

/** Every setting, in the order `--help` lists them. */
export const SETTINGS = {
  port: { flag: 'port', env: 'ESA_INJECTOR_PORT', default: '8443', help: 'HTTPS port' },
  host: {
    flag: 'host',
    env: 'ESA_INJECTOR_HOST',
    default: '0.0.0.0',
    help: 'address to listen on',
  },
  tlsCertFile: {
    flag: 'tls-cert-file',
    env: 'ESA_TLS_CERT_FILE',
    default: '/etc/external-secrets-agent/tls/tls.crt',
    help: 'PEM serving certificate (chain)',
  },
  tlsKeyFile: {
    flag: 'tls-key-file',
    env: 'ESA_TLS_KEY_FILE',
    default: '/etc/external-secrets-agent/tls/tls.key',
    help: 'PEM private key of the serving certificate',
  },
  logLevel: {
    flag: 'log-level',
    env: 'ESA_LOG_LEVEL',
    default: 'info',
    help: 'injector log level',
  },
  agentImage: {
    flag: 'agent-image',
    env: 'ESA_AGENT_IMAGE',
    default: undefined,
    help: 'image of the injected agent containers',
  },
  imagePullPolicy: {
    flag: 'agent-image-pull-policy',
    env: 'ESA_AGENT_IMAGE_PULL_POLICY',
    default: d.imagePullPolicy,
    help: 'Always, IfNotPresent or Never',
  },
  nativeSidecars: {
    flag: 'native-sidecars',
    env: 'ESA_NATIVE_SIDECARS',
    default: String(d.hasNativeSidecars),
    help: 'true if the API server runs native sidecars (Kubernetes 1.29+)',
  },
  mountPath: {
    flag: 'mount-path',
    env: 'ESA_MOUNT_PATH',
    default: d.mountPath,
    help: 'default mount path of the secrets volume',
  },
  tokenAudience: {
    flag: 'token-audience',
    env: 'ESA_TOKEN_AUDIENCE',
    default: d.tokenAudience ?? '',
    help: 'default audience of the provider token; empty for no provider token',
  },
  tokenExpirationSeconds: {
    flag: 'token-expiration-seconds',
    env: 'ESA_TOKEN_EXPIRATION_SECONDS',
    default: String(d.tokenExpirationSeconds),
    help: `lifetime of the agent's tokens (${MIN_TOKEN_EXPIRATION_SECONDS}-${MAX_TOKEN_EXPIRATION_SECONDS})`,
  },
  agentLogLevel: {
    flag: 'agent-log-level',
    env: 'ESA_AGENT_LOG_LEVEL',
    default: d.logLevel,
    help: 'default log level of the agents',
  },
  agentCpuRequest: {
    flag: 'agent-cpu-request',
    env: 'ESA_AGENT_CPU_REQUEST',
    default: d.resources.requests.cpu ?? '',
    help: 'CPU request of each agent container; empty for none',
  },
  agentMemoryRequest: {
    flag: 'agent-memory-request',
    env: 'ESA_AGENT_MEMORY_REQUEST',
    default: d.resources.requests.memory ?? '',
    help: 'memory request of each agent container; empty for none',
  },
  agentCpuLimit: {
    flag: 'agent-cpu-limit',
    env: 'ESA_AGENT_CPU_LIMIT',
    default: d.resources.limits.cpu ?? '',
    help: 'CPU limit of each agent container; empty for none',
  },
  agentMemoryLimit: {
    flag: 'agent-memory-limit',
    env: 'ESA_AGENT_MEMORY_LIMIT',
    default: d.resources.limits.memory ?? '',
    help: 'memory limit of each agent container; empty for none',
  },
} as const satisfies Record<string, Setting>;

type Name = keyof typeof SETTINGS;

/** One line per setting, for `injector --help`. */
export function settingsHelp(): string {
  return Object.values(SETTINGS as Record<string, Setting>)
    .map((s) => {
      const fallback =
        s.default === undefined ? 'required' : `default ${JSON.stringify(s.default)}`;
      return `  --${s.flag.padEnd(26)} $${s.env.padEnd(29)} ${s.help} (${fallback})`;
    })
    .join('\n');
}

/**
 * Reads the settings from `args` and `env`. Pure apart from its arguments. Throws one ConfigError
 * listing every bad setting. Values are echoed in messages: none of these is a credential.
 */
export function parseInjectorConfig(args: string[], env: NodeJS.ProcessEnv): InjectorConfig {
  const flagOptions = Object.fromEntries(
    Object.values(SETTINGS as Record<string, Setting>).map((s) => [s.flag, { type: 'string' }]),
  ) as Record<string, { type: 'string' }>;
  let flags: Record<string, string | undefined>;
  try {
    flags = parseArgs({ args, options: flagOptions, strict: true, allowPositionals: false })
      .values as Record<string, string | undefined>;
  } catch (err) {
    throw new ConfigError(`injector: ${(err as Error).message}`);
  }

  const problems: string[] = [];
  const raw = (name: Name): string | undefined => {
    const s: Setting = SETTINGS[name];
    return flags[s.flag] ?? env[s.env] ?? s.default;
  };
  const bad = (name: Name, expected: string) => {
    const s: Setting = SETTINGS[name];
    problems.push(
      `--${s.flag} ($${s.env}): expected ${expected}, got ${JSON.stringify(raw(name))}`,
    );
  };
  const text = (name: Name): string => raw(name) ?? '';
  const optional = (name: Name): string | undefined => (text(name) === '' ? undefined : text(name));

  const port = Number(text('port'));
  if (!Number.isInteger(port) || port < 0 || port > 65535) bad('port', 'a port number 0-65535');
  if (text('host') === '') bad('host', 'an address');
  if (text('tlsCertFile') === '') bad('tlsCertFile', 'a file path');
  if (text('tlsKeyFile') === '') bad('tlsKeyFile', 'a file path');
  if (text('agentImage') === '') bad('agentImage', 'an image reference (required)');

  const logLevel = oneOf(text('logLevel'), LOG_LEVELS, () =>
    bad('logLevel', LOG_LEVELS.join(', ')),
  );
  const agentLogLevel = oneOf(text('agentLogLevel'), LOG_LEVELS, () =>
    bad('agentLogLevel', LOG_LEVELS.join(', ')),
  );
  const pullPolicies = ['Always', 'IfNotPresent', 'Never'] as const;
  const imagePullPolicy = oneOf(text('imagePullPolicy'), pullPolicies, () =>
    bad('imagePullPolicy', pullPolicies.join(', ')),
  );
  const nativeSidecars = oneOf(text('nativeSidecars'), ['true', 'false'] as const, () =>
    bad('nativeSidecars', 'true or false'),
  );
  const mountPath = text('mountPath').replace(/\/$/, '');
  if (!/^\/[^:\s\\]+$/.test(mountPath) || /(^|\/)\.{1,2}(\/|$)|\/\//.test(mountPath)) {
    bad('mountPath', 'a normalised absolute path other than /');
  }
  const expiration = Number(text('tokenExpirationSeconds'));
  if (
    !/^\d+$/.test(text('tokenExpirationSeconds')) ||
    expiration < MIN_TOKEN_EXPIRATION_SECONDS ||
    expiration > MAX_TOKEN_EXPIRATION_SECONDS
  ) {
    bad(
      'tokenExpirationSeconds',
      `seconds from ${MIN_TOKEN_EXPIRATION_SECONDS} to ${MAX_TOKEN_EXPIRATION_SECONDS}`,
    );
  }
  const tokenAudience = optional('tokenAudience');
  if (tokenAudience !== undefined && /[\s,]/.test(tokenAudience)) {
    bad('tokenAudience', 'one audience without spaces or commas');
  }

  const resources = readResources(optional, bad);

  if (problems.length > 0) throw new ConfigError(`injector settings: ${problems.join('; ')}`);
  const settings: InjectorSettings = {
    agentImage: text('agentImage'),
    imagePullPolicy,
    hasNativeSidecars: nativeSidecars === 'true',
    resources,
    mountPath,
    tokenExpirationSeconds: expiration,
    logLevel: agentLogLevel,
    agentUid: d.agentUid,
  };
  if (tokenAudience !== undefined) settings.tokenAudience = tokenAudience;
  return deepFreeze({
    port,
    host: text('host'),
    tlsCertFile: text('tlsCertFile'),
    tlsKeyFile: text('tlsKeyFile'),
    logLevel,
    settings,
  });
}

function readResources(
  optional: (name: Name) => string | undefined,
  bad: (name: Name, expected: string) => void,
): InjectorSettings['resources'] {
  const read = (name: Name, kind: 'cpu' | 'memory') => {
    const value = optional(name);
    if (value !== undefined && checkResourceQuantity(kind, value) !== undefined) {
      bad(name, kind === 'cpu' ? 'a CPU quantity such as 10m' : 'a memory quantity such as 48Mi');
      return undefined;
    }
    return value;
  };
  const requests = {
    cpu: read('agentCpuRequest', 'cpu'),
    memory: read('agentMemoryRequest', 'memory'),
  };
  const limits = { cpu: read('agentCpuLimit', 'cpu'), memory: read('agentMemoryLimit', 'memory') };
  if (requests.cpu && limits.cpu && isAbove(requests.cpu, limits.cpu)) {
    bad('agentCpuRequest', `at most the CPU limit ${limits.cpu}`);
  }
  if (requests.memory && limits.memory && isAbove(requests.memory, limits.memory)) {
    bad('agentMemoryRequest', `at most the memory limit ${limits.memory}`);
  }
  const drop = (o: { cpu?: string | undefined; memory?: string | undefined }) => {
    const out: { cpu?: string; memory?: string } = {};
    if (o.cpu !== undefined) out.cpu = o.cpu;
    if (o.memory !== undefined) out.memory = o.memory;
    return out;
  };
  return { requests: drop(requests), limits: drop(limits) };
}

function oneOf<T extends string>(value: string, choices: readonly T[], onBad: () => void): T {
  if ((choices as readonly string[]).includes(value)) return value as T;
  onBad();
  return choices[0]!;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
