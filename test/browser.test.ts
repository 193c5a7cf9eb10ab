/**
 * A person's view of the example stack in real headless Chromium: sign in with the keyboard (a wrong password
 * first: the form comes back with the error, and a reload does not post it again), watch the live view show
 * requests hopping across workers and instances — through a rolling reload of one instance — while the login
 * stays, then sign out. Text contrast is checked in both color schemes. SCREENSHOT_DIR=/tmp/screens keeps
 * screenshots of each step.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { chromiumOptions, needs } from '@cluster-session/testkit';
import { startStack, type Stack } from './support/stack.ts';

// The functions passed to page.evaluate() run in the page; this project compiles without the DOM library.
declare const document: any;
declare function getComputedStyle(el: unknown): { color: string; backgroundColor: string };
type Element = { parentElement: Element | null };

const skip = needs('chromium');
const shots = process.env.SCREENSHOT_DIR;
let stack: Stack;
let browser: Browser;

before(async () => {
  if (skip) return;
  if (shots) mkdirSync(shots, { recursive: true });
  stack = await startStack({ SESSION_STORE: 'sqlite' });
  browser = await chromium.launch(chromiumOptions());
});
after(async () => {
  await browser?.close();
  await stack?.close();
});

const shot = async (page: Page, name: string) => {
  if (shots) await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
};

interface Hop {
  instance: string;
  worker: string;
  user: string;
}

/** The live view's rows, newest first. */
const hops = (page: Page): Promise<Hop[]> =>
  page.$$eval('#hops tr', (rows) =>
    rows.map((tr: any) => {
      const [, instance, worker, user] = [...tr.querySelectorAll('td')].map((td: any) => td.textContent ?? '');
      return { instance: instance!, worker: worker!, user: user! };
    }),
  );

test('sign in with the keyboard, watch the live hops through a reload, stay signed in, sign out', { skip }, async () => {
  const page = await browser.newPage();
  // Generous: CI shares two cores between the stack, Chromium and other suites.
  page.setDefaultTimeout(60_000);
  const requests: string[] = [];
  page.on('request', (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));

  await page.goto(stack.url);
  assert.equal(await page.title(), 'Sign in · cluster-session');
  assert.ok(requests.includes('GET /favicon.svg'), 'the favicon is loaded');
  await shot(page, 'signin');

  // Keyboard only: the username field has focus (autofocus lands once the page is shown), Tab moves to the
  // password, Enter submits.
  const focused = (id: string) => page.waitForFunction((want: string) => document.activeElement?.id === want, id, { timeout: 5_000 });
  await focused('username');
  await page.keyboard.type('alice');
  await page.keyboard.press('Tab');
  await page.keyboard.type('not-the-password');
  await page.keyboard.press('Enter');
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.equal(await alert.textContent(), 'Wrong username or password.');
  assert.equal(await page.getByLabel('Username').inputValue(), 'alice', 'the username is kept');
  assert.equal(await page.getByLabel('Password').getAttribute('aria-invalid'), 'true');
  await focused('password'); // the username is filled in, so the focus goes to what is left to type
  await shot(page, 'signin-error');
  // Post-redirect-get: a reload is a GET of /, not the form posted again, and the message was for once only.
  const posts = requests.filter((r) => r === 'POST /login').length;
  await page.reload();
  assert.equal(requests.filter((r) => r === 'POST /login').length, posts, 'the reload did not re-post');
  assert.equal(await page.getByRole('alert').count(), 0);

  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill('wonderland');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Signed in as alice' }).waitFor();
  assert.equal(await page.textContent('#user'), 'alice');
  assert.match((await page.textContent('#sessions'))!, /SQLite store/);
  const cookies = await page.context().cookies();
  const sid = cookies.find((c) => c.name === 'sid');
  assert.ok(sid, 'session cookie set');
  assert.equal(sid.httpOnly, true);
  assert.equal(sid.sameSite, 'Lax');

  // Reloads keep the login. (Which instance serves the page itself follows the round robin over all of a page's
  // requests, stylesheet and /me included, so it may well be the same one each time: the live view below is
  // where the hops are counted.)
  for (let i = 0; i < 4; i++) {
    await page.reload();
    assert.equal(await page.textContent('#user'), 'alice', `reload ${i + 1}: still signed in`);
  }

  // The live view: a call to /me each second, each row naming who served it.
  await page.waitForFunction(() => document.querySelectorAll('#hops tr').length >= 4);
  const before = await hops(page);
  assert.equal(new Set(before.map((h) => h.instance)).size, 2, `both instances answer: ${JSON.stringify(before)}`);
  assert.ok(before.every((h) => h.user === 'alice'), 'and both know the login');
  await shot(page, 'signed-in');

  // A rolling reload of instance a under the live view: new workers appear, no call fails, the login stays.
  const oldA = new Set((await stack.slots()).slice(0, 2).map((s) => String(s.pid)));
  await stack.cli('reload', 'a');
  const newA = new Set((await stack.slots()).slice(0, 2).map((s) => String(s.pid)));
  await page.waitForFunction(
    (fresh: string[]) => [...document.querySelectorAll('#hops tr')].some((tr: any) => fresh.includes(tr.children[2]?.textContent ?? '')),
    [...newA],
  );
  await page.getByRole('button', { name: 'Pause' }).click();
  const seen = await hops(page);
  assert.ok(seen.every((h) => h.user === 'alice'), `every call was signed in: ${JSON.stringify(seen)}`);
  assert.ok(seen.some((h) => h.instance === 'a' && newA.has(h.worker)), 'a worker started by the reload answered');
  assert.ok([...oldA].every((pid) => !newA.has(pid)), 'the reload replaced both workers of instance a');
  assert.equal(await page.locator('#hops tr.failed').count(), 0, 'no call failed during the reload');
  assert.match((await page.textContent('#hops-summary'))!, /signed in as alice on every one/);
  await shot(page, 'signed-in-after-reload');
  // Paused means paused.
  const calls = (await page.textContent('#hops-summary'))!;
  await page.waitForTimeout(2_500);
  assert.equal(await page.textContent('#hops-summary'), calls);

  // Sign out is a POST then a 303 to the same URL: wait for the sign-in form, not for a URL already shown.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.equal(await page.title(), 'Sign in · cluster-session');
  await page.reload();
  assert.equal(await page.title(), 'Sign in · cluster-session', 'still signed out after a reload');
  assert.deepEqual(errors, [], 'no script or CSP errors');
});

