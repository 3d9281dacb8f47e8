// The templates pages: the list, a new template, the editor with its
// version history, a preview rendered for a host (and a render error that
// names the line), copies of global templates, and deleting; with
// JavaScript and without.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bootlerCommand, startBootler } from './support/server.mjs';
import { launchBrowser, screenshotPath, watchErrors, hydrated as waitHydrated } from './support/browser.mjs';

const PASSWORD = 'correct horse battery';

function basic(username) {
  return { Authorization: 'Basic ' + Buffer.from(`${username}:${PASSWORD}`).toString('base64') };
}

const NETBOOT = [
  '#!ipxe',
  'echo Booting {{ host.name }} ({{ mac.mac_address }}) for {{ user.username | default("nobody") }}',
  'chain {{ base_url }}/boot/{{ mac.mac_address }}/unattended',
  '',
].join('\n');

for (const javaScriptEnabled of [true, false]) {
  const mode = javaScriptEnabled ? 'hydrated' : 'no-js';

  describe(`templates pages (${mode})`, () => {
    let server;
    let browser;
    let hostId;

    before(async () => {
      server = await startBootler();
      await bootlerCommand(server, ['user', 'add', '--admin', 'boss', '--email', 'boss@uminho.pt', '--name', 'Beatriz Boss'], `${PASSWORD}\n`);
      await bootlerCommand(server, ['user', 'add', 'ana', '--email', 'ana@uminho.pt', '--name', 'Ana Silva'], `${PASSWORD}\n`);
      // A node PXE-boots once: a discovered host.
      const boot = await fetch(`${server.url}/boot/52-54-00-12-34-56?hostname=node1`);
      assert.equal(boot.status, 200);
      const hosts = await (await fetch(`${server.url}/api/v1/hosts`, { headers: basic('boss') })).json();
      hostId = hosts.hosts.find((h) => h.name === 'node1').id;
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    async function hydrated(page) {
      if (javaScriptEnabled) {
        await waitHydrated(page);
      }
    }

    async function signIn(username) {
      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 900 } });
      const page = await context.newPage();
      await page.goto(server.url + '/login?next=/templates');
      await hydrated(page);
      await page.getByLabel('Username or e-mail address').fill(username);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(server.url + '/templates');
      await hydrated(page);
      return { context, page };
    }

    /// Fills and sends the "New template" form of /templates.
    async function createTemplate(page, { name, kind, description = '', body, private: mine = false }) {
      const form = page.locator('#new');
      await form.getByLabel('Name', { exact: true }).fill(name);
      await form.getByLabel('Kind').selectOption(kind);
      await form.getByLabel('Description (optional)').fill(description);
      await form.getByLabel('Body', { exact: true }).fill(body);
      if (mine) await form.getByLabel('Private (only mine)').check();
      await form.getByRole('button', { name: 'Create template' }).click();
    }

    async function preview(page, hostName) {
      const select = page.getByLabel('Host', { exact: true });
      const value = await select.locator('option', { hasText: hostName }).getAttribute('value');
      await select.selectOption(value);
      await page.getByRole('button', { name: 'Preview', exact: true }).click();
      await page.waitForURL(new RegExp(`\\?host=${value}#preview$`));
      await hydrated(page);
    }

    test('an admin creates, edits, previews and deletes templates', async () => {
      const { context, page } = await signIn('boss');
      const errors = watchErrors(page);
      await page.getByRole('heading', { name: 'Global templates' }).waitFor();
      await page.getByRole('heading', { name: 'Your templates' }).waitFor();
      await page.getByText('minijinja (Jinja2) syntax').waitFor();
      await page.locator('#variables').getByText('unattended_url', { exact: true }).waitFor();

      // Bad input comes back with the message and what was typed.
      await createTemplate(page, { name: '../etc', kind: 'system', description: 'Oops', body: NETBOOT });
      await page.waitForURL(/in=new/);
      await hydrated(page);
      const newForm = page.locator('#new');
      await newForm.getByRole('alert').getByText(/A template name has 1 to 64 letters/).waitFor();
      assert.equal(await newForm.getByLabel('Name', { exact: true }).inputValue(), '../etc');
      assert.equal(await newForm.getByLabel('Description (optional)').inputValue(), 'Oops');
      assert.equal(await newForm.getByLabel('Body', { exact: true }).inputValue(), NETBOOT);
      // A syntax error names its line.
      await createTemplate(page, { name: 'broken', kind: 'system', body: '#!ipxe\n{% if %}\n' });
      await newForm.getByRole('alert').getByText(/template “broken”, line 2: syntax error/).waitFor();
      assert.equal(await newForm.getByLabel('Body', { exact: true }).inputValue(), '#!ipxe\n{% if %}\n');
      // A long body does not fit in the address: the error says it was lost.
      await createTemplate(page, { name: 'too long', kind: 'system', body: '#!ipxe\n' + 'echo filler\n'.repeat(500) });
      await newForm.getByRole('alert').getByText(/Your text is too long to send back to this form: it was not kept/).waitFor();
      assert.equal(await newForm.getByLabel('Name', { exact: true }).inputValue(), 'too long');
      assert.equal(await newForm.getByLabel('Body', { exact: true }).inputValue(), '');

      // A system template, global.
      await createTemplate(page, { name: 'lab-netboot', kind: 'system', description: 'Netboot for the lab', body: NETBOOT });
      await page.waitForURL(/\/templates\/\d+\?notice=/);
      await hydrated(page);
      const templateUrl = page.url().split('?')[0];
      const templateId = templateUrl.split('/').pop();
      await page.getByRole('status').getByText('Created the system template “lab-netboot”, global: everyone can use it.').waitFor();
      await page.getByRole('heading', { name: /lab-netboot/, level: 1 }).waitFor();
      await page.locator('.template-versions details').first().waitFor();
      assert.equal(await page.locator('.template-versions details').count(), 1);

      // Listed among the global templates.
      await page.getByRole('link', { name: 'Templates', exact: true }).first().click();
      await page.waitForURL(server.url + '/templates');
      await hydrated(page);
      const row = page.locator(`#global-title ~ table tr[data-template="${templateId}"]`);
      await row.getByRole('link', { name: 'lab-netboot' }).waitFor();
      await row.getByText('system', { exact: true }).waitFor();
      await row.getByText('Netboot for the lab').waitFor();
      await page.screenshot({ path: screenshotPath(`templates-list-${mode}`), fullPage: true });

      // Edit the body: version 2, version 1 kept in the history.
      await row.getByRole('link', { name: 'lab-netboot' }).click();
      await page.waitForURL(templateUrl);
      await hydrated(page);
      const body = page.getByLabel('Body', { exact: true });
      assert.equal(await body.inputValue(), NETBOOT, 'the editor shows the saved body as it is');
      const changed = NETBOOT.replace('#!ipxe\n', '#!ipxe\necho version two\n');
      await body.fill(changed);
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.getByRole('status').getByText('Saved “lab-netboot” as version 2; the earlier versions are kept below.').waitFor();
      await hydrated(page);
      assert.equal(await page.getByTestId('template-version').textContent(), '2');
      const versions = page.locator('.template-versions details');
      assert.equal(await versions.count(), 2);
      assert.match(await versions.nth(0).locator('summary').textContent(), /Version 2\s*current · by boss/);
      assert.match(await versions.nth(1).locator('summary').textContent(), /Version 1 · by boss/);
      await versions.nth(1).locator('summary').click();
      assert.equal(await versions.nth(1).locator('pre').textContent(), NETBOOT);
      // Saving without changing the body is no new version (and CRLF from
      // the browser is no change).
      await page.getByLabel('Description', { exact: true }).fill('Netboot for the lab, v2');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.getByRole('status').getByText('the body did not change, so it is still version 2').waitFor();
      await hydrated(page);

      // Preview against node1 renders the saved body.
      await preview(page, 'node1');
      const output = page.getByTestId('preview-output');
      await output.getByText('Version 2 rendered for node1:').waitFor();
      const text = await output.locator('pre').textContent();
      assert.match(text, /^#!ipxe\necho version two\necho Booting node1 \(52-54-00-12-34-56\) for boss\n/);
      assert.match(text, new RegExp(`chain ${server.url.replace(/[.]/g, '\\.')}/boot/52-54-00-12-34-56/unattended`));
      await page.screenshot({ path: screenshotPath(`templates-editor-${mode}`), fullPage: true });

      // Someone else changes it meanwhile: the save is refused, the text kept.
      const put = await fetch(`${server.url}/api/v1/templates/${templateId}`, {
        method: 'PUT',
        headers: { ...basic('boss'), 'content-type': 'application/json' },
        body: JSON.stringify({ body: changed + 'echo from the API\n' }),
      });
      assert.equal(put.status, 200);
      const mine = changed + 'echo mine\n';
      await page.getByLabel('Body', { exact: true }).fill(mine);
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.waitForURL(/in=edit/);
      await hydrated(page);
      await page.locator('#edit').getByRole('alert').getByText(/Someone changed this template meanwhile .*it is now version 3/).waitFor();
      assert.equal(await page.getByLabel('Body', { exact: true }).inputValue(), mine);
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.getByRole('status').getByText('Saved “lab-netboot” as version 4').waitFor();
      await hydrated(page);
      assert.equal(await page.locator('.template-versions details').count(), 4);

      // A template using an undefined variable: the preview names the line.
      await page.goto(server.url + '/templates');
      await hydrated(page);
      // (It starts with an empty line, which the editor keeps.)
      const needsDisk = '\nd-i netcfg/get_hostname string {{ host.name }}\nd-i partman-auto/disk string {{ vars.missing }}\n';
      await createTemplate(page, { name: 'needs-disk', kind: 'unattended', body: needsDisk });
      await page.waitForURL(/\/templates\/\d+\?notice=/);
      await hydrated(page);
      await page.getByRole('status').getByText('Created the unattended template “needs-disk”').waitFor();
      assert.equal(await page.getByLabel('Body', { exact: true }).inputValue(), needsDisk);
      // Also when the page is drawn in the browser (a link, hydrated).
      await page.getByRole('link', { name: 'Templates', exact: true }).first().click();
      await page.waitForURL(server.url + '/templates');
      await hydrated(page);
      await page.getByRole('link', { name: 'needs-disk' }).click();
      await page.getByLabel('Body', { exact: true }).waitFor();
      assert.equal(await page.getByLabel('Body', { exact: true }).inputValue(), needsDisk);
      await preview(page, 'node1');
      const error = page.getByTestId('preview-error');
      await error.getByText('template “needs-disk”, line 3: undefined value').waitFor();
      await error.getByText('d-i partman-auto/disk string {{ vars.missing }}').waitFor();
      assert.equal(await page.getByTestId('preview-output').count(), 0);
      await page.screenshot({ path: screenshotPath(`templates-preview-error-${mode}`), fullPage: true });

      // Delete it.
      await page.getByRole('button', { name: 'Delete “needs-disk”' }).click();
      await page.waitForURL(/\/templates\?notice=/);
      await hydrated(page);
      await page.getByRole('status').getByText('Deleted the template “needs-disk” and its versions.').waitFor();
      assert.equal(await page.getByRole('link', { name: 'needs-disk' }).count(), 0);

      // A template a host boots with cannot be deleted.
      const chosen = await fetch(`${server.url}/api/v1/hosts/${hostId}`, {
        method: 'PUT',
        headers: { ...basic('boss'), 'content-type': 'application/json' },
        body: JSON.stringify({ system: Number(templateId) }),
      });
      assert.equal(chosen.status, 200, await chosen.text());
      await page.goto(templateUrl);
      await hydrated(page);
      await page.getByRole('button', { name: 'Delete “lab-netboot”' }).click();
      await page.waitForURL(/in=delete/);
      await hydrated(page);
      await page.locator('#delete').getByRole('alert').getByText('“lab-netboot” is a boot option of node1; choose another template there first.').waitFor();

      // Unknown templates are said so, never a crash.
      for (const id of ['999999', 'abc']) {
        await page.goto(`${server.url}/templates/${id}`);
        await hydrated(page);
        await page.getByRole('alert').getByText(`There is no template ${id} you can see.`).waitFor();
      }
      assert.deepEqual(errors, []);
      await context.close();
    });

    test('people who are not admins read global templates and copy them', async () => {
      // A global template (boss) and a private one of boss's.
      const create = async (body) => {
        const res = await fetch(`${server.url}/api/v1/templates`, {
          method: 'POST',
          headers: { ...basic('boss'), 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        assert.equal(res.status, 201);
        return (await res.json()).template.id;
      };
      const global = await create({ name: 'shared-preseed', kind: 'unattended', description: 'For everyone', body: 'd-i passwd/username string {{ user.username }}\n' });
      const secret = await create({ name: 'boss-only', kind: 'system', body: '#!ipxe\n', private: true });

      const { context, page } = await signIn('ana');
      const errors = watchErrors(page);
      await page.locator('#global-title ~ table').getByRole('link', { name: 'shared-preseed' }).waitFor();
      await page.getByText('No templates of your own yet.').waitFor();
      assert.equal(await page.getByRole('link', { name: 'boss-only' }).count(), 0);
      assert.equal(await page.getByLabel('Private (only mine)').count(), 0, 'only admins choose');

      // Read-only, with a copy button.
      await page.locator('#global-title ~ table').getByRole('link', { name: 'shared-preseed' }).click();
      await page.waitForURL(`${server.url}/templates/${global}`);
      await hydrated(page);
      await page.getByText('This is a global template: only administrators change it.').waitFor();
      assert.equal(await page.getByRole('button', { name: 'Save', exact: true }).count(), 0);
      assert.equal(await page.getByRole('button', { name: /^Delete/ }).count(), 0);
      assert.equal(await page.getByLabel('Template body').textContent(), 'd-i passwd/username string {{ user.username }}\n');
      await page.getByText('You hold no hosts to preview with yet.').waitFor();
      await page.screenshot({ path: screenshotPath(`templates-readonly-${mode}`), fullPage: true });
      await page.getByRole('button', { name: 'Copy into a template of your own' }).click();
      await page.waitForURL(/\/templates\/\d+\?notice=/);
      await hydrated(page);
      await page.getByRole('status').getByText('This is your own copy of “shared-preseed” (version 1)').waitFor();
      await page.getByRole('heading', { name: /shared-preseed-copy/, level: 1 }).waitFor();
      await page.getByText('private to ana').waitFor();
      assert.equal(await page.getByLabel('Body', { exact: true }).inputValue(), 'd-i passwd/username string {{ user.username }}\n');

      // A second copy gets the next free name.
      await page.goto(`${server.url}/templates/${global}`);
      await hydrated(page);
      await page.getByRole('button', { name: 'Copy into a template of your own' }).click();
      await page.getByRole('heading', { name: /shared-preseed-copy-2/, level: 1 }).waitFor();
      await hydrated(page);

      // Her own copy: edit, then delete.
      await page.getByLabel('Body', { exact: true }).fill('d-i passwd/username string {{ user.username }}\nd-i passwd/user-fullname string {{ user.display_name }}\n');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.getByRole('status').getByText('Saved “shared-preseed-copy-2” as version 2').waitFor();
      await hydrated(page);
      await page.getByRole('button', { name: 'Delete “shared-preseed-copy-2”' }).click();
      await page.getByRole('status').getByText('Deleted the template “shared-preseed-copy-2” and its versions.').waitFor();
      await hydrated(page);
      await page.locator('#mine-title ~ table').getByRole('link', { name: 'shared-preseed-copy', exact: true }).waitFor();

      // The editor refuses to change a global template even when posted to
      // directly.
      await page.goto(`${server.url}/templates/${global}`);
      await hydrated(page);
      const csrf = await page.locator('input[name="csrf"]').first().getAttribute('value');
      const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
      const forged = await fetch(`${server.url}/templates/${global}`, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ csrf, name: 'shared-preseed', description: '', body: 'changed\n', stamp: '' }),
      });
      assert.equal(forged.status, 303);
      const location = decodeURIComponent(forged.headers.get('location').replace(/\+/g, ' '));
      assert.match(location, /only administrators change it/);

      // Others' private templates are not there for her.
      await page.goto(`${server.url}/templates/${secret}`);
      await hydrated(page);
      await page.getByRole('alert').getByText(`There is no template ${secret} you can see.`).waitFor();
      assert.deepEqual(errors, []);
      await context.close();

      // Signed out: asked to sign in, and brought back.
      const anonymous = await browser.newContext({ javaScriptEnabled });
      const guest = await anonymous.newPage();
      await guest.goto(`${server.url}/templates/${global}`);
      await guest.getByRole('link', { name: 'Sign in' }).last().waitFor();
      assert.equal(await guest.locator(`main a[href="/login?next=/templates/${global}"]`).count(), 1);
      await anonymous.close();
    });
  });
}
