/**
 * What the target Secret holds, built from the fetched data and `spec.target.template`, in
 * ESO's order (ApplyTemplate):
 *
 * 1. no template: the fetched data, and the ExternalSecret's own labels and annotations;
 * 2. with a template: `template.type`; the fetched data only when `mergePolicy: Merge` or when
 *    the template has neither `data` nor `templateFrom`; then each `templateFrom` entry in order
 *    (ConfigMap, Secret or literal; into Data, Annotations or Labels); then `template.data`, which
 *    wins; then `template.metadata` labels and annotations, each rendered as a template too.
 *
 * Keys written to data are checked as Secret keys. Every template failure names the template
 * (`template data key "pw"`, `templateFrom[0] (ConfigMap tpl, key "cfg")`), never a value.
 *
 * The template engine (nunjucks) and the YAML parser are loaded only by ExternalSecrets that
 * use them.
 */
import { InvalidDataError, KubeApiError, NotFoundError, TemplateError } from './errors.ts';
import { validateKey } from './keys.ts';
import type { Renderer } from './template.ts';
import type { ConfigMap, ExternalSecret, KubeApi, Secret, TemplateFrom } from './types.ts';

export interface TargetContent {
  /** The Secret data this ExternalSecret defines (Merge policies add the live keys later). */
  data: Record<string, Buffer>;
  /** Unset means: keep the live Secret's type (Opaque for a new one). */
  type?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  finalizers: string[];
}

/** Builds the target content. `kube` reads the ConfigMaps and Secrets `templateFrom` names. */
export async function buildTarget(
  kube: KubeApi,
  es: ExternalSecret,
  fetched: Record<string, Buffer>,
): Promise<TargetContent> {
  const template = es.spec.target?.template;
  if (!template) {
    return {
      data: { ...fetched },
      labels: { ...es.metadata.labels },
      annotations: { ...es.metadata.annotations },
      finalizers: [],
    };
  }
  if (template.engineVersion && template.engineVersion !== 'v2' && template.engineVersion !== 'v1')
    throw new TemplateError(
      `spec.target.template.engineVersion "${template.engineVersion}" is not supported (expected v2)`,
    );

  const out: TargetContent = {
    data: {},
    labels: {},
    annotations: {},
    finalizers: [...(template.metadata?.finalizers ?? [])],
  };
  if (template.type) out.type = template.type;
  const templateFrom = template.templateFrom ?? [];
  const dataTemplates = template.data ?? {};
  const hasTemplates = Object.keys(dataTemplates).length > 0 || templateFrom.length > 0;
  if (template.mergePolicy === 'Merge' || !hasTemplates) Object.assign(out.data, fetched);

  const labels = template.metadata?.labels ?? {};
  const annotations = template.metadata?.annotations ?? {};
  const needsEngine =
    hasTemplates || Object.keys(labels).length > 0 || Object.keys(annotations).length > 0;
  if (!needsEngine) return out;

  const { createRenderer } = await import('./template.ts');
  const render = createRenderer(fetched);
  const namespace = es.metadata.namespace ?? 'default';

  for (const [i, from] of templateFrom.entries()) {
    await applyTemplateFrom(kube, namespace, from, `templateFrom[${i}]`, render, out);
  }
  for (const [key, source] of Object.entries(dataTemplates)) {
    const label = `template data key "${key}"`;
    validateKey(key, `spec.target.template.data`);
    out.data[key] = render(label, source);
  }
  for (const [key, source] of Object.entries(labels))
    out.labels[key] = render(`template label "${key}"`, source).toString('utf8');
  for (const [key, source] of Object.entries(annotations))
    out.annotations[key] = render(`template annotation "${key}"`, source).toString('utf8');
  return out;
}

type Target = 'data' | 'annotations' | 'labels';

function targetOf(from: TemplateFrom, where: string): Target {
  const target = (from.target ?? 'Data').toLowerCase();
  if (target === 'data' || target === 'annotations' || target === 'labels') return target;
  throw new TemplateError(
    `spec.target.template.${where}.target "${from.target}" is not supported (expected Data, Annotations or Labels)`,
  );
}

