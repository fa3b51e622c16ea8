/**
 * The program a Linux adapter runs: starts QEMU with the guest's protocol channel on a Unix socket, connects to it,
 * and relays the socket to its own standard input and output — so the {@link StdioAdapter} talks to the guest as to
 * any child process.
 *
 * ```
 * node --import tsx conformance/adapters/linux-relay.ts SOCKET -- qemu-system-x86_64 ...
 * ```
 *
 * Why a relay: QEMU's `-chardev stdio` never tells a virtio-serial port that the host side is open (the port stays
 * "host disconnected"), and a virtio console (hvc0) is a tty that echoes whatever arrives before the adapter in the
 * guest has set it raw. A socket chardev that the relay connects to after QEMU has started gives an opened, non-tty
 * port. QEMU runs under `setpriv --pdeathsig KILL`, so killing the relay (a timeout, a crash) kills the guest too.
 *
 * Exit status: QEMU's (a guest power-off is 0; a panic with `-no-reboot` also ends QEMU). Not for: anything but
 * the Linux lane.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';

function fail(message: string): never {
  process.stderr.write(`linux-relay: ${message}\n`);
  process.exit(1);
}

const args = process.argv.slice(2);
const sep = args.indexOf('--');
if (sep !== 1 || args.length < 3) fail('usage: linux-relay.ts SOCKET -- QEMU-COMMAND...');
const sockPath = args[0]!;
const cmd = args.slice(2);
rmSync(sockPath, { force: true });

const qemu = spawn('setpriv', ['--pdeathsig', 'KILL', ...cmd], { stdio: ['ignore', 'ignore', 'inherit'] });
let sock: Socket | undefined;
let qemuExited = false;
qemu.on('error', (e) => fail(`cannot start ${cmd[0]}: ${e.message}`));
qemu.on('exit', (code, signal) => {
  qemuExited = true;
  rmSync(sockPath, { force: true });
  const done = () => process.exit(code ?? (signal ? 128 : 1));
  // Let the last protocol bytes reach the runner before exiting.
  if (process.stdout.writableLength > 0) process.stdout.once('drain', done);
  else setTimeout(done, 50);
});
for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const)
  process.on(s, () => {
    qemu.kill('SIGKILL');
    process.exit(1);
  });

/** Connects to QEMU's socket once it listens (QEMU creates it during start-up). */
function tryConnect(attempt: number): void {
  if (qemuExited) return;
  const s = connect(sockPath);
  s.once('connect', () => {
    sock = s;
    s.pipe(process.stdout);
    process.stdin.pipe(s);
    process.stdin.once('end', () => s.end());
  });
  s.once('error', () => {
    s.destroy();
    if (sock === undefined && attempt < 1200) setTimeout(() => tryConnect(attempt + 1), 50);
    else if (sock === undefined) {
      qemu.kill('SIGKILL');
      fail(`QEMU did not open ${sockPath} within 60 s`);
    }
  });
}
tryConnect(0);
