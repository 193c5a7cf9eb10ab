import { readFileSync } from 'node:fs';
import net, { isIP } from 'node:net';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { fail } from '@cluster-session/core';
import { BalancerConfigError } from './errors.ts';

/** One certificate and its key, as PEM file paths (what `--tls-cert` / `--tls-key` name). */
interface CertPair {
  readonly cert: string;
  readonly key: string;
}

/** A loaded pair: its secure context and the names it is valid for (DNS names lower-cased, `*.x` kept as is, IPs). */
interface Loaded {
  readonly context: tls.SecureContext;
  /** The PEM texts read, kept so the server's default context is set from exactly what was checked. */
  readonly cert: string;
  readonly key: string;
  readonly names: readonly string[];
  readonly notAfter: string;
}

/** Modern defaults (Mozilla "intermediate"): TLS 1.2 and 1.3, HTTP/1.1 only (the balancer speaks nothing else). */
const TLS_MIN_VERSION = 'TLSv1.2';
const ALPN = ['http/1.1'];

function read(path: string, option: string, where: string, what: string): string {
  try {
    return readFileSync(path, 'latin1');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    return fail({ where, error: BalancerConfigError }, { option, value: path, allowed: `a readable PEM ${what} file (${code})`, fix: `check the path given to ${option}` });
  }
}

/** The certificate's names: subjectAltName DNS and IP entries, else its CN (as browsers no longer do, but curl still does). */
function namesOf(x509: X509Certificate): string[] {
  const names: string[] = [];
  for (const part of (x509.subjectAltName ?? '').split(', ')) {
    if (part.startsWith('DNS:')) names.push(part.slice(4).toLowerCase());
    else if (part.startsWith('IP Address:')) names.push(part.slice(11).toLowerCase());
  }
  if (names.length === 0) {
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(x509.subject)?.[1];
    if (cn) names.push(cn.toLowerCase());
  }
  return names;
}

/** The names a certificate file is valid for (exportConfig writes them as nginx server_name / HAProxy ACLs). */
export function certificateNames(path: string, index: number, where: string): string[] {
  const option = `tls.certs[${index}].cert (--tls-cert)`;
  try {
    return namesOf(new X509Certificate(read(path, option, where, 'certificate')));
  } catch (err) {
    if (err instanceof BalancerConfigError) throw err;
    return fail({ where, error: BalancerConfigError }, { option, value: path, allowed: 'a PEM certificate (-----BEGIN CERTIFICATE-----)', fix: 'pass the certificate file, not the key or a DER file' });
  }
}

/** Reads and checks every pair; throws BalancerConfigError naming the option (and CLI flag) and the path. */
function loadAll(pairs: readonly CertPair[], where: string): Loaded[] {
  return pairs.map((pair, i) => {
    const certOption = `tls.certs[${i}].cert (--tls-cert)`;
    const keyOption = `tls.certs[${i}].key (--tls-key)`;
    const cert = read(pair.cert, certOption, where, 'certificate');
    const key = read(pair.key, keyOption, where, 'private key');
    let x509: X509Certificate;
    try {
      x509 = new X509Certificate(cert);
    } catch {
      return fail({ where, error: BalancerConfigError }, { option: certOption, value: pair.cert, allowed: 'a PEM certificate (-----BEGIN CERTIFICATE-----)', fix: 'pass the certificate file, not the key or a DER file' });
    }
    let context: tls.SecureContext;
    try {
      // The key must be the certificate's: createSecureContext checks the pair (key values mismatch otherwise).
      context = tls.createSecureContext({ cert, key, minVersion: TLS_MIN_VERSION });
    } catch (err) {
      // Never the key's bytes: only what OpenSSL said about it.
      const why = (err as Error).message.replace(/\n[\s\S]*/, '');
      return fail({ where, error: BalancerConfigError }, { option: keyOption, value: pair.key, allowed: `the PEM private key of ${pair.cert} (${why})`, fix: 'pass the key that belongs to that certificate, unencrypted' });
    }
    return { context, cert, key, names: namesOf(x509), notAfter: x509.validTo };
  });
}

