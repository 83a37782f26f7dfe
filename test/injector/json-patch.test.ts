import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pointer } from '../../injector/json-patch.ts';
import { applyPatch, parsePointer } from '../helpers/json-patch.ts';

describe('pointer', () => {
  it('escapes "~" before "/" (RFC 6901)', () => {
    assert.equal(pointer('metadata', 'annotations', 'a~b/c'), '/metadata/annotations/a~0b~1c');
    assert.deepEqual(parsePointer(pointer('x', '~1', 3)), ['x', '~1', '3']);
  });
});

describe('applyPatch (test helper)', () => {
  const doc = { a: { list: [1, 2] }, 'k/e~y': 1 };

  it('adds to objects and arrays, at an index and at the end', () => {
    const out = applyPatch(doc, [
      { op: 'add', path: '/a/list/0', value: 0 },
      { op: 'add', path: '/a/list/-', value: 3 },
      { op: 'add', path: '/b', value: { c: true } },
    ]);
    assert.deepEqual(out, { a: { list: [0, 1, 2, 3] }, 'k/e~y': 1, b: { c: true } });
    assert.deepEqual(doc.a.list, [1, 2], 'the input is not changed');
  });

  it('replaces and removes escaped members', () => {
    const out = applyPatch(doc, [
      { op: 'replace', path: '/k~1e~0y', value: 2 },
      { op: 'remove', path: '/a/list/0' },
    ]);
    assert.deepEqual(out, { a: { list: [2] }, 'k/e~y': 2 });
  });

  const errors: { name: string; op: Parameters<typeof applyPatch>[1][number] }[] = [
    {
      name: 'refuses to add under a missing parent',
      op: { op: 'add', path: '/missing/x', value: 1 },
    },
    { name: 'refuses an index past the end', op: { op: 'add', path: '/a/list/5', value: 1 } },
    { name: 'refuses to replace a missing member', op: { op: 'replace', path: '/nope', value: 1 } },
    { name: 'refuses to remove a missing member', op: { op: 'remove', path: '/nope' } },
  ];
  for (const c of errors) {
    it(c.name, () => assert.throws(() => applyPatch(doc, [c.op])));
  }
});
