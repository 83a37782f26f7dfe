/**
 * Translates an ESO (Go text/template) template into nunjucks source that nunjucks then runs.
 *
 * Supported: `{{ .key }}`, field chains (`.a.b`, `(pipeline).a`), `$` and `$var`, string
 * (interpreted and raw), number and bool literals, function calls with Go's argument order,
 * pipes, parentheses, `if`/`else if`/`else`/`end`, `range` (with `$i, $v :=`), `with`,
 * variable declarations (`$x := ...`), comments and the `{{-`/`-}}` trim markers. Anything else
 * (`define`, `template`, `block`, `break`, `continue`) fails translation with a message saying so.
 *
 * How the output is built: every piece of literal text and every constant goes into a table
 * (`__c`) and is printed from there, so nothing in the user's text is ever read as nunjucks
 * syntax; every Go expression becomes a call into the helper object `__esa`, which implements
 * Go's semantics (strict missing keys, Go truthiness, sorted map iteration).
 */
import { TemplateError } from './errors.ts';
import { bytesOf, functions } from './template-functions.ts';

export interface Translation {
  /** nunjucks source */
  source: string;
  /** constants the source refers to as `__c[i]` */
  constants: unknown[];
}

type Token =
  | { t: 'field'; path: string[]; space: boolean }
  | { t: 'var'; name: string; path: string[]; space: boolean }
  | { t: 'lit'; value: string | number | boolean | null; space: boolean }
  | { t: 'ident'; name: string; space: boolean }
  | { t: '(' | ')' | '|' | ',' | ':=' | '='; space: boolean };

type Operand =
  | { k: 'dot' }
  | { k: 'field'; recv?: Operand; path: string[] }
  | { k: 'var'; name: string }
  | { k: 'lit'; value: string | number | boolean | null }
  | { k: 'ident'; name: string }
  | { k: 'pipe'; cmds: Operand[][] };

const keywords = new Set([
  'if',
  'else',
  'end',
  'range',
  'with',
  'define',
  'template',
  'block',
  'break',
  'continue',
]);

/**
 * True when an action's text can only be Go-template syntax (not plain nunjucks): a comment, a
 * Go keyword or function name followed by its arguments (first, or after a `|`: nunjucks
 * filters take theirs in parentheses), a raw string in backquotes, or a field (`.x`, `.`) or
 * variable (`$x`) where nunjucks could not have one. Quoted text is ignored.
 */
export function isGoAction(inner: string): boolean {
  const s = inner.trim();
  if (s.startsWith('/*')) return true;
  const word = /^([A-Za-z_][A-Za-z0-9_]*)(?:\s|$)/.exec(s)?.[1];
  if (word !== undefined && (keywords.has(word) || Object.hasOwn(functions, word))) return true;
  let raw = false;
  const unquoted = s.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, (m) => {
    raw ||= m.startsWith('`');
    return '""';
  });
  // a number alone: Go reads 0777, 0x1F, 0b101 and 1_000 where nunjucks does not
  if (raw || /^[-+]?\.?\d[\w.]*(?:[eE][-+]?\d+)?$/.test(s)) return true;
  const withArgs = unquoted
    .split('|')
    .slice(1)
    .some((cmd) => {
      const name = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s+[^\s)]/.exec(cmd)?.[1];
      return name !== undefined && Object.hasOwn(functions, name);
    });
  return withArgs || /(?:^|[\s(|,])[.$]/.test(unquoted);
}

/** Splits a template into text and `{{ }}` actions, following Go's lexer rules. */
export function* splitActions(
  src: string,
): Generator<{ text: string } | { action: string; trimLeft: boolean; trimRight: boolean }> {
  let i = 0;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    if (open < 0) {
      yield { text: src.slice(i) };
      return;
    }
    if (open > i) yield { text: src.slice(i, open) };
    let j = open + 2;
    const trimLeft = /^-[ \t\r\n]/.test(src.slice(j, j + 2));
    if (trimLeft) j += 2;
    const end = actionEnd(src, j);
    const trimRight = /[ \t\r\n]-$/.test(src.slice(j, end));
    yield { action: src.slice(j, trimRight ? end - 2 : end), trimLeft, trimRight };
    i = end + 2;
  }
}

// Index of the `}}` that closes an action starting at `from`, skipping over quoted text.
function actionEnd(src: string, from: number): number {
  let i = from;
  if (src.startsWith('/*', skipSpaceAt(src, i))) {
    const close = src.indexOf('*/', i);
    const end = close < 0 ? -1 : src.indexOf('}}', close);
    if (end < 0) throw new TemplateError('unclosed comment');
    return end;
  }
  while (i < src.length) {
    const c = src[i];
    if (src.startsWith('}}', i)) return i;
    if (c === '"' || c === '`' || c === "'") {
      const close = c === '`' ? src.indexOf('`', i + 1) : quotedEnd(src, i);
      if (close < 0) throw new TemplateError('unterminated quoted string');
      i = close + 1;
      continue;
    }
    i++;
  }
  throw new TemplateError('unclosed action');
}

