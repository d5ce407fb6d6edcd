// The subscriber's journey in headless Chromium, as a person would take it: subscribe, confirm from
// the email, change preferences, unsubscribe from the welcome email; the same form by keyboard
// alone; and the subscribe page at a phone's width. Run by scripts/browser_test.sh, which starts
// the daemon; reads its settings from the environment:
//   BASE_URL      the daemon, http://127.0.0.1:PORT (also its site.base_url, so email links work)
//   ADMIN_TOKEN   for GET /api/subscribers/{email}, to see what the pages changed
//   OUTBOX        the daemon's file: mail transport folder
//   OUT_DIR       where the phone screenshot goes
//   RESULTS       file to write "PASSED FAILED" to
//   CHROMIUM      the browser (default /usr/bin/chromium)
// Prints PASS/FAIL per check.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  pass, fail, check, must, journey, oneLine, heading, checkLabels, launch, newContext, outsideRequests, overflow, writeResults,
} from './common.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const BASE_URL = need('BASE_URL');
const ADMIN_TOKEN = need('ADMIN_TOKEN');
const OUTBOX = need('OUTBOX');
const OUT_DIR = need('OUT_DIR');
const RESULTS = need('RESULTS');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ORIGIN = new URL(BASE_URL).origin;
const PHONE = { width: 390, height: 844 };

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`subscriber_flow: set ${name}`);
    process.exit(2);
  }
  return value;
}

// ---- the daemon's side: admin API and the outbox -----------------------------------------------
async function subscriber(email) {
  const response = await fetch(`${BASE_URL}/api/subscribers/${encodeURIComponent(email)}`, {
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  if (!response.ok) return { http: response.status, body: await response.text() };
  return response.json();
}

/** What the API says about `email`'s status, tags (sorted), cadence and time zone, as one string. */
async function apiState(email) {
  const s = await subscriber(email);
  if (s.http) return `HTTP ${s.http} ${s.body}`;
  return `${s.status} [${[...(s.tags ?? [])].sort().join(',')}] ${s.cadence} ${s.time_zone}`;
}

function state(status, tags, cadence, zone) {
  return `${status} [${[...tags].sort().join(',')}] ${cadence} ${zone}`;
}

/** Waits up to 15 s for an email to `to` whose subject starts with `subject`. */
async function waitForEmail(to, subject) {
  for (let i = 0; i < 150; i++) {
    const out = execFileSync('python3', [join(HERE, 'mail_links.py'), OUTBOX], { encoding: 'utf8' });
    const found = JSON.parse(out).find((m) => m.to.includes(to) && m.subject.startsWith(subject));
    if (found) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  return null;
}

function linkTo(message, path) {
  return message.links.find((l) => l.startsWith(`${BASE_URL}${path}`)) ?? null;
}

// ---- the browser's side -----------------------------------------------------------------------
/** Clicks `locator` (a submit button), or runs `act`, and waits for the page the form's POST leads to. */
async function submitWith(page, locatorOrAct) {
  const act = typeof locatorOrAct === 'function' ? locatorOrAct : () => locatorOrAct.click();
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().isNavigationRequest() && r.request().method() === 'POST'),
    act(),
  ]);
  await page.waitForLoadState('domcontentloaded');
  return response;
}

/** The focused element, as `tag#id[name=value]` for messages and comparisons. */
async function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return 'body';
    const id = el.id ? `#${el.id}` : '';
    const name = el.name ? `[${el.name}=${el.value}]` : '';
    return `${el.tagName.toLowerCase()}${id}${name}`;
  });
}

/** Presses Tab until `predicate(focused)` holds; returns the focused element or null. */
async function tabUntil(page, predicate, most = 30) {
  for (let i = 0; i < most; i++) {
    await page.keyboard.press('Tab');
    const now = await focused(page);
    if (predicate(now)) return now;
  }
  return null;
}

