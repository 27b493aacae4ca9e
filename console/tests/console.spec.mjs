// The console end to end, in a real browser against a real `hearth up` (tests/server.mjs).
// The tests run in order and build on each other: create, edit, test, upload, trigger, observe.
import { test, expect } from '@playwright/test';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync, unzipSync, strToU8, strFromU8 } from 'fflate';

const shots = join(import.meta.dirname, '..', 'screenshots');
mkdirSync(shots, { recursive: true });

/** Screenshots of the page as it is, at 1280×800 and 390×844. */
async function shoot(page, name) {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(shots, `${name}-390x844.png`), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: join(shots, `${name}-1280x800.png`), fullPage: true });
}

/**
 * Fails the test on any CSP violation or uncaught error in the page. One kind is expected and
 * allowed: Chrome's own editing, when a paste replaces lines of the editor's contenteditable,
 * tries to add `style` attributes to them; the policy blocks that (as it should) and
 * CodeMirror redraws the lines from its state.
 */
function watch(page) {
  const problems = [];
  page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      const inEditor = e.violatedDirective === 'style-src-attr' && e.target instanceof Element && !!e.target.closest('.cm-content');
      if (!inEditor) console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI} ${e.sample} ${e.target?.outerHTML?.slice(0, 120) ?? ''}`);
    });
  });
  page.on('console', (m) => {
    if (/^CSP violation/.test(m.text())) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return problems;
}

async function signIn(page, token) {
  await page.goto(`${process.env.HEARTH_URL}/console/`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Functions' })).toBeVisible();
}

/** Replaces the open file's text in the CodeMirror editor, as typing a paste would. */
async function replaceCode(page, text) {
  await page.locator('.code .cm-content').click();
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText(text);
}

async function testEvent(page) {
  await page.getByRole('button', { name: 'Test', exact: true }).click();
  await expect(page.getByRole('button', { name: 'Test', exact: true })).toBeEnabled();
  return page.getByTestId('test-result');
}

const PY_CHANGED = `def handler(event, context):\n    print("console-edit", context.aws_request_id)\n    return {"message": "changed by the console"}\n`;

test.describe.configure({ mode: 'serial' });

let problems;
test.beforeEach(({ page }) => {
  problems = watch(page);
});
test.afterEach(() => {
  expect(problems, 'no CSP violations or page errors').toEqual([]);
});

test('sign-in refuses a wrong token with the API code, then signs in', async ({ page }) => {
  // The token travels only in the Authorization header: never in a URL or a Referer.
  const leaks = [];
  page.on('request', (r) => {
    const h = r.headers();
    if (r.url().includes('hth_') || (h.referer || '').includes('hth_')) leaks.push(r.url());
  });
  await page.goto(`${process.env.HEARTH_URL}/console/`);
  await shoot(page, '01-sign-in');
  await page.getByLabel('API token').fill('hth_not-a-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('InvalidToken');
  // The token is never put in the URL or a cookie.
  await page.getByLabel('API token').fill(process.env.HEARTH_ADMIN_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Functions' })).toBeVisible();
  expect(page.url()).not.toContain('hth_');
  expect(await page.context().cookies()).toEqual([]);
  await page.getByRole('button', { name: 'Refresh' }).click();
  expect(leaks).toEqual([]);
  // Kept in this tab's session storage only.
  const stored = await page.evaluate(() => ({ session: JSON.stringify(sessionStorage), local: JSON.stringify(localStorage) }));
  expect(stored.session).toContain(process.env.HEARTH_ADMIN_TOKEN);
  expect(stored.local).not.toContain('hth_');
  await shoot(page, '02-functions-empty');
});

test('create a Python function from the template, edit, save, test cold then warm, and a syntax error', async ({ page }) => {
  await signIn(page, process.env.HEARTH_ADMIN_TOKEN);
  await page.getByRole('link', { name: 'Create function' }).click();
  await page.getByLabel('Name').fill('hello-py');
  await shoot(page, '03-create');
  await page.getByRole('button', { name: 'Create function' }).click();
  await expect(page.getByTestId('latest-version')).toHaveText('1');
  await expect(page.locator('.code .cm-content')).toContainText('def handler');

  // Edit and save: a new version.
  await replaceCode(page, PY_CHANGED);
  await expect(page.locator('.status')).toContainText('unsaved changes');
  await page.keyboard.press('Control+S');
  await expect(page.getByRole('status').filter({ hasText: 'Saved as version 2' })).toBeVisible();
  await expect(page.getByTestId('latest-version')).toHaveText('2');
  await shoot(page, '04-code');

  // Files and folders: a new file in a folder, renamed, then deleted; search opens.
  await page.getByRole('button', { name: 'New file' }).click();
  await page.getByLabel('New file path').fill('lib/util.py');
  await page.getByRole('button', { name: 'OK' }).click();
  await expect(page.locator('.files')).toContainText('lib/');
  await expect(page.locator('.files button[data-path="lib/util.py"]')).toHaveAttribute('aria-current', 'true');
  await page.locator('.code .cm-content').click();
  await page.keyboard.insertText('VALUE = 42\n');
  await page.getByRole('button', { name: 'Rename' }).click();
  await page.getByLabel('Rename lib/util.py to').fill('lib/helpers.py');
  await page.getByRole('button', { name: 'OK' }).click();
  await expect(page.locator('.files button[data-path="lib/helpers.py"]')).toBeVisible();
  await expect(page.locator('.files button[data-path="lib/util.py"]')).toHaveCount(0);
  await expect(page.locator('.code .cm-content')).toContainText('VALUE = 42');
  await page.locator('.code .cm-content').click();
  await page.keyboard.press('Control+f');
  await expect(page.locator('.cm-search')).toBeVisible();
  await page.keyboard.press('Escape');
  page.once('dialog', (d) => d.accept());
  await page.getByRole('button', { name: 'Delete' }).click();
  await expect(page.locator('.files')).not.toContainText('helpers.py');
  await expect(page.locator('.files button[data-path="main.py"]')).toHaveAttribute('aria-current', 'true');

  await page.getByRole('link', { name: 'Versions' }).click();
  const current = page.locator('tr.current');
  await expect(current).toContainText('2');
  await expect(current).toContainText('current');
  await page.getByRole('button', { name: 'Diff with current' }).click();
  await expect(page.locator('.diff')).toContainText('changed by the console');
  await shoot(page, '05-versions');
  // Any version downloads as its package.
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('tr[data-version="1"]').getByRole('button', { name: 'Download' }).click()]);
  expect(download.suggestedFilename()).toBe('hello-py-v1.zip');
  const files = unzipSync(new Uint8Array(readFileSync(await download.path())));
  expect(Object.keys(files)).toEqual(['main.py']);
  expect(strFromU8(files['main.py'])).toContain('Hello, {name}!');

  await page.getByRole('link', { name: 'Test' }).click();
  let result = await testEvent(page);
  await expect(result.getByTestId('payload')).toContainText('changed by the console');
  await expect(result).toContainText('cold');
  await expect(result).toContainText('version 2');
  await expect(result.getByTestId('test-log')).toContainText('console-edit');
  await expect(result).toContainText('Billed duration');
  await expect(result.locator('dd').nth(2)).not.toHaveText('—'); // init duration of a cold start
  result = await testEvent(page);
  await expect(result).toContainText('warm');
  await shoot(page, '06-test');
  // A saved test event comes back after a reload; a template fills the editor.
  await page.getByLabel('Template', { exact: true }).selectOption('Scheduled event');
  await expect(page.locator('.event-editor .cm-content')).toContainText('Scheduled Event');
  await page.getByLabel('Event name', { exact: true }).fill('nightly');
  await page.getByRole('button', { name: 'Save event' }).click();
  await page.reload();
  await page.getByLabel('Saved', { exact: true }).selectOption('nightly');
  await expect(page.locator('.event-editor .cm-content')).toContainText('Scheduled Event');

  // A syntax error: the function's error type and message.
  await page.getByRole('link', { name: 'Code' }).click();
  await replaceCode(page, 'def handler(event, context:\n    return 1\n');
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByTestId('latest-version')).toHaveText('3');
  await page.getByRole('link', { name: 'Test' }).click();
  result = await testEvent(page);
  await expect(result.getByTestId('error-type')).toContainText('Syntax');
  await expect(result.getByTestId('error-message')).not.toBeEmpty();

  // The event is checked before it is sent.
  await page.locator('.event-editor .cm-content').click();
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText('{"broken": ');
  await page.getByRole('button', { name: 'Test', exact: true }).click();
  await expect(page.getByRole('alert')).toContainText('InvalidJson');

  // Roll back to version 2: version 4 answers again.
  await page.getByRole('link', { name: 'Versions' }).click();
  page.once('dialog', (d) => d.accept());
  await page.locator('tr[data-version="2"]').getByRole('button', { name: 'Roll back to this' }).click();
  await expect(page.getByTestId('latest-version')).toHaveText('4');
  await expect(page.locator('tr[data-version="4"] code')).toHaveText(await page.locator('tr[data-version="2"] code').textContent());
  await page.getByRole('link', { name: 'Test' }).click();
  await page.locator('.event-editor .cm-content').click();
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText('{}');
  result = await testEvent(page);
  await expect(result.getByTestId('payload')).toContainText('changed by the console');
  await expect(result).toContainText('version 4');

  // Creating a function of an existing name is refused, not a silent replacement.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Functions' }).click();
  await page.getByRole('link', { name: 'Create function' }).click();
  await page.getByLabel('Name').fill('hello-py');
  await page.getByRole('button', { name: 'Create function' }).click();
  await expect(page.getByRole('alert')).toContainText('FunctionExists');
});

test('upload a zip of a Node function and test it', async ({ page }) => {
  const dir = mkdtempSync(join(tmpdir(), 'console-zip-'));
  const zip = join(dir, 'node-fn.zip');
  const code = `export const handler = async (event) => {
  console.log("node-served", event.rawPath ?? "event");
  if (event.rawPath !== undefined) return { statusCode: 200, headers: { "content-type": "text/plain" }, body: "node says hi\\n" };
  return { fromZip: true, got: event };
};\n`;
  writeFileSync(zip, zipSync({ 'index.mjs': strToU8(code), 'lib/helper.mjs': strToU8('export const x = 1;\n') }));
  await signIn(page, process.env.HEARTH_ADMIN_TOKEN);
  await page.getByRole('link', { name: 'Create function' }).click();
  await page.getByLabel('Name').fill('node-zip');
  await page.getByLabel('Upload a .zip').check();
  await page.getByLabel('Zip file').setInputFiles(zip);
  await page.getByLabel('Runtime').selectOption('nodejs');
  await page.getByLabel('Handler').fill('index.handler');
  await page.getByLabel('Memory (MB)').fill('20000');
  await page.getByRole('button', { name: 'Create function' }).click();
  // The API's own message for a bad setting.
  await expect(page.getByRole('alert')).toContainText('memory_mb');
  await page.getByLabel('Memory (MB)').fill('256');
  await page.getByRole('button', { name: 'Create function' }).click();
  await expect(page.getByTestId('latest-version')).toHaveText('1');
  // The package's folders are shown.
  await expect(page.locator('.files')).toContainText('lib/');
  await expect(page.locator('.files')).toContainText('helper.mjs');
  await page.getByRole('link', { name: 'Test' }).click();
  const result = await testEvent(page);
  await expect(result.getByTestId('payload')).toContainText('"fromZip": true');
  await expect(result.getByTestId('test-log')).toContainText('node-served');
});

test('an HTTP trigger: its URL answers, the invocation shows in the charts and its lines in the log', async ({ page }) => {
  await signIn(page, process.env.HEARTH_ADMIN_TOKEN);
  await page.goto(`${process.env.HEARTH_URL}/console/#/f/node-zip/triggers`);
  await page.getByLabel('Path prefix').fill('/node-zip');
  await page.getByRole('button', { name: 'Add HTTP trigger' }).click();
  const url = await page.getByTestId('trigger-url').textContent();
  expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/node-zip$/);
  await expect(page.getByTestId('trigger-curl')).toContainText(`curl -sS '${url}'`);
  // A cron trigger: a bad expression gets the API's code, a good one is listed and removed.
  await page.getByLabel('Schedule').fill('every five minutes');
  await page.getByRole('button', { name: 'Add cron trigger' }).click();
  await expect(page.getByRole('alert')).toContainText('InvalidSchedule');
  await page.getByLabel('Schedule').fill('0 0 3 * * *');
  await page.getByRole('button', { name: 'Add cron trigger' }).click();
  await expect(page.getByTestId('cron-trigger')).toContainText('0 0 3 * * *');
  // A NATS trigger (its server need not run: the trigger says it cannot connect) and its removal.
  await page.getByLabel('Server').fill('nats://127.0.0.1:1');
  await page.getByLabel('Subject').fill('orders.>');
  await page.getByRole('button', { name: 'Add NATS trigger' }).click();
  await expect(page.getByTestId('nats-trigger')).toContainText('orders.>');
  await shoot(page, '07-triggers');
  await page.getByTestId('nats-trigger').getByRole('button', { name: 'Remove' }).click();
  await expect(page.getByTestId('nats-trigger')).toHaveCount(0);
  await page.getByTestId('cron-trigger').getByRole('button', { name: 'Remove' }).click();
  await expect(page.getByTestId('cron-trigger')).toHaveCount(0);

  await page.getByRole('link', { name: 'Monitor' }).click();
  await expect(page.getByTestId('log-state')).toHaveText('following');
  // The recent past is shown first: the Test invocation's line from the previous test.
  await expect(page.getByTestId('log-view')).toContainText('node-served event');
  const before = await page.getByTestId('chart-invocations').locator('.chart-summary').textContent();
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(await res.text()).toBe('node says hi\n');
  // The line arrives on the open stream (no reload), and the charts follow.
  await expect(page.getByTestId('log-view')).toContainText('node-served /node-zip');
  await expect(page.getByTestId('chart-invocations').locator('.chart-summary')).not.toHaveText(before);
  await expect(page.getByTestId('chart-invocations').locator('.chart-summary')).toContainText(/^[1-9]\d* invocations/);
  await expect(page.locator('table').filter({ hasText: 'Requests' })).toContainText('ready');
  await expect(page.getByTestId('chart-instances').locator('.chart-summary')).toContainText('at most 1 at once');
  await expect(page.getByTestId('chart-cold').locator('.chart-summary')).toContainText(/^[1-9]\d* cold starts/);
  await shoot(page, '08-monitor');

  // The filter by request id shows that invocation's lines, and only those.
  const rid = await page.locator('.log .line', { hasText: 'node-served /node-zip' }).getAttribute('data-request-id');
  expect(rid).toMatch(/^[0-9a-f-]{36}$/);
  await page.getByLabel('Request id').fill(rid);
  await page.getByRole('button', { name: 'Filter' }).click();
  await expect(page.getByTestId('log-view')).toContainText('node-served /node-zip');
  await expect(page.getByTestId('log-view')).toContainText(`REPORT RequestId: ${rid}`);
  // The Test invocation's line (shown unfiltered above) is gone.
  await expect(page.getByTestId('log-view')).not.toContainText('node-served event');
  const others = await page.locator('.log .line').evaluateAll((ls, id) => ls.filter((l) => l.dataset.requestId !== id).length, rid);
  expect(others).toBe(0);

  await page.getByRole('link', { name: 'Configuration' }).click();
  await expect(page.getByLabel('Memory (MB)')).toHaveValue('256');
  await shoot(page, '09-configuration');
  await page.getByRole('link', { name: 'Usage' }).click();
  await expect(page.getByRole('heading', { name: 'Usage' })).toBeVisible();
  await expect(page.locator('tr.total')).toBeVisible();
  await shoot(page, '10-usage');
  await page.getByRole('link', { name: 'Functions' }).click();
  await expect(page.locator('table.functions')).toContainText('node-zip');
  await shoot(page, '11-functions');
});

