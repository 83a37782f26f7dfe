/**
 * The injector's metrics, served at `GET /metrics` in the Prometheus text format (version
 * 0.0.4), written by hand: three counters and a histogram do not need a library.
 *
 * - `esa_injector_admission_reviews_total{result}`: every request to /mutate, by outcome:
 *   `injected` (a patch), `unchanged` (allowed without a patch: already injected, or not a
 *   CREATE), `refused` (allowed: false, an annotation or field at fault), `bad_request` (not a
 *   usable AdmissionReview: HTTP 4xx) and `error` (the injector failed: HTTP 500 or a refusal
 *   caused by a bug).
 * - `esa_injector_admission_review_duration_seconds`: time from the request's arrival to the
 *   answer, for every request to /mutate.
 * - `esa_injector_injections_total{namespace}`: pods injected, by namespace.
 * - `esa_injector_serving_certificate_not_after_seconds`: when the certificate in use expires
 *   (Unix time), so an alert can fire before a failed renewal turns into failed admissions.
 *
 * NOTE: the namespace is the only label that comes from a request, and never a pod name or any
 * other value: labels are kept forever, so each label value must come from a small set. Anyone
 * who can reach the port can send a review, so namespace values are checked (a DNS label) and
 * capped at MAX_NAMESPACES; the rest are counted under `namespace=""`.
 */
import { escapeLabelValue, formatNumber } from '../agent/prometheus.ts';

export type ReviewResult = 'injected' | 'unchanged' | 'refused' | 'bad_request' | 'error';

export const REVIEW_RESULTS: readonly ReviewResult[] = [
  'injected',
  'unchanged',
  'refused',
  'bad_request',
  'error',
];

/** Latency histogram bounds in seconds: 1 ms to 1 s (the API server waits at most 10 s). */
export const DURATION_BUCKETS_SECONDS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];

/** Distinct namespaces counted by name; more than a cluster has, fewer than would hurt memory. */
export const MAX_NAMESPACES = 10_000;

export { escapeLabelValue, METRICS_CONTENT_TYPE } from '../agent/prometheus.ts';

export interface InjectorMetrics {
  /** Counts one request to /mutate; `namespace` only for an injected pod. */
  observeReview(result: ReviewResult, durationSeconds: number, namespace?: string): void;
  /** Records the expiry of the serving certificate now in use. */
  setCertificateNotAfter(notAfter: Date): void;
  /** Everything, in the Prometheus text format. */
  render(): string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function createInjectorMetrics(): InjectorMetrics {
  const reviews = new Map<ReviewResult, number>(REVIEW_RESULTS.map((r) => [r, 0]));
  // Cumulative counts are computed at render time; here each bucket counts its own range.
  const bucketCounts = DURATION_BUCKETS_SECONDS.map(() => 0);
  let overflowCount = 0;
  let durationSum = 0;
  let durationCount = 0;
  const injections = new Map<string, number>();
  /** Injections in a namespace that is not counted by name (see MAX_NAMESPACES). */
  let otherInjections = 0;
  let certificateNotAfter: number | undefined;

  return {
    observeReview(result, durationSeconds, namespace) {
      reviews.set(result, (reviews.get(result) ?? 0) + 1);

      const bucket = DURATION_BUCKETS_SECONDS.findIndex((le) => durationSeconds <= le);
      if (bucket === -1) overflowCount++;
      else bucketCounts[bucket]!++;
      durationSum += durationSeconds;
      durationCount++;

      if (result === 'injected' && namespace !== undefined) {
        const isKnown = injections.has(namespace);
        if (isKnown || (DNS_LABEL.test(namespace) && injections.size < MAX_NAMESPACES)) {
          injections.set(namespace, (injections.get(namespace) ?? 0) + 1);
        } else {
          otherInjections++;
        }
      }
    },

    setCertificateNotAfter(notAfter) {
      certificateNotAfter = notAfter.getTime() / 1000;
    },

    render() {
      const lines: string[] = [];
      const name = 'esa_injector_admission_reviews_total';
      lines.push(`# HELP ${name} Admission reviews answered, by result.`, `# TYPE ${name} counter`);
      for (const [result, count] of reviews) lines.push(`${name}{result="${result}"} ${count}`);

      const histogram = 'esa_injector_admission_review_duration_seconds';
      lines.push(
        `# HELP ${histogram} Time to answer an admission review, from request to response.`,
        `# TYPE ${histogram} histogram`,
      );
      let cumulative = 0;
      DURATION_BUCKETS_SECONDS.forEach((le, i) => {
        cumulative += bucketCounts[i]!;
        lines.push(`${histogram}_bucket{le="${le}"} ${cumulative}`);
      });
      lines.push(`${histogram}_bucket{le="+Inf"} ${cumulative + overflowCount}`);
      lines.push(`${histogram}_sum ${formatNumber(durationSum)}`);
      lines.push(`${histogram}_count ${durationCount}`);

      const counter = 'esa_injector_injections_total';
      lines.push(`# HELP ${counter} Pods injected, by namespace.`, `# TYPE ${counter} counter`);
      if (otherInjections > 0) lines.push(`${counter}{namespace=""} ${otherInjections}`);
      for (const ns of [...injections.keys()].sort()) {
        lines.push(`${counter}{namespace="${escapeLabelValue(ns)}"} ${injections.get(ns)}`);
      }

      if (certificateNotAfter !== undefined) {
        const gauge = 'esa_injector_serving_certificate_not_after_seconds';
        lines.push(
          `# HELP ${gauge} Expiry of the serving certificate in use, as Unix time.`,
          `# TYPE ${gauge} gauge`,
          `${gauge} ${formatNumber(certificateNotAfter)}`,
        );
      }
      return lines.join('\n') + '\n';
    },
  };
}
