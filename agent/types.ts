/**
 * The shapes of the Kubernetes objects the agent reads and writes, limited to the fields it
 * uses. The ExternalSecret, SecretStore and ClusterSecretStore fields follow the External
 * Secrets Operator API (`external-secrets.io` v1 and v1beta1 carry the same fields).
 */
import type { KubeClient } from './kube-client.ts';

/**
 * The part of KubeClient the agent's sync uses. The agent passes its HTTPS client; `render` and
 * the tests pass the in-memory MemoryKube (memory-kube.ts).
 */
export type KubeApi = Pick<KubeClient, 'get' | 'create' | 'replace' | 'patch' | 'delete'>;

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface Secret {
  apiVersion?: 'v1';
  kind?: 'Secret';
  metadata: ObjectMeta;
  type?: string;
  immutable?: boolean;
  /** Values are base64, as the API stores them. */
  data?: Record<string, string>;
  /** Write-only in the API: merged into data on write. Accepted in `render` input. */
  stringData?: Record<string, string>;
}

export interface ConfigMap {
  apiVersion?: 'v1';
  kind?: 'ConfigMap';
  metadata: ObjectMeta;
  data?: Record<string, string>;
  /** Values are base64. */
  binaryData?: Record<string, string>;
}

/** A reference to a key of a Kubernetes Secret, as stores use it for credentials. */
export interface SecretKeySelector {
  name: string;
  key: string;
  /** Honoured for ClusterSecretStores only; a SecretStore reads its own namespace. */
  namespace?: string;
}

/**
 * A service account a store authenticates as. The agent requests tokens only for the pod's
 * own service account, so `name` (and, for a ClusterSecretStore, `namespace`) must match it.
 */
export interface ServiceAccountSelector {
  name: string;
  /** Honoured for ClusterSecretStores only. */
  namespace?: string;
  /** Audiences of the requested token; each provider has its default. */
  audiences?: string[];
}

/** Where a store finds the PEM bundle of the CA that signs its server's certificate. */
export interface CAProvider {
  type: 'Secret' | 'ConfigMap';
  name: string;
  key?: string;
  /** Honoured for ClusterSecretStores only; a SecretStore reads its own namespace. */
  namespace?: string;
}

export interface StoreRef {
  name: string;
  /** Defaults to SecretStore. */
  kind?: 'SecretStore' | 'ClusterSecretStore';
}

export interface RemoteRef {
  key: string;
  property?: string;
  version?: string;
  decodingStrategy?: DecodingStrategy;
  conversionStrategy?: ConversionStrategy;
  metadataPolicy?: 'None' | 'Fetch';
}

export type DecodingStrategy = 'None' | 'Base64' | 'Base64URL' | 'Auto';
export type ConversionStrategy = 'Default' | 'Unicode';

/** `dataFrom[].find`: every remote secret whose name, path and tags match. */
export interface FindSpec {
  path?: string;
  name?: { regexp?: string };
  tags?: Record<string, string>;
  conversionStrategy?: ConversionStrategy;
  decodingStrategy?: DecodingStrategy;
}

/** One `dataFrom[].rewrite` step: exactly one of regexp or transform. */
export interface Rewrite {
  regexp?: { source?: string; target?: string };
  transform?: { template?: string };
  /** ESO's merge step; refused here. */
  merge?: unknown;
}

export interface SourceRef {
  storeRef?: StoreRef;
  generatorRef?: unknown;
}

export interface ExternalSecretData {
  secretKey: string;
  remoteRef: RemoteRef;
  sourceRef?: SourceRef;
}

export interface ExternalSecretDataFrom {
  extract?: RemoteRef;
  find?: FindSpec;
  rewrite?: Rewrite[];
  sourceRef?: SourceRef;
}

/** A ConfigMap or Secret in the ExternalSecret's namespace whose keys hold templates. */
export interface TemplateRef {
  name: string;
  items?: { key: string; templateAs?: 'Values' | 'KeysAndValues' }[];
}

export interface TemplateFrom {
  configMap?: TemplateRef;
  secret?: TemplateRef;
  literal?: string;
  /** Data (default), Annotations or Labels; compared case-insensitively, as ESO does. */
  target?: string;
}

export interface TemplateSpec {
  type?: string;
  engineVersion?: string;
  mergePolicy?: 'Replace' | 'Merge';
  metadata?: {
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    finalizers?: string[];
  };
  data?: Record<string, string>;
  templateFrom?: TemplateFrom[];
}

export type CreationPolicy = 'Owner' | 'Orphan' | 'Merge' | 'None' | 'CreateOrMerge';

export interface ExternalSecretTarget {
  name?: string;
  creationPolicy?: CreationPolicy;
  deletionPolicy?: 'Retain' | 'Delete' | 'Merge';
  template?: TemplateSpec;
  immutable?: boolean;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

export interface ExternalSecretStatus {
  conditions?: Condition[];
  refreshTime?: string;
  syncedResourceVersion?: string;
  binding?: { name: string };
}

export interface ExternalSecret {
  apiVersion: string;
  kind: 'ExternalSecret';
  metadata: ObjectMeta;
  spec: {
    refreshInterval?: string;
    refreshPolicy?: 'CreatedOnce' | 'Periodic' | 'OnChange';
    secretStoreRef?: StoreRef;
    target?: ExternalSecretTarget;
    data?: ExternalSecretData[];
    dataFrom?: ExternalSecretDataFrom[];
  };
  status?: ExternalSecretStatus;
}

/** One ClusterSecretStore condition; a namespace is admitted when any condition matches it. */
export interface ClusterStoreCondition {
  namespaceSelector?: LabelSelector;
  namespaces?: string[];
  namespaceRegexes?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: {
    key: string;
    operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
    values?: string[];
  }[];
}

export interface SecretStoreSpec {
  /** Exactly one provider key is set, for example `aws` or `fake`. */
  provider?: Record<string, unknown>;
  conditions?: ClusterStoreCondition[];
  refreshInterval?: number;
}

export interface SecretStore {
  apiVersion: string;
  kind: 'SecretStore' | 'ClusterSecretStore';
  metadata: ObjectMeta;
  spec: SecretStoreSpec;
}