test('a folder of a Python package uploads with its subfolders; a trigger is removed', async ({ page }) => {
  const dir = mkdtempSync(join(tmpdir(), 'console-folder-'));
  mkdirSync(join(dir, 'app', 'pkg'), { recursive: true });
  writeFileSync(join(dir, 'app', 'main.py'), 'from pkg.helper import answer\n\ndef handler(event, context):\n    return {"answer": answer()}\n');
  writeFileSync(join(dir, 'app', 'pkg', '__init__.py'), '');
  writeFileSync(join(dir, 'app', 'pkg', 'helper.py'), 'def answer():\n    return "from a subfolder"\n');
  await signIn(page, process.env.HEARTH_ADMIN_TOKEN);
  await page.getByRole('link', { name: 'Create function' }).click();
  await page.getByLabel('Name').fill('folder-py');
  await page.getByLabel('Upload a folder').check();
  await page.getByLabel('Folder', { exact: true }).setInputFiles(join(dir, 'app'));
  await page.getByRole('button', { name: 'Create function' }).click();
  await expect(page.getByTestId('latest-version')).toHaveText('1');
  await expect(page.locator('.files button[data-path="pkg/helper.py"]')).toBeVisible();
  await page.getByRole('link', { name: 'Test' }).click();
  const result = await testEvent(page);
  await expect(result.getByTestId('payload')).toContainText('from a subfolder');

  await page.goto(`${process.env.HEARTH_URL}/console/#/f/node-zip/triggers`);
  await expect(page.getByTestId('http-trigger')).toHaveCount(1);
  page.once('dialog', (d) => d.accept());
  await page.getByTestId('http-trigger').getByRole('button', { name: 'Remove' }).click();
  await expect(page.getByTestId('http-trigger')).toHaveCount(0);
});