function put(out: TargetContent, target: Target, key: string, value: Buffer, where: string): void {
  if (target === 'data') {
    validateKey(key, where);
    out.data[key] = value;
  } else {
    out[target][key] = value.toString('utf8');
  }
}

async function applyTemplateFrom(
  kube: KubeApi,
  namespace: string,
  from: TemplateFrom,
  where: string,
  render: Renderer,
  out: TargetContent,
): Promise<void> {
  const target = targetOf(from, where);
  const sources: { kind: 'ConfigMap' | 'Secret'; ref: NonNullable<TemplateFrom['configMap']> }[] =
    [];
  if (from.configMap) sources.push({ kind: 'ConfigMap', ref: from.configMap });
  if (from.secret) sources.push({ kind: 'Secret', ref: from.secret });

  for (const { kind, ref } of sources) {
    const texts = await readTemplates(kube, namespace, kind, ref.name, where);
    for (const item of ref.items ?? []) {
      const label = `${where} (${kind} ${ref.name}, key "${item.key}")`;
      const source = texts[item.key];
      if (source === undefined)
        throw new NotFoundError(
          `${where}: ${kind} ${namespace}/${ref.name} has no key "${item.key}"`,
        );
      if ((item.templateAs ?? 'Values') === 'KeysAndValues') {
        const pairs = await keysAndValues(label, render(label, source));
        for (const [k, v] of Object.entries(pairs))
          put(out, target, k, Buffer.from(v, 'utf8'), label);
      } else {
        put(out, target, item.key, render(label, source), label);
      }
    }
  }
  if (from.literal !== undefined) {
    const label = `${where} (literal)`;
    const pairs = await keysAndValues(label, render(label, from.literal));
    for (const [k, v] of Object.entries(pairs)) put(out, target, k, Buffer.from(v, 'utf8'), label);
  }
}

/** The text of every key of a ConfigMap (data) or Secret (decoded data) holding templates. */
async function readTemplates(
  kube: KubeApi,
  namespace: string,
  kind: 'ConfigMap' | 'Secret',
  name: string,
  where: string,
): Promise<Record<string, string>> {
  const path = `/api/v1/namespaces/${namespace}/${kind === 'Secret' ? 'secrets' : 'configmaps'}/${name}`;
  try {
    if (kind === 'ConfigMap') return (await kube.get<ConfigMap>(path)).data ?? {};
    const secret = await kube.get<Secret>(path);
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(secret.data ?? {}))
      out[k] = Buffer.from(v, 'base64').toString('utf8');
    return out;
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404)
      throw new NotFoundError(`${where}: ${kind} ${namespace}/${name} does not exist`);
    throw err;
  }
}

/**
 * A rendered KeysAndValues template: a YAML map of key to text. Every scalar is read as text
 * (YAML's failsafe schema), so `port: 0800` and `ratio: 1.50` keep their digits.
 *
 * NOTE: ESO decodes the map into Go strings and fails on numbers and booleans; reading them as
 * text accepts what users mean. Errors give the YAML reason and position, never the text.
 */
async function keysAndValues(label: string, rendered: Buffer): Promise<Record<string, string>> {
  const yaml = await import('js-yaml');
  let doc: unknown;
  try {
    doc = yaml.load(rendered.toString('utf8'), { schema: yaml.FAILSAFE_SCHEMA });
  } catch (err) {
    const e = err as { reason?: string; mark?: { line?: number; column?: number } };
    const at = e.mark
      ? ` at line ${(e.mark.line ?? 0) + 1}, column ${(e.mark.column ?? 0) + 1}`
      : '';
    throw new TemplateError(
      `${label}: the rendered template is not a YAML map of keys to values: ${e.reason ?? 'parse error'}${at}`,
    );
  }
  if (doc === undefined || doc === null) return {};
  if (typeof doc !== 'object' || Array.isArray(doc))
    throw new TemplateError(`${label}: the rendered template is not a YAML map of keys to values`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    if (typeof v !== 'string')
      throw new InvalidDataError(
        `${label}: the rendered value of key "${k}" is a YAML ${Array.isArray(v) ? 'list' : 'map'}, expected text`,
      );
    out[k] = v;
  }
  return out;
}
