// The jobs page: work sent from the browser is acknowledged at once, and
// the server's notification arrives without reloading; the list keeps the
// final state for the next visit. With JavaScript and without.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bootlerCommand, startBootler } from './support/server.mjs';
import { launchBrowser, screenshotPath, watchErrors, hydrated } from './support/browser.mjs';

const PASSWORD = 'correct horse battery';

for (const javaScriptEnabled of [true, false]) {
  const mode = javaScriptEnabled ? 'hydrated' : 'no-js';

  describe(`jobs page (${mode})`, () => {
    let server;
    let browser;

    before(async () => {
      server = await startBootler();
      await bootlerCommand(server, ['user', 'add', '--admin', 'boss', '--email', 'boss@uminho.pt', '--name', 'Beatriz Boss'], `${PASSWORD}\n`);
      await bootlerCommand(server, ['user', 'add', 'ana', '--email', 'ana@uminho.pt', '--name', 'Ana Silva'], `${PASSWORD}\n`);
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    async function signIn(context, username) {
      const page = await context.newPage();
      await page.goto(server.url + '/login?next=/jobs');
      if (javaScriptEnabled) {
        await hydrated(page);
      }
      await page.getByLabel('Username or e-mail address').fill(username);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(server.url + '/jobs');
      return page;
    }

    test('a diagnostic job: work sent at once, its end pushed by the server', async () => {
      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 900 } });
      const page = await signIn(context, 'boss');
      const errors = watchErrors(page);
      await page.getByText('No jobs yet.').waitFor();
      if (javaScriptEnabled) {
        await hydrated(page);
      }
      const toasts = page.getByRole('region', { name: 'Notifications' });
      if (javaScriptEnabled) {
        await page.locator('.toasts[data-live="true"]').waitFor({ state: 'attached', timeout: 15_000 });
      }

      await page.getByLabel('Wait (milliseconds)').fill('1500');
      if (javaScriptEnabled) {
        // The page is not reloaded: a marker on window survives.
        await page.evaluate(() => { window.stillTheSamePage = true; });
        const sent = Date.now();
        await page.getByRole('button', { name: 'Run a diagnostic job' }).click();
        await toasts.getByText('Work sent').waitFor({ timeout: 1000 });
        assert.ok(Date.now() - sent < 1000, 'the acknowledgement is immediate');
        await toasts.getByText(/Work sent: diagnostic job #1 is queued/).waitFor();
        await page.screenshot({ path: screenshotPath('jobs-sent'), fullPage: true });
        await toasts.getByText('Diagnostic job #1 succeeded.').waitFor({ timeout: 15_000 });
        await page.locator('tr[data-job="1"][data-state="succeeded"]').waitFor();
        assert.equal(await page.evaluate(() => window.stillTheSamePage), true);
        await page.screenshot({ path: screenshotPath('jobs-succeeded'), fullPage: true });

        // A failure comes with its reason; retry from the list.
        await page.getByLabel('Wait (milliseconds)').fill('0');
        await page.getByLabel('Fail on purpose').check();
        await page.getByRole('button', { name: 'Run a diagnostic job' }).click();
        await toasts.getByText('Diagnostic job #2 failed: The diagnostic job failed, as asked.').waitFor({ timeout: 15_000 });
        await page.locator('tr[data-job="2"][data-state="failed"]').waitFor();
        await page.screenshot({ path: screenshotPath('jobs-failed'), fullPage: true });

        // The server restarts: the page reconnects by itself and still
        // hears about the next job.
        await server.restart();
        await page.getByLabel('Fail on purpose').uncheck();
        await page.locator('.toasts[data-live="true"]').waitFor({ state: 'attached', timeout: 15_000 });
        await page.getByRole('button', { name: 'Run a diagnostic job' }).click();
        await toasts.getByText('Diagnostic job #3 succeeded.').waitFor({ timeout: 15_000 });
        assert.equal(await page.evaluate(() => window.stillTheSamePage), true);
      } else {
        await page.getByRole('button', { name: 'Run a diagnostic job' }).click();
        await page.getByRole('status').getByText('Work sent: diagnostic job #1 is queued.').waitFor();
        // Without JavaScript, the state is right on each load.
        for (let i = 0; i < 50; i++) {
          if (await page.locator('tr[data-job="1"][data-state="succeeded"]').count()) break;
          await page.waitForTimeout(200);
          await page.goto(server.url + '/jobs');
        }
        await page.locator('tr[data-job="1"][data-state="succeeded"]').waitFor();
        await page.getByLabel('Wait (milliseconds)').fill('0');
        await page.getByLabel('Fail on purpose').check();
        await page.getByRole('button', { name: 'Run a diagnostic job' }).click();
        for (let i = 0; i < 50; i++) {
          if (await page.locator('tr[data-job="2"][data-state="failed"]').count()) break;
          await page.waitForTimeout(200);
          await page.goto(server.url + '/jobs');
        }
      }
      const failedRow = page.locator('tr[data-job="2"]');
      await failedRow.getByText('The diagnostic job failed, as asked.').waitFor();
      await failedRow.getByRole('button', { name: 'Retry job 2' }).click();
      await page.getByRole('status').getByText('Diagnostic job #2 is queued again.').waitFor();

      // Closed and opened again: the list shows how each job ended.
      await page.close();
      const again = await context.newPage();
      for (let i = 0; i < 50; i++) {
        await again.goto(server.url + '/jobs');
        if (await again.locator('tr[data-job="2"][data-state="failed"]').count()) break;
        await again.waitForTimeout(200);
      }
      await again.locator('tr[data-job="1"][data-state="succeeded"]').waitFor();
      await again.locator('tr[data-job="2"][data-state="failed"]').waitFor();
      assert.equal(await again.locator('tr[data-job="2"]').getByText('1 of 5').count(), 1, 'a retry starts from the first attempt');
      await again.screenshot({ path: screenshotPath(`jobs-list-${mode}`), fullPage: true });
      assert.deepEqual(errors, []);
      await context.close();
    });

    test('people who are not admins see their own jobs only, and cannot start diagnostics', async () => {
      const context = await browser.newContext({ javaScriptEnabled });
      const page = await signIn(context, 'ana');
      await page.getByRole('heading', { name: 'Your jobs' }).waitFor();
      await page.getByText('No jobs yet.').waitFor();
      assert.equal(await page.getByRole('button', { name: 'Run a diagnostic job' }).count(), 0);
      await context.close();
    });
  });
}
