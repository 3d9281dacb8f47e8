// The VMs page: the three questions with clear errors that keep what was
// typed; a VM that appears as "creating" and, when the backend cannot
// build it, says why (live with JavaScript, on reload without), and removing
// it after a confirmation; and on a real libvirtd, a VM that runs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bootlerCommand, startBootler } from './support/server.mjs';
import { launchBrowser, screenshotPath, watchErrors, hydrated } from './support/browser.mjs';
import { NETWORK, NETWORK_PREFIX, startLibvirtd } from './support/libvirt.mjs';

const PASSWORD = 'correct horse battery';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb8Qb5fGB8Yk1lJc2yqb0F0+f3e3m1vSxV6Qb2lJ0bq ana@laptop';

for (const javaScriptEnabled of [true, false]) {
  const mode = javaScriptEnabled ? 'hydrated' : 'no-js';

  describe(`VMs (${mode})`, () => {
    let server;
    let browser;

    before(async () => {
      server = await startBootler({
        BOOTLER_VM__IMAGES: '[{name = "Debian 12", reference = "/nonexistent/debian-12.qcow2", login = "debian"}]',
        BOOTLER_VM__LIBVIRT__URI: 'qemu:///system?socket=/nonexistent/libvirt-sock',
        BOOTLER_VM__MAX_VCPUS_PER_USER: '2',
        BOOTLER_JOBS__MAX_ATTEMPTS: '2',
        BOOTLER_JOBS__BACKOFF_BASE_MS: '300',
      });
      await bootlerCommand(server, ['user', 'add', 'ana', '--email', 'ana@uminho.pt', '--name', 'Ana Silva'], `${PASSWORD}\n`);
      await bootlerCommand(server, ['user', 'add', '--admin', 'boss', '--email', 'boss@uminho.pt', '--name', 'Beatriz Boss'], `${PASSWORD}\n`);
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    async function signIn(username) {
      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 1000 } });
      const page = await context.newPage();
      await page.goto(`${server.url}/login?next=/vms`);
      if (javaScriptEnabled) await hydrated(page);
      await page.getByLabel('Username or e-mail address').fill(username);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(`${server.url}/vms`);
      if (javaScriptEnabled) await hydrated(page);
      return { context, page };
    }

    test("an administrator sets a person's VM quota; the person's flavors follow it", async () => {
      const boss = await signIn('boss');
      const errors = watchErrors(boss.page);
      const page = boss.page;
      await page.getByText('Everyone: VMs: 5, vCPUs: 2, memory: 16 GiB.').waitFor();
      await page.getByLabel('Username', { exact: true }).fill('nobody');
      await page.getByLabel('vCPUs', { exact: true }).fill('1');
      await page.getByTestId('set-vm-quota').click();
      await page.getByText('There is no user “nobody”.').waitFor();
      await page.getByLabel('Username', { exact: true }).fill('ana');
      await page.getByLabel('vCPUs', { exact: true }).fill('1');
      await page.getByTestId('set-vm-quota').click();
      await page.getByText('Set the VM quota of “ana”.').waitFor();
      await page.getByTestId('vm-quotas').getByText('ana: VMs: 5, vCPUs: 1, memory: 16 GiB').waitFor();
      assert.deepEqual(errors, []);
      await boss.context.close();

      const ana = await signIn('ana');
      await ana.page.getByText('medium needs 2 vCPUs; you use 0 of your 1.').waitFor();
      assert.equal(await ana.page.getByLabel(/medium/).isDisabled(), true);
      await ana.context.close();

      // Back to the default for the next test.
      const again = await signIn('boss');
      await again.page.getByLabel('Username', { exact: true }).fill('ana');
      await again.page.getByTestId('set-vm-quota').click();
      await again.page.getByText('“ana” has the default VM quota again.').waitFor();
      assert.equal(await again.page.getByTestId('vm-quotas').count(), 0);
      await again.context.close();
    });

    test('three questions; a VM the backend cannot build says why and can be removed', async () => {
      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 1000 } });
      const page = await context.newPage();
      await page.goto(`${server.url}/login?next=/vms`);
      if (javaScriptEnabled) await hydrated(page);
      await page.getByLabel('Username or e-mail address').fill('ana');
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(`${server.url}/vms`);
      if (javaScriptEnabled) await hydrated(page);
      const errors = watchErrors(page);

      await page.getByText('You have no VMs yet').waitFor();
      // "large" (4 vCPUs) does not fit a quota of 2: shown, not choosable.
      const large = page.getByLabel(/large/);
      assert.equal(await large.isDisabled(), true);
      await page.getByText('large needs 4 vCPUs; you use 0 of your 2.').waitFor();

      // A bad host name: the sentence, and the answers kept.
      await page.getByLabel('1. Host name').fill('-web');
      await page.getByLabel(/medium/).check();
      await page.getByLabel('SSH public key').fill(KEY);
      await page.getByTestId('create-vm').click();
      await page.getByText('“-web” is not a host name').waitFor();
      assert.equal(await page.getByLabel('1. Host name').inputValue(), '-web');
      assert.equal(await page.getByLabel(/medium/).isChecked(), true);

      await page.getByLabel('1. Host name').fill('experiment-1');
      await page.getByLabel('SSH public key').fill(KEY);
      await page.getByTestId('create-vm').click();
      await page.getByText(/^Creating experiment-1 \(job #\d+\)/).waitFor();
      const state = page.getByTestId('vm-state-experiment-1');
      assert.match(await state.innerText(), /creating|failed/);

      // The backend does not answer: after its attempts the VM fails with
      // the reason (live with JavaScript; on reload without).
      const deadline = Date.now() + 30_000;
      while ((await state.innerText()) !== 'failed') {
        assert.ok(Date.now() < deadline, `still ${await state.innerText()}`);
        if (!javaScriptEnabled) await page.reload();
        await new Promise((r) => setTimeout(r, 300));
      }
      await page.getByTestId('vm-error-experiment-1').getByText(/libvirt at qemu:\/\/\/system\?socket=\/nonexistent\/libvirt-sock does not answer/).waitFor();
      await page.screenshot({ path: screenshotPath(`vms-${mode}`), fullPage: true });

      // Removing it asks first.
      await page.getByTestId('vm-destroy-open-experiment-1').click();
      await page.getByText('Destroy experiment-1 and its disk? This cannot be undone.').waitFor();
      await page.getByTestId('vm-destroy-experiment-1').click();
      await page.getByText('Destroying experiment-1.').waitFor();
      const gone = Date.now() + 20_000;
      while ((await page.getByTestId('vm-state-experiment-1').count()) > 0) {
        assert.ok(Date.now() < gone, 'the VM is still listed');
        if (!javaScriptEnabled) await page.reload();
        await new Promise((r) => setTimeout(r, 300));
      }
      const { instances } = await (await page.request.get(`${server.url}/api/v1/instances`)).json();
      assert.deepEqual(instances, []);
      assert.deepEqual(errors.filter((e) => !e.includes('Failed to load resource')), []);
      await context.close();
    });
  });
}