/** Whether certificate name `pattern` (possibly `*.example.com`) covers `host` (RFC 6125: one left-most label). */
function nameMatches(pattern: string, host: string): boolean {
  if (pattern === host) return true;
  if (!pattern.startsWith('*.')) return false;
  const dot = host.indexOf('.');
  return dot > 0 && host.slice(dot) === pattern.slice(1);
}

/**
 * The certificates of one balancer: picks one per connection by SNI (the first pair is the default, for clients
 * sending no name or one no certificate covers) and reloads from the same files without touching open connections
 * (a new handshake uses the new contexts; established sessions keep theirs).
 */
export class Certificates {
  private readonly pairs: readonly CertPair[];
  private loaded: Loaded[];
  private readonly log: (message: string) => void;

  constructor(pairs: readonly CertPair[], log: (message: string) => void, where = 'createBalancer') {
    this.pairs = pairs;
    this.log = log;
    this.loaded = loadAll(pairs, where);
  }

  get default(): tls.SecureContext {
    return this.loaded[0]!.context;
  }

  /** tls.Server's SNICallback: the first pair whose names cover the server name, else the default. */
  readonly sni = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    cb(null, this.pick(servername.toLowerCase()));
  };

  private pick(host: string): tls.SecureContext {
    for (const l of this.loaded) for (const n of l.names) if (nameMatches(n, host)) return l.context;
    return this.default;
  }

  /** The default pair as tls.Server options (clients sending no SNI, e.g. to an IP address, get it). */
  serverOptions(): tls.SecureContextOptions {
    const first = this.loaded[0]!;
    return { cert: first.cert, key: first.key, minVersion: TLS_MIN_VERSION };
  }

  /** Whether some certificate covers `host` (the redirect listener only redirects to names it can serve). */
  covers(host: string): boolean {
    const h = host.toLowerCase();
    return this.loaded.some((l) => l.names.some((n) => nameMatches(n, h)));
  }

  /** The names of every certificate, for the startup line and status. */
  names(): string[] {
    return this.loaded.flatMap((l) => l.names);
  }

  /**
   * Re-reads every file. All pairs load or none is taken: a bad new certificate (or a key not matching it) keeps
   * the old ones serving, and one line says why. Resolves whether the new ones were taken.
   */
  reload(server?: tls.Server): boolean {
    let next: Loaded[];
    try {
      next = loadAll(this.pairs, 'reloadTls');
    } catch (err) {
      this.log(`TLS reload failed, the previous certificates stay in use: ${(err as Error).message}`);
      return false;
    }
    this.loaded = next;
    // The default context of the server (clients without SNI) is replaced too; open connections keep theirs.
    server?.setSecureContext(this.serverOptions());
    this.log(`TLS certificates reloaded (${next.map((l) => `${l.names.join(' ') || 'no names'} until ${l.notAfter}`).join('; ')})`);
    return true;
  }
}

const HOST = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?))(?::([0-9]{1,5}))?$/;

/** The host name of a Host header value when it is a syntactically valid host[:port], else undefined. */
export function hostOf(value: string | undefined): string | undefined {
  if (value === undefined || value.length > 255) return undefined;
  const m = HOST.exec(value);
  if (!m) return undefined;
  if (m[3] !== undefined && Number(m[3]) > 65535) return undefined;
  if (m[1] !== undefined) return isIP(m[1]) === 6 ? m[1].toLowerCase() : undefined;
  return m[2]!.toLowerCase().replace(/\.$/, '');
}

/**
 * The HTTPS listener: a handshake picks the certificate by SNI and agrees on HTTP/1.1 (a client offering only h2
 * is refused by ALPN rather than spoken to in the wrong protocol); then the decrypted socket is a ClientConn like
 * any other. The handshake has the head's deadline: a client that never finishes one cannot hold a slot.
 */
export function createTlsServer(certs: Certificates, accept: (socket: net.Socket) => void, handshakeMs: number): tls.Server {
  const server = tls.createServer(
    { ...certs.serverOptions(), SNICallback: certs.sni, ALPNProtocols: ALPN, allowHalfOpen: true, noDelay: true, handshakeTimeout: handshakeMs },
    accept,
  );
  // A failed handshake (plain HTTP on the TLS port, no shared protocol or version, a timeout) costs its socket only.
  server.on('tlsClientError', (_err, socket) => socket.destroy());
  return server;
}
