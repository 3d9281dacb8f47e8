// A real OpenVPN server and client on loopback for the browser tests, as
// in the server's integration tests (server/tests/it/support/openvpn.rs):
// the server runs `bootler vpn server-config` on `dev tun` with
// `ifconfig-noexec`; the client runs a downloaded profile on `dev null`.
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

function run(command, args) {
  const out = spawnSync(command, args, { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${out.stdout}${out.stderr}`);
}

/// A CA, a server certificate and a tls-crypt key in `dir`, and Bootler's
/// `[vpn]` settings for them.
export function generatePki(dir) {
  const p = (name) => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('openssl', ['req', '-x509', ...ec, '-days', '2', '-subj', '/CN=Bootler test CA', '-keyout', p('ca.key'), '-out', p('ca.crt')]);
  run('openssl', ['req', ...ec, '-subj', '/CN=vpn.lab.test', '-keyout', p('server.key'), '-out', p('server.csr')]);
  writeFileSync(p('server.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\n');
  run('openssl', ['x509', '-req', '-days', '2', '-CAcreateserial', '-in', p('server.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-extfile', p('server.ext'), '-out', p('server.crt')]);
  run('openvpn', ['--genkey', 'tls-crypt', p('tc.key')]);
  return {
    BOOTLER_VPN__CA_FILE: p('ca.crt'),
    BOOTLER_VPN__CERT_FILE: p('server.crt'),
    BOOTLER_VPN__KEY_FILE: p('server.key'),
    BOOTLER_VPN__TLS_CRYPT_KEY_FILE: p('tc.key'),
  };
}

function openvpn(dir, args) {
  const child = spawn('openvpn', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8');
    stream.on('data', (d) => lines.push(...d.split('\n')));
  }
  const exited = new Promise((ok) => child.once('exit', ok));
  return {
    log: () => lines.join('\n'),
    /// Resolves with the first line containing one of `needles`.
    async waitFor(needles, timeout = 60_000) {
      const deadline = Date.now() + timeout;
      for (;;) {
        const line = lines.find((l) => needles.some((n) => l.includes(n)));
        if (line) return line;
        if (Date.now() > deadline) throw new Error(`openvpn said none of ${needles} in ${timeout} ms:\n${lines.join('\n')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

/// The OpenVPN server, running `config`; resolves once it is up.
export async function startOpenVpnServer(dir, config) {
  const file = join(dir, 'server.conf');
  writeFileSync(file, config);
  const server = openvpn(dir, ['--config', file, '--ifconfig-noexec', '--route-noexec', '--tmp-dir', dir]);
  await server.waitFor(['Initialization Sequence Completed'], 30_000);
  return server;
}

/// A client with `profile` (a file) as `username`; `connected()` resolves
/// with whether it got in.
export function startOpenVpnClient(dir, profile, username, password) {
  const credentials = join(dir, `credentials-${username}`);
  writeFileSync(credentials, `${username}\n${password}\n`);
  const client = openvpn(dir, [
    '--config', profile,
    '--dev', 'null', '--ifconfig-noexec', '--route-noexec',
    '--auth-retry', 'none', '--connect-retry-max', '1',
    '--auth-user-pass', credentials,
  ]);
  return {
    ...client,
    async connected() {
      const line = await client.waitFor(['Initialization Sequence Completed', 'AUTH_FAILED']);
      return line.includes('Initialization Sequence Completed');
    },
  };
}
