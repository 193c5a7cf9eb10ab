/**
 * Differential test of the balancer's HTTP/1.1 handling against Node's own strict parser, llhttp (fixtures/
 * oracle.ts), over real sockets: generated and mutated requests go to the balancer, and a recording back end
 * parses what it forwards; generated and mutated responses come from that back end, and the client's bytes are
 * parsed. For every case, the balancer either refuses, or what it forwards parses strictly into exactly the
 * messages that were sent: same number, same boundaries, same bodies, in order, nothing smuggled in between.
 *
 * Seeded and bounded: `npm test` runs 800 request cases and 500 response cases with a fixed seed. A longer run:
 * `BALANCER_FUZZ_CASES=20000 BALANCER_FUZZ_SEED=$RANDOM node --conditions=@cluster-session/source --test packages/balancer/test/differential.test.ts`
 * (request and response cases each; a failure prints the seed, the case number and its bytes).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Balancer } from '@cluster-session/balancer';
import { balancer, codeOf, exchange } from './helpers.ts';
import { until } from '@cluster-session/testkit';
import { Gen, requestCase, responseCase } from './fixtures/generate.ts';
import { fields, Oracle, parseAll, type Message } from './fixtures/oracle.ts';
import { startRecorder, type Recorder } from './fixtures/recorder.ts';

const SEED = Number(process.env.BALANCER_FUZZ_SEED ?? 12);
const CASES = process.env.BALANCER_FUZZ_CASES ? Number(process.env.BALANCER_FUZZ_CASES) : undefined;
const REQUEST_CASES = CASES ?? 800;
const RESPONSE_CASES = CASES ?? 500;

/** Fields that are the proxy's business, not the application's (X-Request-Id: the balancer sets its own): never compared end to end. */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'content-length', 'upgrade', 'host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id']);

/** SP/HT only (not String.prototype.trim, which also takes U+00A0). */
const ows = (s: string) => s.replace(/^[ \t]+|[ \t]+$/g, '');

/** The application's fields of a message, in order: lower-cased names, without hop-by-hop ones and those Connection names. */
function endToEnd(m: Message): string[] {
  const named = new Set(fields(m.headers, 'connection').flatMap((v) => v.split(',').map((t) => ows(t).toLowerCase())));
  const out: string[] = [];
  for (let i = 0; i < m.headers.length; i += 2) {
    const name = m.headers[i]!.toLowerCase();
    if (!HOP.has(name) && !named.has(name)) out.push(`${name}: ${m.headers[i + 1]}`);
  }
  return out;
}

/** What an instance should see as the target: origin-form (absolute-form rewritten). */
function originForm(url: string): string {
  const m = /^https?:\/\/[^/?]*(.*)$/i.exec(url);
  if (!m) return url;
  const rest = m[1]!;
  return rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
}

function authorityOf(url: string): string | undefined {
  return /^https?:\/\/([^/?]*)/i.exec(url)?.[1];
}

function isBalancerAnswer(m: Message | undefined): boolean {
  return m !== undefined && m.status >= 400 && fields(m.headers, 'cache-control')[0] === 'no-store' && (m.body.length === 0 || codeOf(m.body.toString()) !== '');
}

/**
 * The input as the balancer reads it where it deliberately differs from llhttp: OWS around a Transfer-Encoding
 * value may be HT too (RFC 9110 5.6.3; llhttp takes only SP after `chunked`). The balancer re-writes the field
 * as `Transfer-Encoding: chunked` in any case, so what it forwards is canonical either way.
 */
function asRead(bytes: string): string {
  return bytes.replace(/^(transfer-encoding:[^\r\n]*?)[ \t]*\t[ \t]*\r$/gim, '$1\r'); // only trailing OWS with an HT
}

