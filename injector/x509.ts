/**
 * Builds the two certificates a self-managed injector needs: a CA and a serving certificate it
 * signs. Keys are ECDSA P-256 from node:crypto, which also signs; this file only lays out the
 * DER structure of RFC 5280, because Node can parse and verify certificates but not write them.
 *
 * NOTE: written here instead of taken from a library on purpose. The libraries that can build a
 * certificate either need a global polyfill and a dozen packages (@peculiar/x509 needs
 * reflect-metadata) or ship without types (node-forge). What we write is small and fixed, and
 * every certificate is parsed back with Node's X509Certificate before it is used (see
 * `checkKeyPair` in tls.ts), so a mistake here shows up as a refused certificate, not as a
 * certificate that is quietly wrong.
 *
 * What a certificate holds: version 3, a random 128-bit serial, ecdsa-with-SHA256, a subject and
 * issuer made of one common name, the validity given, and these extensions:
 * - CA: basicConstraints (critical, CA, pathLen 0), keyUsage (critical: certSign, cRLSign,
 *   digitalSignature), subjectKeyIdentifier.
 * - Serving: basicConstraints (critical, not a CA), keyUsage (critical: digitalSignature),
 *   extKeyUsage serverAuth, subjectAltName (DNS names and IP addresses),
 *   subjectKeyIdentifier, authorityKeyIdentifier.
 */
import {
  createHash,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  type X509Certificate,
} from 'node:crypto';
import { isIP } from 'node:net';