function skipSpaceAt(s: string, i: number): number {
  while (i < s.length && /\s/.test(s[i] as string)) i++;
  return i;
}

function quotedEnd(s: string, start: number): number {
  for (let i = start + 1; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === s[start]) return i;
    else if (s[i] === '\n') return -1;
  }
  return -1;
}

const isTerminator = (c: string | undefined) => c === undefined || /[\s.,|:()]/.test(c);
const identChar = /[A-Za-z0-9_]/;

function badChar(c: string): TemplateError {
  const cp = c.codePointAt(0) ?? 0;
  return new TemplateError(
    `bad character U+${cp.toString(16).toUpperCase().padStart(4, '0')} '${c}'`,
  );
}

/** Go's interpreted string literal → UTF-8 text. */
function unquote(raw: string): string {
  const escapes: Record<string, string> = {
    a: '\x07',
    b: '\b',
    f: '\f',
    n: '\n',
    r: '\r',
    t: '\t',
    v: '\v',
    '\\': '\\',
    '"': '"',
    "'": "'",
  };
  return raw
    .slice(1, -1)
    .replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)/g, (m, e: string) => {
      if (e.length === 1) {
        const out = escapes[e];
        if (out === undefined) throw new TemplateError(`unknown escape sequence ${m}`);
        return out;
      }
      if (e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
      if (e[0] === 'u' || e[0] === 'U') return String.fromCodePoint(parseInt(e.slice(1), 16));
      return String.fromCharCode(parseInt(e, 8));
    });
}

/** A Go number literal: hex, binary, octal (`0o17` and `017`), `_` separators, floats. */
function goNumber(literal: string): number | undefined {
  const sign = literal.startsWith('-') ? -1 : 1;
  const body = literal.replace(/^[-+]/, '');
  if (body.startsWith('_') || body.endsWith('_') || body.includes('__')) return undefined;
  const digits = body.replaceAll('_', '');
  let n: number;
  if (/^0[0-7]+$/.test(digits)) n = parseInt(digits, 8);
  else if (/^0\d+$/.test(digits)) return undefined;
  else n = Number(digits);
  return Number.isNaN(n) ? undefined : sign * n;
}

function lex(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let space = false;
  const readName = () => {
    const start = i;
    while (i < text.length && identChar.test(text[i] as string)) i++;
    return text.slice(start, i);
  };
  const readPath = () => {
    const path: string[] = [];
    while (text[i] === '.') {
      i++;
      const name = readName();
      if (name === '') {
        if (path.length === 0 && isTerminator(text[i])) return path; // a lone `.`
        throw text[i] === undefined
          ? new TemplateError('unexpected end after "."')
          : badChar(text[i] as string);
      }
      path.push(name);
    }
    if (!isTerminator(text[i])) throw badChar(text[i] as string);
    return path;
  };

  while (i < text.length) {
    const c = text[i] as string;
    if (/\s/.test(c)) {
      space = true;
      i++;
      continue;
    }
    if (c === '.') tokens.push({ t: 'field', path: readPath(), space });
    else if (c === '$') {
      i++;
      const name = readName();
      tokens.push({ t: 'var', name, path: readPath(), space });
    } else if (c === '"' || c === "'") {
      const end = quotedEnd(text, i);
      const raw = text.slice(i, end + 1);
      i = end + 1;
      const value = unquote(raw);
      tokens.push({ t: 'lit', value: c === "'" ? (value.codePointAt(0) ?? 0) : value, space });
    } else if (c === '`') {
      const end = text.indexOf('`', i + 1);
      tokens.push({ t: 'lit', value: text.slice(i + 1, end), space });
      i = end + 1;
    } else if (/[-+0-9]/.test(c)) {
      const m =
        /^[-+]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|[\d_]+(?:\.[\d_]*)?(?:[eE][-+]?\d+)?)/.exec(
          text.slice(i),
        );
      const value = m && goNumber(m[0]);
      if (!m || value === undefined || !isTerminator(text[i + m[0].length]))
        throw new TemplateError(`bad number syntax at "${c}"`);
      tokens.push({ t: 'lit', value, space });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const name = readName();
      if (!isTerminator(text[i])) throw badChar(text[i] as string);
      if (name === 'true' || name === 'false')
        tokens.push({ t: 'lit', value: name === 'true', space });
      else if (name === 'nil') tokens.push({ t: 'lit', value: null, space });
      else tokens.push({ t: 'ident', name, space });
    } else if (text.startsWith(':=', i)) {
      tokens.push({ t: ':=', space });
      i += 2;
    } else if ('()|,='.includes(c)) {
      tokens.push({ t: c as '(' | ')' | '|' | ',' | '=', space });
      i++;
    } else {
      throw badChar(c);
    }
    space = false;
  }
  return tokens;
}

