/**
 * The shapes of the Kubernetes objects the agent reads and writes, limited to the fields it
 * uses. The ExternalSecret, SecretStore and ClusterSecretStore fields follow the External
 * Secrets Operator API (`external-secrets.io` v1 and v1beta1 carry the same fields).
 */
import type { KubeClient } from './kube-client.ts';

/** The part of KubeClient the agent's sync uses; tests pass an in-memory fake. */
export type KubeApi = Pick<KubeClient, 'get' | 'create' | 'replace' | 'patch'>;

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
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
}

/** A reference to a key of a Kubernetes Secret, as stores use it for credentials. */
export interface SecretKeySelector {
  name: string;
  key: string;
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
  conversionStrategy?: string;
  metadataPolicy?: 'None' | 'Fetch';
}

export type DecodingStrategy = 'None' | 'Base64' | 'Base64URL' | 'Auto';

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
  find?: unknown;
  rewrite?: unknown[];
  sourceRef?: SourceRef;
}

export interface TemplateSpec {
  type?: string;
  engineVersion?: string;
  mergePolicy?: 'Replace' | 'Merge';
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  data?: Record<string, string>;
  templateFrom?: unknown[];
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