export interface KeyPairObjects {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** A new ECDSA P-256 key pair: small, fast, and accepted by every Kubernetes API server. */
export function generateKeys(): KeyPairObjects {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

export interface CertificateSpec {
  commonName: string;
  notBefore: Date;
  notAfter: Date;
  /** The key the certificate is for. */
  publicKey: KeyObject;
  /** `ca`: a CA that may sign serving certificates only; `serving`: a TLS server. */
  kind: 'ca' | 'serving';
  /** Subject alternative names of a serving certificate: DNS names and IP addresses. */
  hosts?: string[];
  /** Who signs: the CA's certificate and key; omitted for a self-signed CA. */
  issuer?: { certificate: X509Certificate; privateKey: KeyObject };
  /** Only for a self-signed certificate: its own private key. */
  privateKey?: KeyObject;
}

/** Returns the certificate as PEM. Throws on a spec that cannot be written (a bad host). */
export function createCertificate(spec: CertificateSpec): string {
  const subject = name(spec.commonName);
  // The issuer name is copied byte for byte from the CA: verifiers match it that way.
  const issuerName = spec.issuer ? subjectOf(spec.issuer.certificate) : subject;
  const issuerKey = spec.issuer ? spec.issuer.certificate.publicKey : spec.publicKey;
  const signingKey = spec.issuer?.privateKey ?? spec.privateKey;
  if (!signingKey) throw new Error('createCertificate: a self-signed CA needs privateKey');

  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))), // version 3
    integer(serialNumber()),
    ECDSA_WITH_SHA256,
    issuerName,
    sequence(time(spec.notBefore), time(spec.notAfter)),
    subject,
    spec.publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, sequence(...extensions(spec, issuerKey))),
  );
  const signature = sign('sha256', tbs, { key: signingKey, dsaEncoding: 'der' });
  const der = sequence(tbs, ECDSA_WITH_SHA256, bitString(signature));
  const body = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE-----\n${body}-----END CERTIFICATE-----\n`;
}

function extensions(spec: CertificateSpec, issuerKey: KeyObject): Buffer[] {
  const out: Buffer[] = [];
  const { digitalSignature, keyCertSign, cRLSign } = KEY_USAGE;
  if (spec.kind === 'ca') {
    const pathLenZero = integer(Buffer.from([0]));
    out.push(extension(OID.basicConstraints, true, sequence(boolean(true), pathLenZero)));
    out.push(extension(OID.keyUsage, true, keyUsage([digitalSignature, keyCertSign, cRLSign])));
  } else {
    const names = sequence(...(spec.hosts ?? []).map(generalName));
    out.push(extension(OID.basicConstraints, true, sequence()));
    out.push(extension(OID.keyUsage, true, keyUsage([digitalSignature])));
    out.push(extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth))));
    out.push(extension(OID.subjectAltName, false, names));
  }
  const ownId = octetString(keyIdentifier(spec.publicKey));
  out.push(extension(OID.subjectKeyIdentifier, false, ownId));
  if (spec.issuer) {
    const issuerId = sequence(tagged(0x80, keyIdentifier(issuerKey))); // [0] keyIdentifier
    out.push(extension(OID.authorityKeyIdentifier, false, issuerId));
  }
  return out;
}

/**
 * Key identifier: the first 160 bits of the SHA-256 of the SubjectPublicKeyInfo, one of the
 * methods RFC 7093 allows; it only has to be the same for the same key.
 */
function keyIdentifier(key: KeyObject): Buffer {
  const spki = key.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest().subarray(0, 20);
}

/** 16 random bytes, positive, and never starting with a zero byte (DER wants it minimal). */
function serialNumber(): Buffer {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  return serial;
}

const OID = {
  commonName: '2.5.4.3',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
} as const;

/** Bit numbers of the KeyUsage BIT STRING (RFC 5280 4.2.1.3). */
const KEY_USAGE = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

const ECDSA_WITH_SHA256 = sequence(oid(OID.ecdsaWithSha256));

function extension(id: string, isCritical: boolean, value: Buffer): Buffer {
  return isCritical
    ? sequence(oid(id), boolean(true), octetString(value))
    : sequence(oid(id), octetString(value));
}

/**
 * The DER of a certificate's subject Name: the sixth element of its TBSCertificate (version,
 * serial, signature, issuer, validity, subject), read with just enough DER to skip elements.
 */
function subjectOf(certificate: X509Certificate): Buffer {
  const tbs = contentOf(certificate.raw, 0); // Certificate -> TBSCertificate
  let offset = 0;
  for (let i = 0; i < 5; i++) offset = skip(tbs, offset);
  return tbs.subarray(offset, skip(tbs, offset));
}

/** The content of the element at `offset` whose value is itself a constructed element. */
function contentOf(der: Buffer, offset: number): Buffer {
  const outer = header(der, offset);
  const inner = header(der, outer.contentStart);
  return der.subarray(inner.contentStart, inner.contentStart + inner.length);
}

/** Offset just past the element at `offset`. */
function skip(der: Buffer, offset: number): number {
  const h = header(der, offset);
  return h.contentStart + h.length;
}

function header(der: Buffer, offset: number): { contentStart: number; length: number } {
  const first = der[offset + 1];
  if (first === undefined) throw new Error('subjectOf: truncated certificate');
  if (first < 0x80) return { contentStart: offset + 2, length: first };
  const count = first & 0x7f;
  let length = 0;
  for (let i = 0; i < count; i++) length = length * 256 + (der[offset + 2 + i] ?? 0);
  return { contentStart: offset + 2 + count, length };
}

function name(commonName: string): Buffer {
  const attribute = sequence(oid(OID.commonName), tagged(0x0c, Buffer.from(commonName, 'utf8')));
  return sequence(tagged(0x31, attribute));
}

/** A named-bit BIT STRING: trailing zero bits are dropped, as DER requires. */
function keyUsage(bits: number[]): Buffer {
  const highest = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) | (0x80 >> (bit & 7));
  const unused = 7 - (highest & 7);
  return tagged(0x03, Buffer.concat([Buffer.from([unused]), bytes]));
}

/** dNSName ([2] IA5String) or iPAddress ([7] OCTET STRING). */
function generalName(host: string): Buffer {
  const family = isIP(host);
  if (family === 4) return tagged(0x87, Buffer.from(host.split('.').map(Number)));
  if (family === 6) return tagged(0x87, ipv6Bytes(host));
  if (!/^[a-z0-9*]([-a-z0-9.]*[a-z0-9])?$/i.test(host)) {
    throw new Error(`createCertificate: ${JSON.stringify(host)} is neither a DNS name nor an IP`);
  }
  return tagged(0x82, Buffer.from(host, 'ascii'));
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  const left = groups(head);
  const right = groups(tail);
  // An embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups.
  const expand = (list: string[]) =>
    list.flatMap((g) => {
      if (!g.includes('.')) return [g];
      const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
      return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
    });
  const l = expand(left);
  const r = expand(right);
  const all = tail === undefined ? l : [...l, ...Array(8 - l.length - r.length).fill('0'), ...r];
  const bytes = Buffer.alloc(16);
  all.forEach((g, i) => bytes.writeUInt16BE(parseInt(g, 16), i * 2));
  return bytes;
}

/** UTCTime until 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5), to the second. */
function time(date: Date): Buffer {
  const iso = date.toISOString(); // 2026-01-02T03:04:05.678Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, ''); // 20260102030405
  const year = date.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tagged(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii'));
  return tagged(0x18, Buffer.from(`${digits}Z`, 'ascii'));
}

// DER primitives.

function tagged(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content]);
}

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function sequence(...items: Buffer[]): Buffer {
  return tagged(0x30, Buffer.concat(items));
}

function explicit(n: number, content: Buffer): Buffer {
  return tagged(0xa0 + n, content);
}

/** A non-negative INTEGER from big-endian bytes, minimal, with a 0 byte if the top bit is set. */
function integer(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const trimmed = bytes.subarray(start);
  const content = trimmed[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed;
  return tagged(0x02, content);
}

function boolean(value: boolean): Buffer {
  return tagged(0x01, Buffer.from([value ? 0xff : 0x00]));
}

function octetString(content: Buffer): Buffer {
  return tagged(0x04, content);
}

function bitString(content: Buffer): Buffer {
  return tagged(0x03, Buffer.concat([Buffer.from([0]), content]));
}

function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const bytes = [40 * arcs[0]! + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const chunk = [arc & 0x7f];
    for (let rest = Math.floor(arc / 128); rest > 0; rest = Math.floor(rest / 128)) {
      chunk.unshift((rest & 0x7f) | 0x80);
    }
    bytes.push(...chunk);
  }
  return tagged(0x06, Buffer.from(bytes));
}
