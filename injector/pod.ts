/**
 * The parts of the Pod object that the injector reads or writes, typed as the plain JSON the API
 * server sends in an AdmissionReview.
 *
 * NOTE: these are our own narrow types rather than @kubernetes/client-node's models on purpose.
 * The models type `creationTimestamp` as a Date (JSON holds a string) and would tie the pure
 * mutation function to the library's release cycle. Fields we do not name pass through
 * untouched: the injector only ever adds to the pod through JSON Patch, it never re-serialises it.
 */

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid?: string }[];
}

export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: PodSpec;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[] | null;
  volumes?: Volume[] | null;
  restartPolicy?: 'Always' | 'OnFailure' | 'Never';
  nodeSelector?: Record<string, string>;
  os?: { name: string };
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  securityContext?: PodSecurityContext;
  hostNetwork?: boolean;
  /** Only the required node affinity is read (to tell a Windows-only pod). */
  affinity?: {
    nodeAffinity?: {
      requiredDuringSchedulingIgnoredDuringExecution?: {
        nodeSelectorTerms?: { matchExpressions?: { key: string; operator: string; values?: string[] }[] }[];
      };
    };
  };
}

/**
 * True when the pod's required node affinity admits only Windows nodes: every node selector
 * term (terms are ORed) has a kubernetes.io/os expression that excludes Linux.
 */
export function requiresWindowsNodes(pod: Pod): boolean {
  const terms = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  if (terms.length === 0) return false;
  return terms.every((term) =>
    (term.matchExpressions ?? []).some((e) => {
      if (e.key !== 'kubernetes.io/os') return false;
      const values = e.values ?? [];
      if (e.operator === 'In') return !values.includes('linux');
      if (e.operator === 'NotIn') return values.includes('linux');
      return e.operator === 'DoesNotExist';
    }),
  );
}

/** The pod-level security context; the injector reads it and never changes it. */
export interface PodSecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  fsGroup?: number;
  [field: string]: unknown;
}

export interface Container {
  name: string;
  image?: string;
  imagePullPolicy?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  resources?: ResourceRequirements;
  volumeMounts?: VolumeMount[] | null;
  securityContext?: SecurityContext;
  restartPolicy?: 'Always';
  startupProbe?: Probe;
  terminationMessagePolicy?: 'File' | 'FallbackToLogsOnError';
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { apiVersion?: string; fieldPath: string } };
}

export interface ResourceRequirements {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  subPath?: string;
  subPathExpr?: string;
}

export interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  allowPrivilegeEscalation?: boolean;
  privileged?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type: string };
}

export interface Probe {
  exec: { command: string[] };
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
  initialDelaySeconds?: number;
}

export interface KeyToPath {
  key: string;
  path: string;
}

export interface Volume {
  name: string;
  emptyDir?: { medium?: string; sizeLimit?: string };
  projected?: { defaultMode?: number; sources: VolumeProjection[] };
  [source: string]: unknown;
}

export interface VolumeProjection {
  serviceAccountToken?: { audience?: string; expirationSeconds?: number; path: string };
  configMap?: { name: string; items?: KeyToPath[]; optional?: boolean };
  downwardAPI?: { items: { path: string; fieldRef: { apiVersion?: string; fieldPath: string } }[] };
}

/** `namespace/name` for messages and logs; a pod created with generateName shows its prefix. */
export function podRef(pod: Pod): string {
  const meta = pod.metadata ?? {};
  const name = meta.name || (meta.generateName ? `${meta.generateName}<generated>` : '<unnamed>');
  return `${meta.namespace || '<no namespace>'}/${name}`;
}

/**
 * Checks the parts of a pod that mutate() reads have the types the Pod API gives them. The API
 * server never sends anything else, but the webhook's HTTP endpoint accepts any JSON, and a
 * wrong type must come back as a refusal naming the field, not as a crash. Returns one message
 * per problem, empty when the shape is fine.
 */
export function podShapeProblems(pod: unknown): { field: string; message: string }[] {
  const problems: { field: string; message: string }[] = [];
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const stringMap = (v: unknown, field: string) => {
    if (v === undefined) return;
    if (!isObject(v)) return void problems.push({ field, message: 'must be an object' });
    for (const [k, x] of Object.entries(v)) {
      if (typeof x !== 'string') problems.push({ field: `${field}[${JSON.stringify(k)}]`, message: 'must be a string' });
    }
  };
  const list = (v: unknown, field: string, required = false) => {
    if (v === undefined && !required) return;
    if (!Array.isArray(v)) return void problems.push({ field, message: 'must be a list' });
    v.forEach((item, i) => {
      if (!isObject(item)) problems.push({ field: `${field}[${i}]`, message: 'must be an object' });
      else if (typeof item.name !== 'string') problems.push({ field: `${field}[${i}].name`, message: 'must be a string' });
    });
  };
  if (!isObject(pod)) return [{ field: 'object', message: 'must be a Pod object' }];
  const meta = pod.metadata;
  if (meta !== undefined && !isObject(meta)) problems.push({ field: 'metadata', message: 'must be an object' });
  if (isObject(meta)) {
    stringMap(meta.labels, 'metadata.labels');
    stringMap(meta.annotations, 'metadata.annotations');
  }
  const spec = pod.spec;
  if (!isObject(spec)) return [...problems, { field: 'spec', message: 'must be an object' }];
  list(spec.containers, 'spec.containers', true);
  list(spec.initContainers, 'spec.initContainers');
  list(spec.volumes, 'spec.volumes');
  stringMap(spec.nodeSelector, 'spec.nodeSelector');
  for (const key of ['securityContext', 'os'] as const) {
    if (spec[key] !== undefined && !isObject(spec[key])) problems.push({ field: `spec.${key}`, message: 'must be an object' });
  }
  return problems;
}
