// The admin's console in headless Chromium, as its users would take it: sign in and see the
// dashboard's charts; find a subscriber among 10,000 by part of the address, open their timeline
// and suppress them; edit an article and see the change in /feed.xml; follow a blog through the
// Sources form and poll it now; a viewer refused every change; sign out, after which the old
// cookie opens nothing; every page at a phone's width.
// Run by scripts/browser_test.sh, which starts the daemon, imports the subscribers and adds the
// accounts; reads from the environment:
//   BASE_URL        the daemon
//   ADMIN_TOKEN     for the API, to see what the pages changed
//   OWNER, VIEWER   "name:password" of an owner and a viewer account
//   FIND            an address among the 10,000 to look for by part of it
//   BLOG_FEED       a feed the daemon may follow (sources.allow_private lets it reach it)
//   OUT_DIR         where the screenshots go
//   RESULTS         file to write "PASSED FAILED" to
//   CHROMIUM        the browser (default /usr/bin/chromium)
import { join } from 'node:path';
import {
  pass, check, must, journey, oneLine, fail, heading, checkLabels, launch, newContext, outsideRequests, overflow,
  writeResults,
} from './common.mjs';

const BASE_URL = need('BASE_URL');
const ADMIN_TOKEN = need('ADMIN_TOKEN');
const [OWNER, OWNER_PASSWORD] = need('OWNER').split(':');
const [VIEWER, VIEWER_PASSWORD] = need('VIEWER').split(':');
const FIND = need('FIND');
// Another of the 10,000, confirmed, that no one acts on: the viewer's attempts must leave it as it is.
const OTHER = 'reader00007@example.org';
const BLOG_FEED = need('BLOG_FEED');
const OUT_DIR = need('OUT_DIR');
const RESULTS = need('RESULTS');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ORIGIN = new URL(BASE_URL).origin;
const PHONE = { width: 390, height: 844 };

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`console_flow: set ${name}`);
    process.exit(2);
  }
  return value;
}

