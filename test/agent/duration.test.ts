import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDuration } from '../../agent/duration.ts';

describe('parseDuration', () => {
  const cases = [
    { name: 'hours', text: '1h', ms: 3_600_000 },
    { name: 'minutes', text: '30m', ms: 1_800_000 },
    { name: 'hours and minutes', text: '1h30m', ms: 5_400_000 },
    { name: 'seconds', text: '10s', ms: 10_000 },
    { name: 'zero alone', text: '0', ms: 0 },
    { name: 'zero with a unit', text: '0s', ms: 0 },
    { name: 'fractions', text: '1.5s', ms: 1_500 },
    { name: 'milliseconds', text: '250ms', ms: 250 },
    { name: 'sub-millisecond units rounded down', text: '1500us', ms: 1 },
    { name: 'every unit at once', text: '1h2m3s4ms', ms: 3_723_004 },
  ];
  for (const c of cases) {
    it(`reads ${c.name} ("${c.text}")`, () => assert.equal(parseDuration(c.text), c.ms));
  }

  const bad = [
    { name: 'an empty string', text: '' },
    { name: 'a number without unit', text: '10' },
    { name: 'an unknown unit', text: '1d' },
    { name: 'a negative duration', text: '-1h' },
    { name: 'trailing garbage', text: '1hx' },
  ];
  for (const c of bad) {
    it(`refuses ${c.name}`, () => assert.throws(() => parseDuration(c.text), /duration/));
  }
});
