// The live hops view of the signed-in page: GET /me once a second. Each answer names the worker (pid) and the
// instance that served it; the table shows them change while the login stays. Pausable (it updates on its own).
const rows = document.getElementById('hops');
const summary = document.getElementById('hops-summary');
const toggle = document.getElementById('hops-toggle');
const hits = document.getElementById('hits');
const MAX_ROWS = 10;
const INTERVAL_MS = 1000;

const workers = new Set();
const instances = new Set();
let calls = 0;
let lost = 0;
let last;
let timer;
let paused = false;
let ended = false;

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

function addRow(values, className) {
  const tr = document.createElement('tr');
  if (className) tr.className = className;
  for (const value of values) tr.append(cell(value));
  rows.prepend(tr);
  while (rows.rows.length > MAX_ROWS) rows.deleteRow(-1);
}

function describe() {
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const who = last ? `signed in as ${last.user} on every one` : 'waiting for the first answer';
  summary.textContent = `${plural(calls, 'call')} · ${plural(workers.size, 'worker')} · ${plural(instances.size, 'instance')} · ${lost ? `${plural(lost, 'call')} failed` : who}`;
}

async function call() {
  const time = new Date().toLocaleTimeString();
  try {
    const res = await fetch('/me', { headers: { accept: 'application/json' }, cache: 'no-store' });
    const body = await res.json().catch(() => ({}));
    if (res.status === 401) {
      ended = true;
      summary.textContent = 'Signed out: this session has ended (signed out in another tab?). Reload the page to sign in again.';
      toggle.hidden = true;
      return;
    }
    calls++;
    if (!res.ok) {
      lost++;
      addRow([time, '-', '-', '-', `HTTP ${res.status}${body.error ? `: ${body.error}` : ''}`], 'failed');
    } else {
      const from = !last ? 'first call' : last.worker === body.worker ? 'same worker' : `${last.instance} · ${last.worker}`;
      workers.add(`${body.instance}/${body.worker}`);
      instances.add(body.instance);
      addRow([time, body.instance, String(body.worker), body.user, from]);
      last = body;
      hits.textContent = String(body.hits);
    }
  } catch {
    calls++;
    lost++;
    addRow([time, '-', '-', '-', 'no answer (network)'], 'failed');
  }
  describe();
}

async function loop() {
  await call();
  if (!paused && !ended) timer = setTimeout(loop, INTERVAL_MS);
}

toggle.hidden = false;
toggle.addEventListener('click', () => {
  paused = !paused;
  toggle.textContent = paused ? 'Resume' : 'Pause';
  clearTimeout(timer);
  if (!paused) void loop();
});
describe();
void loop();
