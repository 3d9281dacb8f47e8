// A private libvirtd for browser tests, as server/tests/it/support/libvirt.rs
// makes one for the Rust tests: Debian's libvirtd and virtlogd as root in
// mount, network and PID namespaces of their own (`unshare`), libvirt's
// fixed folders bind-mounted from a temporary folder, a VM network with
// DHCP on a bridge that exists only in that namespace. Stopping it (or the
// test process dying: a watchdog) kills the namespace and all in it.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NETWORK = 'bootler-test';
export const NETWORK_PREFIX = '192.168.150.';

const QEMU_CONF = `# A private libvirtd for tests: QEMU as root, nothing from the host.
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = []
cgroup_controllers = []
`;

function tool(name) {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`\`${name}\` is not installed: run scripts/setup.sh test (libvirt-daemon, libvirt-daemon-driver-qemu, libvirt-clients, qemu-utils, dnsmasq-base, ipxe)`);
}

export async function startLibvirtd() {
  const dir = mkdtempSync(join(tmpdir(), 'bootler-e2e-libvirt-'));
  for (const sub of ['etc', 'run', 'lib', 'log', 'cache', 'sock', 'pool', 'images']) mkdirSync(join(dir, sub));
  writeFileSync(join(dir, 'etc/qemu.conf'), QEMU_CONF);
  writeFileSync(
    join(dir, 'libvirtd.conf'),
    `unix_sock_dir = "${dir}/sock"\nunix_sock_rw_perms = "0700"\nunix_sock_ro_perms = "0700"\n` +
      `unix_sock_admin_perms = "0700"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\n` +
      `log_outputs = "3:file:${dir}/libvirtd.log"\n`,
  );
  writeFileSync(join(dir, 'virtlogd.conf'), `log_outputs = "3:file:${dir}/virtlogd.log"\n`);
  let script = 'set -e\n';
  for (const [from, to] of [['etc', '/etc/libvirt'], ['run', '/run/libvirt'], ['lib', '/var/lib/libvirt'], ['log', '/var/log/libvirt'], ['cache', '/var/cache/libvirt']]) {
    mkdirSync(to, { recursive: true });
    script += `mount --bind '${dir}/${from}' '${to}'\n`;
  }
  const passwd = readFileSync('/etc/passwd', 'utf8');
  if (!passwd.split('\n').some((l) => l.startsWith('libvirt-qemu:'))) {
    let group = readFileSync('/etc/group', 'utf8');
    group += 'libvirt-qemu:x:64055:\n';
    if (!group.split('\n').some((l) => l.startsWith('kvm:'))) group += 'kvm:x:64056:\n';
    writeFileSync(join(dir, 'passwd'), passwd + 'libvirt-qemu:x:64055:64055:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n');
    writeFileSync(join(dir, 'group'), group);
    for (const file of ['passwd', 'group']) script += `mount --bind '${dir}/${file}' /etc/${file}\n`;
  }
  script +=
    'ip link set lo up 2>/dev/null || true\n' +
    `${tool('virtlogd')} -f '${dir}/virtlogd.conf' -p '${dir}/virtlogd.pid' &\n` +
    `${tool('libvirtd')} --config '${dir}/libvirtd.conf' -p '${dir}/libvirtd.pid' &\n` +
    'wait\n';
  const log = openSync(join(dir, 'namespace.log'), 'w');
  const child = spawn(
    tool('unshare'),
    ['--mount', '--net', '--pid', '--fork', '--kill-child', '--mount-proc', '--propagation', 'private', 'sh', '-c', script],
    { stdio: ['ignore', log, log] },
  );
  // Stops the namespace when this process is gone, however it ended.
  const watchdog = spawn(
    'sh',
    ['-c', `while kill -0 ${process.pid} 2>/dev/null && [ -d '${dir}' ]; do sleep 1; done; kill -9 ${child.pid} 2>/dev/null; sleep 1; rm -rf '${dir}'`],
    { stdio: 'ignore', detached: true },
  );
  watchdog.unref();
  const uri = `qemu:///system?socket=${dir}/sock/libvirt-sock`;
  const virsh = (...args) => {
    const out = spawnSync(tool('virsh'), ['-q', '-c', uri, ...args], { encoding: 'utf8' });
    if (out.status !== 0) throw new Error(`virsh ${args.join(' ')}: ${out.stderr}`);
    return out.stdout;
  };
  const logs = () => ['namespace.log', 'libvirtd.log'].map((f) => { try { return readFileSync(join(dir, f), 'utf8').slice(-3000); } catch { return ''; } }).join('\n');
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`libvirtd's namespace ended: ${logs()}`);
    if (existsSync(join(dir, 'sock/libvirt-sock'))) {
      try { virsh('version'); break; } catch { /* not yet */ }
    }
    if (Date.now() > deadline) throw new Error(`libvirtd did not answer within 30 s: ${logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  writeFileSync(
    join(dir, 'network.xml'),
    `<network><name>${NETWORK}</name><forward mode='open'/><bridge name='virbr-bt0' stp='off' delay='0'/>` +
      `<ip address='${NETWORK_PREFIX}1' netmask='255.255.255.0'><dhcp><range start='${NETWORK_PREFIX}10' end='${NETWORK_PREFIX}200'/></dhcp></ip></network>`,
  );
  virsh('net-define', join(dir, 'network.xml'));
  virsh('net-start', NETWORK);
  // A bootable base image: iPXE boots from the disk and asks for an
  // address by DHCP, so the VM gets one as a real guest would.
  const image = join(dir, 'images/ipxe.qcow2');
  const convert = spawnSync(tool('qemu-img'), ['convert', '-q', '-f', 'raw', '-O', 'qcow2', '/usr/lib/ipxe/ipxe.iso', image], { encoding: 'utf8' });
  if (convert.status !== 0) throw new Error(`qemu-img convert: ${convert.stderr}`);
  return {
    uri,
    image,
    poolPath: join(dir, 'pool'),
    virsh,
    domains: () => virsh('list', '--all', '--name').split('\n').map((l) => l.trim()).filter(Boolean),
    stop() {
      try { child.kill('SIGKILL'); } catch { /* gone */ }
      spawnSync('sh', ['-c', `sleep 1; rm -rf '${dir}'`]);
    },
  };
}
