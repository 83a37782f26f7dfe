/**
 * Go (RE2) regular expressions as users write them for ESO (`find.name.regexp`,
 * `rewrite[].regexp`), run on JavaScript's engine.
 *
 * The two dialects agree on everything these fields use in practice: classes, anchors,
 * alternation, repetition, groups, `\d \w \s \b`. What differs is translated or refused:
 * - `(?P<name>...)` becomes `(?<name>...)`;
 * - leading flag groups `(?i)`, `(?s)`, `(?m)` (and combinations) become JS flags; flags in the
 *   middle of an expression are refused with a message saying so;
 * - `\A` becomes `^`, and `\z` becomes `$` (outside multi-line mode, where they agree);
 * - back-references (`\1`), look-around (`(?=`, `(?!`, `(?<=`, `(?<!`) do not exist in RE2 and
 *   are refused, as Go refuses them, so a manifest does not behave differently here and in ESO.
 *
 * Replacement text follows Go's `Regexp.Expand`: `$1`, `${1}`, `$name`, `${name}`, and `$$` for
 * a dollar. As in Go, `$1x` names the group "1x" (use `${1}x`), a group that does not exist
 * expands to nothing, and a `$` not followed by a name is kept as it is.
 */
import { InvalidDataError } from './errors.ts';

/**
 * Compiles a Go regular expression. Throws InvalidDataError naming `field` and the pattern
 * (patterns are manifest text, not secret values).
 */
export function compileGoRegexp(pattern: string, field: string): RegExp {
  let source = pattern;
  let flags = '';
  const lead = /^\(\?([ims]+)\)/.exec(source);
  if (lead) {
    flags = [...new Set(lead[1])].join('');
    source = source.slice(lead[0].length);
  }
  const refuse = (why: string) =>
    new InvalidDataError(`${field}: cannot use regular expression "${pattern}": ${why}`);
  // Walk the pattern once, outside character classes, to translate or refuse Go-only syntax.
  let out = '';
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i] as string;
    if (c === '\\') {
      const n = source[i + 1];
      if (n === undefined) throw refuse('trailing backslash');
      if (!inClass && n === 'A') out += '^';
      else if (!inClass && n === 'z') out += '$';
      else if (!inClass && /[1-9]/.test(n)) throw refuse('back-references are not supported (RE2)');
      else out += c + n;
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      // a `]` right after `[` or `[^` is a literal in Go
      if (source[i + 1] === '^') out += source[++i];
      if (source[i + 1] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    if (c === '(' && source[i + 1] === '?') {
      const rest = source.slice(i + 2);
      if (rest.startsWith('P<')) {
        out += '(?<';
        i += 3;
        continue;
      }
      if (/^(?:=|!|<=|<!)/.test(rest)) throw refuse('look-around is not supported (RE2)');
      if (/^[imsU-]+\)/.test(rest)) throw refuse('flags are supported only at the start');
      if (/^[imsU-]+:/.test(rest)) throw refuse('flag groups are not supported here');
    }
    out += c;
  }
  try {
    return new RegExp(out, flags);
  } catch (err) {
    throw refuse((err as Error).message.replace(/^Invalid regular expression: /, ''));
  }
}

/** Whether `re` matches anywhere in `text` (Go's MatchString: unanchored). */
export function matchesGo(re: RegExp, text: string): boolean {
  re.lastIndex = 0;
  return new RegExp(re.source, re.flags.replace('g', '')).test(text);
}

/**
 * Go's `ReplaceAllString(text, template)`: every non-overlapping match replaced by the expanded
 * template; an empty match right after the previous match is skipped, as Go does.
 */
export function replaceAllGo(re: RegExp, text: string, template: string): string {
  const global = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`);
  let out = '';
  let last = 0; // end of the previous match
  let prevEnd = -1;
  let m: RegExpExecArray | null;
  while ((m = global.exec(text)) !== null) {
    const start = m.index;
    const end = start + m[0].length;
    if (m[0].length === 0) {
      global.lastIndex = end + 1;
      if (start === prevEnd) continue;
    }
    out += text.slice(last, start) + expand(template, m);
    last = end;
    prevEnd = end;
    if (start >= text.length) break;
  }
  return out + text.slice(last);
}

/** Go's Regexp.Expand of `template` for one match. */
function expand(template: string, m: RegExpExecArray): string {
  let out = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if (c !== '$') {
      out += c;
      continue;
    }
    if (template[i + 1] === '$') {
      out += '$';
      i++;
      continue;
    }
    let name: string | undefined;
    let end = i;
    if (template[i + 1] === '{') {
      const close = template.indexOf('}', i + 2);
      const inner = close < 0 ? '' : template.slice(i + 2, close);
      if (/^[A-Za-z0-9_]+$/.test(inner)) {
        name = inner;
        end = close;
      }
    } else {
      const word = /^[A-Za-z0-9_]+/.exec(template.slice(i + 1))?.[0];
      if (word) {
        name = word;
        end = i + word.length;
      }
    }
    if (name === undefined) {
      out += '$'; // malformed: Go keeps the dollar as text
      continue;
    }
    out += group(m, name);
    i = end;
  }
  return out;
}

function group(m: RegExpExecArray, name: string): string {
  if (/^\d+$/.test(name)) {
    const n = Number(name);
    return n < m.length ? (m[n] ?? '') : '';
  }
  return m.groups?.[name] ?? '';
}
