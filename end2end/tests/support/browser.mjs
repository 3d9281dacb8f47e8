// Debian's Chromium driven by playwright-core (no browser download).
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const screenshotDir = resolve(import.meta.dirname, '../../screenshots');

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export function screenshotPath(name) {
  mkdirSync(screenshotDir, { recursive: true });
  return join(screenshotDir, `${name}.png`);
}

/// Collects page errors and console errors, so a test can assert none happened.
export function watchErrors(page) {
  const errors = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', async (msg) => {
    if (msg.type() !== 'error') return;
    errors.push(`console: ${msg.text()}`);
    if (msg.text().includes('hydration error')) {
      // The node the framework did not expect, with what surrounds it, so a
      // failure says what the server sent.
      const node = msg.args()[1];
      const around = await node
        ?.evaluate((n) => ({
          node: n.outerHTML ?? `${n.nodeName} ${JSON.stringify(n.textContent)}`,
          parent: n.parentNode?.outerHTML?.slice(0, 3000),
        }))
        .catch((e) => `unavailable: ${e.message}`);
      errors.push(`hydration error on ${page.url()}: ${JSON.stringify(around)}`);
    }
  });
  return errors;
}

/// Waits until the page has hydrated (the app sets `data-hydrated` on the
/// body). If it does not within 30 s, the error says what the page
/// reported meanwhile (a panic during hydration, a failed fetch), not only
/// that time ran out.
export async function hydrated(page, timeout = 30_000) {
  const seen = [];
  const onError = (err) => seen.push(`pageerror: ${err.message}`);
  const onConsole = (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') seen.push(`console ${msg.type()}: ${msg.text()}`);
  };
  page.on('pageerror', onError);
  page.on('console', onConsole);
  try {
    await page.locator('body[data-hydrated="true"]').waitFor({ timeout });
  } catch (err) {
    const wasm = await page
      .evaluate(() => performance.getEntriesByType('resource').filter((r) => r.name.endsWith('.wasm')).map((r) => `${r.name} ${Math.round(r.duration)} ms, ${r.transferSize} B`))
      .catch(() => []);
    throw new Error(`${page.url()} did not hydrate within ${timeout / 1000} s; the page reported: ${JSON.stringify(seen)}; WASM: ${JSON.stringify(wasm)}`, { cause: err });
  } finally {
    page.off('pageerror', onError);
    page.off('console', onConsole);
  }
}

/// Waits for `locator`; on timeout the error also says where the page is,
/// what it shows and what it reported (for failures seen once in a while).
export async function shows(page, locator, errors = [], timeout = 30_000) {
  try {
    await locator.waitFor({ timeout });
  } catch (err) {
    const text = await page.locator('main').innerText().catch((e) => `unreadable: ${e.message}`);
    throw new Error(`${err.message}\nat ${page.url()}; the page shows: ${text.slice(0, 1500)}\nerrors: ${JSON.stringify(errors)}`, { cause: err });
  }
}
