import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../agent/errors.ts';
import { parseInjectorConfig, settingsHelp } from '../../injector/config.ts';

const image = { ESA_AGENT_IMAGE: 'esa:1' };

describe('parseInjectorConfig', () => {
  it('applies the defaults when only the agent image is set', () => {
    const config = parseInjectorConfig([], image);
    assert.equal(config.port, 8443);
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.logLevel, 'info');
    assert.deepEqual(config.settings, {
      agentImage: 'esa:1',
      imagePullPolicy: 'IfNotPresent',
      hasNativeSidecars: true,
      resources: { requests: { cpu: '10m', memory: '48Mi' }, limits: { memory: '128Mi' } },
      mountPath: '/run/secrets/inject',
      tokenAudience: 'sts.amazonaws.com',
      tokenExpirationSeconds: 3600,
      logLevel: 'info',
      agentUid: 65532,
    });
    assert.ok(Object.isFrozen(config.settings.resources.requests));
  });

  it('prefers a flag over its environment variable', () => {
    const config = parseInjectorConfig(['--port=9443', '--native-sidecars', 'false'], {
      ...image,
      ESA_INJECTOR_PORT: '7443',
      ESA_NATIVE_SIDECARS: 'true',
    });
    assert.equal(config.port, 9443);
    assert.equal(config.settings.hasNativeSidecars, false);
  });

  it('reads every agent default from the environment', () => {
    const config = parseInjectorConfig([], {
      ...image,
      ESA_AGENT_CPU_LIMIT: '1',
      ESA_AGENT_MEMORY_LIMIT: '',
      ESA_TOKEN_AUDIENCE: '',
      ESA_MOUNT_PATH: '/etc/secrets/',
      ESA_AGENT_LOG_LEVEL: 'debug',
    });
    assert.deepEqual(config.settings.resources.limits, { cpu: '1' });
    assert.equal(config.settings.tokenAudience, undefined);
    assert.equal(config.settings.mountPath, '/etc/secrets');
    assert.equal(config.settings.logLevel, 'debug');
  });

  const bad: { name: string; args?: string[]; env: Record<string, string>; message: RegExp }[] = [
    { name: 'requires the agent image', env: {}, message: /--agent-image \(\$ESA_AGENT_IMAGE\)/ },
    {
      name: 'refuses a port out of range',
      env: { ...image, ESA_INJECTOR_PORT: '70000' },
      message: /--port \(\$ESA_INJECTOR_PORT\): expected a port number 0-65535, got "70000"/,
    },
    {
      name: 'refuses a native-sidecars value other than true or false',
      args: ['--native-sidecars=yes'],
      env: image,
      message: /--native-sidecars .* expected true or false/,
    },
    {
      name: 'refuses a default request above the default limit',
      env: { ...image, ESA_AGENT_MEMORY_REQUEST: '256Mi' },
      message: /--agent-memory-request .* at most the memory limit 128Mi/,
    },
    {
      name: 'refuses a token lifetime under ten minutes',
      env: { ...image, ESA_TOKEN_EXPIRATION_SECONDS: '60' },
      message: /--token-expiration-seconds/,
    },
    { name: 'refuses an unknown flag', args: ['--prot=1'], env: image, message: /prot/ },
    {
      name: 'refuses a relative mount path',
      env: { ...image, ESA_MOUNT_PATH: 'secrets' },
      message: /--mount-path/,
    },
  ];
  for (const c of bad) {
    it(c.name, () => {
      assert.throws(
        () => parseInjectorConfig(c.args ?? [], c.env),
        (err: unknown) => err instanceof ConfigError && c.message.test(err.message),
      );
    });
  }

  it('reports every bad setting at once', () => {
    assert.throws(
      () => parseInjectorConfig(['--log-level=loud'], { ESA_INJECTOR_PORT: 'x' }),
      (err: Error) =>
        /--port/.test(err.message) &&
        /--log-level/.test(err.message) &&
        /--agent-image/.test(err.message),
    );
  });
});

