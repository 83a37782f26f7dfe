import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { createCertificate, generateKeys, type KeyPairObjects } from '../../injector/x509.ts';

const HOUR_MS = 60 * 60 * 1000;

describe('x509: self-managed CA and serving certificates', () => {
  const notBefore = new Date(Date.now() - HOUR_MS);
  const notAfter = new Date(Date.now() + 24 * HOUR_MS);
  let caKeys: KeyPairObjects;
  let caPem: string;
  let ca: X509Certificate;
  let leafKeys: KeyPairObjects;
  let leafPem: string;
  let dir: string;
  const hosts = ['esa-injector.esa-system.svc', 'esa-injector', '127.0.0.1', '::1'];

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'esa-x509-'));
    caKeys = generateKeys();
    caPem = createCertificate({
      kind: 'ca',
      commonName: 'esa-system/esa-injector-tls CA',
      notBefore,
      notAfter,
      publicKey: caKeys.publicKey,
      privateKey: caKeys.privateKey,
    });
    ca = new X509Certificate(caPem);
    leafKeys = generateKeys();
    leafPem = createCertificate({
      kind: 'serving',
      commonName: hosts[0]!,
      hosts,
      notBefore,
      notAfter,
      publicKey: leafKeys.publicKey,
      issuer: { certificate: ca, privateKey: caKeys.privateKey },
    });
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('builds a self-signed CA that Node reads as a CA for the given period', () => {
    assert.equal(ca.ca, true);
    assert.equal(ca.subject, 'CN=esa-system/esa-injector-tls CA');
    assert.equal(ca.issuer, ca.subject);
    assert.ok(ca.verify(caKeys.publicKey), 'signed with its own key');
    assert.equal(new Date(ca.validFrom).getTime(), Math.floor(notBefore.getTime() / 1000) * 1000);
    assert.equal(new Date(ca.validTo).getTime(), Math.floor(notAfter.getTime() / 1000) * 1000);
  });

  it('builds a serving certificate the CA verifies, covering every DNS name and IP given', () => {
    const leaf = new X509Certificate(leafPem);
    assert.equal(leaf.ca, false);
    assert.ok(leaf.verify(ca.publicKey));
    assert.ok(leaf.checkIssued(ca), 'issuer name and key identifiers match the CA');
    assert.ok(leaf.checkPrivateKey(leafKeys.privateKey));
    assert.equal(leaf.checkHost('esa-injector.esa-system.svc'), 'esa-injector.esa-system.svc');
    assert.equal(leaf.checkHost('esa-injector'), 'esa-injector');
    assert.equal(leaf.checkHost('other.esa-system.svc'), undefined);
    assert.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(leaf.checkIP('::1'), '::1');
    assert.equal(leaf.checkIP('10.0.0.1'), undefined);
    assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'extended key usage serverAuth');
  });

  it('passes openssl verify in strict mode for TLS server use', () => {
    writeFileSync(path.join(dir, 'ca.crt'), caPem);
    writeFileSync(path.join(dir, 'tls.crt'), leafPem);
    const out = execFileSync('openssl', [
      'verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', path.join(dir, 'ca.crt'),
      path.join(dir, 'tls.crt'),
    ], { encoding: 'utf8' });
    assert.match(out, /tls\.crt: OK/);
  });

  it('serves TLS to a client that trusts only the CA, by name and by IP', async () => {
    const server = tls.createServer({ cert: leafPem, key: leafKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }) }, (s) => s.end('hi'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const connect = (servername?: string) => new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: caPem, ...(servername ? { servername } : {}) }, () => {
        socket.once('data', (d) => {
          resolve(d.toString());
          socket.end();
        });
      });
      socket.on('error', reject);
    });
    try {
      assert.equal(await connect('esa-injector.esa-system.svc'), 'hi');
      assert.equal(await connect(), 'hi');
      await assert.rejects(connect('elsewhere.example'), /altnames|Hostname/i);
    } finally {
      server.close();
    }
  });

  it('writes dates from 2050 on as GeneralizedTime', () => {
    const keys = generateKeys();
    const pem = createCertificate({
      kind: 'serving', commonName: 'late', hosts: ['late'], notBefore, notAfter: new Date('2061-02-03T04:05:06Z'),
      publicKey: keys.publicKey, issuer: { certificate: ca, privateKey: caKeys.privateKey },
    });
    assert.equal(new Date(new X509Certificate(pem).validTo).toISOString(), '2061-02-03T04:05:06.000Z');
  });

  it('gives every certificate its own positive serial number', () => {
    const serials = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const keys = generateKeys();
      const pem = createCertificate({
        kind: 'serving', commonName: 's', hosts: ['s'], notBefore, notAfter,
        publicKey: keys.publicKey, issuer: { certificate: ca, privateKey: caKeys.privateKey },
      });
      serials.add(new X509Certificate(pem).serialNumber);
    }
    assert.equal(serials.size, 20);
    for (const s of serials) assert.ok(parseInt(s.slice(0, 2), 16) < 0x80, `${s} is positive`);
  });

  it('refuses a host that is neither a DNS name nor an IP address', () => {
    assert.throws(
      () => createCertificate({
        kind: 'serving', commonName: 'x', hosts: ['not a host'], notBefore, notAfter,
        publicKey: leafKeys.publicKey, issuer: { certificate: ca, privateKey: caKeys.privateKey },
      }),
      /"not a host" is neither a DNS name nor an IP/,
    );
  });
});
