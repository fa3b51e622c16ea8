/**
 * The Linux lane's adapters: a real Linux 6.12 kernel under QEMU (TCG, q35, emulated Intel IOMMU, the `edu` device
 * as the DMA engine), driven by the C adapter of `linux/adapter` that runs in the guest as `/init`'s payload and
 * speaks the stdio protocol over a virtio-serial port that ./linux-relay.ts wires to its standard input and output.
 * The host side is the ordinary {@link StdioAdapter} whose child is that relay (and QEMU under it): a guest crash (a
 * panic makes QEMU exit) is an adapter crash, reported with its trace, and the next trace boots a fresh guest.
 *
 * - `linux-iommufd` — profile iommufd: /dev/iommu and the edu VFIO cdev (kernel A by default, `LINUX_IOMMUFD_KERNEL=B`);
 * - `linux-vfio-type1` — profile vfio-type1 on kernel A (`VFIO_CONTAINER=y`, the native type1 driver);
 * - `linux-iommufd-vfio-compat` — profile vfio-type1 on kernel B (`IOMMUFD_VFIO_CONTAINER=y`: iommufd emulates
 *   /dev/vfio/vfio).
 *
 * The kernels and the initramfs come from `linux/setup.sh` (`$IOASID_LINUX_CACHE/lane.env`, or the environment
 * variables `KERNEL_A`, `KERNEL_B`, `INITRD`). The guest console (kernel log, the adapter's stderr, DMAR faults) is
 * appended to `<LINUX_LANE_LOG_DIR or reports/out/<adapter>>/console.log`.
 *
 * Not for: machines without qemu-system-x86_64 (the adapters refuse to open with a one-line error), or KVM (the
 * lane is TCG on purpose: its IOMMU and edu are emulated by QEMU either way).
 *
 * @module
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Adapter, Capabilities, TraceReply } from '../adapter.ts';
import type { Command } from '../../src/reference/commands.ts';
import { StdioAdapter } from './stdio.ts';

/** The repository root (the relay runs from here so that `--import tsx` resolves). */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
let channels = 0;

/** Which kernel and adapter mode each Linux adapter runs. */
export interface LinuxAdapterSpec {
  readonly describe: string;
  readonly kernel: 'A' | 'B';
  readonly mode: 'iommufd' | 'type1';
}

/** The Linux adapters by name. */
export const LINUX_ADAPTERS: Readonly<Record<string, LinuxAdapterSpec>> = {
  'linux-iommufd': {
    describe: 'Linux 6.12 iommufd under QEMU (edu DMA probes); needs linux/setup.sh',
    kernel: 'A',
    mode: 'iommufd',
  },
  'linux-vfio-type1': {
    describe: 'Linux 6.12 native VFIO type1 under QEMU (kernel A); needs linux/setup.sh',
    kernel: 'A',
    mode: 'type1',
  },
  'linux-iommufd-vfio-compat': {
    describe: "Linux 6.12 iommufd's VFIO container emulation under QEMU (kernel B); needs linux/setup.sh",
    kernel: 'B',
    mode: 'type1',
  },
};

/** The built artefacts of `linux/setup.sh`. */
export interface LaneFiles {
  readonly kernelA: string;
  readonly kernelB: string;
  readonly initrd: string;
}

/** The default cache directory of `linux/setup.sh`. */
export function laneCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['IOASID_LINUX_CACHE']) return env['IOASID_LINUX_CACHE'];
  if (existsSync('/work')) return '/work/cache/ioasid-linux';
  return join(env['HOME'] ?? '.', '.cache', 'ioasid-linux');
}

/** Parses `KEY=value` lines (the `lane.env` setup.sh writes). */
export function parseLaneEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** Finds the kernels and initramfs: environment first, then the cache's lane.env. Throws a one-line error. */
export function laneFiles(env: NodeJS.ProcessEnv = process.env): LaneFiles {
  const laneEnv = join(laneCacheDir(env), 'lane.env');
  const file = existsSync(laneEnv) ? parseLaneEnv(readFileSync(laneEnv, 'utf8')) : {};
  const pick = (k: string) => env[k] ?? file[k];
  const kernelA = pick('KERNEL_A');
  const kernelB = pick('KERNEL_B');
  const initrd = pick('INITRD');
  if (kernelA === undefined || kernelB === undefined || initrd === undefined)
    throw new Error(`the Linux lane is not set up (no ${laneEnv}): run "bash linux/setup.sh" first`);
  for (const f of [kernelA, kernelB, initrd])
    if (!existsSync(f)) throw new Error(`the Linux lane file ${f} is missing: run "bash linux/setup.sh" again`);
  return { kernelA, kernelB, initrd };
}

