/**
 * `external-secrets-agent whoami`: asks the API server who this process is, using exactly the
 * credentials the agent would use (in-cluster address, CA and token file). Prints the user name,
 * and for a pod-bound token the pod it is bound to. Useful to debug RBAC for a workload.
 */
import { inClusterOptions, KubeClient } from './kube-client.ts';

interface SelfSubjectReview {
  status?: { userInfo?: { username?: string; groups?: string[]; extra?: Record<string, string[]> } };
}

export async function whoami(_args: string[]): Promise<number> {
  const client = new KubeClient(inClusterOptions());
  try {
    const review = await client.create<SelfSubjectReview>('/apis/authentication.k8s.io/v1/selfsubjectreviews', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'SelfSubjectReview',
    });
    const user = review.status?.userInfo ?? {};
    const pod = user.extra?.['authentication.kubernetes.io/pod-name']?.[0];
    process.stdout.write(`user: ${user.username ?? '(unknown)'}\n`);
    if (pod) process.stdout.write(`pod: ${pod}\n`);
    process.stdout.write(`groups: ${(user.groups ?? []).join(',')}\n`);
    return 0;
  } finally {
    client.close();
  }
}