async function api(path) {
  const response = await fetch(`${BASE_URL}${path}`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  return { status: response.status, body: response.ok ? await response.json() : await response.text() };
}

async function feed() {
  return (await fetch(`${BASE_URL}/feed.xml`)).text();
}

/** Signs in through the form, as a person types it. */
async function signIn(page, name, password) {
  await page.goto(`${BASE_URL}/admin`);
  must(`/admin leads to the sign-in form`, (await heading(page)) === 'Sign in', await heading(page));
  await checkLabels(page, 'sign-in');
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('Password').fill(password);
  await Promise.all([page.waitForURL(`${BASE_URL}/admin`), page.getByRole('button', { name: 'Sign in' }).click()]);
}

async function ownerJourney(context) {
  const page = await context.newPage();
  await signIn(page, OWNER, OWNER_PASSWORD);
  must('signed in: the dashboard', (await heading(page)) === 'Dashboard', await heading(page));
  const charts = await page.locator('svg[role=img]').count();
  check('the dashboard has its three charts (subscribers, runs, feed audience)', charts === 3, `${charts} charts`);
  const tables = await page.locator('details table').count();
  check('each chart has its numbers as a table', tables >= 3, `${tables} tables`);
  const confirmed = await page.locator('.tile', { hasText: 'confirmed' }).first().locator('.n').textContent();
  check('the confirmed tile counts the 10,000 imported subscribers', Number(confirmed) >= 10000, confirmed);
  await page.screenshot({ path: join(OUT_DIR, 'console-dashboard.png'), fullPage: true });
  pass(`screenshot of the dashboard: ${join(OUT_DIR, 'console-dashboard.png')}`);

  // Find one subscriber among 10,000 by a part of the address.
  await page.getByRole('link', { name: 'Subscribers', exact: true }).click();
  await checkLabels(page, 'subscribers');
  const part = FIND.slice(3, 11);
  await page.getByLabel('Search addresses').fill(part);
  await Promise.all([page.waitForURL(/q=/), page.getByRole('button', { name: 'Search' }).click()]);
  const rows = page.locator('table.subscribers tbody a');
  const found = await rows.allTextContents();
  must(`searching "${part}" finds ${FIND} alone`, found.length === 1 && found[0] === FIND, found.join(', '));
  const count = await page.locator('.count').textContent();
  check('the count of matches is exact', /\b1 match\b/.test(count ?? ''), count);

  // Their timeline, and suppressing them.
  await rows.first().click();
  must('the subscriber page is headed by the address', (await heading(page)) === FIND, await heading(page));
  const timeline = await page.locator('ol.timeline li').allTextContents();
  check('the timeline starts with the subscription and its source', /subscribed.*csv/s.test(timeline[0] ?? ''),
    timeline[0]);
  await page.getByRole('button', { name: 'Suppress' }).click();
  await page.waitForLoadState('domcontentloaded');
  const after = await page.locator('ol.timeline li').allTextContents();
  check('the timeline shows the suppression, by the owner', after.some((t) => /suppressed/.test(t)), after.at(-1));
  const state = await api(`/api/subscribers/${encodeURIComponent(FIND)}`);
  check('the API shows them unsubscribed', state.body?.status === 'unsubscribed', JSON.stringify(state.body));
  const suppressions = await api('/api/suppressions');
  check('the address is on the suppression list',
    suppressions.body?.suppressions?.some((s) => s.email === FIND), JSON.stringify(suppressions.body).slice(0, 200));
  await page.screenshot({ path: join(OUT_DIR, 'console-subscriber.png'), fullPage: true });
  pass(`screenshot of a subscriber's page: ${join(OUT_DIR, 'console-subscriber.png')}`);

  // Edit an article; the feed follows.
  await page.getByRole('link', { name: 'Articles', exact: true }).click();
  await page.locator('table tbody a').first().click();
  await checkLabels(page, 'article');
  const title = `Edited in the console ${Date.now()}`;
  await page.getByLabel('Title').fill(title);
  await Promise.all([page.waitForURL(/saved=1/), page.getByRole('button', { name: 'Save' }).click()]);
  let seen = false;
  for (let i = 0; i < 50 && !seen; i++) {
    seen = (await feed()).includes(title);
    if (!seen) await new Promise((r) => setTimeout(r, 100));
  }
  check('the edited title is in /feed.xml', seen);
  await page.close();
  return title;
}

/** Follows a blog through the Sources form, waits for its first fetch, and polls it now. */
async function sourcesJourney(context) {
  const page = await context.newPage(); // the owner's context: signed in already
  await page.goto(`${BASE_URL}/admin`);
  await page.getByRole('link', { name: 'Sources', exact: true }).click();
  must('the Sources page', (await heading(page)) === 'Sources', await heading(page));
  check('no source yet: the page says how to follow a blog',
    (await page.locator('table.sources tbody').textContent())?.includes('To follow a blog'));
  await checkLabels(page, 'sources');
  await page.getByLabel('Feed URL').fill('ftp://blog.example/feed.xml');
  await page.getByRole('button', { name: 'Follow' }).click();
  await page.waitForLoadState('domcontentloaded');
  check('a bad URL is refused next to its field', (await page.locator('#url-error').textContent())?.startsWith('url:')
    && (await page.getByLabel('Feed URL').getAttribute('aria-invalid')) === 'true');
  await page.getByLabel('Feed URL').fill(BLOG_FEED);
  await page.getByLabel('Tags').fill('Friends, Elsewhere');
  await page.getByLabel('Name').fill('A blog elsewhere');
  await Promise.all([page.waitForURL(/\/admin\/sources\/\d+\?done=added/),
    page.getByRole('button', { name: 'Follow' }).click()]);
  must('following it: its page', (await heading(page)) === 'A blog elsewhere', await heading(page));
  const entries = async () => Number(await page.locator('dt:text-is("Entries") + dd').textContent());
  let read = 0;
  for (let i = 0; i < 50 && read === 0; i++) {
    read = await entries();
    if (read === 0) {
      await new Promise((r) => setTimeout(r, 200));
      await page.reload();
    }
  }
  check('the first fetch read the feed\'s 3 entries', read === 3, `${read} entries`);
  await page.getByRole('button', { name: 'Poll now' }).click();
  await page.waitForLoadState('domcontentloaded');
  const status = await page.getByRole('status').textContent();
  check('Poll now shows how the poll went', /Polled: (not modified \(304\)|200)/.test(status ?? ''), status);
  await page.getByRole('link', { name: 'All sources' }).click();
  const row = await page.locator('table.sources tbody tr').first().textContent();
  check('the list shows the source, its state and entries', /A blog elsewhere.*active.*3/s.test(row ?? ''), row);
  await page.screenshot({ path: join(OUT_DIR, 'console-sources.png'), fullPage: true });
  pass(`screenshot of the Sources page: ${join(OUT_DIR, 'console-sources.png')}`);
  await page.close();
}

async function viewerJourney(context, title) {
  const page = await context.newPage();
  await signIn(page, VIEWER, VIEWER_PASSWORD);
  must('the viewer is signed in', (await heading(page)) === 'Dashboard', await heading(page));
  const csrf = await page.locator('input[name=csrf]').first().inputValue();
  const before = await feed();
  const slug = (await page.request.get(`${BASE_URL}/admin/articles`).then((r) => r.text()))
    .match(/href="\/admin\/articles\/([^"?/]+)"/)?.[1];
  const attempts = [
    ['/admin/articles/new', { csrf, title: 'By a viewer', url: 'https://example.org/v' }],
    [`/admin/articles/${slug}`, { csrf, title: 'Changed by a viewer', url: 'https://example.org/v' }],
    [`/admin/articles/${slug}/remove`, { csrf }],
    [`/admin/subscribers/${encodeURIComponent(FIND)}`, { csrf, action: 'lift' }],
    ['/admin/runs/1', { csrf, action: 'pause' }],
    ['/admin/sources', { csrf, url: `${BLOG_FEED}?by-a-viewer` }],
    ['/admin/sources/1/poll', { csrf }],
    ['/admin/sources/1/remove', { csrf }],
    ...['suppress', 'unsubscribe', 'resend'].map((action) =>
      [`/admin/subscribers/${encodeURIComponent(OTHER)}`, { csrf, action }]),
    [`/admin/subscribers/${encodeURIComponent(OTHER)}`, { csrf, action: 'delete', confirmed: 'yes' }],
    ['/admin/subscribers/bulk', { csrf, action: 'unsubscribe', q: 'reader0000', confirmed: 'yes' }],
    ['/admin/subscribers/bulk', { csrf, action: 'delete', q: 'reader0000', confirmed: 'yes' }],
    ['/admin/webhooks/1', { csrf, action: 'ping' }],
  ];
  const sourcesBefore = JSON.stringify(await api('/api/sources'));
  const otherBefore = JSON.stringify(await api(`/api/subscribers/${encodeURIComponent(OTHER)}`));
  for (const [path, form] of attempts) {
    const r = await page.request.post(`${BASE_URL}${path}`, { form, maxRedirects: 0 });
    check(`a viewer's POST ${path}${form.action ? ` (${form.action})` : ''} is refused with 403`, r.status() === 403, `HTTP ${r.status()}`);
  }
  check('nothing the viewer tried changed the feed', (await feed()) === before && before.includes(title));
  check('nothing the viewer tried changed the sources', JSON.stringify(await api('/api/sources')) === sourcesBefore);
  const otherAfter = JSON.stringify(await api(`/api/subscribers/${encodeURIComponent(OTHER)}`));
  check('nothing the viewer tried changed a subscriber', otherAfter === otherBefore && otherBefore.includes('confirmed'),
    otherAfter);
  const still = await api('/api/suppressions');
  check('the suppression the viewer tried to lift stays',
    still.body?.suppressions?.some((s) => s.email === FIND));
  await page.goto(`${BASE_URL}/admin/subscribers/${encodeURIComponent(FIND)}`);
  check('a viewer sees no action buttons', (await page.getByRole('button', { name: /Suppress|Lift|Delete|Unsubscribe/ })
    .count()) === 0);
  await page.goto(`${BASE_URL}/admin/sources/1`);
  check('a viewer sees no source actions', (await page.getByRole('button', { name: /Poll now|Follow/ }).count()) === 0
    && (await page.getByRole('link', { name: /Remove/ }).count()) === 0);
  const settings = await page.goto(`${BASE_URL}/admin/settings`);
  check('a viewer is refused Settings', settings?.status() === 403, `HTTP ${settings?.status()}`);

  // Sign out; the cookie the browser had no longer opens anything.
  const cookies = await context.cookies();
  await page.goto(`${BASE_URL}/admin`);
  await Promise.all([page.waitForURL(/\/admin\/login/), page.getByRole('button', { name: /Sign out/ }).click()]);
  pass('signed out');
  await context.addCookies(cookies);
  await page.goto(`${BASE_URL}/admin`);
  check('the old session cookie leads back to the sign-in form', (await heading(page)) === 'Sign in',
    await heading(page));
  await page.close();
}