/** WCAG contrast of the text that matters, computed from the styles the browser applied. */
async function contrasts(page: Page): Promise<Record<string, number>> {
  return page.evaluate(() => {
    const rgb = (c: string) => (c.match(/[\d.]+/g) ?? []).slice(0, 3).map(Number);
    const lum = ([r, g, b]: number[]) => {
      const f = (v: number) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
      return 0.2126 * f(r!) + 0.7152 * f(g!) + 0.0722 * f(b!);
    };
    const background = (el: Element | null): string => {
      for (; el; el = el.parentElement) {
        const bg = getComputedStyle(el).backgroundColor;
        if (bg && !/rgba\(.*, 0\)|transparent/.test(bg)) return bg;
      }
      return 'rgb(255, 255, 255)';
    };
    const out: Record<string, number> = {};
    for (const [name, selector] of Object.entries({ heading: 'h1', text: 'label', muted: '.muted', button: 'button[type=submit]', alert: '[role=alert]', served: '.served' })) {
      const el = document.querySelector(selector);
      if (!el) continue;
      const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(rgb(background(el)))];
      out[name] = Math.round(((Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)) * 10) / 10;
    }
    return out;
  });
}

test('text contrast is at least 4.5:1 in the light and the dark scheme', { skip }, async () => {
  for (const colorScheme of ['light', 'dark'] as const) {
    const context = await browser.newContext({ colorScheme });
    const page = await context.newPage();
    await page.goto(stack.url);
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill('nope');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').waitFor();
    const ratios = await contrasts(page);
    assert.deepEqual(Object.keys(ratios).sort(), ['alert', 'button', 'heading', 'muted', 'served', 'text']);
    for (const [name, ratio] of Object.entries(ratios)) assert.ok(ratio >= 4.5, `${colorScheme} ${name}: ${ratio}:1`);
    await shot(page, `signin-error-${colorScheme}`);
    await context.close();
  }
});
