/**
 * Where a manifest keeps the pods it will create: the Pod itself, or the pod template of a
 * workload. Pure; the offline `inject` command uses it to find what to hand to `mutate`.
 *
 * A kind counts only in its own API group, so a custom resource that happens to be called
 * `Deployment` in another group is left alone. Kinds the table does not list (Services,
 * ConfigMaps, custom resources, and the removed `extensions/v1beta1` workloads) hold no pod
 * template we know how to find and pass through unchanged.
 */

/** A JSON path as segments: object keys and list indices. */
export type PathSegments = (string | number)[];

/** One Pod, or one pod template, inside a YAML document. */
export interface PodTemplateRef {
  /** The object that holds it: the document itself, or an item of a `List`. */
  owner: ObjectRef;
  /** Segments from the document root to the object with `metadata` and `spec`; `[]` for a Pod. */
  path: PathSegments;
  /** True for a Pod, false for a workload's template (which has no name of its own). */
  isPod: boolean;
}

export interface ObjectRef {
  kind: string;
  namespace?: string;
  name?: string;
  labels: Record<string, string>;
}

interface TemplateKind {
  /** API group, `''` for the core group. Any version of the group matches. */
  group: string;
  kind: string;
  /** Segments from the object to its pod template. */
  path: PathSegments;
}

/** Every kind whose pods the injector would see, and where its pod template lives. */
export const TEMPLATE_KINDS: readonly TemplateKind[] = [
  { group: '', kind: 'Pod', path: [] },
  { group: '', kind: 'ReplicationController', path: ['spec', 'template'] },
  { group: 'apps', kind: 'Deployment', path: ['spec', 'template'] },
  { group: 'apps', kind: 'StatefulSet', path: ['spec', 'template'] },
  { group: 'apps', kind: 'DaemonSet', path: ['spec', 'template'] },
  { group: 'apps', kind: 'ReplicaSet', path: ['spec', 'template'] },
  { group: 'batch', kind: 'Job', path: ['spec', 'template'] },
  { group: 'batch', kind: 'CronJob', path: ['spec', 'jobTemplate', 'spec', 'template'] },
];

/**
 * The Pods and pod templates in `doc`, in document order. A `v1` `List` (what `kubectl get -o
 * yaml` prints for several objects) is searched item by item. A workload whose template is
 * missing or not an object yields nothing: the API server would reject it anyway.
 */
export function findPodTemplates(doc: unknown): PodTemplateRef[] {
  if (!isObject(doc)) return [];
  if (doc['apiVersion'] === 'v1' && doc['kind'] === 'List' && Array.isArray(doc['items'])) {
    return doc['items'].flatMap((item, i) =>
      findPodTemplates(item).map((ref) => ({ ...ref, path: ['items', i, ...ref.path] })),
    );
  }

  const group = apiGroup(doc['apiVersion']);
  const entry = TEMPLATE_KINDS.find((k) => k.kind === doc['kind'] && k.group === group);
  if (!entry || !isObject(getPath(doc, entry.path))) return [];
  return [{ owner: objectRef(doc), path: [...entry.path], isPod: entry.kind === 'Pod' }];
}

/** The value at `path` in `doc`, or `undefined` when a segment is missing. */
export function getPath(doc: unknown, path: PathSegments): unknown {
  let value: unknown = doc;
  for (const segment of path) {
    if (!isObject(value) && !Array.isArray(value)) return undefined;
    value = (value as Record<string | number, unknown>)[segment];
  }
  return value;
}

/** `Deployment team-a/fleet`, `Pod api` (no namespace), `Job <unnamed>`: for messages. */
export function describeObject(ref: ObjectRef): string {
  const name = ref.name ?? '<unnamed>';
  return `${ref.kind} ${ref.namespace ? `${ref.namespace}/${name}` : name}`;
}

/** `spec.template`, `spec.jobTemplate.spec.template`, `items[2].spec.template`. */
export function describePath(path: PathSegments): string {
  return path
    .map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`))
    .join('');
}

function objectRef(doc: Record<string, unknown>): ObjectRef {
  const meta = isObject(doc['metadata']) ? doc['metadata'] : {};
  const ref: ObjectRef = { kind: String(doc['kind']), labels: stringMap(meta['labels']) };
  if (typeof meta['namespace'] === 'string' && meta['namespace']) ref.namespace = meta['namespace'];
  if (typeof meta['name'] === 'string' && meta['name']) ref.name = meta['name'];
  else if (typeof meta['generateName'] === 'string' && meta['generateName']) {
    ref.name = `${meta['generateName']}<generated>`;
  }
  return ref;
}

/** `apps/v1` → `apps`; `v1` → `''` (the core group). */
function apiGroup(apiVersion: unknown): string | undefined {
  if (typeof apiVersion !== 'string') return undefined;
  const slash = apiVersion.indexOf('/');
  return slash === -1 ? '' : apiVersion.slice(0, slash);
}

function stringMap(value: unknown): Record<string, string> {
  if (!isObject(value)) return {};
  return Object.fromEntries(
    Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string'),
  );
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
