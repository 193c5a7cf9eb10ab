import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface TestCert {
  /** PEM file paths, what `--tls-cert` / `--tls-key` take. */
  cert: string;
  key: string;
  /** SHA-256 fingerprint as `AB:CD:...` (X509Certificate.fingerprint256). */
  fingerprint: string;
  /** base64 SHA-256 of the public key (SubjectPublicKeyInfo): Chromium's --ignore-certificate-errors-spki-list pin. */
  spki: string;
}

export interface TestCA {
  /** The CA certificate (PEM text), what a client trusts (`ca` of tls/undici). */
  pem: string;
  file: string;
  /** Issues a certificate for `names` (DNS names and IP addresses) signed by this CA, into `<dir>/<file>.pem|.key`. */
  issue(file: string, names: string[], days?: number): TestCert;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * A private certificate authority made at test time with the real openssl binary (no key material in the
 * repository): clients trust its certificate, so tests check the chain and the names instead of turning
 * verification off.
 */
export function testCA(dir: string): TestCA {
  mkdirSync(dir, { recursive: true });
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=cluster-session test CA'], dir);
  const file = path.join(dir, 'ca.pem');
  let serial = 1;
  return {
    pem: readFileSync(file, 'utf8'),
    file,
    issue(name, names, days = 2) {
      const san = names.map((n) => (/^[0-9.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
      writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`);
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${names[0]}`], dir);
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', String(serial++ + Date.now()), '-days', String(days), '-extfile', `${name}.ext`, '-out', `${name}.pem`], dir);
      const cert = path.join(dir, `${name}.pem`);
      const x509 = new X509Certificate(readFileSync(cert));
      const spki = x509.publicKey.export({ type: 'spki', format: 'der' });
      return {
        cert,
        key: path.join(dir, `${name}.key`),
        fingerprint: x509.fingerprint256,
        spki: createHash('sha256').update(spki).digest('base64'),
      };
    },
  };
}
