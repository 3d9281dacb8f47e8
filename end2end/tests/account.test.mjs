// The account page: name, SSH keys and API tokens, with JavaScript and
// without.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bootlerCommand, startBootler } from './support/server.mjs';
import { launchBrowser, screenshotPath, watchErrors, hydrated } from './support/browser.mjs';

const KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII54pw2MuYAO5C89/IFd+pI5pTYu/7/YyrVEv+lKk3xa ana@laptop';
const FINGERPRINT = 'SHA256:FwnmtEIDMmcpJYb+83of9cxbm/gsNFiir08UiSD06tA';

for (const javaScriptEnabled of [true, false]) {
  const mode = javaScriptEnabled ? 'hydrated' : 'no-js';

  describe(`account page (${mode})`, () => {
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

    async function signedIn() {
      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1100, height: 900 } });
      const page = await context.newPage();
      await page.goto(server.url + '/login?next=/account');
      if (javaScriptEnabled) {
        await hydrated(page);
      }
      await page.getByLabel('Username or e-mail address').fill('ana');
      await page.getByLabel('Password').fill('correct horse battery');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(server.url + '/account');
      return { context, page };
    }

    test('change the display name', async () => {
      const { context, page } = await signedIn();
      const errors = watchErrors(page);
      const profile = page.locator('#profile');
      await profile.getByLabel('Your name').fill('   ');
      await profile.getByRole('button', { name: 'Save' }).click();
      await profile.getByText('Enter your name as colleagues know it.').waitFor();
      await profile.getByLabel('Your name').fill('Ana M. Silva');
      await profile.getByRole('button', { name: 'Save' }).click();
      await profile.getByRole('status').getByText('Your name was saved.').waitFor();
      await page.getByRole('link', { name: 'Ana M. Silva (ana)' }).waitFor();
      const me = await (await page.request.get(server.url + '/api/v1/me')).json();
      assert.equal(me.user.display_name, 'Ana M. Silva');
      assert.deepEqual(errors, []);
      await context.close();
    });

    test('add and remove SSH keys, with clear errors', async () => {
      const { context, page } = await signedIn();
      const errors = watchErrors(page);
      const keys = page.locator('#keys');
      await keys.getByText('No keys yet.').waitFor();

      await keys.getByLabel('Public key').fill('-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----');
      await keys.getByRole('button', { name: 'Add key' }).click();
      await keys.getByText('This is a private key.').waitFor();
      assert.equal(await keys.getByLabel('Public key').getAttribute('aria-invalid'), 'true');

      await keys.getByLabel('Public key').fill('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII54');
      await keys.getByRole('button', { name: 'Add key' }).click();
      await keys.getByText('cut short').waitFor();
      // What was typed comes back, to fix rather than paste again.
      assert.equal(await keys.getByLabel('Public key').inputValue(), 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII54');
      await page.screenshot({ path: screenshotPath(`account-key-error-${mode}`), fullPage: true });

      await keys.getByLabel('Public key').fill(KEY);
      await keys.getByLabel('Name (optional)').fill('laptop');
      await keys.getByRole('button', { name: 'Add key' }).click();
      await keys.getByRole('status').getByText(`Key “laptop” added (${FINGERPRINT}).`).waitFor();
      await keys.getByRole('cell', { name: FINGERPRINT }).waitFor();
      const listed = await (await page.request.get(server.url + '/api/v1/me/keys')).json();
      assert.deepEqual(listed.keys.map((k) => [k.name, k.fingerprint]), [['laptop', FINGERPRINT]]);

      await keys.getByLabel('Public key').fill(KEY);
      await keys.getByRole('button', { name: 'Add key' }).click();
      await keys.getByText('You already added this key').waitFor();
      await page.screenshot({ path: screenshotPath(`account-keys-${mode}`), fullPage: true });

      await keys.getByRole('button', { name: 'Remove the key laptop' }).click();
      await keys.getByRole('status').getByText('The key was removed.').waitFor();
      await keys.getByText('No keys yet.').waitFor();
      assert.deepEqual((await (await page.request.get(server.url + '/api/v1/me/keys')).json()).keys, []);
      assert.deepEqual(errors, []);
      await context.close();
    });

    test('an API token is shown once, works, and stops working when revoked', async () => {
      const { context, page } = await signedIn();
      const errors = watchErrors(page);
      const tokens = page.locator('#tokens');
      await tokens.getByText('No tokens yet.').waitFor();
      await tokens.getByLabel('New token\'s name').fill('nightly backup');
      await tokens.getByRole('button', { name: 'Create token' }).click();
      await tokens.getByText('Copy your new token “nightly backup” now.').waitFor();
      const secret = (await tokens.getByTestId('new-token').innerText()).trim();
      assert.match(secret, /^bt_[A-Za-z0-9_-]{20,}$/);
      assert.ok(!page.url().includes(secret), 'the secret never goes into a URL');
      await page.screenshot({ path: screenshotPath(`account-token-${mode}`), fullPage: true });

      const api = (token) => fetch(server.url + '/api/v1/me', { headers: { Authorization: `Bearer ${token}` } });
      const me = await api(secret);
      assert.equal(me.status, 200);
      assert.equal((await me.json()).user.username, 'ana');

      // Shown once: a reload no longer has it.
      await page.reload();
      await tokens.getByRole('cell', { name: 'nightly backup', exact: true }).waitFor();
      assert.equal(await tokens.getByTestId('new-token').count(), 0);
      assert.equal(await page.getByText(secret).count(), 0);

      // The same name twice is refused beside the field.
      await tokens.getByLabel('New token\'s name').fill('nightly backup');
      await tokens.getByRole('button', { name: 'Create token' }).click();
      await tokens.getByText('You already have a token named “nightly backup”').waitFor();

      await tokens.getByRole('button', { name: 'Revoke the token nightly backup' }).click();
      await tokens.getByRole('status').getByText('The token was revoked').waitFor();
      await tokens.getByText('No tokens yet.').waitFor();
      assert.equal((await api(secret)).status, 401);
      assert.deepEqual(errors, []);
      await context.close();
    });

    test('signed out, the page says to sign in', async () => {
      const context = await browser.newContext({ javaScriptEnabled });
      const page = await context.newPage();
      await page.goto(server.url + '/account');
      await page.getByRole('link', { name: 'Sign in' }).first().waitFor();
      await page.getByText('to see your account.').waitFor();
      await context.close();
    });
  });
}
