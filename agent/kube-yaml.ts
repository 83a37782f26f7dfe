/**
 * YAML as kubectl reads and writes manifests, for the offline commands (`render`, `inject`), so
 * a file means the same thing to them as to `kubectl apply`.
 *
 * Reading: sigs.k8s.io/yaml decodes through go-yaml v2, which takes YAML 1.1 scalars: `yes`,
 * `no`, `on`, `off` are booleans and `0644` is the octal 420 (js-yaml's default is YAML 1.2).
 * Unlike js-yaml's YAML 1.1 schema, a timestamp stays a string (go-yaml leaves it one when
 * decoding into interface{}) and `12:30` is not a base-60 number. Merge keys (`<<`) work.
 */
import * as yaml from 'js-yaml';

const notSexagesimal = <T>(tag: yaml.ScalarTagDefinition<T>): yaml.ScalarTagDefinition<T> => ({
  ...tag,
  resolve: (source, isExplicit, tagName) =>
    source.includes(':') ? yaml.NOT_RESOLVED : tag.resolve(source, isExplicit, tagName),
});

/** The schema kubectl's decoder amounts to (see the module comment). */
export const KUBECTL_YAML = new yaml.Schema(
  yaml.YAML11_SCHEMA.tags.filter((t) => t !== yaml.timestampTag),
).withTags(notSexagesimal(yaml.intYaml11Tag), notSexagesimal(yaml.floatYaml11Tag), yaml.mergeTag);

/** Every document of `text` (YAML or JSON); throws js-yaml's YAMLException with a position. */
export function loadManifests(text: string, filename?: string): unknown[] {
  return yaml.loadAll(text, { schema: KUBECTL_YAML, ...(filename ? { filename } : {}) });
}

/** Documents as a multi-document YAML stream, lines never folded. */
export function dumpManifests(documents: unknown[]): string {
  return documents.map((d) => yaml.dump(d, { lineWidth: -1, noRefs: true })).join('---\n');
}

export { YAMLException } from 'js-yaml';
