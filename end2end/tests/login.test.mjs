// Signing in and out from the browser, with JavaScript and without; wrong
// passwords get one generic answer and are rate limited.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bootlerCommand, linkIn, outboxMails, startBootler } from './support/server.mjs';
import { launchBrowser, screenshotPath, watchErrors, hydrated } from './support/browser.mjs';

for (const javaScriptEnabled of [true, false]) {
  const mode = javaScriptEnabled ? 'hydrated' : 'no-js';

  describe(`sign-in (${mode})`, () => {
    let server;
    let browser;

    before(async () => {
      server = await startBootler();
      await bootlerCommand(server, ['user', 'add', 'ana', '--email', 'ana@uminho.pt', '--name', 'Ana Silva'], 'correct horse battery\n');
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    test('sign in, see who is signed in, sign out', async () => {
      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1100, height: 800 } });
      const page = await context.newPage();
      const errors = watchErrors(page);

      await page.goto(server.url + '/login');
      if (javaScriptEnabled) {
        await hydrated(page);
      }
      await page.getByLabel('Username or e-mail address').fill('ana');
      await page.getByLabel('Password').fill('not the password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').getByText('Wrong username or password.').waitFor();
      assert.equal(await page.getByLabel('Username or e-mail address').inputValue(), 'ana');
      await page.screenshot({ path: screenshotPath(`login-error-${mode}`), fullPage: true });

      await page.getByLabel('Password').fill('correct horse battery');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(server.url + '/');
      await page.getByText('Ana Silva (ana)').waitFor();
      await page.getByRole('heading', { name: 'Welcome back' }).waitFor();
      const cookies = await context.cookies();
      const session = cookies.find((c) => c.name === 'bootler_session');
      assert.ok(session, 'session cookie set');
      assert.equal(session.httpOnly, true);
      assert.equal(session.sameSite, 'Lax');
      await page.screenshot({ path: screenshotPath(`signed-in-${mode}`), fullPage: true });

      const me = await page.request.get(server.url + '/api/v1/me');
      assert.equal(me.status(), 200);
      assert.equal((await me.json()).user.username, 'ana');

      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL(server.url + '/');
      await page.getByRole('link', { name: 'Sign in' }).waitFor();
      assert.equal((await page.request.get(server.url + '/api/v1/me')).status(), 401);
      assert.deepEqual(errors, []);
      await context.close();
    });

    test('forgotten password: mail, new password, then change it on the account page', async () => {
      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1100, height: 800 } });
      const page = await context.newPage();
      const errors = watchErrors(page);
      await page.goto(server.url + '/login');
      await page.getByRole('link', { name: 'Forgot your password?' }).click();
      await page.waitForURL(server.url + '/forgot');
      await page.getByLabel('Username or e-mail address').fill('ana@uminho.pt');
      await page.getByRole('button', { name: 'Send the link' }).click();
      await page.getByRole('status').getByText('a link to choose a new password is on its way').waitFor();
      await page.screenshot({ path: screenshotPath(`forgot-sent-${mode}`), fullPage: true });

      const mails = outboxMails(server).filter((m) => m.includes('Reset your Bootler password'));
      assert.equal(mails.length, 1);
      await page.goto(linkIn(mails[0], '/reset/'));
      await page.getByLabel('New password', { exact: true }).fill('a brand new password');
      await page.getByLabel('New password again').fill('a brand new password');
      await page.screenshot({ path: screenshotPath(`reset-${mode}`), fullPage: true });
      await page.getByRole('button', { name: 'Set the password' }).click();
      await page.getByRole('status').getByText('Your password was changed').waitFor();
      assert.equal(await page.getByLabel('Username or e-mail address').inputValue(), 'ana');
      await page.getByLabel('Password').fill('a brand new password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(server.url + '/');

      await page.getByRole('link', { name: 'Ana Silva (ana)' }).click();
      await page.waitForURL(server.url + '/account');
      await page.getByLabel('Current password').fill('a brand new password');
      await page.getByLabel('New password', { exact: true }).fill('correct horse battery');
      await page.getByLabel('New password again').fill('correct horse battery');
      await page.getByRole('button', { name: 'Change password' }).click();
      await page.getByRole('status').getByText('Your password was changed.').waitFor();
      await page.screenshot({ path: screenshotPath(`account-${mode}`), fullPage: true });
      assert.deepEqual(errors, []);
      await context.close();
    });

    test('many wrong passwords are rate limited with a clear message', async () => {
      const context = await browser.newContext({ javaScriptEnabled });
      const page = await context.newPage();
      for (let i = 0; i < 6; i++) {
        await page.goto(server.url + '/login');
        if (javaScriptEnabled) {
          await hydrated(page);
        }
        await page.getByLabel('Username or e-mail address').fill('ana');
        await page.getByLabel('Password').fill(`wrong ${i}`);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('alert').waitFor();
      }
      const message = await page.getByRole('alert').innerText();
      assert.match(message, /Too many failed sign-ins\. Try again in \d+ s\./);
      await page.screenshot({ path: screenshotPath(`login-limited-${mode}`), fullPage: true });
      await context.close();
    });
  });
}
