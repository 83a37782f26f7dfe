/**
 * Settings of `external-secrets-agent injector`, each declared once: flag, environment variable,
 * default, help and parser. A flag wins over its environment variable, which wins over the
 * default. Every problem is reported at start-up, naming the flag and the variable.
 *
 * Two tables: SETTINGS (the server's address and certificate files, and every default of the
 * mutated pod; `inject` accepts the pod ones too) and TLS_SETTINGS (the self-managed
 * certificate, which only the server has a use for).
 */
import { isIP } from 'node:net';
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
  /** Certificate files, watched for changes; not read when `selfManagedTls` is set. */
  tlsCertFile: string;
  tlsKeyFile: string;
  /** Present when the injector manages its own CA and serving certificate (tls-self-managed.ts). */
  selfManagedTls?: SelfManagedTlsConfig;
  /** The injector's own log level. */
  logLevel: LogLevel;
  /** What `mutate` is given. */
  settings: InjectorSettings;
}

export interface SelfManagedTlsConfig {
  webhookConfigName: string;
  secretName: string;
  /** `undefined`: the namespace the injector runs in (main.ts reads it from its pod). */
  secretNamespace: string | undefined;
  serviceName: string;
  /** More names or IP addresses for the serving certificate. */
  extraHosts: string[];
}

interface Setting {
  flag: string;
  env: string;
  /** `undefined` makes the setting required; `''` means "not set" where that is allowed. */
  default: string | undefined;
  help: string;
  /** `--flag` alone means `--flag=true`. */
  isSwitch?: boolean;
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

/** The self-managed certificate (tls-self-managed.ts); every one is ignored unless enabled. */
export const TLS_SETTINGS = {
  tlsSelfManaged: {
    flag: 'tls-self-managed',
    env: 'ESA_TLS_SELF_MANAGED',
    default: 'false',
    help: 'manage a CA and serving certificate in a Secret and the webhook caBundle; true or false',
    isSwitch: true,
  },
  webhookConfigName: {
    flag: 'webhook-config-name',
    env: 'ESA_WEBHOOK_CONFIG_NAME',
    default: '',
    help: 'self-managed: MutatingWebhookConfiguration whose caBundle is kept current',
  },
  tlsSecretName: {
    flag: 'tls-secret-name',
    env: 'ESA_TLS_SECRET_NAME',
    default: '',
    help: 'self-managed: Secret holding the CA and serving certificate, shared by replicas',
  },
  tlsSecretNamespace: {
    flag: 'tls-secret-namespace',
    env: 'ESA_TLS_SECRET_NAMESPACE',
    default: '',
    help: "self-managed: namespace of the Secret and Service; empty for the injector's own",
  },
  tlsServiceName: {
    flag: 'tls-service-name',
    env: 'ESA_TLS_SERVICE_NAME',
    default: '',
    help: 'self-managed: Service the API server calls; its DNS names go in the certificate',
  },
  tlsExtraHosts: {
    flag: 'tls-extra-hosts',
    env: 'ESA_TLS_EXTRA_HOSTS',
    default: '',
    help: 'self-managed: more DNS names or IP addresses for the certificate, comma-separated',
  },
} as const satisfies Record<string, Setting>;

const ALL_SETTINGS = { ...SETTINGS, ...TLS_SETTINGS };

type Name = keyof typeof ALL_SETTINGS;

/** One line per setting, for `injector --help`. */
export function settingsHelp(): string {
  return Object.values(ALL_SETTINGS as Record<string, Setting>)
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
  const all = Object.values(ALL_SETTINGS as Record<string, Setting>);
  const flagOptions = Object.fromEntries(all.map((s) => [s.flag, { type: 'string' }])) as Record<
    string,
    { type: 'string' }
  >;
  let flags: Record<string, string | undefined>;
  try {
    const parsed = parseArgs({
      args: expandSwitches(args, all),
      options: flagOptions,
      strict: true,
      allowPositionals: false,
    });
    flags = parsed.values as Record<string, string | undefined>;
  } catch (err) {
    throw new ConfigError(`injector: ${(err as Error).message}`);
  }

  const problems: string[] = [];
  const raw = (name: Name): string | undefined => {
    const s: Setting = ALL_SETTINGS[name];
    return flags[s.flag] ?? env[s.env] ?? s.default;
  };
  const bad = (name: Name, expected: string) => {
    const s: Setting = ALL_SETTINGS[name];
    const value = raw(name);
    problems.push(
      value === undefined || value === ''
        ? `--${s.flag} ($${s.env}) is not set: expected ${expected.replace(/ \(required\)$/, '')}`
        : `--${s.flag} ($${s.env}): expected ${expected}, got ${JSON.stringify(value)}`,
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
  const selfManagedTls = readSelfManagedTls(text, optional, bad);

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
  const config: InjectorConfig = {
    port,
    host: text('host'),
    tlsCertFile: text('tlsCertFile'),
    tlsKeyFile: text('tlsKeyFile'),
    logLevel,
    settings,
  };
  if (selfManagedTls) config.selfManagedTls = selfManagedTls;
  return deepFreeze(config);
}

/** `--switch` followed by nothing or by another flag means `--switch=true`. */
function expandSwitches(args: string[], settings: Setting[]): string[] {
  const switches = new Set(settings.filter((s) => s.isSwitch).map((s) => `--${s.flag}`));
  return args.map((arg, i) => {
    const next = args[i + 1];
    const isBare = switches.has(arg) && (next === undefined || next.startsWith('-'));
    return isBare ? `${arg}=true` : arg;
  });
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN_PART = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const DNS_SUBDOMAIN = new RegExp(`^(?=.{1,253}$)${DNS_SUBDOMAIN_PART}(\\.${DNS_SUBDOMAIN_PART})*$`);

/** The self-managed certificate's settings when it is switched on; each name is checked. */
function readSelfManagedTls(
  text: (name: Name) => string,
  optional: (name: Name) => string | undefined,
  bad: (name: Name, expected: string) => void,
): SelfManagedTlsConfig | undefined {
  const isOn = text('tlsSelfManaged');
  if (isOn !== 'true' && isOn !== 'false') bad('tlsSelfManaged', 'true or false');
  if (isOn !== 'true') return undefined;

  const need = (name: Name, pattern: RegExp, what: string) => {
    const value = text(name);
    if (!pattern.test(value)) bad(name, `${what} (required with --tls-self-managed)`);
    return value;
  };
  const webhookConfigName = need('webhookConfigName', DNS_SUBDOMAIN, 'an object name');
  const secretName = need('tlsSecretName', DNS_SUBDOMAIN, 'a Secret name');
  const serviceName = need('tlsServiceName', DNS_LABEL, 'a Service name');
  const secretNamespace = optional('tlsSecretNamespace');
  if (secretNamespace !== undefined && !DNS_LABEL.test(secretNamespace)) {
    bad('tlsSecretNamespace', 'a namespace name, or empty');
  }
  const extraHosts = (optional('tlsExtraHosts') ?? '')
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h !== '');
  if (extraHosts.some((h) => !DNS_SUBDOMAIN.test(h) && isIP(h) === 0)) {
    bad('tlsExtraHosts', 'DNS names or IP addresses, comma-separated');
  }
  return { webhookConfigName, secretName, secretNamespace, serviceName, extraHosts };
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