/**
 * An answer as the balancer reads (asRead) and repairs what llhttp refuses in it, as nginx and HAProxy do: Content-Length removed
 * when Transfer-Encoding is present (RFC 9112 6.3), equal lengths (repeated, or a list) made one. Applied to the
 * first head, and to the final head after an interim one.
 */
function asRepaired(bytes: string): string {
  let out = asRead(bytes);
  let from = 0;
  for (let n = 0; n < 2; n++) {
    const end = out.indexOf('\r\n\r\n', from);
    if (end === -1) break;
    let lines = out.slice(from, end).split('\r\n');
    const isLength = (l: string) => /^content-length:/i.test(l);
    if (lines.some((l) => /^transfer-encoding:/i.test(l))) lines = lines.filter((l) => !isLength(l));
    else {
      const values = lines.filter(isLength).flatMap((l) => l.slice(15).split(',').map(ows)).filter((v) => v !== '');
      const first = lines.findIndex(isLength);
      if (values.length > 0 && values.every((v) => v === values[0])) lines = lines.flatMap((l, i) => (i === first ? [`Content-Length: ${values[0]}`] : isLength(l) ? [] : [l]));
    }
    const head = lines.join('\r\n');
    out = out.slice(0, from) + head + out.slice(end);
    if (!/^HTTP\/1\.[01] 1(?!01)/.test(head)) break;
    from = from + head.length + 4;
  }
  return out;
}

const show = (s: string) => JSON.stringify(s.length > 600 ? `${s.slice(0, 600)}…` : s);

