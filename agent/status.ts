/**
 * The ExternalSecret's status and Events, with ESO's condition type (Ready), reasons
 * (SecretSynced, SecretSyncedError, SecretDeleted, SecretMissing) and Event reasons (Created,
 * Updated, Deleted, UpdateFailed, MissingProviderSecret), so existing dashboards and alerts keep
 * working.
 *
 * Both are written only on change: the status when the Ready condition, the binding or the
 * synced resource version differs from what the object already says, an Event when the target
 * was written or when a failure is new (a different message). A refresh that changes nothing
 * writes nothing.
 *
 * NOTE: ESO rewrites `refreshTime` on every refresh; here it is the time of the last pass that
 * changed the Secret or the condition. Many pods share one ExternalSecret, and a status write
 * per pod per interval is the cost this avoids.
 *
 * Messages come from errors that never hold values; they are cut to the API's limits.
 */
import { createHash } from 'node:crypto';
import type { Condition, ExternalSecret, KubeApi } from './types.ts';

export const REASON_SYNCED = 'SecretSynced';
export const REASON_SYNC_ERROR = 'SecretSyncedError';
/** deletionPolicy Delete removed the target (Ready stays True). */
export const REASON_DELETED = 'SecretDeleted';
/** creationPolicy Merge and no Secret to merge into (Ready stays True, as in ESO). */
export const REASON_MISSING = 'SecretMissing';
export const EVENT_CREATED = 'Created';
export const EVENT_UPDATED = 'Updated';
export const EVENT_DELETED = 'Deleted';
export const EVENT_UPDATE_FAILED = 'UpdateFailed';
export const EVENT_MISSING_PROVIDER_SECRET = 'MissingProviderSecret';

export interface SyncReport {
  ready: boolean;
  reason: string;
  message: string;
  /** The target Secret's name. */
  target: string;
  /**
   * Whether this pass read the provider: then refreshTime and syncedResourceVersion move on.
   * Defaults to `ready`. A pass that only checked a valid Secret (refreshInterval 0,
   * refreshPolicy CreatedOnce/OnChange) leaves both as they were.
   */
  synced?: boolean;
}

/**
 * ESO's syncedResourceVersion: the generation plus a hash of labels and annotations, so a
 * metadata-only edit also counts as a new version.
 */
export function syncedResourceVersion(es: ExternalSecret): string {
  const meta = JSON.stringify([es.metadata.labels ?? {}, es.metadata.annotations ?? {}]);
  return `${es.metadata.generation ?? 0}-${createHash('sha256').update(meta).digest('hex').slice(0, 32)}`;
}

function readyCondition(es: ExternalSecret): Condition | undefined {
  return es.status?.conditions?.find((c) => c.type === 'Ready');
}

/**
 * Patches `status` when the report differs from what `es` (as read at the start of the pass)
 * says. A failure keeps refreshTime and syncedResourceVersion as they were: they describe the
 * last good sync. Returns whether it wrote.
 */
export async function updateStatus(
  kube: KubeApi,
  es: ExternalSecret,
  report: SyncReport,
  now: Date,
  wroteSecret: boolean,
): Promise<boolean> {
  const old = readyCondition(es);
  const status = report.ready ? 'True' : 'False';
  const message = report.message.slice(0, 32_000);
  const conditionChanged =
    old?.status !== status || old.reason !== report.reason || old.message !== message;
  const version = syncedResourceVersion(es);
  const synced = report.synced ?? report.ready;
  const bindingChanged = es.status?.binding?.name !== report.target;
  const versionChanged = synced && es.status?.syncedResourceVersion !== version;
  if (!conditionChanged && !bindingChanged && !versionChanged && !(wroteSecret && synced))
    return false;

  const ready: Condition = {
    type: 'Ready',
    status,
    reason: report.reason,
    message,
    lastTransitionTime:
      old?.status === status && old.lastTransitionTime ? old.lastTransitionTime : now.toISOString(),
  };
  const conditions = [...(es.status?.conditions ?? []).filter((c) => c.type !== 'Ready'), ready];
  const patch = {
    status: {
      conditions,
      binding: { name: report.target },
      ...(synced ? { refreshTime: now.toISOString(), syncedResourceVersion: version } : {}),
    },
  };
  const { namespace, name } = es.metadata;
  await kube.patch(
    `/apis/${es.apiVersion}/namespaces/${namespace}/externalsecrets/${name}/status`,
    patch,
  );
  return true;
}

/** Whether a failure report is new compared with the condition already on the object. */
export function isNewFailure(es: ExternalSecret, message: string): boolean {
  const old = readyCondition(es);
  return old?.status !== 'False' || old.message !== message.slice(0, 32_000);
}

export interface EventSource {
  /** reportingController / source.component */
  component: string;
  /** reportingInstance / source.host: the pod name */
  instance: string;
}

/** Creates a core/v1 Event about the ExternalSecret. */
export async function emitEvent(
  kube: KubeApi,
  es: ExternalSecret,
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
  source: EventSource,
  now: Date,
): Promise<void> {
  const { namespace, name, uid, resourceVersion } = es.metadata;
  const time = now.toISOString();
  await kube.create(`/api/v1/namespaces/${namespace}/events`, {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { generateName: `${name}.`, namespace },
    involvedObject: {
      apiVersion: es.apiVersion,
      kind: 'ExternalSecret',
      name,
      namespace,
      uid,
      resourceVersion,
    },
    type,
    reason,
    message: message.slice(0, 1024),
    source: { component: source.component, host: source.instance },
    reportingComponent: source.component,
    reportingInstance: source.instance,
    firstTimestamp: time,
    lastTimestamp: time,
    count: 1,
  });
}
