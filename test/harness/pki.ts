/**
 * Throwaway PKI for a test run, made with the openssl CLI: a CA, serving certificates for
 * 127.0.0.1/localhost, client certificates, and the service-account signing key pair.
 * Node's crypto module has no X.509 builder, so this is the shortest honest way.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
  certPem: string;
  keyPem: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr || (err as Error).message}`);
  }
}

function files(dir: string, base: string): CertFiles {
  const cert = path.join(dir, `${base}.crt`);
  const key = path.join(dir, `${base}.key`);
  return { cert, key, certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') };
}

export function createCa(dir: string, name = 'esa-test-ca'): CertFiles {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt',
    '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return files(dir, 'ca');
}

/**
 * Issues a certificate signed by `ca`. `hosts` become SANs (IPs or DNS names) for a serving
 * certificate; `organizations` become O= entries (Kubernetes groups) for a client certificate.
 */
export function issueCert(
  dir: string,
  ca: CertFiles,
  base: string,
  { commonName, hosts = [], organizations = [], client = false }:
    { commonName: string; hosts?: string[]; organizations?: string[]; client?: boolean },
): CertFiles {
  const subject = `/CN=${commonName}` + organizations.map((o) => `/O=${o}`).join('');
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', subject], dir);
  const san = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  const ext = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${client ? 'clientAuth' : 'serverAuth'}`,
    ...(san ? [`subjectAltName=${san}`] : []),
  ].join('\n');
  writeFileSync(path.join(dir, `${base}.ext`), ext + '\n');
  openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial',
    '-days', '2', '-out', `${base}.crt`, '-extfile', `${base}.ext`], dir);
  return files(dir, base);
}

/** RSA key pair for signing service-account tokens (sa.key private, sa.pub public). */
export function createSigningKey(dir: string): { key: string; pub: string } {
  openssl(['genrsa', '-out', 'sa.key', '2048'], dir);
  openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  return { key: path.join(dir, 'sa.key'), pub: path.join(dir, 'sa.pub') };
}
