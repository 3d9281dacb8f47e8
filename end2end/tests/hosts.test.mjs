// The hosts pages: a node that network-boots appears in the list; an admin
// creates a pool, enrols it, chooses its templates and variables (the JSON
// is checked as it is typed), marks it, and watches the install happen on
// the live timeline. With JavaScript and without.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bootlerCommand, startBootler } from './support/server.mjs';
import { launchBrowser, screenshotPath, watchErrors, hydrated } from './support/browser.mjs';

const PASSWORD = 'correct horse battery';
const MAC = '52-54-00-12-34-56';

for (const javaScriptEnabled of [true, false]) {
  const mode = javaScriptEnabled ? 'hydrated' : 'no-js';

  describe(`hosts pages (${mode})`, () => {
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
      // A node network-boots: it registers itself.
      const boot = await fetch(`${server.url}/boot/${MAC}?hostname=node1`);
      assert.equal(boot.status, 200);
      await api('POST', '/api/v1/templates', {
        name: 'netinst', kind: 'system',
        body: '#!ipxe\nkernel {{ base_url }}/images/debian/linux auto=true url={{ unattended_url }} hostname={{ host.name }}\nboot\n',
      });
      await api('POST', '/api/v1/templates', {
        name: 'answers', kind: 'unattended',
        body: 'd-i partman-auto/disk string /dev/{{ vars.disk }}\nd-i preseed/late_command string wget -q -O /dev/null {{ done_url }}\n',
      });
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

    test('enrol, choose the install, mark, and watch it happen', async () => {
      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 900 } });
      const page = await signIn(context, 'boss', '/hosts');
      const errors = watchErrors(page);

      // The list: the node is there, discovered.
      const row = page.locator('tr[data-host]', { hasText: 'node1' });
      await row.waitFor();
      assert.equal(await row.getAttribute('data-state'), 'discovered');
      assert.match(await row.innerText(), /52:54:00:12:34:56/);

      // A pool (with a bad name first: a sentence, nothing created).
      await page.getByLabel('New pool').fill('rack 1');
      await page.getByRole('button', { name: 'Create pool' }).click();
      await page.getByText('“rack 1” is not a pool name').waitFor();
      await page.getByLabel('New pool').fill('rack1');
      await page.getByLabel('Description').fill('Dell R640');
      await page.getByRole('button', { name: 'Create pool' }).click();
      await page.getByText('Created the pool rack1.').waitFor();
      await page.screenshot({ path: screenshotPath(`hosts-list-${mode}`), fullPage: true });

      // Filters: by state and by MAC; a bad MAC is explained.
      await page.getByRole('link', { name: 'Installed' }).click();
      await page.getByText('No host matches these filters.').waitFor();
      await page.getByRole('link', { name: 'All', exact: true }).click();
      await page.getByLabel('MAC address').fill('nonsense');
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.getByText('is not a MAC address').waitFor();
      await page.getByLabel('MAC address').fill('52:54:00:12:34:56');
      await page.getByRole('button', { name: 'Filter' }).click();
      await row.waitFor();

      // The host page.
      await page.getByRole('link', { name: 'node1' }).click();
      await page.getByRole('heading', { name: /node1/ }).waitFor();
      const hostUrl = page.url().split('?')[0];
      await page.getByText('is in no pool yet').waitFor();

      // Boot options; broken JSON first.
      await page.getByLabel('Pool').selectOption('rack1');
      await page.getByLabel('System template').selectOption({ label: 'netinst' });
      await page.getByLabel('Unattended template').selectOption({ label: 'answers' });
      await page.getByLabel('Installer interface').fill('enp3s0');
      const vars = page.getByLabel('Variables (JSON)');
      await vars.fill('{"disk": "nvme0n1",}');
      const save = page.getByRole('button', { name: 'Save boot options' });
      if (javaScriptEnabled) {
        // Checked as it is typed; the button waits for valid JSON.
        await page.getByText(/Not valid JSON \(line 1, column \d+\)/).waitFor();
        assert.equal(await save.isDisabled(), true);
        await page.screenshot({ path: screenshotPath(`host-vars-error-${mode}`), fullPage: true });
      } else {
        await save.click();
        await page.getByText(/The variables are not valid JSON \(line 1, column \d+\); nothing was saved\./).waitFor();
        // What was typed is still there.
        assert.equal(await vars.inputValue(), '{"disk": "nvme0n1",}');
        await page.screenshot({ path: screenshotPath(`host-vars-error-${mode}`), fullPage: true });
        // The rest of the form comes back from the saved host.
        await page.getByLabel('Pool').selectOption('rack1');
        await page.getByLabel('System template').selectOption({ label: 'netinst' });
        await page.getByLabel('Unattended template').selectOption({ label: 'answers' });
        await page.getByLabel('Installer interface').fill('enp3s0');
      }
      // A second interface.
      await page.getByLabel('MAC addresses').fill('52:54:00:12:34:56, 52-54-00-12-34-57');
      await vars.fill('{"disk": "nvme0n1"}');
      await save.click();
      await page.getByText('Saved the boot options of node1.').waitFor();
      await page.getByText('52:54:00:12:34:56, 52:54:00:12:34:57').first().waitFor();
      assert.equal(await page.getByTestId('host-state').innerText(), 'local disk');
      assert.equal(await page.getByLabel('Installer interface').inputValue(), 'enp3s0');

      // Mark it.
      await page.getByRole('button', { name: 'Mark for a clean install' }).click();
      await page.getByText('node1 is marked: it installs on its next network boot.').waitFor();
      assert.equal(await page.getByTestId('host-state').innerText(), 'marked');
      await page.getByRole('button', { name: 'Unmark' }).waitFor();
      await page.screenshot({ path: screenshotPath(`host-marked-${mode}`), fullPage: true });

      // The node boots: it gets its install once.
      const script = await (await fetch(`${server.url}/boot/${MAC}`)).text();
      assert.match(script, /^#!ipxe\nkernel .*\/images\/debian\/linux auto=true url=.*\/boot\/52-54-00-12-34-56\/unattended hostname=node1\n/);
      if (javaScriptEnabled) {
        // Told live: a notification, the badge and the timeline change.
        await page.getByRole('region', { name: 'Notifications' }).getByText('node1 got its install and is installing.').waitFor({ timeout: 15_000 });
        await page.locator('[data-testid="host-state"]', { hasText: 'installing' }).waitFor();
        await page.locator('tr[data-kind="install"]').waitFor({ timeout: 15_000 });
      } else {
        await page.goto(hostUrl);
        assert.equal(await page.getByTestId('host-state').innerText(), 'installing');
      }
      const answers = await (await fetch(`${server.url}/boot/${MAC}/unattended`)).text();
      assert.match(answers, /partman-auto\/disk string \/dev\/nvme0n1/);
      assert.equal((await fetch(`${server.url}/boot/${MAC}/done`, { method: 'POST' })).status, 200);
      if (javaScriptEnabled) {
        await page.getByRole('region', { name: 'Notifications' }).getByText('node1 is installed.').waitFor({ timeout: 15_000 });
        await page.locator('[data-testid="host-state"]', { hasText: 'installed' }).waitFor();
        await page.locator('tr[data-kind="done"]').waitFor({ timeout: 15_000 });
      } else {
        await page.goto(hostUrl);
      }
      assert.equal(await page.getByTestId('host-state').innerText(), 'installed');
      const kinds = await page.locator('table.timeline tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.kind));
      assert.deepEqual(kinds.slice(0, 4), ['done', 'unattended', 'install', 'mark']);
      await page.screenshot({ path: screenshotPath(`host-installed-${mode}`), fullPage: true });
      assert.deepEqual(errors, []);
      await context.close();
    });

    test('someone else sees neither the host nor its page', async () => {
      const context = await browser.newContext({ javaScriptEnabled });
      const page = await signIn(context, 'ana', '/hosts');
      await page.getByText('You hold no nodes yet. Get one above.').waitFor();
      await page.goto(`${server.url}/hosts/1`);
      await page.getByText('There is no host 1 that you hold.').waitFor();
      await page.goto(`${server.url}/hosts/abc`);
      await page.getByText('“abc” is not a host number.').waitFor();
      await context.close();
    });
  });
}
