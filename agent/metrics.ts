/**
 * The sidecar's metrics, served at `GET /metrics` in the Prometheus text format when
 * ESA_METRICS_ADDRESS is set. The names are ESO's, so dashboards and alerts built for the
 * ESO controller keep working:
 *
 * - `externalsecret_sync_calls_total{name,namespace}`: every pass of the refresh loop.
 * - `externalsecret_sync_calls_error{name,namespace}`: passes that failed.
 * - `externalsecret_status_condition{name,namespace,condition="Ready",status}`: 1 on the
 *   series of the current Ready status (`True` or `False`), 0 on the other.
 *
 * NOTE: the labels are the ExternalSecret's name and namespace only, never a key, a store or a
 * message: those can change per pass (and a message can carry provider text), and each label
 * value is kept forever. The names come from ESA_EXTERNAL_SECRETS, so the set is small.
 */
import { createServer, type Server } from 'node:http';
import type { Logger } from './log.ts';
import { familyHeader, formatLabels, METRICS_CONTENT_TYPE } from './prometheus.ts';
import type { SyncOutcome } from './sync.ts';

export const SYNC_CALLS_TOTAL = 'externalsecret_sync_calls_total';
export const SYNC_CALLS_ERROR = 'externalsecret_sync_calls_error';
export const STATUS_CONDITION = 'externalsecret_status_condition';

export interface AgentMetrics {
  /** Counts one pass of one ExternalSecret and records its Ready status. */
  observePass(outcome: Pick<SyncOutcome, 'externalSecret' | 'ok'>): void;
  /** Everything, in the Prometheus text format. */
  render(): string;
}

interface Series {
  namespace: string;
  name: string;
  calls: number;
  errors: number;
  ready: boolean;
}

export function createAgentMetrics(): AgentMetrics {
  const series = new Map<string, Series>();

  return {
    observePass(outcome) {
      let s = series.get(outcome.externalSecret);
      if (!s) {
        // "namespace/name", as SyncOutcome names it; both are DNS names without a slash
        const slash = outcome.externalSecret.indexOf('/');
        const namespace = outcome.externalSecret.slice(0, Math.max(slash, 0));
        const name = outcome.externalSecret.slice(slash + 1);
        s = { namespace, name, calls: 0, errors: 0, ready: false };
        series.set(outcome.externalSecret, s);
      }
      s.calls++;
      if (!outcome.ok) s.errors++;
      s.ready = outcome.ok;
    },

    render() {
      const all = [...series.keys()].sort().map((k) => series.get(k)!);
      const id = (s: Series) => ({ name: s.name, namespace: s.namespace });
      const lines: string[] = [];

      lines.push(...familyHeader(SYNC_CALLS_TOTAL, 'Sync passes, by ExternalSecret.', 'counter'));
      for (const s of all) lines.push(`${SYNC_CALLS_TOTAL}${formatLabels(id(s))} ${s.calls}`);

      lines.push(
        ...familyHeader(SYNC_CALLS_ERROR, 'Failed sync passes, by ExternalSecret.', 'counter'),
      );
      for (const s of all) lines.push(`${SYNC_CALLS_ERROR}${formatLabels(id(s))} ${s.errors}`);

      lines.push(
        ...familyHeader(STATUS_CONDITION, 'Ready condition after the last pass.', 'gauge'),
      );
      for (const s of all) {
        for (const status of ['True', 'False'] as const) {
          const labels = formatLabels({ ...id(s), condition: 'Ready', status });
          const value = s.ready === (status === 'True') ? 1 : 0;
          lines.push(`${STATUS_CONDITION}${labels} ${value}`);
        }
      }
      return lines.join('\n') + '\n';
    },
  };
}

/**
 * Serves `GET /metrics` over plain HTTP on `address` (host:port, as ESA_METRICS_ADDRESS holds
 * it); every other path is 404 and every other method 405. Resolves once listening; rejects
 * with an error naming ESA_METRICS_ADDRESS when the address cannot be bound.
 */
export async function serveMetrics(
  address: { host: string; port: number },
  metrics: AgentMetrics,
  log: Logger,
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    } else if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'Content-Type': 'text/plain', Allow: 'GET, HEAD' }).end();
    } else {
      res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE });
      res.end(req.method === 'HEAD' ? undefined : metrics.render());
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const where = `${address.host}:${address.port}`;
      const why = err.code ?? err.message;
      reject(new Error(`ESA_METRICS_ADDRESS: cannot listen on ${where}: ${why}`, { cause: err }));
    });
    server.listen(address.port, address.host, () => resolve());
  });
  log.info('serving metrics', { address: `${address.host}:${address.port}` });
  return server;
}

/** Stops the metrics server, dropping idle keep-alive connections. */
export function closeMetrics(server: Server): void {
  server.close();
  server.closeAllConnections();
}
