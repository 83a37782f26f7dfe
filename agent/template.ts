/**
 * `target.template.data`: each value is a template rendered with the fetched data, through
 * nunjucks with HTML escaping off.
 *
 * Two syntaxes are accepted per template. A template with any ESO (Go text/template) action,
 * such as `{{ .user }}`, `{{ index . "a.b" }}` or `{{ .x | b64enc }}`, is translated as a whole
 * (template-go.ts) and follows Go's rules: a missing key is an error naming the key, a failing
 * function is an error, and no error text or `<no value>` ever becomes data. Any other template
 * is plain nunjucks with the data keys as variables (`{{ user | upper }}`), and an undefined
 * variable is an error too.
 *
 * Errors are TemplateErrors that name the template key and the cause, never a value.
 */
import nunjucks from 'nunjucks';
import { TemplateError } from './errors.ts';
import { parseJsonText, toJsonValue } from './json-text.ts';
import {
  bytesOf,
  describeType,
  functions,
  isEmpty,
  isMap,
  printValue,
  textOf,
  type TplValue,
} from './template-functions.ts';
import { isGoAction, splitActions, translateGoTemplate } from './template-go.ts';

interface Compiled {
  template: nunjucks.Template;
  /** The constant table of a translated Go template; undefined for plain nunjucks. */
  constants?: unknown[];
}

const env = new nunjucks.Environment(null, { autoescape: false, throwOnUndefined: true });
// Plain nunjucks templates work on text: these filters take and give UTF-8 strings, except
// fromJson, which gives the parsed value (numbers print as their original text).
for (const name of ['b64enc', 'b64dec', 'toJson', 'sha256sum', 'quote'] as const) {
  const f = functions[name] as (v: TplValue) => TplValue;
  env.addFilter(name, (v: unknown) => textOf(printValue(f(bytesOf(String(v))))));
}
env.addFilter('fromJson', (v: unknown) => {
  try {
    return toJsonValue(parseJsonText(String(v)));
  } catch {
    throw new TemplateError('fromJson: the input is not valid JSON');
  }
});

// Compiled templates by source. ExternalSecrets are few and their templates change rarely, so
// the cache is only cleared when it grows past a bound, not aged.
const cache = new Map<string, Compiled>();
const CACHE_LIMIT = 256;

function isGoTemplate(source: string): boolean {
  for (const part of splitActions(source)) {
    if ('action' in part && isGoAction(part.action)) return true;
  }
  return false;
}

function compile(source: string): Compiled {
  let compiled = cache.get(source);
  if (compiled) return compiled;
  if (isGoTemplate(source)) {
    const { source: njk, constants } = translateGoTemplate(source);
    compiled = { template: new nunjucks.Template(njk, env, undefined, true), constants };
  } else {
    compiled = { template: new nunjucks.Template(source, env, undefined, true) };
  }
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(source, compiled);
  return compiled;
}

/** The helpers a translated template calls; `state.error` keeps the first error thrown. */
function goHelpers(state: { error?: TemplateError }) {
  const guard =
    <A extends unknown[], R>(f: (...args: A) => R) =>
    (...args: A): R => {
      try {
        return f(...args);
      } catch (err) {
        state.error ??=
          err instanceof TemplateError ? err : new TemplateError((err as Error).message);
        throw state.error;
      }
    };
  return {
    get: guard((recv: TplValue, path: string[], soft: boolean): TplValue => {
      let cur = recv;
      for (const seg of path) {
        if (isMap(cur) && Object.hasOwn(cur, seg)) cur = cur[seg];
        else if (soft) return undefined;
        else if (isMap(cur)) throw new TemplateError(`map has no entry for key "${textOf(seg)}"`);
        else throw new TemplateError(`can't evaluate field ${textOf(seg)} in ${describeType(cur)}`);
      }
      return cur;
    }),
    fn: guard((name: string, ...args: TplValue[]) =>
      (functions[name] as (...a: TplValue[]) => TplValue)(...args),
    ),
    out: guard(printValue),
    truth: (v: TplValue) => !isEmpty(v),
    iter: guard((v: TplValue): TplValue[] => pairs(v).map((p) => p[1])),
    pairs: guard(pairs),
  };
}

// Go ranges over lists in order and over maps in key order.
function pairs(v: TplValue): [TplValue, TplValue][] {
  if (Array.isArray(v)) return v.map((x, i) => [i, x]);
  if (isMap(v))
    return Object.keys(v)
      .sort()
      .map((k) => [k, v[k]]);
  if (v === undefined || v === null) return [];
  throw new TemplateError(`range can't iterate over ${describeType(v)}`);
}

/**
 * Renders one template. `data` holds the fetched values as byte strings (latin1, one char per
 * byte; see template-functions.ts). Returns the rendered bytes. `label` names the template in
 * errors, for example `template data key "pw"`.
 */
function render(label: string, source: string, data: Record<string, string>): Buffer {
  const state: { error?: TemplateError } = {};
  try {
    const compiled = compile(source);
    if (compiled.constants) {
      const out = compiled.template.render({
        __d0: data,
        __c: compiled.constants,
        __esa: goHelpers(state),
      });
      return Buffer.from(out, 'latin1');
    }
    const text: Record<string, string> = Object.create(null);
    for (const [k, v] of Object.entries(data)) text[k] = textOf(v);
    return Buffer.from(compiled.template.render(text), 'utf8');
  } catch (err) {
    const cause = state.error ?? err;
    const message =
      cause instanceof TemplateError ? cause.message : nunjucksMessage(cause as Error);
    throw new TemplateError(`${label}: ${message}`);
  }
}

// nunjucks errors read "(unknown path) [Line 1, Column 4]\n  Error: ..."; keep the position and
// the cause. They quote template source at most, never rendered data.
function nunjucksMessage(err: Error): string {
  return err.message
    .replace(/^\(unknown path\)\s*/, '')
    .replace(/\s*\n\s*/g, ' ')
    .replace(/\bTemplateError: /, '');
}

/** Renders templates against one set of data: `(label, source)` to the rendered bytes. */
export type Renderer = (label: string, source: string) => Buffer;

/**
 * A Renderer over `data` (the fetched values). Each call throws a TemplateError that starts
 * with its `label` when the template does not parse or render.
 */
export function createRenderer(data: Record<string, Buffer>): Renderer {
  const bytes: Record<string, string> = Object.create(null);
  for (const [k, v] of Object.entries(data)) bytes[k] = v.toString('latin1');
  return (label, source) => render(label, source, bytes);
}

/**
 * Renders every template in `templates` against `data` and returns the results by key. The
 * first failure throws a TemplateError naming its template key.
 */
export function renderTemplateData(
  templates: Record<string, string>,
  data: Record<string, Buffer>,
): Record<string, Buffer> {
  const renderOne = createRenderer(data);
  const out: Record<string, Buffer> = {};
  for (const [key, source] of Object.entries(templates))
    out[key] = renderOne(`template data key "${key}"`, source);
  return out;
}
