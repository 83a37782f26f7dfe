import assert from 'node:assert/strict';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { InvalidDataError } from '../../agent/errors.ts';
import { targetWrittenAt, writeTargetFiles } from '../../agent/files.ts';

const roots: string[] = [];
const newRoot = () => {
  const dir = mkdtempSync(join(tmpdir(), 'esa-files-'));
  roots.push(dir);
  return dir;
};
after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

const set = (version: number, size = 1) => ({
  a: Buffer.from(`a${version}:`.padEnd(size, 'x')),
  b: Buffer.from(`b${version}:`.padEnd(size, 'y')),
});

// Reads the target in a tight loop on another thread while the main thread writes. Two kinds of
// reader: one opens <target>/<key> directly, the other resolves the folder once and reads both
// keys from it. Reports every inconsistency it saw.
const readerSource = `
const { workerData, parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const { dir, size } = workerData;
const stop = new Int32Array(workerData.stop);
const version = (buf, key) => {
  const text = buf.toString();
  const m = new RegExp('^' + key + '(\\\\d+):').exec(text);
  if (!m || buf.length !== size) return -1;
  return Number(m[1]);
};
let reads = 0, partial = 0, missing = 0, mixed = 0, expired = 0;
while (Atomics.load(stop, 0) === 0) {
  try {
    if (version(fs.readFileSync(path.join(dir, 'a')), 'a') < 0) partial++;
  } catch (err) {
    if (err.code === 'ENOENT') missing++; else throw err;
  }
  try {
    const real = fs.realpathSync(dir);
    const va = version(fs.readFileSync(path.join(real, 'a')), 'a');
    const vb = version(fs.readFileSync(path.join(real, 'b')), 'b');
    if (va < 0 || vb < 0) partial++;
    else if (va !== vb) mixed++;
    reads++;
  } catch (err) {
    // The folder was resolved two writes ago and is gone: allowed (see files.ts), and only
    // possible because this test writes far faster than any refresh interval.
    if (err.code === 'ENOENT') expired++; else throw err;
  }
}
parentPort.postMessage({ reads, partial, missing, mixed, expired });
`;

describe('writeTargetFiles', () => {
  it('never lets a reader see a partial or missing file, or a mixed set, while it swaps versions', async () => {
    const root = newRoot();
    const size = 256 * 1024;
    await writeTargetFiles(root, 'db', set(0, size), 0o440);

    const stop = new SharedArrayBuffer(4);
    const worker = new Worker(readerSource, {
      eval: true,
      workerData: { dir: join(root, 'db'), size, stop },
    });
    const result = new Promise<{ reads: number; partial: number; missing: number; mixed: number }>(
      (resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      },
    );
    for (let v = 1; v <= 150; v++) await writeTargetFiles(root, 'db', set(v, size), 0o440);
    Atomics.store(new Int32Array(stop), 0, 1);
    const seen = await result;

    assert.ok(seen.reads > 0, 'the reader read something');
    assert.deepEqual(
      { partial: seen.partial, missing: seen.missing, mixed: seen.mixed },
      { partial: 0, missing: 0, mixed: 0 },
    );
    assert.equal(
      readFileSync(join(root, 'db', 'a'))
        .subarray(0, 5)
        .toString(),
      'a150:',
    );
  });

  it('points <target> at a folder of files with the given mode and keeps only the current and previous sets', async () => {
    const root = newRoot();
    for (let v = 1; v <= 4; v++) await writeTargetFiles(root, 'db', set(v), 0o440);
    assert.ok(lstatSync(join(root, 'db')).isSymbolicLink());
    assert.equal(statSync(join(root, 'db', 'a')).mode & 0o777, 0o440);
    assert.equal(statSync(realpathSync(join(root, 'db'))).mode & 0o777, 0o755);
    assert.equal(readdirSync(root).filter((n) => n.startsWith('..db_')).length, 2);
  });

  it('writes nothing when the set is unchanged', async () => {
    const root = newRoot();
    const first = await writeTargetFiles(root, 'db', set(1), 0o440);
    const second = await writeTargetFiles(root, 'db', set(1), 0o440);
    assert.equal(first.changed, true);
    assert.deepEqual(second, { changed: false, dir: first.dir });
  });

  it('rewrites the set when only the mode changed', async () => {
    const root = newRoot();
    await writeTargetFiles(root, 'db', set(1), 0o440);
    const again = await writeTargetFiles(root, 'db', set(1), 0o444);
    assert.equal(again.changed, true);
    assert.equal(statSync(join(root, 'db', 'a')).mode & 0o777, 0o444);
  });

  it('drops keys that are gone from the new set', async () => {
    const root = newRoot();
    await writeTargetFiles(root, 'db', set(1), 0o440);
    await writeTargetFiles(root, 'db', { a: Buffer.from('only') }, 0o440);
    assert.deepEqual(readdirSync(join(root, 'db')), ['a']);
  });

  it('keeps targets apart, including one whose name extends another', async () => {
    const root = newRoot();
    await writeTargetFiles(root, 'db', set(1), 0o440);
    for (let v = 0; v < 3; v++)
      await writeTargetFiles(root, 'db.x', { k: Buffer.from(`x${v}`) }, 0o440);
    assert.equal(readFileSync(join(root, 'db', 'a')).toString(), 'a1:');
  });

  it('removes folders a crash left half-written', async () => {
    const root = newRoot();
    mkdirSync(join(root, '..db_20000101T000000000Z_dead'));
    await writeTargetFiles(root, 'db', set(1), 0o440);
    await writeTargetFiles(root, 'db', set(2), 0o440);
    assert.ok(!readdirSync(root).includes('..db_20000101T000000000Z_dead'));
  });

  const badKeys = ['../escape', '..data', 'a/b', 'with space', ''];
  for (const key of badKeys) {
    it(`refuses the key "${key}" before writing anything`, async () => {
      const root = newRoot();
      await assert.rejects(
        writeTargetFiles(root, 'db', { [key]: Buffer.from('v') }, 0o440),
        InvalidDataError,
      );
      assert.deepEqual(readdirSync(root), []);
    });
  }

  it('refuses to replace a real folder at the target path', async () => {
    const root = newRoot();
    mkdirSync(join(root, 'db'));
    writeFileSync(join(root, 'db', 'mine'), 'x');
    await assert.rejects(writeTargetFiles(root, 'db', set(1), 0o440), /not the agent's symlink/);
  });
});

describe('targetWrittenAt', () => {
  it('is undefined before the first write and the write time after it', async () => {
    const root = newRoot();
    assert.equal(await targetWrittenAt(root, 'db'), undefined);
    const before = Date.now();
    await writeTargetFiles(root, 'db', set(1), 0o440);
    const at = await targetWrittenAt(root, 'db');
    assert.ok(at && at.getTime() >= before - 1000 && at.getTime() <= Date.now() + 1000);
  });
});
