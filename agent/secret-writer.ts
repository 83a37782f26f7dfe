/**
 * Creates, updates or deletes the target Secret per `creationPolicy`, and only when something
 * changed: an unchanged Secret costs one GET (which the caller may already have made) and no
 * write.
 *
 * - Owner (default): the Secret holds exactly the ExternalSecret's data, carries a controller
 *   owner reference to it (so it is deleted with it), the managed label, ESO's `created-by`
 *   label and the data-hash annotation. An existing Secret without a controller is adopted; its
 *   other keys are dropped and their names reported. A Secret controlled by something else is
 *   left alone (error).
 * - Orphan: as Owner, without the owner reference and the created-by label.
 * - Merge: the Secret must exist (else nothing is written and the outcome says `missing`, ESO's
 *   SecretMissing); our keys are written over its own, which are kept.
 * - CreateOrMerge: as Merge, but creates the Secret when it is missing.
 * - None: nothing is written.
 *
 * Immutable targets: a live immutable Secret is never rewritten; when its data differs and the
 * ExternalSecret asks for immutability this is success (the value stays), otherwise an
 * ImmutableTargetError.
 *
 * The data-hash annotation is ESO's own (SHA3-224 of Go's `%+v` of the data map), so a Secret
 * that ESO wrote is recognised as valid and the reverse.
 */
import { createHash } from 'node:crypto';
import { ImmutableTargetError, KubeApiError, TargetConflictError } from './errors.ts';
import type { CreationPolicy, KubeApi, OwnerReference, Secret } from './types.ts';

export const MANAGED_LABEL = 'reconcile.external-secrets.io/managed';
export const CREATED_BY_LABEL = 'reconcile.external-secrets.io/created-by';
export const DATA_HASH_ANNOTATION = 'reconcile.external-secrets.io/data-hash';

export interface DesiredSecret {
  namespace: string;
  name: string;
  data: Record<string, Buffer>;
  /** Unset keeps the live Secret's type; a new Secret is Opaque. */
  type?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  immutable?: boolean;
  creationPolicy?: CreationPolicy;
  /** The ExternalSecret, for the owner reference (creationPolicy Owner). */
  owner: OwnerReference;
}

export interface WriteOutcome {
  /** `missing`: creationPolicy Merge and no Secret to merge into. */
  action: 'created' | 'updated' | 'unchanged' | 'skipped' | 'missing';
  /** Keys the write removed from an existing Secret (names only). */
  removedKeys: string[];
  /** True when the write took over a Secret that this ExternalSecret did not control. */
  adopted?: boolean;
  /**
   * The Secret's data after the write (base64), when a Secret exists: for an immutable target
   * it is the value kept, which may differ from the desired one.
   */
  data?: Record<string, string>;
}

/**
 * ESO's ObjectHash of Secret data: SHA3-224 of Go's `fmt.Sprintf("%+v", map[string][]byte)`,
 * that is `map[a:[104 105] b:[]]` with the keys sorted. Takes the base64 values the API holds.
 */
export function dataHash(data: Record<string, string> = {}): string {
  const h = createHash('sha3-224');
  h.update('map[');
  Object.keys(data)
    .sort()
    .forEach((key, i) => {
      const bytes = Buffer.from(data[key] as string, 'base64');
      h.update(`${i ? ' ' : ''}${key}:[`);
      // in slices, so a 1 MiB value does not become one 4 MiB string
      for (let at = 0; at < bytes.length; at += 8192) {
        const part = bytes.subarray(at, at + 8192);
        h.update(`${at ? ' ' : ''}${part.join(' ')}`);
      }
      h.update(']');
    });
  h.update(']');
  return h.digest('hex');
}

/** ESO's `created-by` label value: the ObjectHash of "namespace/name". */
export function createdByValue(namespace: string, name: string): string {
  return createHash('sha3-224').update(`${namespace}/${name}`).digest('hex');
}

/**
 * ESO's test for a target that needs no repair: it exists, carries the managed label, and its
 * data-hash annotation matches its data (so nobody edited the data by hand).
 */
export function isSecretValid(live: Secret | undefined): boolean {
  if (!live) return false;
  if (live.metadata.labels?.[MANAGED_LABEL] !== 'true') return false;
  return live.metadata.annotations?.[DATA_HASH_ANNOTATION] === dataHash(live.data);
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

const secretPath = (namespace: string, name: string) =>
  `/api/v1/namespaces/${namespace}/secrets/${name}`;

/** The live Secret, or undefined when it does not exist. */
export async function readSecret(
  kube: KubeApi,
  namespace: string,
  name: string,
): Promise<Secret | undefined> {
  try {
    return await kube.get<Secret>(secretPath(namespace, name));
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) return undefined;
    throw err;
  }
}

/**
 * Writes the Secret if needed. `live` is the Secret as the caller just read it (undefined: not
 * read yet; null: known not to exist). Conflicts (the Secret changed between GET and PUT) are
 * retried once with a fresh read; other API errors propagate as KubeApiError.
 */
export async function writeSecret(
  kube: KubeApi,
  desired: DesiredSecret,
  live?: Secret | null,
): Promise<WriteOutcome> {
  const policy = desired.creationPolicy ?? 'Owner';
  if (policy === 'None') return { action: 'skipped', removedKeys: [] };
  let known = live;
  for (let attempt = 1; ; attempt++) {
    try {
      const current =
        known === undefined
          ? await readSecret(kube, desired.namespace, desired.name)
          : (known ?? undefined);
      return await writeOnce(kube, desired, policy, current);
    } catch (err) {
      if (attempt < 2 && err instanceof KubeApiError && err.status === 409) {
        known = undefined;
        continue;
      }
      throw err;
    }
  }
}