class Parser {
  readonly tokens: Token[];
  pos = 0;
  constructor(tokens: Token[]) {
    this.tokens = tokens;
  }
  peek(): Token | undefined {
    return this.tokens[this.pos];
  }
  next(): Token | undefined {
    return this.tokens[this.pos++];
  }
  expectEnd(): void {
    const t = this.peek();
    if (t) throw new TemplateError(`unexpected "${t.t === 'ident' ? t.name : t.t}" in action`);
  }

  pipeline(): Operand[][] {
    const cmds: Operand[][] = [this.command()];
    while (this.peek()?.t === '|') {
      this.next();
      cmds.push(this.command());
    }
    return cmds;
  }

  command(): Operand[] {
    const ops: Operand[] = [];
    for (let t = this.peek(); t && t.t !== '|' && t.t !== ')'; t = this.peek()) {
      if (t.t === ',' || t.t === ':=' || t.t === '=') break;
      ops.push(this.operand());
    }
    if (ops.length === 0) throw new TemplateError('missing value for command');
    return ops;
  }

  operand(): Operand {
    const t = this.next() as Token;
    let op: Operand;
    switch (t.t) {
      case 'field':
        op = t.path.length === 0 ? { k: 'dot' } : { k: 'field', path: t.path };
        break;
      case 'var':
        op = { k: 'var', name: t.name };
        if (t.path.length) op = { k: 'field', recv: op, path: t.path };
        break;
      case 'lit':
        op = { k: 'lit', value: t.value };
        break;
      case 'ident':
        if (keywords.has(t.name))
          throw new TemplateError(`unexpected keyword "${t.name}" in operand`);
        op = { k: 'ident', name: t.name };
        break;
      case '(': {
        const cmds = this.pipeline();
        if (this.next()?.t !== ')') throw new TemplateError('unclosed left paren');
        op = { k: 'pipe', cmds };
        break;
      }
      default:
        throw new TemplateError(`unexpected "${t.t}" in operand`);
    }
    // `(pipeline).field`: a field token glued to the operand, without a space in between
    const after = this.peek();
    if (after?.t === 'field' && !after.space && after.path.length) {
      this.next();
      op = { k: 'field', recv: op, path: after.path };
    }
    return op;
  }
}

interface Block {
  kind: 'if' | 'range' | 'with';
  dot: string;
  vars: Set<string>;
}

