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
