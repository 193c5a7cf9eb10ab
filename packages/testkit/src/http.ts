import http from 'node:http';

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  json: any;
  /** `name=value` pairs from Set-Cookie, ready to send back in a Cookie header. */
  cookies: Record<string, string>;
}

export interface HttpRequest {
  method?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer | object;
  /** Defaults to a fresh connection per request (agent: false) so each request can land on another worker. */
  agent?: http.Agent | false;
  timeoutMs?: number;
}

/** One real HTTP request over a socket. Rejects on network errors or timeout, never on HTTP status. */
export function request(url: string | URL, options: HttpRequest = {}): Promise<HttpResult> {
  const headers: Record<string, string | string[]> = { ...options.headers };
  let payload: string | Buffer | undefined;
  if (options.body !== undefined) {
    if (typeof options.body === 'string' || Buffer.isBuffer(options.body)) payload = options.body;
    else {
      payload = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers, agent: options.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        let json: unknown;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        const cookies: Record<string, string> = {};
        for (const line of res.headers['set-cookie'] ?? []) {
          const pair = line.split(';', 1)[0]!;
          const eq = pair.indexOf('=');
          if (eq > 0) cookies[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json, cookies });
      });
    });
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Formats a cookie jar for a Cookie request header. */
export function cookieHeader(jar: Record<string, string>): string {
  return Object.entries(jar)
    .map(([k, v]) => `${k}=${v}`)
    .join('; ');
}

/** A client that keeps its cookies like a browser: what a response sets is sent back; an emptied or expired one is dropped. */
export interface Client {
  readonly base: string;
  readonly jar: Record<string, string>;
  send(method: string, path: string, body?: HttpRequest['body'], headers?: Record<string, string>): Promise<HttpResult>;
  get(path: string, headers?: Record<string, string>): Promise<HttpResult>;
  post(path: string, body?: HttpRequest['body'], headers?: Record<string, string>): Promise<HttpResult>;
}

function expired(line: string): boolean {
  const attrs = line.split(';').slice(1).map((a) => a.trim().toLowerCase());
  if (attrs.some((a) => /^max-age=\s*(0|-\d+)$/.test(a))) return true;
  const expires = attrs.find((a) => a.startsWith('expires='));
  return expires !== undefined && Date.parse(expires.slice(8)) <= Date.now();
}

export function client(base: string | URL, defaults: Omit<HttpRequest, 'method' | 'body'> = {}): Client {
  const jar: Record<string, string> = {};
  const send = async (method: string, path: string, body?: HttpRequest['body'], headers: Record<string, string> = {}) => {
    const cookie = cookieHeader(jar);
    const res = await request(new URL(path, base), {
      ...defaults,
      method,
      ...(body !== undefined ? { body } : {}),
      headers: { ...defaults.headers, ...headers, ...(cookie ? { cookie } : {}) },
    });
    for (const line of res.headers['set-cookie'] ?? []) {
      const pair = line.split(';', 1)[0]!;
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (value === '' || expired(line)) delete jar[name];
      else jar[name] = value;
    }
    return res;
  };
  return {
    base: String(base),
    jar,
    send,
    get: (path, headers) => send('GET', path, undefined, headers),
    post: (path, body, headers) => send('POST', path, body ?? {}, headers),
  };
}
