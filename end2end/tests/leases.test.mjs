// Leasing in the browser: Ana gets a node with one click, lends it to Rui;
// Rui finds it under "My nodes" and releases it; it is free again. With
// JavaScript and without.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bootlerCommand, startBootler } from './support/server.mjs';
import { launchBrowser, screenshotPath, watchErrors, hydrated, shows } from './support/browser.mjs';

const PASSWORD = 'correct horse battery';
const MAC = '52-54-00-aa-bb-01';

for (const javaScriptEnabled of [true, false]) {
  const mode = javaScriptEnabled ? 'hydrated' : 'no-js';

  describe(`leases (${mode})`, () => {
    let server;
    let browser;

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
      server = await startBootler();
      await bootlerCommand(server, ['user', 'add', '--admin', 'boss', '--email', 'boss@uminho.pt', '--name', 'Beatriz Boss'], `${PASSWORD}\n`);
      await bootlerCommand(server, ['user', 'add', 'ana', '--email', 'ana@uminho.pt', '--name', 'Ana Silva'], `${PASSWORD}\n`);
      await bootlerCommand(server, ['user', 'add', 'rui', '--email', 'rui@uminho.pt', '--name', 'Rui Costa'], `${PASSWORD}\n`);
      assert.equal((await fetch(`${server.url}/boot/${MAC}?hostname=gpu1`)).status, 200);
      await api('POST', '/api/v1/pools', { name: 'gpu', description: 'A100 nodes', default_lease_hours: 72 });
      const { hosts } = await api('GET', `/api/v1/hosts?mac=${MAC}`);
      await api('PUT', `/api/v1/hosts/${hosts[0].id}`, { pool: 'gpu', system: 'local-boot' });
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
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

    test('get a node with one click, lend it, the borrower releases it', async () => {
      const anaContext = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 900 } });
      const ana = await signIn(anaContext, 'ana', '/hosts');
      const anaErrors = watchErrors(ana);
      await ana.getByRole('heading', { name: 'My nodes', exact: true }).waitFor();
      await ana.getByText('You hold no nodes yet. Get one above.').waitFor();
      await ana.getByRole('option', { name: 'gpu — 1 of 1 free' }).waitFor({ state: 'attached' });
      await ana.screenshot({ path: screenshotPath(`leases-get-${mode}`), fullPage: true });

      // One click.
      await ana.getByTestId('get-node').click();
      await ana.getByText(/^gpu1 is yours until \d{4}-\d\d-\d\d \d\d:\d\d UTC\.$/).waitFor();
      await ana.getByRole('heading', { name: /gpu1/ }).waitFor();
      assert.match(await ana.getByTestId('lease-text').innerText(), /^You hold it since .*, until .*\. You are reminded before the end/);
      await ana.screenshot({ path: screenshotPath(`leases-held-${mode}`), fullPage: true });

      // The pool is empty now: a second click says so.
      await ana.goto(`${server.url}/hosts`);
      await ana.getByRole('option', { name: /^gpu — 0 of 1 free, next lease ends / }).waitFor({ state: 'attached' });
      await ana.getByTestId('get-node').click();
      await ana.getByText(/^No free node in pool “gpu” \(1 held, next lease ends at /).waitFor();
      await ana.getByRole('link', { name: 'gpu1' }).click();
      await ana.getByRole('heading', { name: /gpu1/ }).waitFor();

      // Lend it to Rui (a name that does not exist first).
      await ana.getByLabel('Lend to').fill('nobody');
      await ana.getByTestId('lend').click();
      await ana.getByText('There is no user “nobody”.').waitFor();
      await ana.getByLabel('Lend to').fill('rui');
      await ana.getByTestId('lend').click();
      await ana.getByText(/^gpu1 is now rui's, until /).waitFor();
      await ana.getByText('You hold no nodes yet. Get one above.').waitFor();
      assert.deepEqual(anaErrors, []);

      // Rui finds it under "My nodes" and releases it.
      const ruiContext = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 900 } });
      const rui = await signIn(ruiContext, 'rui', '/hosts');
      const ruiErrors = watchErrors(rui);
      const row = rui.locator('tr[data-host]', { hasText: 'gpu1' });
      await row.waitFor();
      assert.match(await row.innerText(), /rui/);
      await rui.screenshot({ path: screenshotPath(`leases-my-nodes-${mode}`), fullPage: true });
      await rui.getByRole('link', { name: 'gpu1' }).click();
      await shows(rui, rui.getByRole('heading', { name: /gpu1/ }), ruiErrors);
      await rui.getByTestId('release').click();
      await rui.getByText('gpu1 is released; it went back to its pool.').waitFor();
      await rui.getByText('You hold no nodes yet. Get one above.').waitFor();
      await rui.getByRole('option', { name: 'gpu — 1 of 1 free' }).waitFor({ state: 'attached' });

      // His history: what he did and what concerned him.
      await rui.getByRole('link', { name: 'History' }).click();
      await rui.getByRole('heading', { name: 'History', exact: true }).waitFor();
      await rui.locator('tr[data-action="release"]').waitFor();
      const actions = await rui.locator('table.history tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.action));
      assert.deepEqual(actions, ['release', 'lend']);
      await rui.getByLabel('Action').selectOption('lend');
      await rui.getByRole('button', { name: 'Filter' }).click();
      await rui.waitForURL(/action=lend/);
      await rui.locator('tr[data-action="release"]').waitFor({ state: 'detached' });
      assert.equal(await rui.locator('table.history tbody tr').count(), 1);
      assert.match(await rui.locator('tr[data-action="lend"]').innerText(), /ana gave it to rui/);
      await rui.screenshot({ path: screenshotPath(`leases-history-${mode}`), fullPage: true });
      assert.deepEqual(ruiErrors, []);

      // The audit log has each step, with who did it.
      const { entries } = await api('GET', '/api/v1/audit');
      assert.deepEqual(entries.map((e) => `${e.actor} ${e.action}`), ['rui release', 'ana lend', 'ana allocate']);
      await anaContext.close();
      await ruiContext.close();
    });

    test('an admin sets who may get nodes, for how long, and takes one out for repairs', async () => {
      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 900 } });
      const page = await signIn(context, 'boss', '/hosts');
      const errors = watchErrors(page);
      await page.locator('#pools-title').waitFor();
      await page.getByRole('link', { name: 'Settings' }).click();
      await page.getByRole('heading', { name: 'gpu', exact: true }).waitFor();
      assert.equal(await page.getByLabel('Lease length (hours)').inputValue(), '72');
      // A default longer than the longest: a sentence, nothing saved.
      await page.getByLabel('Longest lease (hours)').fill('48');
      await page.getByRole('button', { name: 'Save pool' }).click();
      await page.getByText('The default lease (72 hours) is longer than the longest one (48 hours).').waitFor();
      await page.getByLabel('Lease length (hours)').fill('24');
      await page.getByLabel('Longest lease (hours)').fill('48');
      await page.getByLabel('Nodes per person').fill('1');
      await page.getByLabel('Who may get nodes from it').fill('ana');
      await page.getByRole('button', { name: 'Save pool' }).click();
      await page.getByText('Saved the settings of pool gpu.').waitFor();
      assert.equal(await page.getByLabel('Who may get nodes from it').inputValue(), 'ana');
      assert.equal(await page.getByLabel('Lease length (hours)').inputValue(), '24');
      await page.screenshot({ path: screenshotPath(`pool-settings-${mode}`), fullPage: true });

      // Rui may no longer draw from it.
      const ruiContext = await browser.newContext({ javaScriptEnabled });
      const rui = await signIn(ruiContext, 'rui', '/hosts');
      await rui.getByText('There is no pool you may draw nodes from yet.').waitFor();
      await ruiContext.close();

      // Maintenance takes the node out of allocation.
      await page.goto(`${server.url}/hosts`);
      await page.getByRole('link', { name: 'gpu1' }).click();
      await page.getByRole('heading', { name: /gpu1/ }).waitFor();
      await page.getByLabel('In maintenance').check();
      await page.getByRole('button', { name: 'Save boot options' }).click();
      await page.getByText('Saved the boot options of gpu1.').waitFor();
      assert.match(await page.getByTestId('lease-text').innerText(), /^In maintenance: out of allocation\./);
      const { pools } = await api('GET', '/api/v1/pools');
      assert.equal(pools[0].free, 0);
      await page.getByLabel('In maintenance').uncheck();
      await page.getByRole('button', { name: 'Save boot options' }).click();
      await page.getByText('Saved the boot options of gpu1.').waitFor();
      assert.equal((await api('GET', '/api/v1/pools')).pools[0].free, 1);
      assert.deepEqual(errors, []);
      await context.close();
    });

    test('a group opens a pool; others see a node taken and until when', async () => {
      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 900 } });
      const page = await signIn(context, 'boss', '/admin/users');
      const errors = watchErrors(page);
      const groups = page.locator('#groups');
      await groups.getByText('No groups yet.').waitFor();
      await groups.getByLabel('Group').fill('hpc');
      await groups.getByLabel('Members').fill('ana nobody');
      await groups.getByRole('button', { name: 'Save group' }).click();
      await page.getByText('There is no account named “nobody”.').waitFor();
      await page.locator('#groups').getByLabel('Group').fill('hpc');
      await page.locator('#groups').getByLabel('Members').fill('ana, rui');
      await page.locator('#groups').getByRole('button', { name: 'Save group' }).click();
      await page.getByText('The group “hpc” has 2 members; pools name it as @hpc.').waitFor();
      assert.equal(await page.locator('#groups tbody tr').innerText(), '@hpc\tana, rui');
      // A node limit for Ana, on the same page.
      await page.getByLabel('Node limit of ana', { exact: true }).fill('1');
      await page.getByRole('button', { name: 'Set the node limit of ana' }).click();
      await page.getByText('“ana” may now hold at most 1 node.').waitFor();
      assert.match(await page.locator("tr", { hasText: "ana@uminho.pt" }).innerText(), /0 held, limit/);
      assert.equal(await page.getByLabel("Node limit of ana", { exact: true }).inputValue(), "1");
      assert.equal((await api('GET', '/api/v1/quotas/ana')).quota.max_hosts, 1);
      await page.screenshot({ path: screenshotPath(`groups-${mode}`), fullPage: true });

      await page.goto(`${server.url}/pools/gpu`);
      await page.getByLabel('Who may get nodes from it').fill('@hpc');
      await page.getByRole('button', { name: 'Save pool' }).click();
      await page.getByText('Saved the settings of pool gpu.').waitFor();

      // Rui, by the group, gets the node; Ana sees it taken and until when.
      const ruiContext = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 900 } });
      const rui = await signIn(ruiContext, 'rui', '/hosts');
      await rui.getByTestId('get-node').click();
      await rui.getByText(/^gpu1 is yours until /).waitFor();
      const anaContext = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 900 } });
      const ana = await signIn(anaContext, 'ana', '/hosts');
      const anaErrors = watchErrors(ana);
      await ana.getByRole('link', { name: 'Which nodes are taken, and until when' }).click();
      await ana.getByRole('heading', { name: 'Availability' }).waitFor();
      const row = ana.locator('#pool-gpu tbody tr', { hasText: 'gpu1' });
      const label = await row.locator('.slot').innerText();
      const until = label.match(/^taken until (\d{4}-\d\d-\d\d) \d\d:\d\d UTC$/);
      assert.ok(until, label);
      assert.equal(await row.getByRole('link').count(), 0, 'not hers to open');
      assert.doesNotMatch(await ana.locator('main').innerText(), /rui/);
      // Taken from today until the day the lease ends, free after.
      const days = await row.locator('td.day').evaluateAll((cells) => cells.map((c) => c.className));
      assert.equal(days.length, 14);
      const today = new Date().toISOString().slice(0, 10);
      const end = (Date.parse(until[1]) - Date.parse(today)) / 86_400_000;
      assert.ok(end >= 1 && end < 13, `${today} → ${until[1]}`);
      assert.deepEqual(days, days.map((_, i) => (i < end ? 'day day-taken' : i === end ? 'day day-ends' : 'day')));
      await ana.screenshot({ path: screenshotPath(`availability-${mode}`), fullPage: true });
      assert.deepEqual(anaErrors, []);

      // Rui sees it his, with a link to it; the admin sees who holds it.
      await rui.goto(`${server.url}/pools`);
      const his = rui.locator('#pool-gpu tbody tr', { hasText: 'gpu1' });
      assert.match(await his.locator('.slot').innerText(), /^yours until /);
      await his.getByRole('link', { name: 'gpu1' }).waitFor();
      await page.goto(`${server.url}/pools`);
      assert.match(await page.locator('#pool-gpu tbody tr', { hasText: 'gpu1' }).innerText(), /rui/);
      assert.deepEqual(errors, []);

      // Released again (through the API), for whatever runs next.
      const { hosts } = await api('GET', `/api/v1/hosts?mac=${MAC}`);
      await api('POST', `/api/v1/hosts/${hosts[0].id}/release`, {});
      await anaContext.close();
      await ruiContext.close();
      await context.close();
    });
  });
}
