import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseGoDurationMs, parseQuantity } from '../../injector/units.ts';

describe('parseQuantity', () => {
  const cases: { name: string; text: string; expected: number | undefined }[] = [
    { name: 'reads millicores', text: '10m', expected: 0.01 },
    { name: 'reads a decimal', text: '0.5', expected: 0.5 },
    { name: 'reads a leading-dot decimal', text: '.5', expected: 0.5 },
    { name: 'reads binary suffixes', text: '48Mi', expected: 48 * 2 ** 20 },
    { name: 'reads decimal suffixes', text: '128M', expected: 128e6 },
    { name: 'reads an exponent', text: '1e3', expected: 1000 },
    { name: 'reads Gi', text: '1Gi', expected: 2 ** 30 },
    { name: 'refuses a sign', text: '-1', expected: undefined },
    { name: 'refuses an unknown suffix', text: '5MB', expected: undefined },
    { name: 'refuses words', text: 'ten', expected: undefined },
    { name: 'refuses an empty string', text: '', expected: undefined },
    { name: 'refuses spaces', text: '10 m', expected: undefined },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(parseQuantity(c.text), c.expected));
  }
});

describe('parseGoDurationMs', () => {
  const cases: { name: string; text: string; expected: number | undefined }[] = [
    { name: 'reads seconds', text: '30s', expected: 30_000 },
    { name: 'reads compound durations', text: '1h30m', expected: 5_400_000 },
    { name: 'reads fractions', text: '1.5h', expected: 5_400_000 },
    { name: 'reads milliseconds rather than minutes', text: '300ms', expected: 300 },
    { name: 'reads minutes followed by seconds', text: '2m5s', expected: 125_000 },
    { name: 'reads microseconds in both spellings', text: '1000us', expected: 1 },
    { name: 'reads a lone zero', text: '0', expected: 0 },
    { name: 'refuses a number without a unit', text: '60', expected: undefined },
    { name: 'refuses days, which Go does not have', text: '1d', expected: undefined },
    { name: 'refuses junk between parts', text: '1h 30m', expected: undefined },
    { name: 'refuses a sign', text: '-5m', expected: undefined },
    { name: 'refuses an empty string', text: '', expected: undefined },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(parseGoDurationMs(c.text), c.expected));
  }
});