/**
 * The QEMU command line of one Linux adapter: the protocol channel is a virtio-serial port named `ioasid` on the
 * Unix socket `channel` (see ./linux-relay.ts), the serial console is appended to `consoleLog`, a guest panic or
 * power-off ends QEMU.
 */
export function qemuArgv(
  name: string,
  spec: LinuxAdapterSpec,
  files: LaneFiles,
  consoleLog: string,
  channel: string,
  qemu = 'qemu-system-x86_64',
): string[] {
  const kernel = spec.kernel === 'A' ? files.kernelA : files.kernelB;
  return [
    qemu,
    '-nodefaults',
    '-no-user-config',
    '-machine',
    'q35,kernel-irqchip=split',
    '-accel',
    'tcg',
    '-cpu',
    'max',
    '-smp',
    '2',
    '-m',
    '1024',
    '-display',
    'none',
    '-monitor',
    'none',
    '-no-reboot',
    '-device',
    'intel-iommu,intremap=on',
    // edu's default 28-bit DMA mask would clamp IOVAs: the lane probes the whole aperture.
    '-device',
    'edu,dma_mask=0xffffffffffffffff',
    '-chardev',
    `file,id=con,path=${consoleLog},append=on`,
    '-serial',
    'chardev:con',
    '-chardev',
    `socket,id=ioasid,path=${channel},server=on,wait=off`,
    '-device',
    'virtio-serial-pci',
    '-device',
    'virtserialport,chardev=ioasid,name=ioasid',
    '-kernel',
    kernel,
    '-initrd',
    files.initrd,
    '-append',
    `console=ttyS0 intel_iommu=on iommu=nopt panic=-1 no_timer_check loglevel=4 ioasid.mode=${spec.mode} ioasid.name=${name}`,
  ];
}

/** Options of a Linux adapter. */
export interface LinuxOptions {
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** Where console.log goes (default `reports/out/<name>` under `cwd`). */
  readonly logDir?: string;
}

/** A Linux kernel under QEMU, as an {@link Adapter}: a {@link StdioAdapter} whose program is QEMU. */
export class LinuxAdapter implements Adapter {
  private readonly inner: StdioAdapter;
  /** Seconds from starting QEMU to the handshake, once opened. */
  bootSeconds: number | undefined;
  /** The console log file. */
  readonly consoleLog: string;

  constructor(
    readonly name: string,
    opts: LinuxOptions = {},
  ) {
    const spec = LINUX_ADAPTERS[name];
    if (spec === undefined) throw new Error(`unknown Linux adapter "${name}"`);
    const env = opts.env ?? process.env;
    const files = laneFiles(env);
    const kernelOverride = env['LINUX_IOMMUFD_KERNEL'];
    const eff: LinuxAdapterSpec =
      spec.mode === 'iommufd' && (kernelOverride === 'A' || kernelOverride === 'B')
        ? { ...spec, kernel: kernelOverride }
        : spec;
    const dir = resolve(opts.logDir ?? env['LINUX_LANE_LOG_DIR'] ?? join('reports', 'out', name));
    mkdirSync(dir, { recursive: true });
    this.consoleLog = join(dir, 'console.log');
    const channel = join(tmpdir(), `ioasid-${name}-${process.pid}-${channels++}.sock`);
    const argv = [
      process.execPath,
      '--import',
      'tsx',
      'conformance/adapters/linux-relay.ts',
      channel,
      '--',
      ...qemuArgv(name, eff, files, this.consoleLog, channel, env['QEMU'] ?? undefined),
    ];
    this.inner = new StdioAdapter(name, argv, {
      cwd: ROOT,
      // A DMA probe takes about 0.1 s per transfer under TCG, and a rate-limited fault record 5 s more.
      timeoutMs: opts.timeoutMs ?? 120_000,
      helloTimeoutMs: 120_000,
    });
  }

  async open(): Promise<Capabilities> {
    const t0 = performance.now();
    const caps = await this.inner.open();
    this.bootSeconds = (performance.now() - t0) / 1000;
    process.stderr.write(`${this.name}: QEMU boot to handshake ${this.bootSeconds.toFixed(1)} s\n`);
    return caps;
  }

  runTrace(steps: readonly Command[]): Promise<TraceReply> {
    return this.inner.runTrace(steps);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
