/**
 * Reads ExternalSecrets and their stores through the API server, as the pod.
 *
 * The `external-secrets.io` API version is discovered once per process: v1 when the server
 * serves it, else v1beta1 (older ESO CRDs). Both carry the same fields.
 */
import { AgentError, KubeApiError, NotFoundError, StoreNotAllowedError } from './errors.ts';
import type {
  ClusterStoreCondition,
  ExternalSecret,
  KubeApi,
  LabelSelector,
  SecretStore,
  StoreRef,
} from './types.ts';

export const GROUP = 'external-secrets.io';

const versionCache = new WeakMap<KubeApi, Promise<string>>();

/** "v1" or "v1beta1": the version of external-secrets.io to use with this API server. */
export function groupVersion(kube: KubeApi): Promise<string> {
  let pending = versionCache.get(kube);
  if (!pending) {
    pending = discoverVersion(kube);
    versionCache.set(kube, pending);
    pending.catch(() => versionCache.delete(kube)); // retry discovery on the next pass
  }
  return pending;
}

async function discoverVersion(kube: KubeApi): Promise<string> {
  let group: { versions?: { version: string }[] };
  try {
    group = await kube.get(`/apis/${GROUP}`);
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) {
      throw new NotFoundError(
        `the API server does not serve ${GROUP}: are the ExternalSecret CRDs installed?`,
      );
    }
    throw err;
  }
  const served = new Set((group.versions ?? []).map((v) => v.version));
  if (served.has('v1')) return 'v1';
  if (served.has('v1beta1')) return 'v1beta1';
  throw new NotFoundError(`the API server serves ${GROUP} but neither v1 nor v1beta1`);
}

/**
 * Reads one ExternalSecret. Every error message starts with "ExternalSecret <ns>/<name>"; a
 * missing one is a NotFoundError, a denied read keeps the API server's reason (which names the
 * user and the missing permission) and its code.
 */
export async function getExternalSecret(
  kube: KubeApi,
  namespace: string,
  name: string,
): Promise<ExternalSecret> {
  const id = `ExternalSecret ${namespace}/${name}`;
  try {
    const version = await groupVersion(kube);
    return await kube.get<ExternalSecret>(
      `/apis/${GROUP}/${version}/namespaces/${namespace}/externalsecrets/${name}`,
    );
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404)
      throw new NotFoundError(`${id} does not exist`);
    const e = err as { code?: string; message?: string };
    // NOTE: a Role that lists resourceNames answers 403, not 404, for a name it does not list,
    // so a typo in the pod's annotation looks like a permission problem. Say both.
    const hint =
      err instanceof KubeApiError && err.status === 403
        ? ' (check that the name in the agent.external-secrets.io/external-secrets annotation' +
          " is right and that the pod's service account may get it)"
        : '';
    throw new AgentError(
      e.code ?? 'ERR_UNEXPECTED',
      `${id}: cannot read it: ${e.message ?? String(err)}${hint}`,
    );
  }
}

/**
 * Reads the store a reference names and, for a ClusterSecretStore, checks that its conditions
 * admit `namespace`. Missing stores are NotFoundErrors, refused namespaces StoreNotAllowedErrors.
 */
export async function getStore(
  kube: KubeApi,
  namespace: string,
  ref: StoreRef,
): Promise<SecretStore> {
  const version = await groupVersion(kube);
  const kind = ref.kind ?? 'SecretStore';
  const path =
    kind === 'ClusterSecretStore'
      ? `/apis/${GROUP}/${version}/clustersecretstores/${ref.name}`
      : `/apis/${GROUP}/${version}/namespaces/${namespace}/secretstores/${ref.name}`;
  let store: SecretStore;
  try {
    store = await kube.get<SecretStore>(path);
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) {
      const where = kind === 'ClusterSecretStore' ? '' : ` in namespace ${namespace}`;
      throw new NotFoundError(`${kind} ${ref.name} does not exist${where}`);
    }
    throw err;
  }
  store.kind = kind;
  if (kind === 'ClusterSecretStore') await checkConditions(kube, store, namespace);
  return store;
}

/**
 * ESO's rule: no conditions admit every namespace; otherwise a namespace is admitted when any
 * condition matches it by name, by regular expression (unanchored, so "team-b" also matches
 * "not-team-b"), or by label selector.
 */
async function checkConditions(
  kube: KubeApi,
  store: SecretStore,
  namespace: string,
): Promise<void> {
  const conditions = store.spec.conditions ?? [];
  if (conditions.length === 0) return;
  if (conditions.some((c) => matchesByName(c, namespace))) return;

  const selectors = conditions
    .map((c) => c.namespaceSelector)
    .filter((s): s is LabelSelector => s !== undefined);
  let selectorNote = '';
  if (selectors.length > 0) {
    const labels = await namespaceLabels(kube, namespace);
    if (labels === undefined) {
      // NOTE: without `get namespaces` on this namespace the selectors cannot be evaluated; the
      // store is then refused (fail closed), and the message says which permission is missing.
      selectorNote = ` (namespaceSelector not evaluated: the pod may not get namespace ${namespace})`;
    } else if (selectors.some((s) => selectorMatches(s, labels))) {
      return;
    }
  }
  throw new StoreNotAllowedError(
    `using cluster store "${store.metadata.name}" is not allowed from namespace "${namespace}": denied by spec.condition${selectorNote}`,
  );
}

function matchesByName(c: ClusterStoreCondition, namespace: string): boolean {
  if (c.namespaces?.includes(namespace)) return true;
  return (c.namespaceRegexes ?? []).some((re) => {
    try {
      return new RegExp(re).test(namespace);
    } catch {
      return false; // an invalid expression admits nothing
    }
  });
}

async function namespaceLabels(
  kube: KubeApi,
  namespace: string,
): Promise<Record<string, string> | undefined> {
  try {
    const ns = await kube.get<{ metadata?: { labels?: Record<string, string> } }>(
      `/api/v1/namespaces/${namespace}`,
    );
    return ns.metadata?.labels ?? {};
  } catch (err) {
    if (err instanceof KubeApiError && (err.status === 403 || err.status === 404)) return undefined;
    throw err;
  }
}

/** Kubernetes label-selector semantics (matchLabels and matchExpressions, all must hold). */
export function selectorMatches(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  return (selector.matchExpressions ?? []).every((e) => {
    const has = Object.hasOwn(labels, e.key);
    const listed = has && (e.values ?? []).includes(labels[e.key] as string);
    switch (e.operator) {
      case 'In':
        return listed;
      case 'NotIn':
        return !listed;
      case 'Exists':
        return has;
      case 'DoesNotExist':
        return !has;
      default:
        return false; // an unknown operator matches nothing
    }
  });
}