async function phoneJourney(context) {
  const page = await context.newPage();
  await signIn(page, OWNER, OWNER_PASSWORD);
  const paths = ['/admin', '/admin/subscribers', `/admin/subscribers?q=${FIND.slice(0, 6)}`,
    `/admin/subscribers/${encodeURIComponent(FIND)}`, '/admin/runs', '/admin/articles', '/admin/audience',
    '/admin/suppressions', '/admin/outbox', '/admin/audit', '/admin/settings', '/admin/sources', '/admin/sources/1',
    '/admin/sources/1/remove'];
  for (const path of paths) {
    await page.goto(`${BASE_URL}${path}`);
    const sizes = await overflow(page);
    check(`${path} at ${PHONE.width}px: nothing overflows horizontally`,
      sizes.scrollWidth <= sizes.innerWidth && sizes.wide.length === 0, JSON.stringify(sizes));
  }
  await page.goto(`${BASE_URL}/admin`);
  await page.screenshot({ path: join(OUT_DIR, 'console-dashboard-390px.png'), fullPage: true });
  pass(`screenshot of the dashboard at ${PHONE.width}px`);
  await page.close();
}

async function main() {
  const browser = await launch(CHROMIUM);
  try {
    const owner = await newContext(browser, ORIGIN, { viewport: { width: 1280, height: 900 } });
    let title = '';
    await journey('an owner: dashboard, search, timeline, suppress, edit an article', async () => {
      title = await ownerJourney(owner);
    });
    await journey('an owner follows a blog and polls it now', () => sourcesJourney(owner));
    const viewer = await newContext(browser, ORIGIN, { viewport: { width: 1280, height: 900 } });
    await journey('a viewer is refused every change, then signs out', () => viewerJourney(viewer, title));
    const phone = await newContext(browser, ORIGIN, { viewport: PHONE, deviceScaleFactor: 2, isMobile: true,
      hasTouch: true });
    await journey('the console on a phone', () => phoneJourney(phone));
  } finally {
    await browser.close();
  }
  check('the console made requests only to the daemon on 127.0.0.1', outsideRequests.length === 0,
    outsideRequests.slice(0, 5).join(' '));
}

try {
  await main();
} catch (e) {
  fail(`browser: ${oneLine(e)}`);
}
writeResults(RESULTS);
