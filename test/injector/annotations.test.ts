import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as annotations from '../../injector/annotations.ts';
import {
  KNOWN_ANNOTATIONS,
  type ParseResult,
  parseAnnotations,
  PREFIX,
  type PodOptions,
} from '../../injector/annotations.ts';
import type { Pod } from '../../injector/pod.ts';

const key = (name: string) => `${PREFIX}${name}`;

function podWith(
  extra: Record<string, string>,
  base: Record<string, string> = { [key('external-secrets')]: 'db-creds' },
): Pod {
  return {
    metadata: { name: 'p', namespace: 'ns', annotations: { ...base, ...extra } },
    spec: {
      initContainers: [{ name: 'setup' }],
      containers: [{ name: 'app' }, { name: 'worker' }],
    },
  };
}

function options(result: ParseResult): PodOptions {
  if (!result.ok) assert.fail(`expected options, got ${JSON.stringify(result.problems)}`);
  return result.options;
}

describe('annotations: constants', () => {
  it('puts every key under the agent.external-secrets.io/ prefix', () => {
    for (const k of KNOWN_ANNOTATIONS) assert.ok(k.startsWith(PREFIX), k);
  });

  it('exports every known key as a named constant with a doc comment', () => {
    const exported = new Set<string>(
      Object.values(annotations).filter((v) => typeof v === 'string'),
    );
    for (const k of KNOWN_ANNOTATIONS) assert.ok(exported.has(k), `${k} is an exported constant`);
    const source = readFileSync(new URL('../../injector/annotations.ts', import.meta.url), 'utf8');
    const documented = /\*\/\nexport const (\w+) = `\$\{PREFIX\}/g;
    const names = [...source.matchAll(documented)].map((m) => m[1]);
    const declared = [...source.matchAll(/export const (\w+) = `\$\{PREFIX\}/g)].map((m) => m[1]);
    assert.deepEqual(names, declared, 'every key constant sits right under a doc comment');
    assert.equal(declared.length, KNOWN_ANNOTATIONS.length);
  });
});

describe('parseAnnotations: accepted values', () => {
  const cases: {
    name: string;
    annotations: Record<string, string>;
    expected: Partial<PodOptions>;
  }[] = [
    {
      name: 'applies the defaults when only external-secrets is set',
      annotations: {},
      expected: {
        externalSecrets: ['db-creds'],
        mode: 'init+sidecar',
        initFirst: false,
        resources: {},
      },
    },
    {
      name: 'splits, trims and de-duplicates the ExternalSecret names',
      annotations: { [key('external-secrets')]: ' db-creds, api-key ,db-creds' },
      expected: { externalSecrets: ['db-creds', 'api-key'] },
    },
    {
      name: 'accepts init-only mode',
      annotations: { [key('mode')]: 'init-only' },
      expected: { mode: 'init-only' },
    },
    {
      name: 'accepts sidecar-only mode',
      annotations: { [key('mode')]: 'sidecar-only' },
      expected: { mode: 'sidecar-only' },
    },
    {
      name: 'accepts init-first true',
      annotations: { [key('init-first')]: 'true' },
      expected: { initFirst: true },
    },
    {
      name: 'accepts init-first false',
      annotations: { [key('init-first')]: 'false' },
      expected: { initFirst: false },
    },
    {
      name: 'accepts containers and init containers of the pod',
      annotations: { [key('containers')]: 'app, setup' },
      expected: { containers: ['app', 'setup'] },
    },
    {
      name: 'drops a trailing slash from the mount path',
      annotations: { [key('mount-path')]: '/etc/secrets/' },
      expected: { mountPath: '/etc/secrets' },
    },
    {
      name: 'keeps the refresh interval as written',
      annotations: { [key('refresh-interval')]: '1h30m' },
      expected: { refreshInterval: '1h30m' },
    },
    {
      name: 'accepts a log level',
      annotations: { [key('log-level')]: 'debug' },
      expected: { logLevel: 'debug' },
    },
    {
      name: 'accepts resource quantities',
      annotations: {
        [key('agent-cpu-request')]: '0.05',
        [key('agent-cpu-limit')]: '500m',
        [key('agent-memory-request')]: '24Mi',
        [key('agent-memory-limit')]: '64M',
      },
      expected: {
        resources: {
          cpuRequest: '0.05',
          cpuLimit: '500m',
          memoryRequest: '24Mi',
          memoryLimit: '64M',
        },
      },
    },
    {
      name: 'accepts a token audience and the minimum expiration',
      annotations: {
        [key('token-audience')]: 'api://AzureADTokenExchange',
        [key('token-expiration-seconds')]: '600',
      },
      expected: { tokenAudience: 'api://AzureADTokenExchange', tokenExpirationSeconds: 600 },
    },
    {
      name: 'accepts a file mode with or without its leading 0, and the agent uid and gid',
      annotations: {
        [key('file-mode')]: '444',
        [key('run-as-user')]: '1000',
        [key('run-as-group')]: '2147483647',
      },
      expected: { fileMode: 0o444, runAsUser: 1000, runAsGroup: 2_147_483_647 },
    },
    {
      name: 'accepts 0400, the lowest file mode',
      annotations: { [key('file-mode')]: '0400' },
      expected: { fileMode: 0o400 },
    },
    {
      name: 'accepts 0777 as a file mode',
      annotations: { [key('file-mode')]: '0777' },
      expected: { fileMode: 0o777 },
    },
    {
      name: 'accepts its own status value and the inject key as an annotation',
      annotations: { [key('status')]: 'injected', [key('inject')]: 'true' },
      expected: { externalSecrets: ['db-creds'] },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = options(parseAnnotations(podWith(c.annotations)));
      for (const [field, value] of Object.entries(c.expected)) {
        assert.deepEqual(got[field as keyof PodOptions], value, field);
      }
    });
  }

  it('leaves optional settings absent so the injector defaults apply', () => {
    const got = options(parseAnnotations(podWith({})));
    for (const field of [
      'containers',
      'mountPath',
      'refreshInterval',
      'logLevel',
      'tokenAudience',
      'tokenExpirationSeconds',
      'fileMode',
      'runAsUser',
      'runAsGroup',
    ]) {
      assert.ok(!(field in got), field);
    }
  });

  it('ignores annotations outside the prefix', () => {
    options(
      parseAnnotations(
        podWith({ 'vault.hashicorp.com/agent-inject': 'true', 'example.com/x': 'y' }),
      ),
    );
  });
});

