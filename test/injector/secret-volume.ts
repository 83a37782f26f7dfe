/**
 * A folder laid out as the kubelet lays out a Secret volume (the way cert-manager's Secret
 * reaches the injector): the files live in a timestamped folder, `..data` points at it, and
 * `tls.crt` and `tls.key` are symlinks through `..data`. `write` swaps in a new timestamped
 * folder with one rename, as the kubelet's AtomicWriter does, then removes the old one.
 */
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface PemPair {
  cert: string;
  key: string;
}

export class SecretVolume {
  readonly dir: string;
  readonly certFile: string;
  readonly keyFile: string;
  #generation = 0;

  /** Creates the volume in a new folder under `root`, holding `pair`. */
  constructor(root: string, pair: PemPair) {
    this.dir = mkdtempSync(path.join(root, 'volume-'));
    this.certFile = path.join(this.dir, 'tls.crt');
    this.keyFile = path.join(this.dir, 'tls.key');
    this.write(pair);
    symlinkSync('..data/tls.crt', this.certFile);
    symlinkSync('..data/tls.key', this.keyFile);
  }

  write(pair: PemPair): void {
    const previous = readdirSync(this.dir).filter((f) => f.startsWith('..20'));
    const stamp = `..2026_01_01_00_00_${String(++this.#generation).padStart(2, '0')}.000000001`;
    mkdirSync(path.join(this.dir, stamp));
    writeFileSync(path.join(this.dir, stamp, 'tls.crt'), pair.cert);
    writeFileSync(path.join(this.dir, stamp, 'tls.key'), pair.key, { mode: 0o600 });
    symlinkSync(stamp, path.join(this.dir, '..data_tmp'));
    renameSync(path.join(this.dir, '..data_tmp'), path.join(this.dir, '..data'));
    for (const old of previous) rmSync(path.join(this.dir, old), { recursive: true });
  }
}
