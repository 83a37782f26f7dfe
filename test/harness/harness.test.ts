/**
 * Self-test of the test harness: the real control plane does what the product's tests rely on
 * (pod-bound tokens, TokenReview, an audit trail), and the kubelet stand-in runs an agent
 * container with the pod's own identity. The CRDs, the samples read back through the other
 * version and the printer columns are checked on the same control plane by
 * test/crds/crds-live.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { auditEvents, createNamespace, useControlPlane, type ControlPlane } from './control-plane.ts';
import { runPod } from './kubelet.ts';
import { waitFor } from './processes.ts';

describe('test harness', () => {
  let cp: ControlPlane;
  let core: k8s.CoreV1Api;

  before(async () => {
    cp = await useControlPlane();
    core = cp.kubeConfig.makeApiClient(k8s.CoreV1Api);
  });
  after(async () => cp?.stop());

  it('serves a real API server that answers as version 1.36', async () => {
    const version = await cp.kubeConfig.makeApiClient(k8s.VersionApi).getCode();
    assert.equal(version.major, '1');
    assert.equal(version.minor, '36');
  });

  it('issues a pod-bound token through TokenRequest that TokenReview accepts until the pod is gone', async () => {
    await createNamespace(cp, 'harness-token');
    await core.createNamespacedServiceAccount({ namespace: 'harness-token', body: { metadata: { name: 'app' } } });
    const pod = await core.createNamespacedPod({
      namespace: 'harness-token',
      body: { metadata: { name: 'app' }, spec: { serviceAccountName: 'app', containers: [{ name: 'app', image: 'app:1' }] } },
    });
    const request = await core.createNamespacedServiceAccountToken({
      namespace: 'harness-token',
      name: 'app',
      body: { spec: { audiences: ['sts.amazonaws.com'], expirationSeconds: 600,
        boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: 'app', uid: pod.metadata!.uid! } } },
    });
    const token = request.status!.token!;

    const auth = cp.kubeConfig.makeApiClient(k8s.AuthenticationV1Api);
    const review = async (audiences: string[]) =>
      (await auth.createTokenReview({ body: { spec: { token, audiences } } })).status!;

    const ok = await review(['sts.amazonaws.com']);
    assert.equal(ok.authenticated, true, ok.error);
    assert.equal(ok.user?.username, 'system:serviceaccount:harness-token:app');
    assert.deepEqual(ok.user?.extra?.['authentication.kubernetes.io/pod-name'], ['app']);
    assert.deepEqual(ok.user?.extra?.['authentication.kubernetes.io/pod-uid'], [pod.metadata!.uid]);

    const wrongAudience = await review(['vault']);
    assert.notEqual(wrongAudience.authenticated, true, 'a token for sts.amazonaws.com is refused for audience vault');

    // NOTE: the API server caches successful token authentications for about 10 s, so the
    // refusal of a token whose pod is gone shows up within that window, not at once.
    await core.deleteNamespacedPod({ namespace: 'harness-token', name: 'app', gracePeriodSeconds: 0 });
    await waitFor('TokenReview to refuse the token of a deleted pod',
      async () => (await review(['sts.amazonaws.com'])).authenticated !== true,
      { timeoutMs: 30_000, intervalMs: 1_000 });
  });

  it('runs an agent container with the pod identity, its projected token and downward-API env', async () => {
    await createNamespace(cp, 'harness-kubelet');
    await core.createNamespacedServiceAccount({ namespace: 'harness-kubelet', body: { metadata: { name: 'worker' } } });
    await core.createNamespacedPod({
      namespace: 'harness-kubelet',
      body: {
        metadata: { name: 'whoami' },
        spec: {
          serviceAccountName: 'worker',
          automountServiceAccountToken: false,
          volumes: [{ name: 'agent-token', projected: { sources: [
            { serviceAccountToken: { path: 'token', audience: 'external-secrets-agent', expirationSeconds: 600 } },
            { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          ] } }],
          containers: [
            { name: 'app', image: 'app:1' },
            {
              name: 'agent',
              image: 'external-secrets-agent:dev',
              command: ['external-secrets-agent', 'whoami'],
              env: [
                { name: 'ESA_KUBE_TOKEN_FILE', value: '/var/run/secrets/agent/token' },
                { name: 'ESA_KUBE_CA_FILE', value: '/var/run/secrets/agent/ca.crt' },
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
              ],
              volumeMounts: [{ name: 'agent-token', mountPath: '/var/run/secrets/agent', readOnly: true }],
            },
          ],
        },
      },
    });

    const run = await runPod(cp, 'harness-kubelet', 'whoami');
    try {
      assert.equal(run.phase, 'Running');
      assert.deepEqual(run.skipped, ['app']);
      const agent = run.containers.find((c) => c.name === 'agent')!;
      assert.equal(await agent.process.exited, 0, agent.process.output());
      assert.match(agent.process.output(), /user: system:serviceaccount:harness-kubelet:worker/);
      assert.match(agent.process.output(), /pod: whoami/);
      const seen = auditEvents(cp, 'system:serviceaccount:harness-kubelet:worker');
      assert.ok(seen.some((e) => e.verb === 'create' && e.objectRef?.resource === 'selfsubjectreviews'),
        'the API server audit log records the agent acting as the pod');
    } finally {
      await run.stop();
    }
  });
});