describe('parseAnnotations: refusals', () => {
  const cases: {
    name: string;
    annotations: Record<string, string>;
    base?: Record<string, string>;
    field: string;
    message: RegExp;
  }[] = [
    {
      name: 'requires external-secrets',
      annotations: {},
      base: {},
      field: key('external-secrets'),
      message: /is required/,
    },
    {
      name: 'refuses a blank external-secrets',
      annotations: { [key('external-secrets')]: '  ' },
      field: key('external-secrets'),
      message: /is required/,
    },
    {
      name: 'refuses an empty name in the list',
      annotations: { [key('external-secrets')]: 'a,,b' },
      field: key('external-secrets'),
      message: /empty name/,
    },
    {
      name: 'refuses names that are not object names',
      annotations: { [key('external-secrets')]: 'db_creds,Upper' },
      field: key('external-secrets'),
      message: /"db_creds", "Upper"/,
    },
    {
      name: 'refuses an unknown mode',
      annotations: { [key('mode')]: 'sidecar' },
      field: key('mode'),
      message: /one of init\+sidecar, init-only, sidecar-only, got "sidecar"/,
    },
    {
      name: 'refuses init-first other than true or false',
      annotations: { [key('init-first')]: 'yes' },
      field: key('init-first'),
      message: /expected "true" or "false", got "yes"/,
    },
    {
      name: 'refuses a container the pod does not have',
      annotations: { [key('containers')]: 'app,ghost' },
      field: key('containers'),
      message: /"ghost", not a container .*\(it has: setup, app, worker\)/,
    },
    {
      name: 'refuses an empty container list',
      annotations: { [key('containers')]: '' },
      field: key('containers'),
      message: /comma-separated list/,
    },
    {
      name: 'refuses a relative mount path',
      annotations: { [key('mount-path')]: 'run/secrets' },
      field: key('mount-path'),
      message: /absolute path/,
    },
    {
      name: 'refuses / as mount path',
      annotations: { [key('mount-path')]: '/' },
      field: key('mount-path'),
      message: /absolute path other than \//,
    },
    {
      name: 'refuses .. in a mount path',
      annotations: { [key('mount-path')]: '/run/../etc' },
      field: key('mount-path'),
      message: /normalised/,
    },
    {
      name: 'refuses a colon in a mount path',
      annotations: { [key('mount-path')]: '/run/a:b' },
      field: key('mount-path'),
      message: /colons/,
    },
    {
      name: 'refuses a duration without a unit',
      annotations: { [key('refresh-interval')]: '60' },
      field: key('refresh-interval'),
      message: /Go duration/,
    },
    {
      name: 'refuses a refresh interval under a second',
      annotations: { [key('refresh-interval')]: '500ms' },
      field: key('refresh-interval'),
      message: /at least 1s/,
    },
    {
      name: 'points to init-only for a zero refresh interval',
      annotations: { [key('refresh-interval')]: '0' },
      field: key('refresh-interval'),
      message: /set mode init-only/,
    },
    {
      name: 'refuses an unknown log level',
      annotations: { [key('log-level')]: 'trace' },
      field: key('log-level'),
      message: /debug, info, warn, error/,
    },
    {
      name: 'refuses a CPU request that is not a quantity',
      annotations: { [key('agent-cpu-request')]: 'ten' },
      field: key('agent-cpu-request'),
      message: /such as 10m or 0.5, got "ten"/,
    },
    {
      name: 'refuses a negative CPU limit',
      annotations: { [key('agent-cpu-limit')]: '-1' },
      field: key('agent-cpu-limit'),
      message: /positive/,
    },
    {
      name: 'refuses a zero memory limit',
      annotations: { [key('agent-memory-limit')]: '0' },
      field: key('agent-memory-limit'),
      message: /positive/,
    },
    {
      name: 'explains memory in thousandths',
      annotations: { [key('agent-memory-request')]: '128m' },
      field: key('agent-memory-request'),
      message: /did you mean 128Mi\?/,
    },
    {
      name: 'refuses a CPU request above the CPU limit',
      annotations: { [key('agent-cpu-request')]: '1', [key('agent-cpu-limit')]: '500m' },
      field: key('agent-cpu-request'),
      message: /1 is more than .*agent-cpu-limit 500m/,
    },
    {
      name: 'refuses a memory request above the memory limit',
      annotations: { [key('agent-memory-request')]: '24Mi', [key('agent-memory-limit')]: '16Mi' },
      field: key('agent-memory-request'),
      message: /24Mi is more than .*agent-memory-limit 16Mi/,
    },
    {
      name: 'refuses two audiences',
      annotations: { [key('token-audience')]: 'a,b' },
      field: key('token-audience'),
      message: /one audience/,
    },
    {
      name: 'refuses an empty audience',
      annotations: { [key('token-audience')]: '' },
      field: key('token-audience'),
      message: /one audience/,
    },
    {
      name: 'refuses a token expiration under 600',
      annotations: { [key('token-expiration-seconds')]: '599' },
      field: key('token-expiration-seconds'),
      message: /from 600 to 86400, got "599"/,
    },
    {
      name: 'refuses a token expiration that is not a number',
      annotations: { [key('token-expiration-seconds')]: '1h' },
      field: key('token-expiration-seconds'),
      message: /whole number/,
    },
    {
      name: 'refuses a token expiration over a day',
      annotations: { [key('token-expiration-seconds')]: '86401' },
      field: key('token-expiration-seconds'),
      message: /86400/,
    },
    {
      name: 'refuses a decimal-looking file mode',
      annotations: { [key('file-mode')]: '0448' },
      field: key('file-mode'),
      message: /octal file mode from 0400 to 0777/,
    },
    {
      name: 'refuses a file mode the agent could not read back',
      annotations: { [key('file-mode')]: '0044' },
      field: key('file-mode'),
      message: /from 0400 to 0777 such as 0440, got "0044"/,
    },
    {
      name: 'refuses a file mode with setuid bits',
      annotations: { [key('file-mode')]: '4755' },
      field: key('file-mode'),
      message: /from 0400 to 0777/,
    },
    {
      name: 'refuses run-as-user 0',
      annotations: { [key('run-as-user')]: '0' },
      field: key('run-as-user'),
      message: /expected a uid from 1 to 2147483647 \(the agent never runs as root\), got "0"/,
    },
    {
      name: 'refuses a run-as-user name',
      annotations: { [key('run-as-user')]: 'nobody' },
      field: key('run-as-user'),
      message: /expected a uid/,
    },
    {
      name: 'refuses a run-as-group with a sign',
      annotations: { [key('run-as-group')]: '+100' },
      field: key('run-as-group'),
      message: /expected a gid from 1/,
    },
    {
      name: 'refuses a status it did not set',
      annotations: { [key('status')]: 'skip' },
      field: key('status'),
      message: /set by the injector/,
    },
    {
      name: 'refuses an unknown key under the prefix',
      annotations: { [key('mount-pth')]: '/x' },
      field: key('mount-pth'),
      message: /unknown annotation; known under agent.external-secrets.io\/: external-secrets, .*mount-path/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const result = parseAnnotations(podWith(c.annotations, c.base));
      if (result.ok) assert.fail('expected a problem');
      assert.deepEqual(
        result.problems.map((p) => p.field),
        [c.field],
      );
      assert.match(result.problems[0]!.message, c.message);
    });
  }

  it('reports every problem at once', () => {
    const result = parseAnnotations(
      podWith(
        { [key('mode')]: 'x', [key('log-level')]: 'y', [key('token-expiration-seconds')]: '1' },
        {},
      ),
    );
    if (result.ok) assert.fail('expected problems');
    assert.deepEqual(result.problems.map((p) => p.field).sort(), [
      key('external-secrets'),
      key('log-level'),
      key('mode'),
      key('token-expiration-seconds'),
    ]);
  });

  it('cuts a long bad value short in its message', () => {
    const result = parseAnnotations(podWith({ [key('mode')]: 'x'.repeat(500) }));
    if (result.ok) assert.fail('expected a problem');
    assert.ok(result.problems[0]!.message.length < 200);
  });
});
