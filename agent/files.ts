/**
 * Writes one folder per target Secret, one file per key, so that the set swaps at once.
 *
 * Layout under the output root, for target `db`:
 *
 *     db -> ..db_20250101T120000123Z_Ab12Cd     (symlink, the path apps read)
 *     ..db_20250101T120000123Z_Ab12Cd/password  (the current set)
 *     ..db_20241231T110000000Z_Xy34Zw/password  (the previous set, kept until the next write)
 *
 * Guarantees, in the manner of the kubelet's AtomicWriter:
 * - A new set is written completely into a fresh folder before anything points at it; the
 *   symlink is then replaced with rename(2), which is atomic. Opening `db/<key>` gives a file of
 *   either the old set or the new one, never a partial file and never a missing one.
 * - A reader that resolves `db` once (realpath) and reads every key below that path sees one
 *   consistent set: the previous folder stays until the following write, so such a reader has a
 *   whole refresh interval to finish.
 * - An unchanged set writes nothing.
 * Not guaranteed: a reader that opens `db/a` and later `db/b` through the symlink may get `a`
 * from one set and `b` from the next, exactly as with a kubelet Secret volume.
 *
 * Folders whose names start with `..` are ours; target names (Kubernetes object names) never
 * start with a dot, and `_` never appears in them, so `..<target>_` is unambiguous.
 *
 * Permissions: files get the mode the injector chose (ESA_FILE_MODE), and each folder lets the
 * same principals list and enter it ({@link dirModeFor}: 0440 files sit in 0750 folders, 0444
 * files in 0755 ones). Only the owner, the agent, may write to a folder.
 */
import { randomBytes } from 'node:crypto';
import {
  chmod,
  mkdir,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidDataError } from './errors.ts';

export interface WriteResult {
  changed: boolean;
  /** The folder the target's symlink points at after the write (relative to the root). */
  dir: string;
}

/** Secret key names that are safe file names (what Kubernetes allows, minus our `..` prefix). */
const keyPattern = /^[-._a-zA-Z0-9]+$/;

function checkKey(target: string, key: string): void {
  if (!keyPattern.test(key) || key === '.' || key.startsWith('..') || key.length > 253) {
    throw new InvalidDataError(
      `target ${target}: key "${key}" is not a valid Secret key or file name`,
    );
  }
}

async function currentDir(root: string, target: string): Promise<string | undefined> {
  try {
    return await readlink(join(root, target));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') {
      throw new InvalidDataError(
        `${join(root, target)} exists and is not the agent's symlink; remove it`,
      );
    }
    throw err;
  }
}

/**
 * The mode of a folder that holds files of mode `fileMode`: read and search (r-x) for group and
 * others where the files are readable by them, and rwx for the owner.
 *
 * NOTE: the owner keeps the write bit on purpose. Without it a non-root process cannot delete
 * the files inside, not even its own: neither the agent when it drops the set before last, nor
 * whoever cleans up the volume without root (the test kubelet, a developer). It opens nothing
 * to the app: the app's mount of the volume is read-only.
 */
export function dirModeFor(fileMode: number): number {
  let mode = 0o700;
  if (fileMode & 0o040) mode |= 0o050;
  if (fileMode & 0o004) mode |= 0o005;
  return mode;
}

async function sameContent(
  dir: string,
  data: Record<string, Buffer>,
  mode: number,
): Promise<boolean> {
  let names: string[];
  try {
    if (((await stat(dir)).mode & 0o777) !== dirModeFor(mode)) return false;
    names = await readdir(dir);
  } catch {
    return false;
  }
  const keys = Object.keys(data);
  if (names.length !== keys.length) return false;
  for (const key of keys) {
    try {
      const path = join(dir, key);
      if (((await stat(path)).mode & 0o777) !== mode) return false;
      if (!(await readFile(path)).equals(data[key] as Buffer)) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * Writes `data` as the files of `target` under `root`, atomically as described above.
 * `mode` is the files' mode; their folder gets {@link dirModeFor}(`mode`).
 */
export async function writeTargetFiles(
  root: string,
  target: string,
  data: Record<string, Buffer>,
  mode: number,
): Promise<WriteResult> {
  for (const key of Object.keys(data)) checkKey(target, key);
  await mkdir(root, { recursive: true });

  const previous = await currentDir(root, target);
  if (previous && (await sameContent(join(root, previous), data, mode)))
    return { changed: false, dir: previous };

  // 1. the complete new set, in a folder nobody looks at yet
  const stamp = new Date().toISOString().replace(/[-:.]/g, '');
  const dir = `..${target}_${stamp}_${randomBytes(4).toString('hex')}`;
  await mkdir(join(root, dir), { mode: 0o700 });
  for (const [key, value] of Object.entries(data)) {
    const path = join(root, dir, key);
    await writeFile(path, value, { mode, flag: 'wx' });
    await chmod(path, mode); // the umask may have narrowed it
  }
  await chmod(join(root, dir), dirModeFor(mode)); // opened to the readers only once complete

  // 2. swap: a new symlink renamed over the old one
  const link = join(root, `..${target}_link`);
  await rm(link, { force: true });
  await symlink(dir, link);
  await rename(link, join(root, target));

  // 3. remove older sets (and any left half-written by a crash), keeping the previous one
  await removeOldDirs(root, target, new Set([dir, previous ?? '']));
  return { changed: true, dir };
}

async function removeOldDirs(root: string, target: string, keep: Set<string>): Promise<void> {
  const prefix = `..${target}_`;
  for (const name of await readdir(root)) {
    if (name.startsWith(prefix) && !keep.has(name) && name !== `..${target}_link`) {
      await rm(join(root, name), { recursive: true, force: true });
    }
  }
}

/** When the target's current set was written, or undefined when there is none. */
export async function targetWrittenAt(root: string, target: string): Promise<Date | undefined> {
  try {
    const dir = await currentDir(root, target);
    return dir ? (await stat(join(root, dir))).mtime : undefined;
  } catch {
    return undefined;
  }
}
