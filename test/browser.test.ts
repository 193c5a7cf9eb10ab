/**
 * A person's view of the example stack: real headless Chromium signs in through the form, reloads, watches the
 * serving worker change while the login stays, then signs out.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { chromiumOptions, needs } from '@cluster-session/testkit';
import { startStack, type Stack } from './support/stack.ts';

const skip = needs('chromium');
let stack: Stack;
let browser: Browser;

before(async () => {
  if (skip) return;
  stack = await startStack({ SESSION_STORE: 'sqlite' });
  browser = await chromium.launch(chromiumOptions());
});
after(async () => {
  await browser?.close();
  await stack?.close();
});

test('sign in through the form, reload 10 times across workers, stay signed in, sign out', { skip }, async () => {
  const page = await browser.newPage();
  // Generous: CI shares two cores between the stack, Chromium and other suites.
  page.setDefaultTimeout(60_000);
  await page.goto(stack.url);
  assert.equal(await page.title(), 'Sign in · cluster-session');

  // A wrong password first: the form answers with an error, not a stack trace.
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForSelector('#error');
  assert.match((await page.textContent('#error'))!, /Wrong username or password/);

  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill('wonderland');
  await Promise.all([page.waitForURL(stack.url + '/'), page.getByRole('button', { name: 'Sign in' }).click()]);
  assert.equal(await page.textContent('#user'), 'alice');

  const cookies = await page.context().cookies();
  const sid = cookies.find((c) => c.name === 'sid');
  assert.ok(sid, 'session cookie set');
  assert.equal(sid.httpOnly, true);
  assert.equal(sid.sameSite, 'Lax');

  const pids = new Set<string>();
  const instances = new Set<string>();
  for (let i = 0; i < 10; i++) {
    await page.reload();
    assert.equal(await page.textContent('#user'), 'alice', `reload ${i + 1}: still signed in`);
    pids.add((await page.textContent('#pid'))!);
    instances.add((await page.textContent('#instance'))!);
  }
  console.log(`# browser: 10 reloads, ${pids.size} worker pids, ${instances.size} instances, all signed in`);
  assert.ok(pids.size >= 2, `worker pids seen: ${[...pids]}`);

  await Promise.all([page.waitForURL(stack.url + '/'), page.getByRole('button', { name: 'Sign out' }).click()]);
  assert.equal(await page.title(), 'Sign in · cluster-session');
  await page.reload();
  assert.equal(await page.title(), 'Sign in · cluster-session', 'still signed out after a reload');
});
