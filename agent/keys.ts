/**
 * Secret key names: `conversionStrategy`, `rewrite` and validation, the same for every
 * provider.
 *
 * Order, as in ESO: a `dataFrom` entry's keys are rewritten (each `rewrite` step in turn), or,
 * when there is no `rewrite`, converted by `conversionStrategy`; then validated. `rewrite` sees
 * the names as the provider has them (`app/db_user`): unlike ESO's fake and Google providers,
 * no provider converts early.
 *
 * Where two keys of one entry end up with the same name the entry fails and the message names
 * both (ESO lets one silently win after a rewrite).
 *
 * Key names are not secret values: messages quote them (cut to a readable length).
 */
import { InvalidDataError } from './errors.ts';
import { compileGoRegexp, replaceAllGo } from './go-regexp.ts';
import type { ConversionStrategy, Rewrite } from './types.ts';

/** What Kubernetes accepts as a Secret data key. */
export const SECRET_KEY_PATTERN = /^[-._a-zA-Z0-9]+$/;
export const SECRET_KEY_MAX_LENGTH = 253;

const keyChar = /[-._a-zA-Z0-9]/;

/** A key name for messages: quoted, and cut when very long. */
export function keyLabel(key: string): string {
  const cut = key.length > 80 ? `${key.slice(0, 80)}...` : key;
  return JSON.stringify(cut);
}

/**
 * `conversionStrategy` for one key name. Default replaces each character Kubernetes does not
 * accept with `_`; Unicode replaces it with `_U<hex>_` (the code point, at least 4 hex digits,
 * as ESO writes it: "é" becomes `_U00e9_`).
 *
 * NOTE: ESO keeps any Unicode letter or digit as it is, which gives a key the API server then
 * refuses ("ü" stays "ü"). Here only ASCII letters and digits are kept, so a converted key is
 * always valid.
 */
export function convertKey(key: string, strategy: ConversionStrategy | undefined): string {
  let out = '';
  for (const ch of key) {
    if (keyChar.test(ch)) out += ch;
    else if (strategy === 'Unicode')
      out += `_U${(ch.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}_`;
    else out += '_';
  }
  return out;
}

/** Renames every key with `rename`; two keys that end up equal are an error naming both. */
function renameKeys(
  data: Map<string, Buffer>,
  rename: (key: string) => string,
  where: string,
): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const from = new Map<string, string>();
  for (const [key, value] of data) {
    const next = rename(key);
    const earlier = from.get(next);
    if (earlier !== undefined) {
      throw new InvalidDataError(
        `${where}: keys ${keyLabel(earlier)} and ${keyLabel(key)} both become ${keyLabel(next)}`,
      );
    }
    from.set(next, key);
    out.set(next, value);
  }
  return out;
}

/** Applies `conversionStrategy` to every key of one entry (`where` names it in errors). */
export function convertKeys(
  data: Map<string, Buffer>,
  strategy: ConversionStrategy | undefined,
  where: string,
): Map<string, Buffer> {
  if (strategy !== undefined && strategy !== 'Default' && strategy !== 'Unicode') {
    throw new InvalidDataError(
      `${where}: unknown conversionStrategy "${String(strategy)}" (expected Default or Unicode)`,
    );
  }
  return renameKeys(
    data,
    (k) => convertKey(k, strategy),
    `${where}: conversionStrategy ${strategy ?? 'Default'}`,
  );
}

/**
 * Renders a `transform` template for one key; set by the caller, so that the template engine
 * (nunjucks) is loaded only by ExternalSecrets that use one.
 */
export type TransformRenderer = (label: string, template: string, key: string) => string;

/** Applies the `rewrite` steps in order. */
export function rewriteKeys(
  data: Map<string, Buffer>,
  rewrites: readonly Rewrite[],
  where: string,
  transform?: TransformRenderer,
): Map<string, Buffer> {
  let out = data;
  rewrites.forEach((step, i) => {
    const at = `${where}.rewrite[${i}]`;
    if (step.regexp) {
      const { source, target } = step.regexp;
      const re = compileGoRegexp(source ?? '', `${at}.regexp.source`);
      out = renameKeys(out, (k) => replaceAllGo(re, k, target ?? ''), at);
    } else if (step.transform) {
      if (!transform) throw new InvalidDataError(`${at}.transform: no template engine`);
      const template = step.transform.template ?? '';
      out = renameKeys(out, (k) => transform(`${at}.transform`, template, k), at);
    } else if (step.merge) {
      throw new InvalidDataError(`${at}.merge is not supported by this agent`);
    } else {
      throw new InvalidDataError(`${at}: needs regexp or transform`);
    }
  });
  return out;
}

/**
 * Checks that `key` is a valid Secret key: only letters, digits, `-`, `_` and `.`, at most 253
 * characters. Throws InvalidDataError naming the key and `where`.
 */
export function validateKey(key: string, where: string): void {
  if (key.length > SECRET_KEY_MAX_LENGTH) {
    throw new InvalidDataError(
      `${where}: invalid secret key ${keyLabel(key)}: ${key.length} characters, at most ${SECRET_KEY_MAX_LENGTH} are allowed`,
    );
  }
  if (!SECRET_KEY_PATTERN.test(key) || key === '.' || key === '..') {
    const bad = [...key].find((ch) => !keyChar.test(ch));
    const why =
      key === ''
        ? 'a key may not be empty'
        : bad
          ? `character ${JSON.stringify(bad)} is not allowed`
          : '"." and ".." are not allowed';
    throw new InvalidDataError(
      `${where}: invalid secret key ${keyLabel(key)}: ${why}; only letters, digits, "-", "_" and "." ` +
        '(TIP: use rewrite or conversionStrategy to change keys)',
    );
  }
}

/**
 * Validates every key of one `dataFrom` entry. An empty key is dropped, as ESO drops it: a
 * provider that lists a secret at its root path yields one.
 */
export function validateKeys(data: Map<string, Buffer>, where: string): Map<string, Buffer> {
  for (const key of data.keys()) {
    if (key === '') data.delete(key);
    else validateKey(key, where);
  }
  return data;
}
