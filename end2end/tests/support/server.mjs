// Starts the real `bootler` binary on a free loopback port with its own
// temporary data folder, and stops it again.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../../..');

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

/// Runs `bootler <args>` against a started server's data folder, with `input`
/// on standard input; resolves with its output, rejects if it fails.
export function bootlerCommand(server, args, input = '') {
  return new Promise((ok, fail) => {
    const child = spawn(server.bin, args, { cwd: server.dataDir, env: server.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? ok(out) : fail(new Error(`bootler ${args.join(' ')}: ${err}`))));
    child.stdin.end(input);
  });
}

/// Spawns `bootler serve` and resolves once `/healthz` answers.
async function spawnServer(bin, dataDir, env, url) {
  const child = spawn(bin, ['serve'], { cwd: dataDir, env, stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((ok) => child.once('exit', (code) => ok(code)));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`bootler exited with ${child.exitCode} before answering`);
    }
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`bootler did not answer on ${url} within 30 s`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, exited };
}

async function stopServer({ child, exited }) {
  if (child.exitCode === null) {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

export async function startBootler(extraEnv = {}) {
  const bin = process.env.BOOTLER_BIN ?? join(root, 'target/debug/bootler');
  const siteDir = process.env.BOOTLER_SITE_DIR ?? join(root, 'target/site');
  const dataDir = mkdtempSync(join(tmpdir(), 'bootler-e2e-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = {
    PATH: process.env.PATH,
    RUST_LOG: 'error',
    BOOTLER_LISTEN: `127.0.0.1:${port}`,
    BOOTLER_DATA_DIR: dataDir,
    BOOTLER_SITE_DIR: siteDir,
    ...extraEnv,
  };
  let running = await spawnServer(bin, dataDir, env, url);

  return {
    url,
    dataDir,
    bin,
    env,
    /// Stops the process and starts it again on the same port and data.
    async restart() {
      await stopServer(running);
      running = await spawnServer(bin, dataDir, env, url);
    },
    async stop() {
      await stopServer(running);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/// The mails a server wrote to its outbox, oldest first, as raw text.
export function outboxMails(server) {
  const dir = join(server.dataDir, 'outbox');
  let names = [];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.eml')).sort();
  } catch {
    return [];
  }
  return names.map((n) => readFileSync(join(dir, n), 'utf8'));
}

/// The first link to `path` (e.g. `/confirm/`) in a raw mail.
export function linkIn(eml, path) {
  // Quoted-printable soft line breaks would split the link; undo them.
  const text = eml.replace(/=\r?\n/g, '');
  const match = text.match(new RegExp(`https?://[^\\s]+${path}[A-Za-z0-9_-]+`));
  if (!match) throw new Error(`no ${path} link in:\n${eml}`);
  return match[0];
}