// The whole path on a real, private libvirtd: three questions, the VM
// boots (iPXE from a qcow2 base image), gets an address from the
// network's DHCP, the owner is told live (or sees it on reload), copies the
// SSH command, and destroys it: nothing is left in libvirt.
for (const javaScriptEnabled of [true, false]) {
  const mode = javaScriptEnabled ? 'hydrated' : 'no-js';

  describe(`VMs on libvirt (${mode})`, () => {
    let libvirtd;
    let server;
    let browser;

    before(async () => {
      libvirtd = await startLibvirtd();
      server = await startBootler({
        BOOTLER_VM__LIBVIRT__URI: libvirtd.uri,
        BOOTLER_VM__LIBVIRT__NETWORK: NETWORK,
        BOOTLER_VM__LIBVIRT__POOL_PATH: libvirtd.poolPath,
        BOOTLER_VM__LIBVIRT__DOMAIN_TYPE: 'qemu',
        BOOTLER_VM__FLAVORS: '[{name = "tiny", vcpus = 1, memory_mib = 128, disk_gib = 1}]',
        BOOTLER_VM__IMAGES: `[{name = "iPXE", reference = "${libvirtd.image}", login = "root"}]`,
      });
      await bootlerCommand(server, ['user', 'add', 'ana', '--email', 'ana@uminho.pt', '--name', 'Ana Silva'], `${PASSWORD}\n`);
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
      libvirtd?.stop();
    });

    test('create a VM, see it run with its address, destroy it', async () => {
      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1200, height: 1000 } });
      const page = await context.newPage();
      await page.goto(`${server.url}/login?next=/vms`);
      if (javaScriptEnabled) await hydrated(page);
      await page.getByLabel('Username or e-mail address').fill('ana');
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(`${server.url}/vms`);
      if (javaScriptEnabled) await hydrated(page);
      const errors = watchErrors(page);

      await page.getByLabel('1. Host name').fill('experiment-1');
      assert.equal(await page.getByLabel(/tiny/).isChecked(), true, 'the one flavor is chosen');
      await page.getByLabel('SSH public key').fill(KEY);
      await page.getByTestId('create-vm').click();
      await page.getByText(/^Creating experiment-1 \(job #\d+\)/).waitFor();

      const ssh = page.locator('code.copy');
      if (javaScriptEnabled) {
        // The live notification, without reloading.
        await page.getByText(/^experiment-1 is running at 192\.168\.150\.\d+\.$/).waitFor({ timeout: 90_000 });
        await ssh.waitFor({ timeout: 10_000 });
        // One notification for it: the job that built it says nothing more
        // (its event follows the VM's at once).
        await page.waitForTimeout(1500);
        const toasts = await page.getByRole('region', { name: 'Notifications' }).getByRole('status').allInnerTexts();
        assert.deepEqual(
          toasts.filter((t) => /experiment-1/.test(t) && !/^Creating /.test(t)),
          [toasts.find((t) => /is running at/.test(t))],
          `notifications: ${JSON.stringify(toasts)}`,
        );
      } else {
        const deadline = Date.now() + 90_000;
        while ((await ssh.count()) === 0) {
          assert.ok(Date.now() < deadline, `no address yet: ${await page.getByTestId('vm-state-experiment-1').innerText()}`);
          await new Promise((r) => setTimeout(r, 1000));
          await page.reload();
        }
      }
      assert.equal(await page.getByTestId('vm-state-experiment-1').innerText(), 'running');
      assert.match(await ssh.innerText(), new RegExp(`^ssh root@${NETWORK_PREFIX.replaceAll('.', '\\.')}\\d+$`));
      assert.equal(libvirtd.domains().length, 1);
      await page.screenshot({ path: screenshotPath(`vms-running-${mode}`), fullPage: true });

      await page.getByTestId('vm-destroy-open-experiment-1').click();
      await page.getByTestId('vm-destroy-experiment-1').click();
      await page.getByText('Destroying experiment-1.').waitFor();
      const gone = Date.now() + 60_000;
      while ((await page.getByTestId('vm-state-experiment-1').count()) > 0) {
        assert.ok(Date.now() < gone, 'the VM is still listed');
        if (!javaScriptEnabled) await page.reload();
        await new Promise((r) => setTimeout(r, 500));
      }
      if (javaScriptEnabled) await page.getByText('experiment-1 was destroyed.').waitFor();
      assert.deepEqual(libvirtd.domains(), []);
      assert.deepEqual(errors, []);
      await context.close();
    });
  });
}
