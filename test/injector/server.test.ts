import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { createLogger } from '../../agent/log.ts';
import { DEFAULT_INJECTOR_SETTINGS, type InjectorSettings } from '../../injector/mutate.ts';
import type { Pod } from '../../injector/pod.ts';
import { type InjectorServer, MAX_BODY_BYTES, startInjectorServer } from '../../injector/server.ts';
import { applyPatch, type PatchOp } from '../helpers/json-patch.ts';

const settings: InjectorSettings = { ...DEFAULT_INJECTOR_SETTINGS, agentImage: 'esa:test' };

interface Cert {
  cert: string;
  key: string;
}

/** A self-signed certificate for 127.0.0.1, made with the openssl CLI in a temp folder. */
function selfSigned(dir: string, name: string): Cert {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.crt`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

function fixture(name: string): Pod {
  return JSON.parse(
    readFileSync(new URL(`../fixtures/pods/${name}.json`, import.meta.url), 'utf8'),
  );
}

function review(object: unknown, request: Record<string, unknown> = {}) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      name: (object as Pod).metadata?.name ?? '',
      namespace: 'team-a',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:job-controller' },
      object,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
      ...request,
    },
  };
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The certificate's subject CN the server presented. */
  servedCn: string;
}

describe('injector server', () => {
  let dir: string;
  let certs: { first: Cert; second: Cert };
  let server: InjectorServer;
  const logs: string[] = [];

  function call(
    method: string,
    urlPath: string,
    body?: string | Buffer,
    ca = certs.first.cert,
  ): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: server.port,
          method,
          path: urlPath,
          ca,
          agent: false,
          headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const peer = (res.socket as tls.TLSSocket).getPeerCertificate?.();
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              text: Buffer.concat(chunks).toString(),
              servedCn: String(peer?.subject?.CN ?? ''),
            });
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  async function mutateOverHttp(object: unknown, request: Record<string, unknown> = {}) {
    const reply = await call('POST', '/mutate', JSON.stringify(review(object, request)));
    assert.equal(reply.status, 200, reply.text);
    assert.match(String(reply.headers['content-type']), /application\/json/);
    const out = JSON.parse(reply.text) as {
      apiVersion: string;
      kind: string;
      response: {
        uid: string;
        allowed: boolean;
        patchType?: string;
        patch?: string;
        warnings?: string[];
        status?: { code: number; message: string };
      };
    };
    assert.equal(out.apiVersion, 'admission.k8s.io/v1');
    assert.equal(out.kind, 'AdmissionReview');
    assert.equal(out.response.uid, '705ab4f5-6393-11e8-b7cc-42010a800002');
    return out.response;
  }

  function decodePatch(patch: string | undefined): PatchOp[] {
    assert.ok(patch, 'a patch is returned');
    return JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) as PatchOp[];
  }

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'esa-injector-test-'));
    certs = { first: selfSigned(dir, 'first'), second: selfSigned(dir, 'second') };
    server = await startInjectorServer({
      port: 0,
      host: '127.0.0.1',
      certPem: certs.first.cert,
      keyPem: certs.first.key,
      settings,
      log: createLogger('debug', { component: 'injector' }, (line) => logs.push(line)),
    });
  });

  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('injects a Job pod and returns a JSON Patch that applies', async () => {
    const pod = fixture('i01-job-pod');
    const response = await mutateOverHttp(pod);
    assert.equal(response.allowed, true);
    assert.equal(response.patchType, 'JSONPatch');
    const out = applyPatch(pod, decodePatch(response.patch));
    assert.deepEqual(
      out.spec!.containers.map((c) => c.name),
      ['migrate'],
    );
    assert.deepEqual(
      out.spec!.initContainers?.map((c) => c.name),
      ['inject-init', 'inject-sidecar'],
    );
  });

  it('answers a dry-run review for a generateName pod with the same patch (I04)', async () => {
    const pod = fixture('i04-generate-name');
    const normal = await mutateOverHttp(pod, { name: '' });
    const dryRun = await mutateOverHttp(pod, { name: '', dryRun: true });
    assert.equal(dryRun.allowed, true);
    assert.deepEqual(decodePatch(dryRun.patch), decodePatch(normal.patch));
  });

  it('takes the namespace from the request when the pod has none', async () => {
    const pod = fixture('i06-restricted');
    delete pod.metadata!.namespace;
    pod.spec!.os = { name: 'windows' };
    const response = await mutateOverHttp(pod, { namespace: 'locked' });
    assert.match(response.status?.message ?? '', /pod locked\/strict/);
  });

  it('allows an already injected pod without a patch', async () => {
    const pod = fixture('i08-automount-false');
    const injected = applyPatch(pod, decodePatch((await mutateOverHttp(pod)).patch));
    const response = await mutateOverHttp(injected);
    assert.deepEqual(response, { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true });
  });

  it('refuses a pod mutate refuses, naming the field', async () => {
    const pod = fixture('i06-restricted');
    pod.spec!.nodeSelector = { 'kubernetes.io/os': 'windows' };
    const response = await mutateOverHttp(pod);
    assert.equal(response.allowed, false);
    assert.equal(response.status?.code, 400);
    assert.match(response.status?.message ?? '', /spec.nodeSelector\["kubernetes.io\/os"\]/);
    assert.equal(response.patch, undefined);
  });

  it('passes mutate warnings on to the API server', async () => {
    const pod = fixture('mesh-sidecar-pod');
    const response = await mutateOverHttp(pod);
    assert.ok(response.warnings?.some((w) => /subPath/.test(w)));
  });

  it('allows a non-CREATE operation without a patch', async () => {
    const response = await mutateOverHttp(fixture('i01-job-pod'), { operation: 'UPDATE' });
    assert.deepEqual(response, { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true });
  });

  const badRequests: { name: string; body: string | Buffer; message: RegExp }[] = [
    { name: 'rejects a body that is not JSON', body: '{"apiVersion": ', message: /not JSON/ },
    { name: 'rejects an empty body', body: '', message: /not JSON/ },
    {
      name: 'rejects JSON that is not an AdmissionReview',
      body: '[1,2]',
      message: /expected an AdmissionReview/,
    },
    { name: 'rejects JSON null', body: 'null', message: /expected an AdmissionReview/ },
    {
      name: 'rejects AdmissionReview v1beta1',
      body: JSON.stringify({
        ...review(fixture('i04-generate-name')),
        apiVersion: 'admission.k8s.io/v1beta1',
      }),
      message: /apiVersion admission.k8s.io\/v1, got "admission.k8s.io\/v1beta1"/,
    },
    {
      name: 'rejects a review without request.uid',
      body: JSON.stringify({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {},
      }),
      message: /request.uid/,
    },
    {
      name: 'rejects a non-Pod object',
      body: JSON.stringify(
        review(
          { apiVersion: 'apps/v1', kind: 'Deployment' },
          { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } },
        ),
      ),
      message: /mutates Pods only; got apps\/Deployment/,
    },
    {
      name: 'rejects a Pod review whose object has no containers',
      body: JSON.stringify(review({ metadata: { name: 'x' }, spec: {} })),
      message: /Pod with spec.containers/,
    },
  ];
  for (const c of badRequests) {
    it(`${c.name} with HTTP 400 and a clear message`, async () => {
      const reply = await call('POST', '/mutate', c.body);
      assert.equal(reply.status, 400);
      assert.match(reply.text, c.message);
    });
  }

  it('rejects a body over the size limit with HTTP 413', async () => {
    const reply = await call('POST', '/mutate', Buffer.alloc(MAX_BODY_BYTES + 1, 0x20));
    assert.equal(reply.status, 413);
  });

  it('answers GET /mutate with 405 and unknown paths with 404', async () => {
    const get = await call('GET', '/mutate');
    assert.equal(get.status, 405);
    assert.equal(get.headers.allow, 'POST');
    assert.equal((await call('GET', '/nope')).status, 404);
  });

  it('serves /healthz and /readyz', async () => {
    assert.deepEqual(
      [(await call('GET', '/healthz')).status, (await call('GET', '/readyz')).status],
      [200, 200],
    );
  });

  it('keeps serving after garbage, down to a malformed request line and a plain-HTTP client', async () => {
    await call('POST', '/mutate', '\u0000\u0001garbage');
    await new Promise<void>((resolve) => {
      const socket = tls.connect(
        { host: '127.0.0.1', port: server.port, ca: certs.first.cert },
        () => {
          socket.end('NOT HTTP AT ALL\r\n\r\n');
        },
      );
      socket.on('error', () => resolve());
      socket.on('close', () => resolve());
      socket.resume();
    });
    await new Promise<void>((resolve) => {
      const socket = net.connect(server.port, '127.0.0.1', () =>
        socket.end('GET /healthz HTTP/1.1\r\n\r\n'),
      );
      socket.on('error', () => resolve());
      socket.on('close', () => resolve());
      socket.resume();
    });
    const response = await mutateOverHttp(fixture('i02-init-first'));
    assert.equal(response.allowed, true);
  });

  it('logs one JSON line per review with the pod and never the pod spec', () => {
    const lines = logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.length > 0);
    for (const line of lines) assert.equal(line.component, 'injector');
    const injected = lines.find((l) => l.msg === 'pod injected');
    assert.equal(injected?.pod, 'team-a/migrate-<generated>');
    const all = logs.join('\n');
    for (const leak of [
      'busybox',
      'test -s',
      'db-migrate',
      'esa:test',
      'ESA_POD_NAME',
      'kube-system:job-controller',
    ]) {
      assert.ok(!all.includes(leak), `logs do not contain ${leak}`);
    }
  });

  it('serves a new certificate after updateCertificate', async () => {
    assert.equal((await call('GET', '/healthz')).servedCn, 'first');
    server.updateCertificate(certs.second.cert, certs.second.key);
    const reply = await call('GET', '/healthz', undefined, certs.second.cert);
    assert.equal(reply.servedCn, 'second');
    server.updateCertificate(certs.first.cert, certs.first.key);
  });

  it('keeps the current certificate when updateCertificate is given a key that does not match', async () => {
    assert.throws(() => server.updateCertificate(certs.second.cert, certs.first.key));
    assert.equal((await call('GET', '/healthz')).servedCn, 'first');
  });

  /** GET /metrics as `name{labels}` → value. */
  async function scrape(): Promise<Map<string, number>> {
    const reply = await call('GET', '/metrics');
    assert.equal(reply.status, 200);
    assert.match(String(reply.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    return new Map(
      reply.text
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#'))
        .map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]),
    );
  }

  it('counts each review on /metrics by result, with its latency, and injections by namespace', async () => {
    const before = await scrape();
    await mutateOverHttp(fixture('i01-job-pod'));
    await mutateOverHttp(fixture('i01-job-pod'), { operation: 'UPDATE' });
    const refused = fixture('i02-init-first');
    refused.metadata!.annotations!['agent.external-secrets.io/mode'] = 'bogus';
    await mutateOverHttp(refused);
    await call('POST', '/mutate', 'not json');
    await call('GET', '/mutate');
    await call('GET', '/healthz'); // not a review: not counted
    const after = await scrape();

    const delta = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
    const reviews = (result: string) => delta(`esa_injector_admission_reviews_total{result="${result}"}`);
    assert.deepEqual(
      ['injected', 'unchanged', 'refused', 'bad_request', 'error'].map(reviews),
      [1, 1, 1, 2, 0],
    );
    assert.equal(delta('esa_injector_admission_review_duration_seconds_count'), 5);
    assert.equal(delta('esa_injector_admission_review_duration_seconds_bucket{le="+Inf"}'), 5);
    assert.equal(delta('esa_injector_injections_total{namespace="team-a"}'), 1);
  });

  it('names no pod in /metrics, and reports the expiry of the certificate being served', async () => {
    const reply = await call('GET', '/metrics');
    for (const podName of ['migrate', 'api', 'batch-worker']) {
      assert.doesNotMatch(reply.text, new RegExp(`"${podName}`), `no label value starts with ${podName}`);
    }
    const expiry = /^esa_injector_serving_certificate_not_after_seconds (\d+)$/m.exec(reply.text);
    assert.ok(expiry, 'the expiry gauge is there');
    const notAfter = new Date(new X509Certificate(certs.first.cert).validTo).getTime() / 1000;
    assert.equal(Number(expiry[1]), notAfter);
  });
});
