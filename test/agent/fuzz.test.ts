/**
 * Property tests of the template translation (template.ts, template-go.ts) and the property
 * resolver (properties.ts) with generated keys and values: dots, dashes, quotes, template
 * syntax, Unicode, very long, binary. A seeded PRNG makes every run the same; the counts are
 * bounded so the file runs in a few seconds.
 *
 * Two properties, whatever the input:
 * - nothing crashes: a call returns, or throws one of the agent's own errors (AgentError);
 * - no error message contains value text. Every generated value carries a distinctive marker,
 *   and keys, properties and templates never do, so a marker in a message is a leak.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentError } from '../../agent/errors.ts';
import { extractEntries, selectProperty } from '../../agent/properties.ts';
import { renderTemplateData } from '../../agent/template.ts';
import { convertKey, validateKey } from '../../agent/keys.ts';
import { applyDecoding } from '../../agent/decoding.ts';

const SEED = 0x5eed_2025;
const ROUNDS = 400;
const MARK = 'Qv7mark';

/** mulberry32: small, fast, good enough to spread inputs; the same seed gives the same run. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  return { next, int, pick };
}

type Rng = ReturnType<typeof prng>;

const keyPieces = [
  'a',
  'Z',
  '9',
  '.',
  '-',
  '_',
  ' ',
  '/',
  'ü',
  '😀',
  '\\',
  '"',
  "'",
  '{{',
  '}}',
  '|',
  '$',
  '(',
  ')',
  '\n',
  '%',
  'key',
  'list',
  '0',
  '1',
  'x.y',
  '..',
];

function genKey(r: Rng): string {
  if (r.int(20) === 0) return 'k'.repeat(200 + r.int(200)); // very long
  let k = '';
  const n = 1 + r.int(6);
  for (let i = 0; i < n; i++) k += r.pick(keyPieces);
  return k;
}

/** A value as bytes, always holding the marker (as text, or inside binary noise). */
function genValue(r: Rng, i: number): Buffer {
  const mark = `${MARK}${i}z`;
  switch (r.int(7)) {
    case 0:
      return Buffer.concat([
        Buffer.from(Array.from({ length: r.int(64) }, () => r.int(256))),
        Buffer.from(mark),
      ]);
    case 1:
      return Buffer.from(`${mark}-ünï😀-${'x'.repeat(r.int(5000))}`);
    case 2:
      return Buffer.from(JSON.stringify({ a: mark, n: 1.5, list: [mark, 2], nested: { b: mark } }));
    case 3:
      return Buffer.from(Buffer.from(mark).toString('base64'));
    case 4:
      return Buffer.from(`{{ .${mark} }} {% ${mark} %} ${mark}`);
    case 5:
      return Buffer.from(`"${mark}\n\\u0000'`);
    default:
      return Buffer.from(`${r.int(1e9)}${mark}`);
  }
}

function genDoc(r: Rng, i: number): { text: string; keys: string[] } {
  const keys = Array.from({ length: 1 + r.int(5) }, () => genKey(r));
  const obj: Record<string, unknown> = {};
  for (const k of keys) {
    obj[k] = r.pick([
      () => `${MARK}${i}s`,
      () => ({ inner: `${MARK}${i}o`, [genKey(r)]: [`${MARK}${i}a`, 1.5] }),
      () => [`${MARK}${i}l`, null, true],
      () => null,
      () => 12345678901234567890,
    ])();
  }
  let text = JSON.stringify(obj);
  if (r.int(5) === 0) text = text.slice(0, r.int(text.length)); // cut: not JSON any more
  return { text, keys };
}

function assertSafe(err: unknown, context: string): void {
  assert.ok(err instanceof AgentError, `${context}: threw ${String(err)}`);
  assert.ok(
    !err.message.includes(MARK),
    `${context}: value text in "${err.message.slice(0, 300)}"`,
  );
}

