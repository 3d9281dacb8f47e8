// Self-registration from the browser: the form, its errors, the mail in the
// outbox, the confirmation link, the activated account. With JavaScript and
// without.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { linkIn, outboxMails, startBootler } from './support/server.mjs';
import { launchBrowser, screenshotPath, watchErrors, hydrated } from './support/browser.mjs';

for (const javaScriptEnabled of [true, false]) {
  const mode = javaScriptEnabled ? 'hydrated' : 'no-js';

  describe(`registration (${mode})`, () => {
    let server;
    let browser;

    before(async () => {
      server = await startBootler({ BOOTLER_ACCOUNTS__ALLOWED_DOMAINS: '["uminho.pt"]' });
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    test('register, confirm by mail, account active', async () => {
      const context = await browser.newContext({
        javaScriptEnabled,
        viewport: { width: 1100, height: 900 },
      });
      const page = await context.newPage();
      const errors = watchErrors(page);

      await page.goto(server.url + '/');
      await page.getByRole('link', { name: 'Create an account' }).click();
      await page.waitForURL(server.url + '/register');
      if (javaScriptEnabled) {
        await hydrated(page);
      }
      await page.getByText('Your institutional address: …@uminho.pt.').waitFor();
      await page.screenshot({ path: screenshotPath(`register-${mode}`), fullPage: true });

      // Mistakes come back beside their fields, with what was typed kept.
      await page.getByLabel('Username').fill('Ana*');
      await page.getByLabel('Your name').fill('Ana Silva');
      await page.getByLabel('E-mail address').fill('ana@gmail.com');
      await page.getByLabel('Password', { exact: true }).fill('short');
      await page.getByLabel('Password again').fill('shorter');
      await page.getByRole('button', { name: 'Create account' }).click();
      await page.waitForURL(/\/register\?/);
      await page.getByText('A username starts with a lower-case letter').waitFor();
      await page.getByText('is not one of them').waitFor();
      await page.getByText('The two passwords differ.').waitFor();
      assert.equal(await page.getByLabel('Your name').inputValue(), 'Ana Silva');
      assert.equal(await page.getByLabel('E-mail address').inputValue(), 'ana@gmail.com');
      assert.equal(await page.getByLabel('Password', { exact: true }).inputValue(), '');
      assert.equal(await page.getByLabel('Username').getAttribute('aria-invalid'), 'true');
      await page.screenshot({ path: screenshotPath(`register-errors-${mode}`), fullPage: true });
      assert.equal(outboxMails(server).length, 0);

      await page.getByLabel('Username').fill('ana');
      await page.getByLabel('E-mail address').fill('Ana@UMinho.pt');
      await page.getByLabel('Password', { exact: true }).fill('correct horse battery');
      await page.getByLabel('Password again').fill('correct horse battery');
      await page.getByRole('button', { name: 'Create account' }).click();
      await page.waitForURL(/\/register\/sent/);
      await page.getByRole('heading', { name: 'Check your mail' }).waitFor();
      await page.getByText('ana@uminho.pt').waitFor();
      await page.screenshot({ path: screenshotPath(`register-sent-${mode}`), fullPage: true });

      const mails = outboxMails(server);
      assert.equal(mails.length, 1);
      assert.match(mails[0], /Subject: Confirm your Bootler account/);
      const link = linkIn(mails[0], '/confirm/');
      assert.ok(link.startsWith(server.url + '/confirm/'), link);

      await page.goto(link);
      await page.getByRole('heading', { name: 'Confirm your account' }).waitFor();
      await page.screenshot({ path: screenshotPath(`confirm-${mode}`), fullPage: true });
      await page.getByRole('button', { name: 'Activate my account' }).click();
      await page.waitForURL(/\/confirmed\?username=ana/);
      await page.getByRole('heading', { name: 'Your account is active' }).waitFor();
      await page.screenshot({ path: screenshotPath(`confirmed-${mode}`), fullPage: true });

      // The link works once.
      await page.goto(link);
      await page.getByRole('button', { name: 'Activate my account' }).click();
      await page.getByRole('alert').getByText('already used').waitFor();
      assert.equal(await page.getByRole('button', { name: 'Activate my account' }).count(), 0);
      await page.screenshot({ path: screenshotPath(`confirm-used-${mode}`), fullPage: true });

      assert.deepEqual(errors, []);
      await context.close();
    });
  });
}
