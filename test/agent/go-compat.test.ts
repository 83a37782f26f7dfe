/**
 * The places where the agent must behave byte for byte like ESO's Go code. Every expected value
 * below was produced by running the same input through Go 1.26's encoding/base64,
 * regexp.ReplaceAllString and encoding/json (json.Unmarshal into a map).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyDecoding, decodeBase64Go } from '../../agent/decoding.ts';
import { goJsonObjectError } from '../../agent/go-json.ts';
import { compileGoRegexp, matchesGo, replaceAllGo } from '../../agent/go-regexp.ts';

const hex = (b: Buffer | undefined) => (b === undefined ? 'error' : b.toString('hex'));

describe("decodingStrategy as Go's base64 decodes", () => {
  const cases = [
    {
      name: 'a plain word that is valid base64 (Auto false positive)',
      input: 'abcd',
      std: '69b71d',
      url: '69b71d',
    },
    { name: 'padded', input: 'YQ==', std: '61', url: '61' },
    { name: 'non-zero trailing bits (not strict)', input: 'YR==', std: '61', url: '61' },
    { name: 'short padding', input: 'YQ=', std: 'error', url: 'error' },
    { name: 'no padding', input: 'YQ', std: 'error', url: 'error' },
    { name: 'a trailing newline', input: 'YQ==\n', std: '61', url: '61' },
    { name: 'CR and LF anywhere', input: 'Y\nQ\r==', std: '61', url: '61' },
    { name: 'a newline between padding characters', input: 'YQ=\n=', std: '61', url: '61' },
    { name: 'empty', input: '', std: '', url: '' },
    { name: 'padding only', input: '====', std: 'error', url: 'error' },
    { name: 'a space', input: 'YWJj ZA==', std: 'error', url: 'error' },
    {
      name: 'a password that is valid base64',
      input: 'password1234',
      std: 'a5ab2cc28addd76df8',
      url: 'a5ab2cc28addd76df8',
    },
    { name: 'URL alphabet', input: 'a-_b', std: 'error', url: '6befdb' },
    { name: 'URL alphabet with padding', input: '-_8=', std: 'error', url: 'fbff' },
    { name: 'data after padding', input: 'dGVzdA==dGVzdA==', std: 'error', url: 'error' },
  ];
  for (const c of cases) {
    it(`${c.name}: ${JSON.stringify(c.input)}`, () => {
      assert.equal(hex(decodeBase64Go(c.input, 'base64')), c.std);
      assert.equal(hex(decodeBase64Go(c.input, 'base64url')), c.url);
      const auto =
        c.std !== 'error'
          ? c.std
          : c.url !== 'error'
            ? c.url
            : Buffer.from(c.input).toString('hex');
      assert.equal(applyDecoding(Buffer.from(c.input), 'Auto', 'k').toString('hex'), auto);
    });
  }
});

describe("rewrite regexp as Go's ReplaceAllString", () => {
  const cases = [
    {
      name: 'skips an empty match right after a match',
      re: 'a*',
      input: 'baaac',
      target: '-',
      want: '-b-c-',
    },
    {
      name: 'empty matches between characters',
      re: 'x*',
      input: 'abc',
      target: '-',
      want: '-a-b-c-',
    },
    {
      name: '$1x names group "1x"; ${1}x, $$, a missing group and a lone $',
      re: '(app)/(db)_(\\w+)',
      input: 'app/db_user',
      target: '$1x-${1}x-$2.$3$$-$9-$',
      want: '-appx-db.user$--$',
    },
    {
      name: 'named groups in (?P<name>) syntax',
      re: '(?P<n>db)',
      input: 'app/db',
      target: '${n}_$n',
      want: 'app/db_db',
    },
    { name: 'every slash', re: '/', input: 'a/b/c', target: '_', want: 'a_b_c' },
    { name: 'start anchor', re: '^', input: 'abc', target: '>', want: '>abc' },
    { name: 'end anchor', re: '$', input: 'abc', target: '<', want: 'abc<' },
    {
      name: 'a leading case-insensitive flag',
      re: '(?i)APP',
      input: 'app/x',
      target: 'Z',
      want: 'Z/x',
    },
  ];
  for (const c of cases) {
    it(c.name, () =>
      assert.equal(
        replaceAllGo(compileGoRegexp(c.re, 'rewrite[0].regexp.source'), c.input, c.target),
        c.want,
      ),
    );
  }

  it('matches unanchored, as MatchString does', () => {
    assert.equal(matchesGo(compileGoRegexp('team-b', 'x'), 'not-team-b'), true);
    assert.equal(matchesGo(compileGoRegexp('^team-b', 'x'), 'not-team-b'), false);
  });

  const refused = [
    { re: '(a)\\1', why: /back-references/ },
    { re: '(?=a)', why: /look-around/ },
    { re: 'a(?i)b', why: /only at the start/ },
    { re: '(', why: /cannot use regular expression "\("/ },
  ];
  for (const c of refused) {
    it(`refuses ${JSON.stringify(c.re)}, which RE2 refuses too, naming the field`, () =>
      assert.throws(
        () => compileGoRegexp(c.re, 'spec.dataFrom[0].rewrite[0].regexp.source'),
        (err: Error) => {
          assert.match(err.message, /^spec\.dataFrom\[0\]\.rewrite\[0\]\.regexp\.source: /);
          assert.match(err.message, c.why);
          return true;
        },
      ));
  }
});

describe("JSON checks as Go's json.Unmarshal words them", () => {
  const cases = [
    ['{"a":"x\ny"}', "invalid character '\\n' in string literal"],
    ['{', 'unexpected end of JSON input'],
    ['', 'unexpected end of JSON input'],
    ['[1]', 'json: cannot unmarshal array into Go value of type map[string]interface {}'],
    ['"s"', 'json: cannot unmarshal string into Go value of type map[string]interface {}'],
    ['true', 'json: cannot unmarshal bool into Go value of type map[string]interface {}'],
    ['12', 'json: cannot unmarshal number into Go value of type map[string]interface {}'],
    ['null', undefined],
    ['{"a" 1}', "invalid character '1' after object key"],
    ['{"a":1,}', "invalid character '}' looking for beginning of object key string"],
    ['{"a":tru}', "invalid character '}' in literal true (expecting 'e')"],
    ['{"a":-}', "invalid character '}' in numeric literal"],
    ['{"a":1.}', "invalid character '}' after decimal point in numeric literal"],
    ['{"a":1e}', "invalid character '}' in exponent of numeric literal"],
    ['{"a":"\\x"}', "invalid character 'x' in string escape code"],
    ['{"a":"\\u12g4"}', "invalid character 'g' in \\u hexadecimal character escape"],
    ['{} x', "invalid character 'x' after top-level value"],
    ['{"a":1 "b":2}', `invalid character '"' after object key:value pair`],
    ["{'a':1}", "invalid character '\\'' looking for beginning of object key string"],
    ['{"auths":{"r":{"auth":"eA=="}}}', undefined],
  ] as const;
  for (const [input, want] of cases) {
    it(`${JSON.stringify(input)} → ${want ?? 'valid'}`, () =>
      assert.equal(goJsonObjectError(Buffer.from(input)), want));
  }

  it('prints a byte that is not UTF-8 as Go does', () =>
    assert.equal(
      goJsonObjectError(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0xff, 0x7d])),
      "invalid character 'ÿ' looking for beginning of value",
    ));
});
