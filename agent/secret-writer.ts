/**
 * Creates or updates the target Secret per `creationPolicy`, and only when something changed:
 * an unchanged Secret costs one GET and no write.
 *
 * - Owner (default): the Secret holds exactly the ExternalSecret's data, carries a controller
 *   owner reference to it (so it is deleted with it), the managed label and the data-hash
 *   annotation. An existing Secret without a controller is adopted; its other keys are dropped
 *   and their names reported. A Secret controlled by something else is left alone (error).
 * - Orphan: as Owner, without the owner reference.
 * - Merge: the Secret must exist; our keys are written over its own, which are kept.
 * - CreateOrMerge: as Merge, but creates the Secret when it is missing.
 * - None: nothing is written.
 *
 * Immutable targets: a live immutable Secret is never rewritten; when its data differs and the
 * ExternalSecret asks for immutability this is success (the value stays), otherwise an error.
 */
import { createHash } from 'node:crypto';
import { KubeApiError, TargetConflictError } from './errors.ts';
import type { CreationPolicy, KubeApi, OwnerReference, Secret } from './types.ts';

export const MANAGED_LABEL = 'reconcile.external-secrets.io/managed';
export const DATA_HASH_ANNOTATION = 'reconcile.external-secrets.io/data-hash';

export interface DesiredSecret {
  namespace: string;
  name: string;
  data: Record<string, Buffer>;
  /** Defaults to Opaque. */
  type?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  immutable?: boolean;
  creationPolicy?: CreationPolicy;
  /** The ExternalSecret, for the owner reference (creationPolicy Owner). */
  owner: OwnerReference;
}

export interface WriteOutcome {
  action: 'created' | 'updated' | 'unchanged' | 'skipped';
  /** Keys an adopting Owner write removed from an existing Secret (names only). */
  removedKeys: string[];
}

/** A hash of the data, stable across key order; safe to store beside the data it hashes. */
export function dataHash(data: Record<string, string>): string {
  const h = createHash('sha256');
  for (const key of Object.keys(data).sort())
    h.update(key)
      .update('\0')
      .update(data[key] as string)
      .update('\0');
  return h.digest('hex').slice(0, 32);
}

function encode(data: Record<string, Buffer>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) out[k] = v.toString('base64');
  return out;
}

const sameMap = (a: Record<string, string> = {}, b: Record<string, string> = {}) =>
  Object.keys(a).length === Object.keys(b).length &&
  Object.entries(a).every(([k, v]) => b[k] === v);

/** Whether every entry of `want` is present in `have` with the same value. */
const contains = (have: Record<string, string> = {}, want: Record<string, string> = {}) =>
  Object.entries(want).every(([k, v]) => have[k] === v);

/**
 * Writes the Secret if needed. Conflicts (the Secret changed between GET and PUT) are retried
 * once with a fresh read; other API errors propagate as KubeApiError.
 */
export async function writeSecret(kube: KubeApi, desired: DesiredSecret): Promise<WriteOutcome> {
  const policy = desired.creationPolicy ?? 'Owner';
  if (policy === 'None') return { action: 'skipped', removedKeys: [] };
  for (let attempt = 1; ; attempt++) {
    try {
      return await writeOnce(kube, desired, policy);
    } catch (err) {
      if (attempt < 2 && err instanceof KubeApiError && err.status === 409) continue;
      throw err;
    }
  }
}

async function writeOnce(
  kube: KubeApi,
  desired: DesiredSecret,
  policy: CreationPolicy,
): Promise<WriteOutcome> {
  const path = `/api/v1/namespaces/${desired.namespace}/secrets/${desired.name}`;
  const label = `Secret ${desired.namespace}/${desired.name}`;
  const live = await getSecret(kube, path);
  const ours = encode(desired.data);

  if (!live) {
    if (policy === 'Merge')
      throw new TargetConflictError(`${label} does not exist and creationPolicy is Merge`);
    await kube.create(
      `/api/v1/namespaces/${desired.namespace}/secrets`,
      build(desired, ours, policy, undefined),
    );
    return { action: 'created', removedKeys: [] };
  }

  const isMerge = policy === 'Merge' || policy === 'CreateOrMerge';
  const data = isMerge ? { ...live.data, ...ours } : ours;
  if (policy === 'Owner') {
    const controller = live.metadata.ownerReferences?.find((r) => r.controller);
    if (controller && controller.uid !== desired.owner.uid) {
      throw new TargetConflictError(
        `${label} is controlled by ${controller.kind} ${controller.name}, not by this ExternalSecret`,
      );
    }
  }

  const next = build(desired, data, policy, live);
  if (isUpToDate(live, next)) return { action: 'unchanged', removedKeys: [] };
  if (live.immutable) {
    if (sameMap(live.data, data) || desired.immutable)
      return { action: 'unchanged', removedKeys: [] };
    throw new TargetConflictError(
      `could not update secret, target is immutable: ${label} has immutable: true`,
    );
  }

  const removedKeys = Object.keys(live.data ?? {}).filter((k) => !(k in data));
  await kube.replace(path, next);
  return { action: 'updated', removedKeys };
}

async function getSecret(kube: KubeApi, path: string): Promise<Secret | undefined> {
  try {
    return await kube.get<Secret>(path);
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) return undefined;
    throw err;
  }
}

/** The Secret to write: the live object (if any) with our data, labels, annotations and owner. */
function build(
  desired: DesiredSecret,
  data: Record<string, string>,
  policy: CreationPolicy,
  live: Secret | undefined,
): Secret {
  const meta = live?.metadata ?? { name: desired.name, namespace: desired.namespace };
  const owners = (meta.ownerReferences ?? []).filter((r) => r.uid !== desired.owner.uid);
  if (policy === 'Owner')
    owners.push({ ...desired.owner, controller: true, blockOwnerDeletion: true });

  const secret: Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      ...meta,
      labels: { ...meta.labels, ...desired.labels, [MANAGED_LABEL]: 'true' },
      annotations: {
        ...meta.annotations,
        ...desired.annotations,
        [DATA_HASH_ANNOTATION]: dataHash(data),
      },
      ...(owners.length ? { ownerReferences: owners } : {}),
    },
    type: live?.type ?? desired.type ?? 'Opaque',
    data,
  };
  // NOTE: the type is taken from the ExternalSecret even for a live Secret, so that a changed
  // template type reaches the API server and fails there with its own "field is immutable".
  if (desired.type) secret.type = desired.type;
  if (desired.immutable || live?.immutable) secret.immutable = true;
  return secret;
}

function isUpToDate(live: Secret, next: Secret): boolean {
  const ownerOk = (next.metadata.ownerReferences ?? []).every((want) =>
    (live.metadata.ownerReferences ?? []).some(
      (have) => have.uid === want.uid && Boolean(have.controller) === Boolean(want.controller),
    ),
  );
  return (
    sameMap(live.data, next.data) &&
    (live.type ?? 'Opaque') === next.type &&
    Boolean(live.immutable) === Boolean(next.immutable) &&
    contains(live.metadata.labels, next.metadata.labels) &&
    contains(live.metadata.annotations, next.metadata.annotations) &&
    ownerOk
  );
}
