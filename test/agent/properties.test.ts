import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NotFoundError, InvalidDataError } from '../../agent/errors.ts';
import { extractEntries, selectProperty, splitPath } from '../../agent/properties.ts';

// shared/acceptance/externalsecret-cases.md C01 and C05
const config = '{"foo.bar":"literal","foo":{"bar":"nested","baz":"z"},"list":["a","b"]}';
const github =
  '{"appID": 123456, "installID": 12345678, "debug": true, "ratio": 1.50, "nested": {"b": 1, "a": "x"}, "list": [1,"two"], "empty": null, "big": 12345678901234567890}';

describe('selectProperty', () => {
  const cases = [
    {
      name: 'prefers the literal key that contains a dot',
      doc: config,
      property: 'foo.bar',
      want: 'literal',
    },
    { name: 'falls back to a nested path', doc: config, property: 'foo.baz', want: 'z' },
    { name: 'indexes into arrays', doc: config, property: 'list.1', want: 'b' },
    {
      name: 'gives a sub-object as its JSON text',
      doc: config,
      property: 'foo',
      want: '{"bar":"nested","baz":"z"}',
    },
    {
      name: 'keeps the text of a number (1.50 stays 1.50)',
      doc: github,
      property: 'ratio',
      want: '1.50',
    },
    {
      name: 'keeps big integers exactly',
      doc: github,
      property: 'big',
      want: '12345678901234567890',
    },
    { name: 'keeps booleans as JSON text', doc: github, property: 'debug', want: 'true' },
    { name: 'gives null as an empty value', doc: github, property: 'empty', want: '' },
    {
      name: 'reads an escaped dot as part of a key',
      doc: '{"a":{"b.c":"x"}}',
      property: 'a.b\\.c',
      want: 'x',
    },
    {
      name: 'decodes JSON string escapes',
      doc: '{"k":"line1\\nline2 \\u00fc"}',
      property: 'k',
      want: 'line1\nline2 ü',
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(selectProperty(c.doc, c.property, 'app/config'), c.want));
  }

  it('throws NotFoundError naming the property and the secret for a missing property', () => {
    assert.throws(
      () => selectProperty(config, 'nope', 'app/config'),
      (err: Error) => {
        assert.ok(err instanceof NotFoundError);
        assert.equal(err.message, 'key nope does not exist in secret app/config');
        return true;
      },
    );
  });

  it('does not index past the end of an array', () => {
    assert.throws(() => selectProperty(config, 'list.5', 'app/config'), NotFoundError);
  });

  it('refuses a value that is not JSON without quoting it', () => {
    assert.throws(
      () => selectProperty('hunter2-not-json', 'password', 'db'),
      (err: Error) => {
        assert.ok(err instanceof InvalidDataError);
        assert.doesNotMatch(err.message, /hunter2/);
        assert.match(err.message, /secret db: cannot read property password/);
        return true;
      },
    );
  });

  it('reads a Buffer value as UTF-8', () => {
    assert.equal(selectProperty(Buffer.from('{"k":"ü"}'), 'k', 'x'), 'ü');
  });
});

describe('extractEntries', () => {
  it('keeps every non-string value as its original text (C05)', () => {
    assert.deepEqual(Object.fromEntries(extractEntries(github, 'app/github')), {
      appID: '123456',
      installID: '12345678',
      debug: 'true',
      ratio: '1.50',
      nested: '{"b": 1, "a": "x"}',
      list: '[1,"two"]',
      empty: '',
      big: '12345678901234567890',
    });
  });

  it('keeps the order of the keys and lets a repeated key win', () => {
    assert.deepEqual(extractEntries('{"b":"1","a":"2","b":"3"}', 'k'), [
      ['a', '2'],
      ['b', '3'],
    ]);
  });

  const refused = [
    { name: 'plain text', value: 'userpassword' },
    { name: 'a JSON array', value: '["a"]' },
    { name: 'a JSON string', value: '"abc"' },
  ];
  for (const c of refused) {
    it(`refuses ${c.name} with "unable to unmarshal secret from JSON" and no value (C06)`, () => {
      assert.throws(
        () => extractEntries(c.value, 'db-pass'),
        (err: Error) => {
          assert.ok(err instanceof InvalidDataError);
          assert.match(err.message, /^secret db-pass: unable to unmarshal secret from JSON/);
          assert.doesNotMatch(err.message, /userpassword|abc/);
          return true;
        },
      );
    });
  }
});

describe('splitPath', () => {
  it('splits on unescaped dots only', () =>
    assert.deepEqual(splitPath('a.b\\.c.d'), ['a', 'b.c', 'd']));
});
