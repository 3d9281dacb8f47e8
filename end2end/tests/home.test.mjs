// The start page: served by the server, hydrated by the WASM, and usable
// with JavaScript turned off.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startBootler } from './support/server.mjs';
import { launchBrowser, screenshotPath, watchErrors, hydrated } from './support/browser.mjs';

describe('start page', () => {
  let server;
  let browser;

  before(async () => {
    server = await startBootler();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('hydrates, and its tabs respond to clicks', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const errors = watchErrors(page);

    const response = await page.goto(server.url + '/');
    assert.equal(response.status(), 200);
    assert.equal(await page.title(), 'Bootler');
    await page.locator('h1', { hasText: 'Machines for research' }).waitFor();

    // The WASM sets data-hydrated on <body> from an effect, which only runs
    // in the browser after hydration.
    await hydrated(page);

    const metalTab = page.getByRole('tab', { name: 'Bare-metal node' });
    const vmTab = page.getByRole('tab', { name: 'Virtual machine' });
    const vmPanel = page.locator('#panel-vm');
    assert.equal(await metalTab.getAttribute('aria-selected'), 'true');
    assert.equal(await vmPanel.isVisible(), false);

    await vmTab.click();
    await vmPanel.waitFor({ state: 'visible', timeout: 5_000 });
    assert.equal(await vmTab.getAttribute('aria-selected'), 'true');
    assert.equal(await metalTab.getAttribute('aria-selected'), 'false');
    assert.equal(await page.locator('#panel-metal').isVisible(), false);
    assert.match(await vmPanel.innerText(), /three questions/);

    await page.screenshot({ path: screenshotPath('home'), fullPage: true });
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('works without JavaScript', async () => {
    const context = await browser.newContext({
      javaScriptEnabled: false,
      viewport: { width: 1280, height: 900 },
    });
    const page = await context.newPage();
    const response = await page.goto(server.url + '/');
    assert.equal(response.status(), 200);
    assert.match(await page.locator('h1').innerText(), /Machines for research/);
    assert.equal(await page.locator('#panel-metal').isVisible(), true);
    assert.equal(await page.locator('body').getAttribute('data-hydrated'), null);
    await page.screenshot({ path: screenshotPath('home-no-js'), fullPage: true });
    await context.close();
  });

  test('unknown pages say so with a 404', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const response = await page.goto(server.url + '/no/such/page');
    assert.equal(response.status(), 404);
    await page.getByRole('heading', { name: 'Page not found' }).waitFor();
    await page.getByRole('link', { name: 'Go to the start page' }).click();
    await page.waitForURL(server.url + '/');
    await page.locator('h1', { hasText: 'Machines for research' }).waitFor();
    await context.close();
  });
});