async function writeOnce(
  kube: KubeApi,
  desired: DesiredSecret,
  policy: CreationPolicy,
  live: Secret | undefined,
): Promise<WriteOutcome> {
  const label = `Secret ${desired.namespace}/${desired.name}`;
  const ours = encode(desired.data);

  if (!live) {
    if (policy === 'Merge') return { action: 'missing', removedKeys: [] };
    await kube.create(
      `/api/v1/namespaces/${desired.namespace}/secrets`,
      build(desired, ours, policy, undefined),
    );
    return { action: 'created', removedKeys: [], data: ours };
  }

  const isMerge = policy === 'Merge' || policy === 'CreateOrMerge';
  let data = isMerge ? { ...live.data, ...ours } : ours;
  const controller = live.metadata.ownerReferences?.find((r) => r.controller);
  if (controller && controller.uid !== desired.owner.uid) {
    const isExternalSecret = controller.kind === 'ExternalSecret';
    // NOTE: ESO refuses a Secret controlled by another ExternalSecret for every policy (two
    // controllers would overwrite each other), and for Owner any other controller as well.
    if (isExternalSecret || policy === 'Owner') {
      throw new TargetConflictError(
        `${label} is controlled by ${controller.kind} ${controller.name}, not by this ExternalSecret`,
      );
    }
  }

  if (live.immutable && !sameMap(live.data, data)) {
    if (!desired.immutable) {
      throw new ImmutableTargetError(
        `${label} has immutable: true and its data would change, but the ExternalSecret does not set target.immutable`,
      );
    }
    // NOTE: the data of an immutable Secret stays as it is (C19); its metadata (labels, the
    // data-hash annotation, owner) is still brought in line, as ESO does.
    data = { ...live.data };
  }
  const next = build(desired, data, policy, live);
  if (isUpToDate(live, next)) return { action: 'unchanged', removedKeys: [], data };

  const removedKeys = Object.keys(live.data ?? {}).filter((k) => !(k in data));
  await kube.replace(secretPath(desired.namespace, desired.name), next);
  return { action: 'updated', removedKeys, data, adopted: controller?.uid !== desired.owner.uid };
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

  const labels: Record<string, string> = {
    ...meta.labels,
    ...desired.labels,
    [MANAGED_LABEL]: 'true',
  };
  if (policy === 'Owner')
    labels[CREATED_BY_LABEL] = createdByValue(desired.namespace, desired.owner.name);
  else delete labels[CREATED_BY_LABEL];

  const finalizers = [...(meta.finalizers ?? [])];
  for (const f of desired.finalizers ?? []) if (!finalizers.includes(f)) finalizers.push(f);

  const { ownerReferences: _, finalizers: __, ...rest } = meta;
  const secret: Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      ...rest,
      labels,
      annotations: {
        ...meta.annotations,
        ...desired.annotations,
        [DATA_HASH_ANNOTATION]: dataHash(data),
      },
      ...(owners.length ? { ownerReferences: owners } : {}),
      ...(finalizers.length ? { finalizers } : {}),
    },
    // NOTE: the type is taken from the ExternalSecret even for a live Secret, so that a changed
    // template type reaches the API server and fails there with its own "field is immutable".
    type: desired.type ?? live?.type ?? 'Opaque',
    data,
  };
  if (desired.immutable || live?.immutable) secret.immutable = true;
  return secret;
}

function isUpToDate(live: Secret, next: Secret): boolean {
  const liveOwners = live.metadata.ownerReferences ?? [];
  const nextOwners = next.metadata.ownerReferences ?? [];
  const ownersOk =
    liveOwners.length === nextOwners.length &&
    nextOwners.every((want) =>
      liveOwners.some(
        (have) => have.uid === want.uid && Boolean(have.controller) === Boolean(want.controller),
      ),
    );
  const labelsGone = Object.keys(live.metadata.labels ?? {}).some(
    (k) => !(k in (next.metadata.labels ?? {})),
  );
  return (
    sameMap(live.data, next.data) &&
    (live.type ?? 'Opaque') === next.type &&
    Boolean(live.immutable) === Boolean(next.immutable) &&
    contains(live.metadata.labels, next.metadata.labels) &&
    !labelsGone &&
    contains(live.metadata.annotations, next.metadata.annotations) &&
    (next.metadata.finalizers ?? []).every((f) => live.metadata.finalizers?.includes(f)) &&
    ownersOk
  );
}

/**
 * deletionPolicy Delete: deletes the target when it is ours (the managed label, and for Owner
 * our controller reference). Returns whether a Secret was deleted.
 */
export async function deleteSecret(
  kube: KubeApi,
  desired: Pick<DesiredSecret, 'namespace' | 'name' | 'owner' | 'creationPolicy'>,
  live: Secret | undefined,
): Promise<boolean> {
  const label = `Secret ${desired.namespace}/${desired.name}`;
  if (!live) return false;
  const policy = desired.creationPolicy ?? 'Owner';
  if (policy !== 'Owner' && policy !== 'Orphan') {
    throw new TargetConflictError(
      `unable to delete ${label}: creationPolicy ${policy} is not Owner or Orphan`,
    );
  }
  const isManaged = live.metadata.labels?.[MANAGED_LABEL] === 'true';
  const controller = live.metadata.ownerReferences?.find((r) => r.controller);
  const isOurs =
    isManaged && (policy === 'Orphan' ? !controller : controller?.uid === desired.owner.uid);
  if (!isOurs) {
    throw new TargetConflictError(
      `unable to delete ${label}: it is not managed by this ExternalSecret`,
    );
  }
  try {
    await kube.delete(secretPath(desired.namespace, desired.name));
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) return false;
    throw err;
  }
  return true;
}