// ---- the journeys -----------------------------------------------------------------------------
async function main() {
  const browser = await launch(CHROMIUM);
  try {
    const desktop = await newContext(browser, ORIGIN, { viewport: { width: 1280, height: 900 } });
    await journey('subscribe, confirm, preferences, unsubscribe', () => fullJourney(desktop));
    await journey('the subscribe form by keyboard alone', () => keyboardJourney(desktop));
    const phone = await newContext(browser, ORIGIN, {
      viewport: PHONE,
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    await journey('the subscribe page on a phone', () => phoneJourney(phone));
    await journey('the time zone comes from the browser', () => timeZoneJourney(browser));
  } finally {
    await browser.close();
  }
  check(
    'the browser made requests only to the daemon on 127.0.0.1',
    outsideRequests.length === 0,
    outsideRequests.slice(0, 5).join(' '),
  );
}

/** With JavaScript the form preselects the browser's zone; without it, the configured default. */
async function timeZoneJourney(browser) {
  const tokyo = await newContext(browser, ORIGIN, { timezoneId: 'Asia/Tokyo' });
  const page = await tokyo.newPage();
  await page.goto(`${BASE_URL}/subscribe`);
  const chosen = await page.locator('#time_zone').inputValue();
  check('the subscribe form preselects the browser\'s time zone (Asia/Tokyo)', chosen === 'Asia/Tokyo', chosen);
  await tokyo.close();
  const plain = await newContext(browser, ORIGIN, { timezoneId: 'Asia/Tokyo', javaScriptEnabled: false });
  const bare = await plain.newPage();
  await bare.goto(`${BASE_URL}/subscribe`);
  const kept = await bare.locator('#time_zone').inputValue();
  check('without JavaScript the form keeps the default time zone (UTC)', kept === 'UTC', kept);
  await plain.close();
  const index = await (await newContext(browser, ORIGIN, {})).newPage();
  await index.goto(`${BASE_URL}/`);
  const link = index.getByRole('link', { name: 'Get new articles by email' });
  check('the index page links to the email subscription', (await link.getAttribute('href'))?.endsWith('/subscribe'));
}

async function fullJourney(context) {
  const page = await context.newPage();
  const email = 'ada.browser@example.test';
  const zone = 'Europe/Berlin';

  // Subscribe.
  const form = await page.goto(`${BASE_URL}/subscribe`);
  must('GET /subscribe answers 200', form?.status() === 200, `HTTP ${form?.status()}`);
  must('subscribe page: heading says Subscribe', (await heading(page)).startsWith('Subscribe'), await heading(page));
  await checkLabels(page, 'subscribe');
  const tagLabels = await page.locator('input[name=tags]').evaluateAll((boxes) =>
    boxes.map((b) => ({ slug: b.value, name: b.closest('label')?.textContent.trim() ?? '' })),
  );
  must('subscribe page: offers the catalog tags as checkboxes', tagLabels.length >= 3, JSON.stringify(tagLabels));
  const slugOf = (name) => tagLabels.find((t) => t.name === name)?.slug;
  const [first, second, third] = ['Open Science', 'Machine Learning', 'Ethics'].map((n) =>
    tagLabels.some((t) => t.name === n) ? n : null,
  );
  must('subscribe page: has the sample tags Open Science, Machine Learning and Ethics', first && second && third,
    tagLabels.map((t) => t.name).join(', '));

  await page.getByLabel('Email address').fill(email);
  await page.getByLabel(first, { exact: true }).check();
  await page.getByLabel(second, { exact: true }).check();
  await page.getByLabel('Weekly', { exact: true }).check();
  await page.getByLabel('Time zone').selectOption(zone);
  const subscribed = await submitWith(page, page.getByRole('button', { name: 'Subscribe', exact: true }));
  must('submitting the form answers 200', subscribed.status() === 200, `HTTP ${subscribed.status()}`);
  must('after subscribing the page says "Check your inbox"', (await heading(page)) === 'Check your inbox', await heading(page));
  const chosen = [slugOf(first), slugOf(second)];
  let want = state('pending', chosen, 'weekly', zone);
  let got = await apiState(email);
  must('API: the subscriber is pending with the tags, cadence and time zone chosen', got === want, `${got}, want ${want}`);

  // Confirm from the email.
  const confirmation = await waitForEmail(email, 'Confirm');
  must('a confirmation email arrives', confirmation !== null, `none in ${OUTBOX}`);
  const confirmUrl = linkTo(confirmation, '/confirm/');
  must('the confirmation email (text/plain) has a /confirm/ link on the site', confirmUrl !== null,
    confirmation.links.join(' '));
  const confirmPage = await page.goto(confirmUrl);
  must('opening the confirmation link answers 200', confirmPage?.status() === 200, `HTTP ${confirmPage?.status()}`);
  check('confirm page: heading says "Confirm your subscription"', (await heading(page)) === 'Confirm your subscription',
    await heading(page));
  check('confirm page: names the address', (await page.locator('main').textContent()).includes(email));
  await checkLabels(page, 'confirm');
  got = await apiState(email);
  must('API: opening the confirmation link changed nothing (still pending)', got === want, `${got}, want ${want}`);
  await submitWith(page, page.getByRole('button', { name: 'Confirm subscription' }));
  must('after confirming the page says "You are subscribed"', (await heading(page)) === 'You are subscribed', await heading(page));
  want = state('confirmed', chosen, 'weekly', zone);
  got = await apiState(email);
  must('API: the subscriber is confirmed', got === want, `${got}, want ${want}`);

  // Preferences, reached from the link on the page.
  const prefsLink = page.getByRole('link', { name: /tags, cadence and time zone/i });
  must('the subscribed page links to the preferences page', (await prefsLink.count()) === 1);
  await Promise.all([page.waitForURL(/\/preferences\//), prefsLink.click()]);
  must('following it opens /preferences/…', (await heading(page)) === 'Your preferences', await heading(page));
  await checkLabels(page, 'preferences');
  const shown = {
    first: await page.getByLabel(first, { exact: true }).isChecked(),
    second: await page.getByLabel(second, { exact: true }).isChecked(),
    third: await page.getByLabel(third, { exact: true }).isChecked(),
    weekly: await page.getByLabel('Weekly', { exact: true }).isChecked(),
    zone: await page.getByLabel('Time zone').inputValue(),
  };
  check('preferences page: shows the choices made when subscribing',
    shown.first && shown.second && !shown.third && shown.weekly && shown.zone === zone, JSON.stringify(shown));
  const newZone = 'America/New_York';
  await page.getByLabel(first, { exact: true }).uncheck();
  await page.getByLabel(third, { exact: true }).check();
  await page.getByLabel('Daily', { exact: true }).check();
  await page.getByLabel('Time zone').selectOption(newZone);
  const saved = await submitWith(page, page.getByRole('button', { name: 'Save preferences' }));
  check('saving answers 200', saved.status() === 200, `HTTP ${saved.status()}`);
  check('after saving the page says "Saved."', (await page.getByRole('status').textContent())?.trim() === 'Saved.');
  check('after saving the form shows the new choices',
    !(await page.getByLabel(first, { exact: true }).isChecked()) &&
      (await page.getByLabel(third, { exact: true }).isChecked()) &&
      (await page.getByLabel('Daily', { exact: true }).isChecked()) &&
      (await page.getByLabel('Time zone').inputValue()) === newZone);
  want = state('confirmed', [slugOf(second), slugOf(third)], 'daily', newZone);
  got = await apiState(email);
  must('API: the new tags, cadence and time zone are stored', got === want, `${got}, want ${want}`);

  // Unsubscribe from the welcome email.
  const welcome = await waitForEmail(email, 'Welcome');
  must('a welcome email arrives', welcome !== null, `none in ${OUTBOX}`);
  const unsubscribeUrl = linkTo(welcome, '/unsubscribe/');
  check('the welcome email has a /preferences/ link on the site', linkTo(welcome, '/preferences/') !== null,
    welcome.links.join(' '));
  must('the welcome email has an /unsubscribe/ link on the site', unsubscribeUrl !== null, welcome.links.join(' '));
  const unsubscribePage = await page.goto(unsubscribeUrl);
  must('opening the unsubscribe link answers 200', unsubscribePage?.status() === 200, `HTTP ${unsubscribePage?.status()}`);
  check('unsubscribe page: heading says "Unsubscribe"', (await heading(page)) === 'Unsubscribe', await heading(page));
  await checkLabels(page, 'unsubscribe');
  got = await apiState(email);
  must('API: opening the unsubscribe link changed nothing (still confirmed)', got === want, `${got}, want ${want}`);
  await submitWith(page, page.getByRole('button', { name: 'Unsubscribe', exact: true }));
  check('after unsubscribing the page says "You are unsubscribed"', (await heading(page)) === 'You are unsubscribed',
    await heading(page));
  check('the unsubscribed page names the address', (await page.locator('main').textContent()).includes(email));
  const after = await subscriber(email);
  check('API: the subscriber is unsubscribed', after.status === 'unsubscribed', JSON.stringify(after));
  await page.close();
}

async function keyboardJourney(context) {
  const page = await context.newPage();
  const email = 'grace.keyboard@example.test';
  const zone = 'Europe/Lisbon';
  await page.goto(`${BASE_URL}/subscribe`);

  // A click on the label is how a person (or a screen reader's "activate") reaches the field.
  await page.getByText('Email address', { exact: true }).click();
  must('clicking the "Email address" label focuses the email field', (await focused(page)) === 'input#email[email=]',
    await focused(page));
  await page.keyboard.type(email);

  const firstBox = await tabUntil(page, (f) => f.startsWith('input[tags='), 1);
  must('Tab from the email field reaches the first tag checkbox', firstBox !== null, await focused(page));
  const slug = firstBox.slice('input[tags='.length, -1);
  await page.keyboard.press('Space');
  check('Space ticks it', await page.locator(`input[name=tags][value="${slug}"]`).isChecked());

  const radio = await tabUntil(page, (f) => f.startsWith('input[cadence='));
  must('Tab reaches the cadence radios', radio !== null, await focused(page));
  await page.keyboard.press('ArrowDown');
  check('an arrow key picks Weekly', await page.getByLabel('Weekly', { exact: true }).isChecked(), await focused(page));

  const select = await tabUntil(page, (f) => f.startsWith('select#time_zone'), 1);
  must('Tab then reaches the time zone select', select !== null, await focused(page));
  await page.keyboard.type(zone); // type-ahead, as on any <select>
  check(`typing "${zone}" on the select chooses it`, (await page.locator('#time_zone').inputValue()) === zone,
    await page.locator('#time_zone').inputValue());

  const button = await tabUntil(page, (f) => f.startsWith('button'), 1);
  must('Tab then reaches the Subscribe button', button !== null, await focused(page));
  await submitWith(page, () => page.keyboard.press('Enter'));
  must('Enter submits: the page says "Check your inbox"', (await heading(page)) === 'Check your inbox', await heading(page));
  const want = state('pending', [slug], 'weekly', zone);
  const got = await apiState(email);
  check('API: the keyboard-only subscriber is pending with what was chosen', got === want, `${got}, want ${want}`);
  await page.close();
}

async function phoneJourney(context) {
  const page = await context.newPage();
  await page.goto(`${BASE_URL}/subscribe`);
  const shot = join(OUT_DIR, 'subscribe-390px.png');
  await page.screenshot({ path: shot, fullPage: true });
  pass(`screenshot of /subscribe at ${PHONE.width}px: ${shot}`);
  const sizes = await overflow(page);
  check(`/subscribe at ${PHONE.width}px: nothing overflows horizontally`,
    sizes.scrollWidth <= sizes.innerWidth && sizes.wide.length === 0, JSON.stringify(sizes));
  const fontSize = await page.getByLabel('Email address').evaluate((el) => parseFloat(getComputedStyle(el).fontSize));
  check(`/subscribe at ${PHONE.width}px: the email field's text is at least 16px (no zoom on focus)`, fontSize >= 16,
    `${fontSize}px`);
  // WCAG 2.2's 2.5.8 (AA): targets of at least 24 by 24 CSS px. A checkbox's target is its label.
  const small = await page.evaluate(() =>
    [...document.querySelectorAll('input:not([type=hidden]), select, button')]
      .map((el) => {
        const box = (el.closest('label') ?? el).getBoundingClientRect();
        return { what: el.value || el.id || el.tagName, width: box.width, height: box.height };
      })
      .filter((t) => t.width < 24 || t.height < 24),
  );
  check(`/subscribe at ${PHONE.width}px: every tap target is at least 24×24 px (WCAG 2.5.8)`, small.length === 0,
    JSON.stringify(small));
  await page.close();
}

try {
  await main();
} catch (e) {
  fail(`browser: ${oneLine(e)}`);
}
writeResults(RESULTS);