describe('parseInjectorConfig: self-managed TLS', () => {
  const names = [
    '--webhook-config-name=esa-injector',
    '--tls-secret-name=esa-injector-tls',
    '--tls-service-name=esa-injector',
  ];

  it('is off unless asked for', () => {
    assert.equal(parseInjectorConfig([], image).selfManagedTls, undefined);
    assert.equal(parseInjectorConfig(['--tls-self-managed=false'], image).selfManagedTls, undefined);
  });

  it('reads its settings from flags, a bare --tls-self-managed meaning true', () => {
    const config = parseInjectorConfig(
      ['--tls-self-managed', ...names, '--tls-extra-hosts', 'esa.example, 127.0.0.1,::1'],
      image,
    );
    assert.deepEqual(config.selfManagedTls, {
      webhookConfigName: 'esa-injector',
      secretName: 'esa-injector-tls',
      secretNamespace: undefined,
      serviceName: 'esa-injector',
      extraHosts: ['esa.example', '127.0.0.1', '::1'],
    });
  });

  it('reads its settings from the environment', () => {
    const config = parseInjectorConfig([], {
      ...image,
      ESA_TLS_SELF_MANAGED: 'true',
      ESA_WEBHOOK_CONFIG_NAME: 'hooks',
      ESA_TLS_SECRET_NAME: 'tls',
      ESA_TLS_SECRET_NAMESPACE: 'esa-system',
      ESA_TLS_SERVICE_NAME: 'svc',
    });
    assert.equal(config.selfManagedTls?.secretNamespace, 'esa-system');
    assert.equal(config.selfManagedTls?.webhookConfigName, 'hooks');
  });

  it('takes a bare --tls-self-managed before another flag, and an explicit value after it', () => {
    const on = parseInjectorConfig(['--tls-self-managed', '--port=1', ...names], image);
    assert.ok(on.selfManagedTls);
    assert.equal(on.port, 1);
    const off = parseInjectorConfig(['--tls-self-managed', 'false'], image);
    assert.equal(off.selfManagedTls, undefined);
  });

  const bad = [
    {
      name: 'names every setting self-managed TLS needs',
      args: ['--tls-self-managed'],
      message: /--webhook-config-name .*required with --tls-self-managed.*--tls-secret-name .*--tls-service-name/,
    },
    { name: 'refuses a switch value other than true or false', args: ['--tls-self-managed=yes'], message: /--tls-self-managed \(\$ESA_TLS_SELF_MANAGED\): expected true or false/ },
    { name: 'refuses a Service name that is not a DNS label', args: ['--tls-self-managed', ...names, '--tls-service-name=Esa_Injector'], message: /--tls-service-name/ },
    { name: 'refuses a namespace that is not a DNS label', args: ['--tls-self-managed', ...names, '--tls-secret-namespace=a.b'], message: /--tls-secret-namespace/ },
    { name: 'refuses an extra host that is neither a name nor an address', args: ['--tls-self-managed', ...names, '--tls-extra-hosts=a b'], message: /--tls-extra-hosts .*DNS names or IP addresses/ },
  ];
  for (const c of bad) {
    it(c.name, () => {
      assert.throws(
        () => parseInjectorConfig(c.args, image),
        (err: unknown) => err instanceof ConfigError && c.message.test(err.message),
      );
    });
  }

  it('lists the TLS settings in --help with their variables', () => {
    const help = settingsHelp();
    for (const flag of ['tls-self-managed', 'webhook-config-name', 'tls-secret-name', 'tls-secret-namespace', 'tls-service-name', 'tls-extra-hosts']) {
      assert.match(help, new RegExp(`--${flag} +\\$ESA_`));
    }
  });
});

describe('external-secrets-agent injector (CLI)', () => {
  it('serves /healthz on loopback and exits 0 on SIGTERM', { timeout: 20_000 }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'esa-injector-cli-'));
    const cert = path.join(dir, 'tls.crt');
    const key = path.join(dir, 'tls.key');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
        .concat(['-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'])
        .concat(['-addext', 'subjectAltName=IP:127.0.0.1']),
      { stdio: 'ignore' },
    );
    const cli = fileURLToPath(new URL('../../cli.ts', import.meta.url));
    const child = spawn(
      process.execPath,
      [
        cli,
        'injector',
        '--host=127.0.0.1',
        '--port=0',
        `--tls-cert-file=${cert}`,
        `--tls-key-file=${key}`,
      ],
      {
        env: { PATH: process.env.PATH, ESA_AGENT_IMAGE: 'esa:test' },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    try {
      let stderr = '';
      const port = await new Promise<number>((resolve, reject) => {
        child.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
          const match = /"msg":"injector listening".*"address":"127\.0\.0\.1:(\d+)"/.exec(stderr);
          if (match) resolve(Number(match[1]));
        });
        child.on('exit', (code) => reject(new Error(`injector exited ${code}: ${stderr}`)));
      });
      const status = await new Promise<number>((resolve, reject) => {
        https
          .get(
            { host: '127.0.0.1', port, path: '/healthz', ca: readFileSync(cert), agent: false },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          )
          .on('error', reject);
      });
      assert.equal(status, 200);

      const exited = new Promise<number | null>((resolve) =>
        child.on('exit', (code) => resolve(code)),
      );
      process.kill(child.pid!, 'SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