test('a read-only token gets a read-only console; a forced save shows the API refusal', async ({ page }) => {
  await signIn(page, process.env.HEARTH_READ_TOKEN);
  await expect(page.locator('header')).toContainText('read-only');
  await expect(page.getByRole('link', { name: 'Create function' })).toHaveCount(0);
  await page.goto(`${process.env.HEARTH_URL}/console/#/f/hello-py/code`);
  const save = page.getByRole('button', { name: 'Save' });
  await expect(save).toBeDisabled();
  await expect(page.locator('.code .cm-content')).toHaveAttribute('contenteditable', 'false');
  await save.evaluate((b) => {
    b.disabled = false;
  });
  await save.click();
  await expect(page.getByRole('alert')).toContainText('InsufficientScope');
  await shoot(page, '12-read-only');
});

test('a lost connection is shown and recovered from; the editor is no keyboard trap', async ({ page }) => {
  await signIn(page, process.env.HEARTH_ADMIN_TOKEN);
  await page.route(/\/(v1\/|healthz)/, (route) => route.abort('connectionrefused'));
  await page.getByRole('button', { name: 'Refresh' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Connection to the Hearth server lost' })).toBeVisible();
  await expect(page.getByRole('alert')).toContainText('ConnectionLost');
  await shoot(page, '13-connection-lost');
  await page.unroute(/\/(v1\/|healthz)/);
  await expect(page.getByText('Connection to the Hearth server lost')).toHaveCount(0, { timeout: 30_000 });
  await expect(page.locator('table.functions')).toContainText('hello-py');

  await page.goto(`${process.env.HEARTH_URL}/console/#/f/hello-py/code`);
  await page.locator('.code .cm-content').click();
  await page.keyboard.press('Escape');
  await page.keyboard.press('Tab');
  expect(await page.evaluate(() => !!document.activeElement.closest('.cm-content'))).toBe(false);
});
