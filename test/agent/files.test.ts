import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
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
import { dirModeFor, targetWrittenAt, writeTargetFiles } from '../../agent/files.ts';

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
    assert.equal(statSync(realpathSync(join(root, 'db'))).mode & 0o777, 0o750);
    assert.equal(readdirSync(root).filter((n) => n.startsWith('..db_')).length, 2);
  });

  // The group and other bits of the folder follow the files' read bits; the owner (the agent)
  // always has rwx, see dirModeFor.
  const modes = [
    { name: 'owner and group files in an owner and group folder', file: 0o440, dir: 0o750 },
    { name: 'files for everyone in a folder everyone can enter', file: 0o444, dir: 0o755 },
    { name: 'owner-only files in an owner-only folder', file: 0o400, dir: 0o700 },
    { name: 'group-writable files in a folder only the owner writes', file: 0o664, dir: 0o755 },
    { name: 'files for owner and others, not group', file: 0o604, dir: 0o705 },
  ];
  for (const c of modes) {
    it(`writes ${c.name} (${c.file.toString(8)} in ${c.dir.toString(8)})`, async () => {
      assert.equal(dirModeFor(c.file), c.dir);
      const root = newRoot();
      await writeTargetFiles(root, 'db', set(1), c.file);
      assert.equal(statSync(join(root, 'db', 'a')).mode & 0o777, c.file);
      assert.equal(statSync(realpathSync(join(root, 'db'))).mode & 0o777, c.dir);
    });
  }

  it('rewrites the set when only the folder mode is off', async () => {
    const root = newRoot();
    await writeTargetFiles(root, 'db', set(1), 0o444);
    chmodSync(realpathSync(join(root, 'db')), 0o700);
    const again = await writeTargetFiles(root, 'db', set(1), 0o444);
    assert.equal(again.changed, true);
    assert.equal(statSync(realpathSync(join(root, 'db'))).mode & 0o777, 0o755);
  });

  it('replaces and removes old sets, and leaves a removable tree, as a non-root user', () => {
    // NOTE: root ignores permissions, so under root the writes run in a child process as uid
    // 65532, the agent's default; as any other user they run as that user.
    const root = newRoot();
    const isRoot = process.getuid?.() === 0;
    if (isRoot) chownSync(root, 65532, 65532);
    const filesTs = new URL('../../agent/files.ts', import.meta.url).href;
    const script = `
      import { writeTargetFiles } from ${JSON.stringify(filesTs)};
      const root = process.argv[1];
      for (let v = 1; v <= 4; v++) {
        await writeTargetFiles(root, 'db', { a: Buffer.from('v' + v) }, 0o440);
      }`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script, root], {
      encoding: 'utf8',
      timeout: 30_000,
      ...(isRoot ? { uid: 65532, gid: 65532 } : {}),
    });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(readFileSync(join(root, 'db', 'a'), 'utf8'), 'v4');
    assert.equal(readdirSync(root).filter((n) => n.startsWith('..db_')).length, 2);

    const cleanup = spawnSync(
      process.execPath,
      ['-e', 'require("node:fs").rmSync(process.argv[1], { recursive: true })', root],
      { encoding: 'utf8', timeout: 30_000, ...(isRoot ? { uid: 65532, gid: 65532 } : {}) },
    );
    assert.equal(cleanup.status, 0, cleanup.stderr);
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