describe('property resolver, fuzzed', () => {
  it(`selectProperty and extractEntries never crash and never quote a value (${ROUNDS} rounds)`, () => {
    const r = prng(SEED);
    for (let i = 0; i < ROUNDS; i++) {
      const { text, keys } = genDoc(r, i);
      const property =
        r.int(3) === 0
          ? genKey(r)
          : `${r.pick(keys)}${r.pick(['', '.inner', '.0', '.1', '.a.b', '\\.x'])}`;
      const raw = r.int(6) === 0 ? genValue(r, i) : Buffer.from(text);
      try {
        const out = selectProperty(raw, property, 'remote/key');
        assert.equal(typeof out, 'string');
      } catch (err) {
        assertSafe(err, `selectProperty #${i}`);
      }
      try {
        extractEntries(raw, 'remote/key');
      } catch (err) {
        assertSafe(err, `extractEntries #${i}`);
      }
    }
  });
});

const templatePieces = (k: () => string) => [
  () => `{{ .${k()} }}`,
  () => `{{ index . ${JSON.stringify(k())} }}`,
  () => `{{ .${k()} | b64enc }}`,
  () => `{{ .${k()} | b64dec }}`,
  () => `{{ .${k()} | fromJson }}`,
  () => `{{ (.${k()} | fromJson).a }}`,
  () => `{{ (.${k()} | fromJson).list | toJson }}`,
  () => `{{ index (.${k()} | fromJson) "list" 5 }}`,
  () =>
    `{{ index (index . ${JSON.stringify(k())} | fromJson).list (index . ${JSON.stringify(k())}) }}`,
  () => `{{ .${k()} | toJson }}`,
  () => `{{ printf "%s-%d-%q-%x" .${k()} .${k()} .${k()} .${k()} }}`,
  () => `{{ printf (index . ${JSON.stringify(k())}) }}`,
  () => `{{ .${k()} | default "d" | upper | lower | trim | quote | sha256sum }}`,
  () => `{{ if .${k()} }}yes{{ else }}no{{ end }}`,
  () => `{{ range $i, $v := (.${k()} | fromJson) }}{{ $i }}={{ $v }};{{ end }}`,
  () => `{{ with .${k()} }}{{ . }}{{ end }}`,
  () => `{{ $x := .${k()} }}{{ $x.y }}`,
  () => `{{ len .${k()} }}{{ eq .${k()} "a" }}`,
  () => `{{ ${k()} | upper }}`,
  () => `{{ ${k()}[${k()}] }}`,
  () => '{{',
  () => '}}',
  () => '{% if x %}',
  () => '{# c #}',
  () => `plain ${k()} text`,
  () => '{{- /* comment */ -}}',
];

describe('template translation, fuzzed', () => {
  it(`renders or fails with a TemplateError that quotes no value (${ROUNDS} rounds)`, () => {
    const r = prng(SEED + 1);
    for (let i = 0; i < ROUNDS; i++) {
      const data: Record<string, Buffer> = {};
      const names: string[] = [];
      for (let j = 0; j < 1 + r.int(4); j++) {
        const name = r.int(2) ? genKey(r) : r.pick(['user', 'pw', 'a', 'list', 'x']);
        names.push(name);
        data[name] = genValue(r, i);
      }
      const key = () => (r.int(4) === 0 ? genKey(r) : r.pick(names));
      const pieces = templatePieces(key);
      const template = Array.from({ length: 1 + r.int(4) }, () => r.pick(pieces)()).join(
        r.pick(['', ' ', '\n']),
      );
      try {
        const out = renderTemplateData({ out: template }, data);
        assert.ok(Buffer.isBuffer(out.out));
        assert.ok(
          !out.out.toString('latin1').includes('<no value>'),
          `#${i}: <no value> in output`,
        );
      } catch (err) {
        assertSafe(err, `template #${i} ${JSON.stringify(template).slice(0, 200)}`);
      }
    }
  });
});

describe('key conversion and decoding, fuzzed', () => {
  it(`a converted key is always valid, and decoding errors quote no value (${ROUNDS} rounds)`, () => {
    const r = prng(SEED + 2);
    for (let i = 0; i < ROUNDS; i++) {
      const key = genKey(r);
      for (const strategy of ['Default', 'Unicode'] as const) {
        const converted = convertKey(key, strategy);
        if (converted.length <= 253 && converted !== '.' && converted !== '..')
          validateKey(converted, 'x');
      }
      const value = genValue(r, i);
      for (const strategy of ['None', 'Base64', 'Base64URL', 'Auto'] as const) {
        try {
          applyDecoding(value, strategy, 'key remote/key');
        } catch (err) {
          assertSafe(err, `decoding #${i}`);
        }
      }
    }
  });
});
