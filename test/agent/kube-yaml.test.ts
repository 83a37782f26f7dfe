import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dumpManifests, loadManifests } from '../../agent/kube-yaml.ts';

describe('loadManifests reads scalars as kubectl does', () => {
  const cases = [
    { name: 'yes is a boolean (YAML 1.1)', text: 'v: yes', value: true },
    { name: 'off is a boolean (YAML 1.1)', text: 'v: off', value: false },
    { name: '0644 is octal (YAML 1.1)', text: 'v: 0644', value: 420 },
    { name: 'a timestamp stays a string', text: 'v: 2024-01-01', value: '2024-01-01' },
    { name: '12:30 is not a base-60 number', text: 'v: 12:30', value: '12:30' },
    { name: '1:2.5 is not a base-60 float', text: 'v: 1:2.5', value: '1:2.5' },
    { name: 'a quoted yes stays a string', text: 'v: "yes"', value: 'yes' },
    { name: 'merge keys merge', text: 'a: &a {x: 1}\nv: {<<: *a}', value: { x: 1 } },
  ];
  for (const c of cases) {
    it(`reads ${c.name}`, () => {
      const [doc] = loadManifests(c.text) as { v: unknown }[];
      assert.deepEqual(doc!.v, c.value);
    });
  }

  it('reads every document of a stream and writes them back as one', () => {
    const docs = loadManifests('a: 1\n---\nb: two\n');
    assert.deepEqual(docs, [{ a: 1 }, { b: 'two' }]);
    assert.equal(dumpManifests(docs), 'a: 1\n---\nb: two\n');
  });
});
