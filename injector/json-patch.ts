/**
 * The JSON Patch (RFC 6902) operations the injector emits, and JSON Pointer (RFC 6901) paths.
 * The injector only ever adds; `replace` and `remove` are typed for completeness of the format.
 */

export type JsonPatchOp =
  | { op: 'add'; path: string; value: unknown }
  | { op: 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string };

/**
 * Builds a JSON Pointer from unescaped segments. `~` becomes `~0` and `/` becomes `~1`, in that
 * order (RFC 6901 section 3), so the annotation key `agent.external-secrets.io/status` becomes
 * the segment `agent.external-secrets.io~1status`.
 */
export function pointer(...segments: (string | number)[]): string {
  return segments.map((s) => '/' + String(s).replaceAll('~', '~0').replaceAll('/', '~1')).join('');
}
