// Power in the browser: an administrator says how a node's power is
// reached (Wake-on-LAN here, to a UDP listener on loopback); its holder
// wakes it with a button and sees what happened. With JavaScript and
// without.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { bootlerCommand, startBootler } from './support/server.mjs';
import { launchBrowser, screenshotPath, watchErrors, hydrated } from './support/browser.mjs';

const PASSWORD = 'correct horse battery';
const MAC = '52-54-00-aa-cc-01';

for (const javaScriptEnabled of [true, false]) {
  const mode = javaScriptEnabled ? 'hydrated' : 'no-js';

  describe(`power (${mode})`, () => {
    let server;
    let browser;
    let listener;
    let hostId;
    const packets = [];

    const api = async (method, path, body) => {
      const res = await fetch(server.url + path, {
        method,
        headers: {
          authorization: 'Basic ' + Buffer.from(`boss:${PASSWORD}`).toString('base64'),
          'content-type': 'application/json',
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${await res.clone().text()}`);
      return res.json();
    };

    before(async () => {
      listener = createSocket('udp4');
      listener.on('message', (msg) => packets.push(msg));
      await new Promise((ok) => listener.bind(0, '127.0.0.1', ok));
      server = await startBootler();
      await bootlerCommand(server, ['user', 'add', '--admin', 'boss', '--email', 'boss@uminho.pt', '--name', 'Beatriz Boss'], `${PASSWORD}\n`);
      await bootlerCommand(server, ['user', 'add', 'ana', '--email', 'ana@uminho.pt', '--name', 'Ana Silva'], `${PASSWORD}\n`);
      assert.equal((await fetch(`${server.url}/boot/${MAC}?hostname=node1`)).status, 200);
      await api('POST', '/api/v1/pools', { name: 'lab' });
      const { hosts } = await api('GET', `/api/v1/hosts?mac=${MAC}`);
      hostId = hosts[0].id;
      await api('PUT', `/api/v1/hosts/${hostId}`, { pool: 'lab', system: 'local-boot' });
      await api('POST', `/api/v1/hosts/${hostId}/allocate`, { user: 'ana' });
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
      listener?.close();
    });

    async function signIn(context, username, next) {
      const page = await context.newPage();
      await page.goto(`${server.url}/login?next=${next}`);
      if (javaScriptEnabled) {
        await hydrated(page);
      }
      await page.getByLabel('Username or e-mail address').fill(username);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(server.url + next);
      if (javaScriptEnabled) {
        await hydrated(page);
      }
      return page;
    }

    test('an admin sets Wake-on-LAN; the holder wakes the node and sees it was sent', async () => {
      const path = `/hosts/${hostId}`;
      const bossContext = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 900 } });
      const boss = await signIn(bossContext, 'boss', path);
      const bossErrors = watchErrors(boss);
      await boss.getByTestId('power-state').getByText('No power driver yet').waitFor();
      // A wrong address: a sentence, nothing saved.
      await boss.getByLabel('Wake-on-LAN').check();
      await boss.getByLabel('Broadcast address').fill('everyone');
      await boss.getByTestId('save-power').click();
      await boss.getByText('“everyone” is not an IP address to send Wake-on-LAN packets to.').waitFor();
      await boss.getByTestId('power-state').getByText('No power driver yet').waitFor();
      await boss.getByLabel('Wake-on-LAN').check();
      await boss.getByLabel('Broadcast address').fill('127.0.0.1');
      await boss.getByLabel('UDP port').fill(String(listener.address().port));
      await boss.getByTestId('save-power').click();
      await boss.getByText("Saved how node1's power is reached.").waitFor();
      await boss.getByTestId('power-state').getByText('Power state unknown').waitFor();
      assert.deepEqual(bossErrors, []);
      await bossContext.close();

      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 900 } });
      const ana = await signIn(context, 'ana', path);
      const errors = watchErrors(ana);
      assert.equal(await ana.getByTestId('power-off').count(), 0, 'Wake-on-LAN cannot power off');
      assert.equal(await ana.locator('.power-settings').count(), 0, 'drivers are for admins');
      await ana.getByTestId('power-wake').click();
      await ana.getByText(/^Asked to power wake \(job #\d+\)/).waitFor();
      const deadline = Date.now() + 20_000;
      while (packets.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.ok(packets.length > 0, 'a magic packet arrived');
      assert.equal(packets[0].length, 102);
      assert.equal(packets[0].subarray(6, 12).toString('hex'), MAC.replaceAll('-', ''));
      // The outcome: live with JavaScript, on reload without.
      const last = ana.getByTestId('power-last');
      for (;;) {
        const text = (await last.count()) ? await last.innerText() : '';
        if (/sent; not confirmed/.test(text)) break;
        assert.ok(Date.now() < deadline + 10_000, `still: ${text}`);
        if (!javaScriptEnabled) await ana.reload();
        await new Promise((r) => setTimeout(r, 300));
      }
      assert.match(await last.innerText(), /^Last: power wake, .*, sent; not confirmed by a state read\.$/);
      await ana.screenshot({ path: screenshotPath(`power-${mode}`), fullPage: true });
      const { entries } = await api('GET', '/api/v1/audit?action=power');
      assert.equal(entries[0].actor, 'ana');
      assert.deepEqual(errors, []);
      await context.close();
    });

    test('power several nodes at once: the scope is shown and confirmed first', async () => {
      // A second node, both woken by Wake-on-LAN.
      const MAC2 = '52-54-00-aa-cc-02';
      assert.equal((await fetch(`${server.url}/boot/${MAC2}?hostname=node2`)).status, 200);
      const { hosts } = await api('GET', `/api/v1/hosts?mac=${MAC2}`);
      const wol = [{ driver: 'wol', broadcast: '127.0.0.1', port: listener.address().port }];
      await api('PUT', `/api/v1/hosts/${hosts[0].id}`, { pool: 'lab', system: 'local-boot', power: wol });
      await api('PUT', `/api/v1/hosts/${hostId}`, { power: wol });
      packets.length = 0;

      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 900 } });
      const boss = await signIn(context, 'boss', '/hosts');
      const errors = watchErrors(boss);
      // Nothing selected: a sentence.
      await boss.getByTestId('bulk-power').click();
      await boss.getByText('Select the nodes to power first').waitFor();
      await boss.getByLabel('Select node1').check();
      await boss.getByLabel('Select node2').check();
      await boss.getByLabel('With the selected nodes:').selectOption('wake');
      await boss.getByTestId('bulk-power').click();
      await boss.getByRole('heading', { name: 'Wake 2 nodes?' }).waitFor();
      const scope = await boss.getByTestId('power-scope').innerText();
      assert.match(scope, /node1/);
      assert.match(scope, /node2/);
      assert.equal(packets.length, 0, 'nothing is sent before confirming');
      await boss.screenshot({ path: screenshotPath(`power-bulk-${mode}`), fullPage: true });
      await boss.getByTestId('confirm-power').click();
      await boss.getByText('Asked to power wake 2 nodes; each node\'s page shows its result.').waitFor();
      const deadline = Date.now() + 20_000;
      const woken = () => new Set(packets.map((p) => p.subarray(6, 12).toString('hex')));
      while (woken().size < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual([...woken()].sort(), [MAC, MAC2].map((m) => m.replaceAll('-', '')).sort());
      assert.deepEqual(errors, []);
      await context.close();
    });

    test("a pool's Wake-on-LAN starts its nodes; an admin tests the connection", async () => {
      const MAC3 = '52-54-00-aa-cc-03';
      assert.equal((await fetch(`${server.url}/boot/${MAC3}?hostname=node3`)).status, 200);
      const { hosts } = await api('GET', `/api/v1/hosts?mac=${MAC3}`);
      await api('PUT', `/api/v1/hosts/${hosts[0].id}`, { pool: 'lab', system: 'local-boot' });
      packets.length = 0;

      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 1100 } });
      const boss = await signIn(context, 'boss', '/pools/lab');
      const errors = watchErrors(boss);
      await boss.getByLabel('Its nodes wake on LAN').check();
      await boss.getByLabel('Broadcast address').fill('127.0.0.1');
      await boss.getByLabel('UDP port').fill(String(listener.address().port));
      // A bad interface name: a sentence, nothing saved.
      await boss.getByLabel('Interface').fill('eth 0');
      await boss.getByRole('button', { name: 'Save pool' }).click();
      await boss.getByText('“eth 0” is not a network interface\'s name (like eno1 or br0).').waitFor();
      assert.equal((await api('GET', '/api/v1/pools')).pools.find((p) => p.name === 'lab').wake, null);
      await boss.getByLabel('Its nodes wake on LAN').check();
      await boss.getByLabel('Broadcast address').fill('127.0.0.1');
      await boss.getByLabel('UDP port').fill(String(listener.address().port));
      await boss.getByLabel('Interface').fill('lo');
      await boss.getByRole('button', { name: 'Save pool' }).click();
      await boss.getByText('Saved the settings of pool lab.').waitFor();
      assert.equal(await boss.getByLabel('Interface').inputValue(), 'lo');
      await boss.getByRole('group', { name: 'Power' }).screenshot({ path: screenshotPath(`pool-wake-${mode}`) });

      // node3 has no settings of its own: the pool's Wake-on-LAN.
      await boss.goto(`${server.url}/hosts/${hosts[0].id}`);
      if (javaScriptEnabled) await hydrated(boss);
      await boss.getByTestId('pool-wake').getByText('to 127.0.0.1:' + listener.address().port + ' via lo').waitFor();
      await boss.getByTestId('power-test').click();
      await boss.getByText(/Wake-on-LAN to 127\.0\.0\.1:\d+ via lo for 52:54:00:aa:cc:03: Nothing answers Wake-on-LAN/).waitFor();
      await boss.screenshot({ path: screenshotPath(`power-test-${mode}`), fullPage: true });
      await boss.getByTestId('power-wake').click();
      await boss.getByText(/^Asked to power wake \(job #\d+\)/).waitFor();
      const deadline = Date.now() + 20_000;
      while (packets.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.ok(packets.length > 0, 'a magic packet arrived');
      assert.equal(packets[0].subarray(6, 12).toString('hex'), MAC3.replaceAll('-', ''));
      assert.deepEqual(errors, []);
      await context.close();
    });
  });
}
