import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidDataError } from '../../agent/errors.ts';
import {
  convertKey,
  convertKeys,
  rewriteKeys,
  validateKey,
  validateKeys,
} from '../../agent/keys.ts';

const map = (o: Record<string, string>) =>
  new Map(Object.entries(o).map(([k, v]) => [k, Buffer.from(v)]));
const keys = (m: Map<string, Buffer>) => [...m.keys()];

describe('convertKey', () => {
  const cases = [
    { name: 'keeps a valid key', key: 'db.user-1_x', strategy: undefined, want: 'db.user-1_x' },
    {
      name: 'Default replaces a slash with _',
      key: 'app/db_user',
      strategy: 'Default' as const,
      want: 'app_db_user',
    },
    {
      name: 'Default replaces non-ASCII letters too',
      key: 'clé ü',
      strategy: 'Default' as const,
      want: 'cl___',
    },
    {
      name: 'Unicode writes _U<hex>_ with 4 digits',
      key: 'app/é',
      strategy: 'Unicode' as const,
      want: 'app_U002f__U00e9_',
    },
    {
      name: 'Unicode writes astral code points whole',
      key: 'a😀',
      strategy: 'Unicode' as const,
      want: 'a_U1f600_',
    },
  ];
  for (const c of cases) it(c.name, () => assert.equal(convertKey(c.key, c.strategy), c.want));
});

describe('convertKeys', () => {
  it('reports two names that convert to one, naming both', () => {
    assert.throws(
      () => convertKeys(map({ 'a/b': '1', a_b: '2' }), 'Default', 'spec.dataFrom[0].find'),
      (err: Error) => {
        assert.ok(err instanceof InvalidDataError);
        assert.equal(
          err.message,
          'spec.dataFrom[0].find: conversionStrategy Default: keys "a/b" and "a_b" both become "a_b"',
        );
        return true;
      },
    );
  });
});

describe('rewriteKeys', () => {
  it('applies regexp steps in order with Go group references', () => {
    const out = rewriteKeys(
      map({ 'app/db_user': 'u', 'app/db_pass': 'p' }),
      [
        { regexp: { source: '^app/', target: '' } },
        { regexp: { source: '(db)_(\\w+)', target: '${2}_$1' } },
      ],
      'spec.dataFrom[0]',
    );
    assert.deepEqual(keys(out), ['user_db', 'pass_db']);
    assert.equal(out.get('user_db')?.toString(), 'u');
  });

  it('applies transform templates with the key as .value', () => {
    const out = rewriteKeys(
      map({ 'db-user': 'u' }),
      [{ transform: { template: '{{ .value | upper }}' } }],
      'spec.dataFrom[0]',
      (_label, template, key) => (template.includes('upper') ? key.toUpperCase() : key),
    );
    assert.deepEqual(keys(out), ['DB-USER']);
  });

  it('reports a rewrite that merges two keys (ESO lets one win silently)', () => {
    assert.throws(
      () =>
        rewriteKeys(
          map({ 'a/x': '1', 'b/x': '2' }),
          [{ regexp: { source: '^.*/', target: '' } }],
          'spec.dataFrom[1]',
        ),
      /spec\.dataFrom\[1\]\.rewrite\[0\]: keys "a\/x" and "b\/x" both become "x"/,
    );
  });

  it('refuses merge steps and empty steps, naming them', () => {
    assert.throws(
      () => rewriteKeys(map({ a: '1' }), [{ merge: {} }], 'spec.dataFrom[0]'),
      /rewrite\[0\]\.merge is not supported/,
    );
    assert.throws(
      () => rewriteKeys(map({ a: '1' }), [{}], 'spec.dataFrom[0]'),
      /rewrite\[0\]: needs regexp or transform/,
    );
  });
});

describe('validateKey', () => {
  const bad = [
    { name: 'a slash', key: 'a/b', why: /character "\/" is not allowed/ },
    { name: 'a space', key: 'a b', why: /character " " is not allowed/ },
    { name: 'a non-ASCII letter', key: 'ü', why: /character "ü" is not allowed/ },
    { name: 'a lone dot', key: '.', why: /"\." and "\.\." are not allowed/ },
    { name: 'an empty key', key: '', why: /may not be empty/ },
    { name: '254 characters', key: 'a'.repeat(254), why: /254 characters, at most 253/ },
  ];
  for (const c of bad) {
    it(`refuses ${c.name} with the key, where, and a tip`, () =>
      assert.throws(
        () => validateKey(c.key, 'spec.dataFrom[0].extract'),
        (err: Error) => {
          assert.ok(err instanceof InvalidDataError);
          assert.match(err.message, /^spec\.dataFrom\[0\]\.extract: invalid secret key /);
          assert.match(err.message, c.why);
          return true;
        },
      ));
  }

  it('accepts 253 characters of letters, digits, "-", "_" and "."', () =>
    validateKey(`${'a'.repeat(250)}-_.`, 'x'));

  it('drops an empty key from a dataFrom result, as ESO does', () =>
    assert.deepEqual(keys(validateKeys(map({ '': 'x', a: 'y' }), 'x')), ['a']));
});
