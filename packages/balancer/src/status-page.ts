/**
 * The live status page of the whole stack (the admin server's `/`): a headline that says whether everything is
 * well, three small charts of the last minutes (requests/s by instance, p99 latency, 5xx errors/s), then each
 * instance with its workers (pid, state, uptime, restarts, memory, CPU, requests/s, latency) and its session
 * store. It renders `/stack.json` every two seconds; no library, no external resource (the CSP allows none).
 */
export function statusPage(nonce: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>cluster-session status</title>
<style nonce="${nonce}">
:root{--ok:#0a7d32;--bad:#c0262d;--warn:#b26b00;--mute:#6b7280;--line:#e5e7eb;--bg:#f8fafc}
*{box-sizing:border-box}body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#111827;background:var(--bg)}
header{padding:1rem 1.5rem;background:#fff;border-bottom:1px solid var(--line);display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
h1{font-size:1.15rem;margin:0}h2{font-size:1rem;margin:0}
#headline{font-weight:600;padding:.25rem .7rem;border-radius:999px;color:#fff;background:var(--mute)}
#headline.ok{background:var(--ok)}#headline.bad{background:var(--bad)}#headline.warn{background:var(--warn)}
#meta{color:var(--mute)}main{padding:1rem 1.5rem;display:grid;gap:1rem}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:1rem}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.8rem 1rem}
.chart .now{font-size:1.6rem;font-weight:650;font-variant-numeric:tabular-nums}.chart .label{color:var(--mute)}
.chart svg{width:100%;height:90px;display:block;margin-top:.3rem}.legend{color:var(--mute);font-size:12px}
.legend span{margin-right:.8rem}.instance-head{display:flex;gap:.8rem;align-items:baseline;flex-wrap:wrap}
.badge{font-weight:600;font-size:12px;padding:.1rem .5rem;border-radius:4px;color:#fff;background:var(--mute)}
.badge.up,.badge.ready,.badge.healthy{background:var(--ok)}.badge.down,.badge.parked,.badge.failing,.badge.unreachable{background:var(--bad)}
.badge.draining,.badge.backoff,.badge.starting,.badge.stopping{background:var(--warn)}
table{border-collapse:collapse;width:100%;margin-top:.5rem}th,td{padding:.3rem .6rem;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{color:var(--mute);font-weight:500;font-size:12px}td.num{text-align:right;font-variant-numeric:tabular-nums}
.store{margin-top:.5rem}.note{color:var(--mute)}#error{color:var(--bad);font-weight:600}
</style></head>
<body>
<header><h1>cluster-session</h1><span id="headline">loading…</span><span id="meta"></span><span id="error" role="alert"></span></header>
<main>
<section class="charts">
  <div class="card chart" id="c-rps"><div class="label">requests / s</div><div class="now">–</div><svg viewBox="0 0 300 90" preserveAspectRatio="none"></svg><div class="legend"></div></div>
  <div class="card chart" id="c-p99"><div class="label">p99 latency at the balancer (ms)</div><div class="now">–</div><svg viewBox="0 0 300 90" preserveAspectRatio="none"></svg><div class="legend"></div></div>
  <div class="card chart" id="c-err"><div class="label">errors / s (5xx answers)</div><div class="now">–</div><svg viewBox="0 0 300 90" preserveAspectRatio="none"></svg><div class="legend"></div></div>
</section>
<section id="instances"></section>
</main>
<script nonce="${nonce}">
const COLORS = ['#2563eb', '#d97706', '#7c3aed', '#059669', '#db2777', '#0891b2'];
const NS = 'http://www.w3.org/2000/svg';
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = String(text); return e; };
const mb = (n) => n == null ? '–' : Math.round(n / 1048576) + ' MB';
const ms = (n) => n == null ? '–' : (n < 10 ? n.toFixed(1) : Math.round(n)) + ' ms';
const dur = (t) => t < 60000 ? Math.round(t / 1000) + ' s' : t < 3600000 ? Math.round(t / 60000) + ' min' : (t / 3600000).toFixed(1) + ' h';
const span = (s) => s < 120 ? s + ' s' : Math.round(s / 60) + ' min';
const fmt = (n) => n == null ? '–' : n >= 100 ? String(Math.round(n)) : String(Math.round(n * 10) / 10);

function chart(id, series, unit) {
  const card = document.getElementById(id);
  const svg = card.querySelector('svg');
  svg.replaceChildren();
  const all = series.flatMap((s) => s.values.filter((v) => v != null));
  const max = Math.max(1e-9, ...all) * 1.15;
  for (const y of [0, 45]) { const l = document.createElementNS(NS, 'line'); l.setAttribute('x1', 0); l.setAttribute('x2', 300); l.setAttribute('y1', y + 0.5); l.setAttribute('y2', y + 0.5); l.setAttribute('stroke', '#eef0f3'); svg.append(l); }
  for (const s of series) {
    const n = s.values.length;
    if (n < 2) continue;
    const pts = s.values.map((v, i) => v == null ? null : (i * 300 / (n - 1)).toFixed(1) + ',' + (88 - (v / max) * 86).toFixed(1)).filter(Boolean);
    const p = document.createElementNS(NS, 'polyline');
    p.setAttribute('points', pts.join(' ')); p.setAttribute('fill', 'none'); p.setAttribute('stroke', s.color);
    p.setAttribute('stroke-width', s.bold ? 2.2 : 1.4); p.setAttribute('vector-effect', 'non-scaling-stroke');
    svg.append(p);
  }
  const main = series[0];
  const last = main ? main.values[main.values.length - 1] : null;
  card.querySelector('.now').textContent = fmt(last) + (unit && last != null ? ' ' + unit : '');
  const legend = card.querySelector('.legend');
  legend.replaceChildren(...series.map((s) => { const sp = el('span', '', '— ' + s.name); sp.style.color = s.color; return sp; }), el('span', '', 'max ' + fmt(max / 1.15) + (unit ? ' ' + unit : '') + ' · last ' + span(series[0] ? series[0].values.length * 2 : 0)));
}

function badge(text, cls) { return el('span', 'badge ' + (cls || text), text); }

function workersTable(slots) {
  const t = el('table');
  const head = t.createTHead().insertRow();
  for (const h of ['slot', 'pid', 'state', 'uptime', 'restarts', 'memory', 'heap', 'CPU', 'req/s', 'p99', 'event loop p99']) head.append(el('th', '', h));
  const body = t.createTBody();
  for (const w of slots) {
    const r = body.insertRow();
    r.dataset.slot = w.slot;
    const cells = [w.slot, w.pid ?? '–', null, w.pid ? dur(w.uptime) : '–', w.restarts, mb(w.memory), mb(w.heapUsed), w.cpuPercent == null ? '–' : w.cpuPercent + ' %', fmt(w.requestsPerSecond), ms(w.latencyMs && w.latencyMs.p99), ms(w.eventLoopDelayMs && w.eventLoopDelayMs.p99)];
    cells.forEach((c, i) => { const td = r.insertCell(); if (i === 2) td.append(badge(w.state)); else { td.textContent = String(c); if (i !== 0 && i !== 1) td.className = 'num'; } });
  }
  return t;
}

function storeLine(slots) {
  const withStore = slots.filter((w) => w.store);
  if (!withStore.length) return el('div', 'store note', 'session store: no store calls yet');
  const s = withStore[0].store;
  const healthy = withStore.every((w) => w.store.healthy);
  const errors = withStore.reduce((n, w) => n + w.store.errors, 0);
  const p99 = Math.max(...withStore.map((w) => w.store.latencyMs.p99));
  const d = el('div', 'store');
  d.append(el('strong', '', 'session store ' + s.name + ' '), badge(healthy ? 'healthy' : 'failing'), el('span', '', ' · p99 ' + ms(p99) + ' · ' + errors + ' errors · ' + withStore.reduce((n, w) => n + w.store.unavailable, 0) + ' answered 503'));
  const lastError = withStore.map((w) => w.store.lastError).find(Boolean);
  if (!healthy && lastError) d.append(el('div', 'note', 'last error: ' + lastError));
  return d;
}

function render(s) {
  const b = s.balancer;
  const ups = b.upstreams;
  const up = ups.filter((u) => u.state === 'up').length;
  let workersTotal = 0, workersReady = 0, storeBad = false, unreachable = 0;
  for (const u of ups) {
    const v = s.instances[u.id];
    if (v && !v.ok) unreachable++;
    if (v && v.ok) for (const w of v.cluster.slots) { workersTotal++; if (w.state === 'ready') workersReady++; if (w.store && !w.store.healthy) storeBad = true; }
  }
  const problems = [];
  if (up < ups.length) problems.push((ups.length - up) + ' of ' + ups.length + ' instances down');
  if (workersReady < workersTotal) problems.push((workersTotal - workersReady) + ' workers not ready');
  if (storeBad) problems.push('session store failing');
  if (unreachable) problems.push(unreachable + ' instance status unreachable');
  const hl = document.getElementById('headline');
  hl.textContent = problems.length ? problems.join(' · ') : 'all well: ' + up + '/' + ups.length + ' instances up' + (workersTotal ? ', ' + workersReady + '/' + workersTotal + ' workers ready' : '');
  hl.className = up === 0 ? 'bad' : problems.length ? (storeBad || up < ups.length ? 'bad' : 'warn') : 'ok';
  document.getElementById('meta').textContent = b.url + ' · ' + b.strategy + ' · ' + b.totals.openConnections + ' open connections · ' + b.totals.requests + ' requests';

  const h = s.history;
  const ids = ups.map((u) => u.id);
  const rps = [{ name: 'total', color: '#111827', bold: true, values: h.map((p) => p.rps) }].concat(ids.map((id, i) => ({ name: id, color: COLORS[i % COLORS.length], values: h.map((p) => p.byUpstream[id] ?? 0) })));
  chart('c-rps', s.metrics ? rps : [], '');
  chart('c-p99', s.metrics ? [{ name: 'p99', color: '#2563eb', bold: true, values: h.map((p) => p.p99) }] : [], 'ms');
  chart('c-err', s.metrics ? [{ name: '5xx/s', color: '#c0262d', bold: true, values: h.map((p) => p.errors) }] : [], '');

  const list = document.getElementById('instances');
  list.replaceChildren();
  ups.forEach((u, i) => {
    const card = el('div', 'card instance');
    card.dataset.id = u.id;
    const head = el('div', 'instance-head');
    const name = el('h2', '', 'instance ' + u.id);
    name.style.color = COLORS[i % COLORS.length];
    head.append(name, badge(u.state), el('span', 'note', u.url + ' · ' + u.requests + ' requests · ' + u.responses['5xx'] + ' 5xx · ' + u.retries + ' retries · ' + u.active + ' in flight' + (u.lastCheck ? ' · health check ' + (u.lastCheck.ok ? 'ok' : 'failed: ' + u.lastCheck.detail) : '')));
    card.append(head);
    const v = s.instances[u.id];
    if (!v) card.append(el('div', 'note', 'workers: not reported (start the instance with --metrics and give the balancer its status URL)'));
    else if (!v.ok) { const d = el('div', 'store'); d.append(badge('unreachable'), el('span', 'note', ' cluster status: ' + v.error)); card.append(d); }
    else {
      const c = v.cluster;
      card.append(el('div', 'note', 'cluster ' + c.name + ' · primary pid ' + c.pid + ' · ' + c.slots.filter((w) => w.state === 'ready').length + '/' + c.slots.length + ' workers ready'));
      card.append(workersTable(c.slots), storeLine(c.slots));
    }
    if (u.lastError && u.state !== 'up') card.append(el('div', 'note', 'last error: ' + u.lastError));
    list.append(card);
  });
}

async function refresh() {
  try {
    const res = await fetch('stack.json', { cache: 'no-store' });
    render(await res.json());
    document.getElementById('error').textContent = '';
    document.body.dataset.ready = '1';
  } catch (err) {
    document.getElementById('error').textContent = 'status unavailable: ' + err.message;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body></html>
`;
}