describe(`differential against llhttp (seed ${SEED})`, () => {
  let rec: Recorder;
  let lb: Balancer;
  const logs: string[] = [];
  before(async () => {
    rec = await startRecorder();
    lb = await balancer({ upstreams: [rec.url], health: { active: false, passive: false }, retries: 0, timeouts: { response: 3_000, clientHeaders: 3_000 }, log: (m) => logs.push(m) });
  });
  after(async () => {
    await lb.close();
    await rec.close();
  });

  /** Waits until nothing is in flight and every instance connection is either closed or between messages. */
  async function settled(what: string): Promise<void> {
    try {
      await until('the exchange to settle', () => lb.status().upstreams[0]!.active === 0 && rec.conns.every((c) => c.closed || !c.oracle.partial), 3_000);
    } catch {
      assert.fail(`${what}: half a request was left on an open instance connection`);
    }
  }

  test(`${REQUEST_CASES} generated request streams: forwarded exactly, or refused`, async (t) => {
    const g = new Gen(SEED);
    const stats = { forwarded: 0, refusedByBoth: 0, refusedByBalancerOnly: 0, messages: 0 };
    /** Why the balancer refused what llhttp accepts: its stricter policies, shown so a reader can check each. */
    const reasons = new Map<string, number>();
    const samples = new Map<string, string>();
    for (let k = 0; k < REQUEST_CASES; k++) {
      const c = requestCase(g);
      const what = `request case ${k} (seed ${SEED}) ${show(c.bytes)}`;
      const before = rec.messages.length;
      const ex = await exchange(lb.url, c.bytes);
      assert.notEqual(ex.how, 'timeout', `${what}: no answer`);
      await settled(what);
      for (const conn of rec.conns) assert.equal(conn.oracle.error, null, `${what}: the instance could not parse what it got: ${show(conn.bytes().toString('latin1'))}`);

      const forwarded = rec.messages.slice(before);
      const input = parseAll('request', Buffer.from(asRead(c.bytes), 'latin1'));
      assert.ok(forwarded.length <= input.messages.length, `${what}: forwarded ${forwarded.length} messages, llhttp reads ${input.messages.length} in the input (${input.error?.reason})`);
      forwarded.forEach((f, i) => {
        const p = input.messages[i]!;
        const at = `${what}, message ${i}`;
        assert.equal(f.method, p.method, at);
        assert.equal(f.url, originForm(p.url), at);
        assert.deepEqual(f.body, p.body, `${at}: body`);
        assert.deepEqual(endToEnd(f), endToEnd(p), `${at}: fields`);
        const host = authorityOf(p.url) ?? fields(p.headers, 'host')[0];
        assert.deepEqual(fields(f.headers, 'host'), host === undefined ? [] : [host], `${at}: Host`);
        assert.deepEqual(f.trailers, [], `${at}: trailers are dropped`);
        if (f.upgrade) assert.ok(p.upgrade && /websocket/i.test(fields(p.headers, 'upgrade').join()), `${at}: only WebSocket is tunnelled`);
      });

      // The client: one answer per forwarded request, in order, then at most one answer of the balancer's own.
      const methods = forwarded.map((f) => f.method);
      const readings = ['GET', 'HEAD'].map((m) => parseAll('response', ex.bytes, { methods: [...methods, m] }));
      const ok = readings.find((r) => r.error === null && (r.messages.length === forwarded.length || (r.messages.length === forwarded.length + 1 && isBalancerAnswer(r.messages.at(-1)))));
      assert.ok(ok, `${what}: the client's bytes are not ${forwarded.length} answers (+ a refusal): ${show(ex.text)} (${readings[0]!.error?.reason})`);
      forwarded.forEach((f, i) => {
        if (ok.messages[i]!.status !== 101) assert.deepEqual(fields(ok.messages[i]!.headers, 'x-seq'), [String(before + i + 1)], `${what}: answer ${i} is not the answer to request ${i}`);
      });
      stats.messages += forwarded.length;
      if (forwarded.length === input.messages.length && !input.error) stats.forwarded++;
      else if (forwarded.length === input.messages.length) stats.refusedByBoth++;
      else {
        stats.refusedByBalancerOnly++;
        const reason = /"error":"([^"]*)"/.exec(ex.text)?.[1] ?? (ex.how === 'reset' ? 'connection cut' : 'closed');
        reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
        if (!samples.has(reason)) samples.set(reason, c.bytes.slice(0, process.env.BALANCER_FUZZ_SAMPLES === "full" ? 5000 : 100));
      }
    }
    t.diagnostic(
      `differential: ${REQUEST_CASES} request cases, seed ${SEED}: ${stats.forwarded} forwarded whole (${stats.messages} messages), ` +
        `${stats.refusedByBoth} refused where llhttp refuses too, ${stats.refusedByBalancerOnly} refused where llhttp accepts`,
    );
    const top = [...reasons].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} (${n})`);
    t.diagnostic(`refused where llhttp accepts, by reason: ${top.join('; ')}`);
    if (process.env.BALANCER_FUZZ_SAMPLES) for (const [r, sample] of samples) t.diagnostic(`  ${r}: ${show(sample)}`);
  });

  test(`${RESPONSE_CASES} generated responses: passed on exactly, or 502; the next answer is never touched`, async (t) => {
    const g = new Gen(SEED + 1);
    const stats = { forwarded: 0, refusedValid: 0, refusedInvalid: 0, normalised: 0, cut: 0 };
    const normalised: string[] = [];
    const reasons = new Map<string, number>();
    const NEXT = 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext';
    for (let k = 0; k < RESPONSE_CASES; k++) {
      const c = responseCase(g);
      const what = `response case ${k} (seed ${SEED + 1}, ${c.method}) ${show(c.bytes)}`;
      const raw = Buffer.from(c.bytes, 'latin1');
      const live = new Oracle('response', { methods: [c.method] });
      live.execute(raw);
      // Close after answering when the answer needs it to end (no length), or is broken anyway.
      const end = live.error !== null || live.upgraded || !live.messages.some((m) => m.status >= 200);
      live.close();
      rec.script = (m) => (m.url === `/case/${k}` ? { bytes: raw, end } : m.url === `/next/${k}` ? { bytes: NEXT } : undefined);
      const logged = logs.length;
      const ex = await exchange(lb.url, `${c.method} /case/${k} HTTP/1.1\r\nHost: localhost\r\n\r\nGET /next/${k} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      assert.notEqual(ex.how, 'timeout', `${what}: no answer`);
      assert.ok(ex.bytes.length > 0, `${what}: the client was reset without an answer (a 502 was possible)`);

      // What the instance meant: its answer as llhttp reads it (with the balancer's reading of OWS), or as llhttp
      // reads the balancer's documented repairs of it.
      const strict = parseAll('response', Buffer.from(asRead(c.bytes), 'latin1'), { methods: [c.method] });
      const valid = strict.messages.some((m) => m.status >= 200 && m.status !== 101);
      const meant = valid ? strict : parseAll('response', Buffer.from(asRepaired(c.bytes), 'latin1'), { methods: [c.method] });
      const meantFinal = meant.messages.find((m) => m.status >= 200 && m.status !== 101);
      const got = parseAll('response', ex.bytes, { methods: [c.method, 'GET'] });
      const finals = got.messages.filter((m) => m.status >= 200);
      if (got.error !== null || finals.length === 0) {
        // A cut: only for an answer that broke after its head was passed on (or after an interim answer was: no
        // 502 is possible then), never for one llhttp accepts otherwise.
        const afterInterim = got.messages.some((m) => m.status < 200);
        assert.ok(finals.length === 0 && (!valid || afterInterim), `${what}: the client's bytes do not parse: ${got.error?.reason} ${show(ex.text)}`);
        stats.cut++;
        continue;
      }
      const [first, second] = finals as [Message, Message | undefined];
      assert.ok(finals.length <= 2, `${what}: ${finals.length} answers for 2 requests ${show(ex.text)}`);
      if (second) assert.equal(second.body.toString(), 'next', `${what}: the next request got someone else's answer ${show(ex.text)}`);
      const code = codeOf(first.body.toString());
      if (isBalancerAnswer(first) && first.status === 502 && (code === 'CS_ERR_BALANCER_BAD_GATEWAY' || (c.method === 'HEAD' && code === ''))) {
        if (valid) {
          stats.refusedValid++;
          const reason = logs.slice(logged).find((l) => l.includes('sent an invalid response'))?.replace(/.*invalid response: (invalid response head: )?/, '') ?? 'none logged';
          reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
        } else stats.refusedInvalid++;
        continue;
      }
      assert.ok(meantFinal, `${what}: passed on an answer llhttp refuses, even repaired: ${show(ex.text)}`);
      assert.equal(first.status, meantFinal.status, `${what}: status ${show(ex.text)}`);
      assert.deepEqual(first.body, meantFinal.body, `${what}: body ${show(ex.text)}`);
      assert.deepEqual(endToEnd(first), endToEnd(meantFinal), `${what}: fields ${show(ex.text)}`);
      const interim = (ms: Message[]) => ms.filter((m) => m.status < 200).map((m) => m.status);
      assert.deepEqual(interim(got.messages), interim(meant.messages.slice(0, meant.messages.indexOf(meantFinal))), `${what}: interim answers`);
      if (valid) stats.forwarded++;
      else {
        stats.normalised++;
        if (normalised.length < 5) normalised.push(`${c.method} ${show(c.bytes)} -> ${show(ex.text)}`);
      }
    }
    t.diagnostic(
      `differential: ${RESPONSE_CASES} response cases, seed ${SEED + 1}: ${stats.forwarded} passed on exactly, ${stats.refusedInvalid} refused (502) ` +
        `where llhttp refuses, ${stats.refusedValid} refused where llhttp accepts, ${stats.normalised} repaired (CL with TE, equal lengths), ${stats.cut} cut after the head`,
    );
    const top = [...reasons].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} (${n})`);
    t.diagnostic(`refused where llhttp accepts, by reason: ${top.join('; ')}`);
    for (const n of normalised) t.diagnostic(`repaired: ${n}`);
  });
});
