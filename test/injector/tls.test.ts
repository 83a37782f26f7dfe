import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../agent/log.ts';
import {
  checkKeyPair,
  type KeyPair,
  KeyPairError,
  readKeyPair,
  watchKeyPair,
} from '../../injector/tls.ts';
import { createCertificate, generateKeys } from '../../injector/x509.ts';
import { type PemPair, SecretVolume } from './secret-volume.ts';

const HOUR_MS = 60 * 60 * 1000;

/** A CA and serving certificates it signs, made in memory (no openssl needed). */
function makeIssuer() {
  const caKeys = generateKeys();
  const caPem = createCertificate({
    kind: 'ca',
    commonName: 'tls-test CA',
    notBefore: new Date(Date.now() - HOUR_MS),
    notAfter: new Date(Date.now() + 48 * HOUR_MS),
    publicKey: caKeys.publicKey,
    privateKey: caKeys.privateKey,
  });
  const certificate = new X509Certificate(caPem);
  const issue = (cn: string, notAfter = new Date(Date.now() + 24 * HOUR_MS)): PemPair => {
    const keys = generateKeys();
    const cert = createCertificate({
      kind: 'serving',
      commonName: cn,
      hosts: ['127.0.0.1'],
      notBefore: new Date(Date.now() - 2 * HOUR_MS),
      notAfter,
      publicKey: keys.publicKey,
      issuer: { certificate, privateKey: caKeys.privateKey },
    });
    return { cert, key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
  };
  return { caPem, issue };
}

async function waitUntil(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('checkKeyPair', () => {
  const issuer = makeIssuer();
  const good = issuer.issue('good');
  const other = issuer.issue('other');
  const expired = issuer.issue('expired', new Date(Date.now() - HOUR_MS));

  it('accepts a matching pair and reports its dates and fingerprint', () => {
    const pair = checkKeyPair(good.cert, good.key);
    const cert = new X509Certificate(good.cert);
    assert.equal(pair.fingerprint, cert.fingerprint256);
    assert.equal(pair.notAfter.getTime(), new Date(cert.validTo).getTime());
    assert.ok(pair.notBefore < pair.notAfter);
  });

  it('accepts a chain whose first certificate matches the key', () => {
    const pair = checkKeyPair(good.cert + issuer.caPem, good.key);
    assert.equal(pair.fingerprint, new X509Certificate(good.cert).fingerprint256);
  });

  const refused = [
    { name: 'a key that belongs to another certificate', cert: good.cert, key: other.key, message: /the key does not belong to the certificate \(CN=good\)/ },
    { name: 'a certificate that is not PEM', cert: 'not a certificate', key: good.key, message: /the certificate is not a PEM X\.509 certificate/ },
    { name: 'a key that is not PEM', cert: good.cert, key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', message: /the key is not a PEM private key/ },
    { name: 'an empty key file', cert: good.cert, key: '', message: /the key is not a PEM private key/ },
    { name: 'an expired certificate', cert: expired.cert, key: expired.key, message: /the certificate expired at \d{4}-/ },
  ];
  for (const c of refused) {
    it(`refuses ${c.name}, without quoting the key`, () => {
      assert.throws(() => checkKeyPair(c.cert, c.key), (err: unknown) => {
        assert.ok(err instanceof KeyPairError);
        assert.equal(err.code, 'ERR_TLS_KEY_PAIR');
        assert.match(err.message, c.message);
        assert.ok(!err.message.includes('PRIVATE KEY'), 'no key material in the message');
        return true;
      });
    });
  }

  it('names a file it cannot read', async () => {
    await assert.rejects(readKeyPair('/nonexistent/tls.crt', '/nonexistent/tls.key'), /cannot read \/nonexistent\/tls\.(crt|key) \(ENOENT\)/);
  });
});

describe('watchKeyPair', () => {
  const issuer = makeIssuer();
  const [a, b, c] = [issuer.issue('a'), issuer.issue('b'), issuer.issue('c')];
  let root: string;

  before(() => {
    root = mkdtempSync(path.join(tmpdir(), 'esa-tls-watch-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  /** Starts a watch on `certFile`/`keyFile` whose current pair is `current`. */
  async function watching(certFile: string, keyFile: string, current: PemPair, extra: { recheckMs?: number } = {}) {
    const changes: KeyPair[] = [];
    const logs: string[] = [];
    const watch = watchKeyPair({
      certFile,
      keyFile,
      current: checkKeyPair(current.cert, current.key),
      onChange: (pair) => changes.push(pair),
      log: createLogger('debug', { component: 'injector' }, (line) => logs.push(line)),
      debounceMs: 100,
      ...extra,
    });
    await watch.ready;
    const cns = () => changes.map((p) => new X509Certificate(p.certPem).subject);
    return { watch, changes, logs, cns };
  }

  it('reloads the pair when the kubelet swaps the ..data symlink', async () => {
    const volume = new SecretVolume(root, a);
    const w = await watching(volume.certFile, volume.keyFile, a);
    try {
      volume.write(b);
      await waitUntil('the new pair', () => w.changes.length === 1);
      assert.deepEqual(w.cns(), ['CN=b']);
      assert.equal(w.changes[0]!.keyPem, b.key);
    } finally {
      await w.watch.close();
    }
  });

  it('keeps the current pair and warns once when the new files do not match, then takes a good pair', async () => {
    const volume = new SecretVolume(root, a);
    const w = await watching(volume.certFile, volume.keyFile, a);
    try {
      volume.write({ cert: b.cert, key: c.key });
      await waitUntil('the warning', () => w.logs.some((l) => l.includes('new serving certificate rejected')));
      await sleep(300);
      assert.equal(w.changes.length, 0, 'the broken pair is never served');
      assert.equal(w.logs.filter((l) => l.includes('rejected')).length, 1, 'one warning');
      const warning = JSON.parse(w.logs.find((l) => l.includes('rejected'))!) as Record<string, string>;
      assert.equal(warning.level, 'warn');
      assert.equal(warning.errCode, 'ERR_TLS_KEY_PAIR');
      assert.match(warning.err!, /the key does not belong to the certificate/);
      assert.ok(!w.logs.join('\n').includes('PRIVATE KEY'), 'no key material in the logs');

      volume.write(c);
      await waitUntil('the good pair', () => w.changes.length === 1);
      assert.deepEqual(w.cns(), ['CN=c']);
    } finally {
      await w.watch.close();
    }
  });

  it('reloads plain files written in place one after the other, never serving half a pair', async () => {
    const dir = mkdtempSync(path.join(root, 'plain-'));
    const certFile = path.join(dir, 'tls.crt');
    const keyFile = path.join(dir, 'tls.key');
    writeFileSync(certFile, a.cert);
    writeFileSync(keyFile, a.key);
    const w = await watching(certFile, keyFile, a);
    try {
      writeFileSync(certFile, b.cert);
      await sleep(300); // longer than the debounce: the half-written pair is read and refused
      writeFileSync(keyFile, b.key);
      await waitUntil('the complete pair', () => w.changes.length === 1);
      assert.deepEqual(w.cns(), ['CN=b']);
    } finally {
      await w.watch.close();
    }
  });

  it('changes nothing when the files are written again with the same content', async () => {
    const volume = new SecretVolume(root, a);
    const w = await watching(volume.certFile, volume.keyFile, a);
    try {
      volume.write(a);
      await sleep(400);
      assert.equal(w.changes.length, 0);
    } finally {
      await w.watch.close();
    }
  });

  it('notices a change that raised no event in the watched folder, on its periodic re-check', async () => {
    // The files are symlinks to another folder, which is not watched (symlinks are not followed).
    const target = mkdtempSync(path.join(root, 'elsewhere-'));
    const dir = mkdtempSync(path.join(root, 'links-'));
    writeFileSync(path.join(target, 'tls.crt'), a.cert);
    writeFileSync(path.join(target, 'tls.key'), a.key);
    symlinkSync(path.join(target, 'tls.crt'), path.join(dir, 'tls.crt'));
    symlinkSync(path.join(target, 'tls.key'), path.join(dir, 'tls.key'));
    const w = await watching(path.join(dir, 'tls.crt'), path.join(dir, 'tls.key'), a, { recheckMs: 300 });
    try {
      writeFileSync(path.join(target, 'tls.crt'), b.cert);
      writeFileSync(path.join(target, 'tls.key'), b.key);
      await waitUntil('the re-check', () => w.changes.length === 1);
      assert.deepEqual(w.cns(), ['CN=b']);
    } finally {
      await w.watch.close();
    }
  });

  it('stops reloading after close', async () => {
    const volume = new SecretVolume(root, a);
    const w = await watching(volume.certFile, volume.keyFile, a);
    await w.watch.close();
    volume.write(b);
    await sleep(400);
    assert.equal(w.changes.length, 0);
  });
});
