// What the browser tests share: reporting (PASS/FAIL lines and the totals file), journeys that
// stop at a failed precondition, the browser (the system's Chromium, never one of Playwright's
// own), contexts that refuse any request not for the daemon, and checks every page must pass.
import { writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

// ---- reporting --------------------------------------------------------------------------------
export let passed = 0;
export let failed = 0;
export function pass(what) {
  passed += 1;
  console.log(`PASS ${what}`);
}
export function fail(what) {
  failed += 1;
  console.log(`FAIL ${what}`);
}
/** Records one check; `detail` says what was seen instead when it fails. */
export function check(what, ok, detail = '') {
  if (ok) pass(what);
  else fail(detail ? `${what}: ${detail}` : what);
  return ok;
}
/** A check the rest of a journey depends on: a failure stops that journey. */
export class Stop extends Error {}
export function must(what, ok, detail = '') {
  if (!check(what, ok, detail)) throw new Stop(what);
}
/** An exception's first lines on one line, without Playwright's terminal colours. */
export function oneLine(e) {
  // eslint-disable-next-line no-control-regex
  const plain = String(e?.message ?? e).replace(/\x1b\[[0-9;]*m/g, '');
  return plain.split('\n').map((l) => l.trim()).filter(Boolean).slice(0, 4).join(' | ');
}
export async function journey(name, body) {
  try {
    await body();
  } catch (e) {
    if (e instanceof Stop) fail(`${name}: stopped after the failure above`);
    else fail(`${name}: ${oneLine(e)}`);
  }
}

export async function heading(page) {
  return (await page.locator('h1').first().textContent())?.trim() ?? '';
}

/** Form controls a screen reader could not name: no <label>, aria-label or aria-labelledby. */
export async function unlabelled(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea, button')]
      .filter((el) => el.type !== 'hidden')
      .filter((el) => {
        if (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')) return false;
        if (el.tagName === 'BUTTON') return !el.textContent.trim();
        return !el.labels || el.labels.length === 0 || ![...el.labels].some((l) => l.textContent.trim());
      })
      .map((el) => el.outerHTML.slice(0, 120)),
  );
}

export async function checkLabels(page, name) {
  const bad = await unlabelled(page);
  check(`${name} page: every form control has a label`, bad.length === 0, bad.join(' ; '));
}

/** Requests the pages made to another origin: there must be none. */
export const outsideRequests = [];

/** Headless Chromium from `executablePath`, with a fresh profile under $TMPDIR. */
export async function launch(executablePath) {
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 60_000,
  });
}

/** A context whose requests to anything but `origin` are refused and noted. */
export async function newContext(browser, origin, options) {
  const context = await browser.newContext({ ...options, serviceWorkers: 'block' });
  context.setDefaultTimeout(15_000);
  // Anything not for the daemon is refused and noted: the pages must stand on their own.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (new URL(url).origin === origin || url.startsWith('data:')) return route.continue();
    outsideRequests.push(url);
    return route.abort();
  });
  return context;
}

/** How far a page is wider than the window (nothing may overflow at a phone's width). */
export async function overflow(page) {
  return page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    wide: [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5)
      .map((el) => el.tagName.toLowerCase() + (el.id ? `#${el.id}` : ''))
      .slice(0, 5),
  }));
}

/** Writes "PASSED FAILED" for the shell script. */
export function writeResults(path) {
  writeFileSync(path, `${passed} ${failed}\n`);
}
