// The VPN page with a real OpenVPN server: a person downloads their
// profile from the page and connects with it (the client uses exactly the
// downloaded file); the page lists the session; an administrator sees who
// is connected, disconnects them and turns someone's access off; that
// person sees their access is off and gets no profile. With JavaScript and
// without.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootlerCommand, startBootler } from './support/server.mjs';
import { launchBrowser, screenshotPath, watchErrors, hydrated } from './support/browser.mjs';
import { generatePki, startOpenVpnClient, startOpenVpnServer } from './support/openvpn.mjs';

const PASSWORD = 'correct horse battery';

function freePort() {
  return new Promise((ok) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

for (const javaScriptEnabled of [true, false]) {
  const mode = javaScriptEnabled ? 'hydrated' : 'no-js';

  describe(`VPN page (${mode})`, () => {
    let server;
    let browser;
    let openvpn;
    let dir;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'bootler-vpn-e2e-'));
      server = await startBootler({
        ...generatePki(dir),
        BOOTLER_VPN__ENABLED: 'true',
        BOOTLER_VPN__SERVER: '127.0.0.1',
        BOOTLER_VPN__PORT: String(await freePort()),
        BOOTLER_VPN__NETWORKS: '["10.77.0.0/16"]',
        BOOTLER_VPN__MANAGEMENT: `127.0.0.1:${await freePort()}`,
      });
      await bootlerCommand(server, ['user', 'add', 'ana', '--email', 'ana@uminho.pt', '--name', 'Ana Silva'], `${PASSWORD}\n`);
      await bootlerCommand(server, ['user', 'add', 'cai', '--email', 'cai@uminho.pt', '--name', 'Caio Reis'], `${PASSWORD}\n`);
      await bootlerCommand(server, ['user', 'add', '--admin', 'boss', '--email', 'boss@uminho.pt', '--name', 'Beatriz Boss'], `${PASSWORD}\n`);
      const config = await bootlerCommand(server, ['vpn', 'server-config']);
      openvpn = await startOpenVpnServer(dir, config);
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await openvpn?.stop();
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    async function signIn(username) {
      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 1100 }, acceptDownloads: true });
      const page = await context.newPage();
      await page.goto(`${server.url}/login?next=/vpn`);
      if (javaScriptEnabled) await hydrated(page);
      await page.getByLabel('Username or e-mail address').fill(username);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(`${server.url}/vpn`);
      if (javaScriptEnabled) await hydrated(page);
      return { context, page, errors: watchErrors(page) };
    }

    test('download the profile, connect with it, be disconnected by an administrator, lose access', async () => {
      const ana = await signIn('ana');
      assert.match(await ana.page.getByTestId('vpn-access').innerText(), /On\s+You may connect as ana/);
      await ana.page.getByText('Server 127.0.0.1').waitFor();
      await ana.page.getByText('You have not connected yet.').waitFor();
      const [download] = await Promise.all([ana.page.waitForEvent('download'), ana.page.getByTestId('vpn-profile').click()]);
      assert.equal(download.suggestedFilename(), '127.0.0.1-ana.ovpn');
      const profile = join(dir, `${mode}-ana.ovpn`);
      await download.saveAs(profile);

      const client = startOpenVpnClient(dir, profile, 'ana', PASSWORD);
      assert.equal(await client.connected(), true, client.log());
      // The session shows on her page (the connect hook recorded it).
      const deadline = Date.now() + 15_000;
      for (;;) {
        await ana.page.reload();
        if ((await ana.page.getByTestId('vpn-session').count()) > 0) break;
        assert.ok(Date.now() < deadline, 'no session on the page');
        await new Promise((r) => setTimeout(r, 300));
      }
      assert.match(await ana.page.getByTestId('vpn-session').first().innerText(), /still connected\s+10\.8\.0\.\d+\s+127\.0\.0\.1:\d+/);
      await ana.page.screenshot({ path: screenshotPath(`vpn-user-${mode}`), fullPage: true });

      const boss = await signIn('boss');
      const row = boss.page.getByTestId('vpn-connected');
      assert.match(await row.innerText(), /^ana\s+10\.8\.0\.\d+\s+127\.0\.0\.1:\d+/);
      await boss.page.screenshot({ path: screenshotPath(`vpn-admin-${mode}`), fullPage: true });
      await boss.page.getByTestId('vpn-disconnect-ana').click();
      await boss.page.getByText('“ana” is disconnected (1 session).').waitFor();
      assert.equal(await boss.page.getByText('Nobody is connected.').count(), 1);
      await client.stop();

      // Turning cai's access off: the page says so, and cai gets no profile.
      await boss.page.getByTestId('vpn-toggle-cai').click();
      await boss.page.getByText('“cai” may no longer connect to the VPN.').waitFor();
      assert.equal(await boss.page.getByTestId('vpn-state-cai').innerText(), 'off');
      const cai = await signIn('cai');
      assert.match(await cai.page.getByTestId('vpn-access').innerText(), /Off\s+VPN access is off for your account/);
      assert.equal(await cai.page.getByTestId('vpn-profile').count(), 0);
      const refused = await cai.context.request.get(`${server.url}/api/v1/vpn/profile`);
      assert.equal(refused.status(), 403);
      // And OpenVPN refuses cai, with the profile ana downloaded.
      const denied = startOpenVpnClient(dir, profile, 'cai', PASSWORD);
      assert.equal(await denied.connected(), false, denied.log());
      await denied.stop();
      // And on again.
      await boss.page.getByTestId('vpn-toggle-cai').click();
      await boss.page.getByText('“cai” may connect to the VPN.').waitFor();

      for (const who of [ana, boss, cai]) {
        assert.deepEqual(who.errors, []);
        await who.context.close();
      }
    });
  });
}
