import { inClusterOptions } from '../../agent/kube-client.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeSettings, loadConfig } from '../../agent/config.ts';
import { ConfigError } from '../../agent/errors.ts';

const base = {
  ESA_POD_NAME: 'app-1',
  ESA_POD_NAMESPACE: 'prod',
  ESA_EXTERNAL_SECRETS: 'database, db-connection-string,database',
  ESA_OUTPUT_DIR: '/run/esa',
};

describe('loadConfig', () => {
  it('reads the injector contract and fills in defaults', () => {
    const c = loadConfig(base);
    assert.deepEqual(c.externalSecrets, ['database', 'db-connection-string']);
    assert.equal(c.serviceAccount, 'default');
    assert.equal(c.refreshInterval, undefined);
    assert.equal(c.fileMode, 0o440);
    assert.equal(c.readyFile, '/run/esa/..ready');
    assert.equal(c.terminationLog, '/dev/termination-log');
    assert.equal(c.kubeTokenFile, '/var/run/secrets/kubernetes.io/serviceaccount/token');
    assert.ok(Object.isFrozen(c));
  });

  it('takes the file mode and the provider token file the injector sets', () => {
    const c = loadConfig({
      ...base,
      ESA_FILE_MODE: '0444',
      ESA_PROVIDER_TOKEN_FILE: '/var/run/secrets/external-secrets-agent/provider-token',
    });
    assert.equal(c.fileMode, 0o444);
    assert.equal(c.providerTokenFile, '/var/run/secrets/external-secrets-agent/provider-token');
    assert.equal(loadConfig(base).providerTokenFile, '');
  });

  it('takes ESA_ON_CHANGE as an HTTP call or a signal, and none by default', () => {
    assert.equal(loadConfig(base).onChange, undefined);
    assert.deepEqual(loadConfig({ ...base, ESA_ON_CHANGE: 'http:8080/-/reload' }).onChange, {
      kind: 'http',
      port: 8080,
      path: '/-/reload',
    });
    assert.deepEqual(loadConfig({ ...base, ESA_ON_CHANGE: 'signal:SIGHUP:nginx' }).onChange, {
      kind: 'signal',
      signal: 'SIGHUP',
      processName: 'nginx',
    });
  });

  it('takes ESA_REFRESH_INTERVAL as a Go duration, "0" included', () => {
    assert.equal(loadConfig({ ...base, ESA_REFRESH_INTERVAL: '1h30m' }).refreshInterval, 5_400_000);
    assert.equal(loadConfig({ ...base, ESA_REFRESH_INTERVAL: '0' }).refreshInterval, 0);
  });

  const bad = [
    { name: 'a missing pod name', env: { ...base, ESA_POD_NAME: '' }, variable: 'ESA_POD_NAME' },
    {
      name: 'a missing output folder',
      env: { ...base, ESA_OUTPUT_DIR: undefined },
      variable: 'ESA_OUTPUT_DIR',
    },
    {
      name: 'an empty ExternalSecret list',
      env: { ...base, ESA_EXTERNAL_SECRETS: ' , ' },
      variable: 'ESA_EXTERNAL_SECRETS',
    },
    {
      name: 'an invalid ExternalSecret name',
      env: { ...base, ESA_EXTERNAL_SECRETS: 'Bad_Name' },
      variable: 'ESA_EXTERNAL_SECRETS',
    },
    {
      name: 'a malformed refresh interval',
      env: { ...base, ESA_REFRESH_INTERVAL: 'hourly' },
      variable: 'ESA_REFRESH_INTERVAL',
    },
    {
      name: 'a file mode that is not octal',
      env: { ...base, ESA_FILE_MODE: '644x' },
      variable: 'ESA_FILE_MODE',
    },
    {
      name: 'a file mode the agent itself could not read back',
      env: { ...base, ESA_FILE_MODE: '0044' },
      variable: 'ESA_FILE_MODE',
    },
    { name: 'an unknown log level', env: { ...base, ESA_LOG_LEVEL: 'banana' }, variable: 'ESA_LOG_LEVEL' },
    { name: 'a zero sync timeout', env: { ...base, ESA_SYNC_TIMEOUT: '0' }, variable: 'ESA_SYNC_TIMEOUT' },
    { name: 'a zero first retry', env: { ...base, ESA_RETRY_INITIAL: '0s' }, variable: 'ESA_RETRY_INITIAL' },
    { name: 'a relative output folder', env: { ...base, ESA_OUTPUT_DIR: 'rel' }, variable: 'ESA_OUTPUT_DIR' },
    { name: 'a relative token file', env: { ...base, ESA_KUBE_TOKEN_FILE: 'token' }, variable: 'ESA_KUBE_TOKEN_FILE' },
    {
      name: 'an on-change value outside the grammar',
      env: { ...base, ESA_ON_CHANGE: 'exec:/bin/reload' },
      variable: 'ESA_ON_CHANGE',
    },
    {
      name: 'an on-change port out of range',
      env: { ...base, ESA_ON_CHANGE: 'http:70000/reload' },
      variable: 'ESA_ON_CHANGE',
    },
    {
      name: 'an on-change signal not on the list',
      env: { ...base, ESA_ON_CHANGE: 'signal:SIGKILL:nginx' },
      variable: 'ESA_ON_CHANGE',
    },
    {
      name: 'a relative termination log',
      env: { ...base, ESA_TERMINATION_LOG: 'term.log' },
      variable: 'ESA_TERMINATION_LOG',
    },
  ];
  for (const c of bad) {
    it(`names ${c.variable} for ${c.name}`, () => {
      assert.throws(
        () => loadConfig(c.env),
        (err: Error) => err instanceof ConfigError && err.message.startsWith(c.variable),
      );
    });
  }

  it('lists every setting with its variable for --help', () => {
    assert.match(describeSettings(), /ESA_EXTERNAL_SECRETS/);
    assert.match(describeSettings(), /ESA_REFRESH_INTERVAL/);
    assert.match(describeSettings(), /ESA_PROVIDER_TOKEN_FILE/);
    assert.doesNotMatch(describeSettings(), /ESA_AWS_TOKEN_FILE/);
  });
});

describe('inClusterOptions', () => {
  it('names KUBERNETES_SERVICE_PORT when it is not a port number', () => {
    assert.throws(
      () => inClusterOptions({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: 'abc' }),
      (err: Error) => err instanceof ConfigError && err.message.startsWith('KUBERNETES_SERVICE_PORT'),
    );
  });
});

describe('ESA_METRICS_ADDRESS', () => {
  it('is off by default and takes host:port, IPv6 in brackets', () => {
    assert.equal(loadConfig(base).metricsAddress, undefined);
    assert.deepEqual(loadConfig({ ...base, ESA_METRICS_ADDRESS: '0.0.0.0:9090' }).metricsAddress, {
      host: '0.0.0.0',
      port: 9090,
    });
    assert.deepEqual(loadConfig({ ...base, ESA_METRICS_ADDRESS: '[::]:9090' }).metricsAddress, {
      host: '::',
      port: 9090,
    });
  });

  const bad = ['9090', ':9090', '0.0.0.0:0', '0.0.0.0:65536', '0.0.0.0:http', 'a b:1'];
  for (const value of bad) {
    it(`refuses "${value}", naming the variable`, () => {
      assert.throws(
        () => loadConfig({ ...base, ESA_METRICS_ADDRESS: value }),
        (err: unknown) =>
          err instanceof ConfigError &&
          /^ESA_METRICS_ADDRESS: expected host:port/.test(err.message),
      );
    });
  }
});