/** Translates one Go template into nunjucks source plus its constant table. */
export function translateGoTemplate(src: string): Translation {
  const constants: unknown[] = [];
  const constant = (v: unknown) => `__c[${constants.push(v) - 1}]`;
  const out: string[] = [];
  const blocks: Block[] = [{ kind: 'if', dot: '__d0', vars: new Set(['']) }];
  let counter = 0;
  const scope = () => blocks[blocks.length - 1] as Block;
  const known = (name: string) => blocks.some((b) => b.vars.has(name));

  const emitOperand = (op: Operand, soft = false): string => {
    switch (op.k) {
      case 'dot':
        return scope().dot;
      case 'var':
        if (!known(op.name)) throw new TemplateError(`undefined variable "$${op.name}"`);
        return op.name === '' ? '__d0' : `__v_${op.name}`;
      case 'field': {
        const recv = op.recv ? emitOperand(op.recv) : scope().dot;
        return `__esa.get(${recv}, ${constant(op.path.map(bytesOf))}, ${soft})`;
      }
      case 'lit':
        return constant(typeof op.value === 'string' ? bytesOf(op.value) : op.value);
      case 'ident':
        return emitCall(op.name, []);
      case 'pipe':
        return emitPipeline(op.cmds);
    }
  };

  const emitCall = (name: string, args: string[]) => {
    if (!Object.hasOwn(functions, name)) throw new TemplateError(`function "${name}" not defined`);
    return `__esa.fn(${constant(name)}${args.map((a) => `, ${a}`).join('')})`;
  };

  // NOTE: `default` looks its argument up softly, so `{{ .opt | default "x" }}` gives "x" when
  // `opt` is missing. Go (and ESO) fail there instead; we rescue on purpose (see
  // shared/acceptance/externalsecret-cases.md C04).
  const emitPipeline = (cmds: Operand[][]): string => {
    let acc: string | undefined;
    cmds.forEach((cmd, i) => {
      const [head, ...rest] = cmd as [Operand, ...Operand[]];
      if (head.k !== 'ident') {
        if (rest.length || acc !== undefined)
          throw new TemplateError("can't give argument to non-function");
        acc = emitOperand(head);
        return;
      }
      const isDefault = head.name === 'default';
      const args = rest.map((a, j) =>
        emitOperand(a, isDefault && acc === undefined && j === rest.length - 1),
      );
      if (acc !== undefined) {
        const prev = cmds[i - 1] as Operand[];
        args.push(isDefault && prev.length === 1 ? emitOperand(prev[0] as Operand, true) : acc);
      }
      acc = emitCall(head.name, args);
    });
    return acc as string;
  };

  const control = (p: Parser, word: string): string => {
    switch (word) {
      case 'if': {
        const cond = emitPipeline(p.pipeline());
        blocks.push({ kind: 'if', dot: scope().dot, vars: new Set() });
        return `{% if __esa.truth(${cond}) %}`;
      }
      case 'else': {
        const b = scope();
        if (blocks.length === 1) throw new TemplateError('unexpected {{else}}');
        if (
          p.peek()?.t === 'ident' &&
          (p.peek() as { name: string }).name === 'if' &&
          b.kind === 'if'
        ) {
          p.next();
          return `{% elif __esa.truth(${emitPipeline(p.pipeline())}) %}`;
        }
        return '{% else %}';
      }
      case 'end': {
        if (blocks.length === 1) throw new TemplateError('unexpected {{end}}');
        const b = blocks.pop() as Block;
        return b.kind === 'range' ? '{% endfor %}' : '{% endif %}';
      }
      case 'range':
        return range(p);
      case 'with': {
        const dot = `__d${++counter}`;
        const value = emitPipeline(p.pipeline());
        blocks.push({ kind: 'with', dot, vars: new Set() });
        return `{% set ${dot} = ${value} %}{% if __esa.truth(${dot}) %}`;
      }
      default:
        throw new TemplateError(`{{${word}}} is not supported in templates`);
    }
  };

  const range = (p: Parser): string => {
    const names: string[] = [];
    const save = p.pos;
    while (p.peek()?.t === 'var') {
      names.push((p.next() as { name: string }).name);
      if (p.peek()?.t === ',') p.next();
    }
    if (names.length && p.peek()?.t === ':=') p.next();
    else {
      p.pos = save;
      names.length = 0;
    }
    if (names.length > 2) throw new TemplateError('too many declarations in range');
    const value = emitPipeline(p.pipeline());
    const dot = names.length ? `__v_${names[names.length - 1]}` : `__d${++counter}`;
    blocks.push({ kind: 'range', dot, vars: new Set(names) });
    if (names.length === 2) return `{% for __v_${names[0]}, ${dot} in __esa.pairs(${value}) %}`;
    return `{% for ${dot} in __esa.iter(${value}) %}`;
  };

  const action = (inner: string): string => {
    const tokens = lex(inner);
    const p = new Parser(tokens);
    const first = tokens[0];
    if (!first) throw new TemplateError('missing value for command');
    if (first.t === 'ident' && keywords.has(first.name)) {
      p.next();
      const code = control(p, first.name);
      p.expectEnd();
      return code;
    }
    if (first.t === 'var' && (tokens[1]?.t === ':=' || tokens[1]?.t === '=')) {
      p.pos = 2;
      if (tokens[1]?.t === '=' && !known(first.name))
        throw new TemplateError(`undefined variable "$${first.name}"`);
      scope().vars.add(first.name);
      const code = `{% set __v_${first.name} = ${emitPipeline(p.pipeline())} %}`;
      p.expectEnd();
      return code;
    }
    const value = emitPipeline(p.pipeline());
    p.expectEnd();
    return `{{ __esa.out(${value}) }}`;
  };

  const parts = [...splitActions(src)];
  parts.forEach((part, i) => {
    if ('text' in part) {
      let text = part.text;
      const prev = parts[i - 1];
      const next = parts[i + 1];
      if (prev && 'action' in prev && prev.trimRight) text = text.replace(/^\s+/, '');
      if (next && 'action' in next && next.trimLeft) text = text.replace(/\s+$/, '');
      if (text) out.push(`{{ ${constant(bytesOf(text))} }}`);
      return;
    }
    if (/^\s*\/\*[\s\S]*\*\/\s*$/.test(part.action)) return; // comment
    out.push(action(part.action));
  });
  if (blocks.length > 1)
    throw new TemplateError(`unexpected EOF: {{${scope().kind}}} has no {{end}}`);
  return { source: out.join(''), constants };
}
