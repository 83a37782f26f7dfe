import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyDecoding } from '../../agent/decoding.ts';
import { InvalidDataError } from '../../agent/errors.ts';

const pem = '-----BEGIN TEST KEY-----\nQUJD\n-----END TEST KEY-----\n';
const b64 = Buffer.from(pem).toString('base64');

describe('applyDecoding', () => {
  const cases = [
    { name: 'None keeps the bytes', value: b64, strategy: 'None' as const, want: b64 },
    { name: 'no strategy keeps the bytes', value: b64, strategy: undefined, want: b64 },
    { name: 'Base64 decodes once (C08)', value: b64, strategy: 'Base64' as const, want: pem },
    {
      name: 'Base64URL decodes the URL alphabet',
      value: Buffer.from([0xfb, 0xff, 0xbf]).toString('base64url'),
      strategy: 'Base64URL' as const,
      want: Buffer.from([0xfb, 0xff, 0xbf]).toString('latin1'),
    },
    { name: 'Auto decodes valid base64', value: b64, strategy: 'Auto' as const, want: pem },
    {
      name: 'Auto keeps what is not base64',
      value: 'not base64!',
      strategy: 'Auto' as const,
      want: 'not base64!',
    },
  ];
  for (const c of cases) {
    it(c.name, () =>
      assert.equal(
        applyDecoding(Buffer.from(c.value), c.strategy, 'key k').toString('latin1'),
        c.want,
      ),
    );
  }

  it('fails Base64 on a value that is not base64, naming the strategy but not the value (C08)', () => {
    assert.throws(
      () => applyDecoding(Buffer.from('not base64!'), 'Base64', 'key app/keys'),
      (err: Error) => {
        assert.ok(err instanceof InvalidDataError);
        assert.match(err.message, /key app\/keys: error applying decoding strategy Base64/);
        assert.doesNotMatch(err.message, /not base64!/);
        return true;
      },
    );
  });
});
