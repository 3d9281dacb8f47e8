// The admin users page: find accounts, approve and delete registrations,
// disable and enable, promote and demote; with JavaScript and without.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bootlerCommand, startBootler } from './support/server.mjs';
import { launchBrowser, screenshotPath, watchErrors, hydrated } from './support/browser.mjs';

const PASSWORD = 'correct horse battery';

function basic(username) {
  return { Authorization: 'Basic ' + Buffer.from(`${username}:${PASSWORD}`).toString('base64') };
}

for (const javaScriptEnabled of [true, false]) {
  const mode = javaScriptEnabled ? 'hydrated' : 'no-js';

  describe(`admin users page (${mode})`, () => {
    let server;
    let browser;

    before(async () => {
      server = await startBootler({ BOOTLER_ACCOUNTS__ALLOWED_DOMAINS: '["uminho.pt"]' });
      await bootlerCommand(server, ['user', 'add', '--admin', 'boss', '--email', 'boss@uminho.pt', '--name', 'Beatriz Boss'], `${PASSWORD}\n`);
      await bootlerCommand(server, ['user', 'add', 'ana', '--email', 'ana@uminho.pt', '--name', 'Ana Silva'], `${PASSWORD}\n`);
      for (const [username, name] of [['carla', 'Carla Costa'], ['typo', 'Tiago Typo']]) {
        const res = await fetch(server.url + '/api/v1/register', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ username, display_name: name, email: `${username}@uminho.pt`, password: PASSWORD }),
        });
        assert.equal(res.status, 202);
      }
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    async function signIn(username) {
      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 800 } });
      const page = await context.newPage();
      await page.goto(server.url + '/login');
      if (javaScriptEnabled) {
        await hydrated(page);
      }
      await page.getByLabel('Username or e-mail address').fill(username);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(server.url + '/');
      return { context, page };
    }

    test('an admin approves, deletes, disables, enables, promotes and demotes', async () => {
      const { context, page } = await signIn('boss');
      const errors = watchErrors(page);
      await page.getByRole('link', { name: 'Users', exact: true }).click();
      await page.waitForURL(server.url + '/admin/users');
      await page.getByText('4 accounts').waitFor();
      await page.screenshot({ path: screenshotPath(`admin-users-${mode}`), fullPage: true });

      // Pending registrations, behind their own filter.
      await page.getByRole('link', { name: /Pending/ }).click();
      await page.waitForURL(/status=pending/);
      await page.getByText('2 accounts').waitFor();
      assert.equal(await page.getByRole('button', { name: 'Disable carla' }).count(), 0);
      await page.getByRole('button', { name: 'Approve carla' }).click();
      await page.getByRole('status').getByText('“carla” is approved and can sign in.').waitFor();
      assert.match(page.url(), /status=pending/, 'back on the same view');
      assert.equal((await fetch(server.url + '/api/v1/me', { headers: basic('carla') })).status, 200);
      await page.getByRole('button', { name: 'Delete typo' }).click();
      await page.getByRole('status').getByText('The registration “typo” was deleted.').waitFor();
      await page.getByText('No account matches.').waitFor();

      // Search.
      await page.getByRole('link', { name: 'All', exact: true }).click();
      await page.getByLabel('Search accounts').fill('SILVA');
      await page.getByRole('button', { name: 'Search' }).click();
      await page.waitForURL(/q=SILVA/);
      await page.getByText('1 account').waitFor();
      await page.getByRole('cell', { name: 'ana', exact: true }).waitFor();

      // Disable: ana's API access and sessions end at once.
      let anaSession = await signIn('ana');
      assert.equal((await anaSession.page.request.get(server.url + '/api/v1/me')).status(), 200);
      await page.getByRole('button', { name: 'Disable ana' }).click();
      await page.getByRole('status').getByText('“ana” is disabled and signed out everywhere.').waitFor();
      await page.getByText('disabled', { exact: true }).waitFor();
      assert.match(page.url(), /q=SILVA/);
      await page.screenshot({ path: screenshotPath(`admin-users-disabled-${mode}`), fullPage: true });
      assert.equal((await anaSession.page.request.get(server.url + '/api/v1/me')).status(), 401);
      const refused = await fetch(server.url + '/api/v1/me', { headers: basic('ana') });
      assert.equal(refused.status, 403);
      assert.match((await refused.json()).error.message, /disabled/);

      await page.getByRole('button', { name: 'Enable ana' }).click();
      await page.getByRole('status').getByText('“ana” is enabled again.').waitFor();
      assert.equal((await fetch(server.url + '/api/v1/me', { headers: basic('ana') })).status, 200);
      await anaSession.context.close();
      anaSession = await signIn('ana');

      // Promote: ana sees the users page; demote: she no longer does.
      await page.getByRole('button', { name: 'Make admin ana' }).click();
      await page.getByRole('status').getByText('“ana” is now an administrator.').waitFor();
      await anaSession.page.goto(server.url + '/admin/users');
      await anaSession.page.getByText('3 accounts').waitFor();
      await page.getByRole('button', { name: 'Remove admin ana' }).click();
      await page.getByRole('status').getByText('“ana” is no longer an administrator.').waitFor();
      await anaSession.page.reload();
      await anaSession.page.getByText('This page is for the lab\'s administrators.').waitFor();
      assert.equal(await anaSession.page.getByRole('link', { name: 'Users', exact: true }).count(), 0);
      await anaSession.page.screenshot({ path: screenshotPath(`admin-users-refused-${mode}`), fullPage: true });

      // Nobody acts on their own account.
      await page.goto(server.url + '/admin/users?q=boss');
      await page.getByText('That is you').waitFor();
      assert.equal(await page.getByRole('button', { name: 'Disable boss' }).count(), 0);
      assert.deepEqual(errors, []);
      await anaSession.context.close();
      await context.close();
    });
  });
}
