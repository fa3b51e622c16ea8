/**
 * The adapters the CLI knows by name:
 *
 * - `reference` — the reference model, in process;
 * - `reference-stdio` — the reference model in a child process (`node --import tsx conformance/reference-stdio.ts`),
 *   over the JSON-lines protocol: the end-to-end check of the protocol and of the stdio adapter;
 * - `buggy-<bug>` — the reference with one injected defect ({@link BUGS}), in process; `buggy-stdio-<bug>` the same
 *   over stdio;
 * - `linux-iommufd`, `linux-vfio-type1`, `linux-iommufd-vfio-compat` — a real Linux kernel under QEMU (./linux.ts);
 * - `stdio:<command line>` — any implementation speaking the protocol (`stdio:./my-impl --flag`);
 * - names tests register with {@link registerAdapter};
 * - for `hw run` ({@link createHwAdapter}): `hw-reference` (the VT-d hardware model in process), `hw-reference-stdio`
 *   (the same over the hardware protocol), `hw-buggy-<bug>` / `hw-buggy-stdio-<bug>` and `stdio:<command line>`.
 *
 * @module
 */
import { fileURLToPath } from 'node:url';
import type { Adapter } from '../adapter.ts';
import type { Profile } from '../../src/reference/commands.ts';
import type { Platform } from '../../src/reference/platform.ts';
import { UsageError } from '../errors.ts';
import { toWireJson } from '../protocol.ts';
import { LINUX_ADAPTERS, LinuxAdapter } from './linux.ts';
import { BUGS, ReferenceAdapter } from './reference.ts';
import { StdioAdapter, splitCommandLine } from './stdio.ts';
import { HW_BUGS, ReferenceHwAdapter, type HwAdapter } from './hw-reference.ts';
import { HwStdioAdapter } from './hw-stdio.ts';

/**
 * What the CLI asks of an adapter. Configurable implementations (the reference family) honour profile, features and
 * platform; a fixed implementation ignores them (the runner then checks its declaration against the request).
 */
export interface AdapterOptions {
  readonly profile?: Profile;
  readonly features?: readonly string[];
  readonly platform?: Platform;
  /** Per-request timeout of out-of-process adapters, in milliseconds. */
  readonly timeoutMs?: number;
}

/** Builds an adapter. */
export type AdapterFactory = (name: string, opts: AdapterOptions) => Adapter;

/** The repository root (child programs run from here, so `--import tsx` resolves). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The command line of the stdio reference program for `opts`. */
export function referenceStdioArgv(opts: AdapterOptions, bug?: string): string[] {
  const argv = [process.execPath, '--import', 'tsx', 'conformance/reference-stdio.ts'];
  if (opts.profile !== undefined) argv.push('--profile', opts.profile);
  if (opts.features !== undefined)
    argv.push('--features', opts.features.length === 0 ? 'none' : opts.features.join(','));
  if (opts.platform !== undefined) argv.push('--platform-json', toWireJson(opts.platform));
  if (bug !== undefined) argv.push('--bug', bug);
  return argv;
}

const BUILTIN: Record<string, { describe: string; make: AdapterFactory }> = {
  reference: { describe: 'the reference model, in process', make: (name, o) => new ReferenceAdapter(name, o) },
  'reference-stdio': {
    describe: 'the reference model in a child process, over the stdio protocol',
    make: (name, o) =>
      new StdioAdapter(name, referenceStdioArgv(o), {
        cwd: REPO_ROOT,
        ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
      }),
  },
};
for (const bug of Object.keys(BUGS)) {
  BUILTIN[`buggy-${bug}`] = {
    describe: `the reference with a bug: ${BUGS[bug]!.description}`,
    make: (name, o) => new ReferenceAdapter(name, { ...o, bug }),
  };
  BUILTIN[`buggy-stdio-${bug}`] = {
    describe: `the same over stdio`,
    make: (name, o) =>
      new StdioAdapter(name, referenceStdioArgv(o, bug), {
        cwd: REPO_ROOT,
        ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
      }),
  };
}

// The Linux lane (linux/setup.sh builds the kernels): a real kernel under QEMU, see ./linux.ts.
for (const [linux, spec] of Object.entries(LINUX_ADAPTERS)) {
  BUILTIN[linux] = {
    describe: spec.describe,
    make: (name, o) => {
      try {
        return new LinuxAdapter(name, o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs });
      } catch (e) {
        throw new UsageError(`adapter "${name}": ${(e as Error).message}`);
      }
    },
  };
}

const registered = new Map<string, { describe: string; make: AdapterFactory }>();

/** Registers an adapter name (tests use it to wrap the reference with a bug of their own). In process only: `--jobs` workers do not see it. */
export function registerAdapter(name: string, make: AdapterFactory, describe = 'registered by a test'): void {
  if (name.startsWith('stdio:') || BUILTIN[name] !== undefined) throw new Error(`adapter name "${name}" is reserved`);
  registered.set(name, { describe, make });
}

/** Removes a registered adapter. */
export function unregisterAdapter(name: string): void {
  registered.delete(name);
}

/** Whether `name` names an adapter that worker threads can build too (built-ins and `stdio:`). */
export function isPortable(name: string): boolean {
  return name.startsWith('stdio:') || BUILTIN[name] !== undefined;
}

/** The known adapter names with a description, for `--help` and error messages. */
export function adapterNames(): { name: string; describe: string }[] {
  return [
    ...Object.entries(BUILTIN).map(([name, a]) => ({ name, describe: a.describe })),
    ...[...registered.entries()].map(([name, a]) => ({ name, describe: a.describe })),
    {
      name: 'stdio:<command line>',
      describe: 'any implementation speaking the protocol of conformance/INTERPRETING.md',
    },
  ];
}

/** Builds the adapter `name`. Unknown names raise a {@link UsageError} listing the known ones. */
export function createAdapter(name: string, opts: AdapterOptions = {}): Adapter {
  if (name.startsWith('stdio:')) {
    let argv: string[];
    try {
      argv = splitCommandLine(name.slice('stdio:'.length));
    } catch (e) {
      throw new UsageError(`bad adapter "${name}": ${(e as Error).message}`);
    }
    if (argv.length === 0)
      throw new UsageError('adapter "stdio:" needs a command line, e.g. stdio:./my-implementation --flag');
    return new StdioAdapter(name, argv, opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs });
  }
  const entry = registered.get(name) ?? BUILTIN[name];
  if (entry === undefined) {
    const known = adapterNames().map((a) => a.name);
    throw new UsageError(`unknown adapter "${name}"; known adapters: ${known.join(', ')}`);
  }
  return entry.make(name, opts);
}

// ==============================================================================================================
// Hardware adapters (`ioasid-conformance hw run`, chapter HW): IOMMU implementations driven by hardware traces.

/** The command line of the stdio hardware-model program (`conformance/hw-reference-stdio.ts`), with a defect `bug`. */
export function hwReferenceStdioArgv(bug?: string): string[] {
  return [
    process.execPath,
    '--import',
    'tsx',
    'conformance/hw-reference-stdio.ts',
    ...(bug === undefined ? [] : ['--bug', bug]),
  ];
}

const HW_BUILTIN: Record<string, { describe: string; make: (name: string, o: AdapterOptions) => HwAdapter }> = {
  'hw-reference': {
    describe: 'the VT-d hardware model, in process',
    make: (name) => new ReferenceHwAdapter(name),
  },
  'hw-reference-stdio': {
    describe: 'the VT-d hardware model in a child process, over the hardware protocol',
    make: (name, o) =>
      new HwStdioAdapter(name, hwReferenceStdioArgv(), {
        cwd: REPO_ROOT,
        ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
      }),
  },
};
for (const [bug, b] of Object.entries(HW_BUGS)) {
  HW_BUILTIN[`hw-buggy-${bug}`] = {
    describe: `the hardware model with a defect: ${b.description}`,
    make: (name) => new ReferenceHwAdapter(name, bug),
  };
  HW_BUILTIN[`hw-buggy-stdio-${bug}`] = {
    describe: 'the same over stdio',
    make: (name, o) =>
      new HwStdioAdapter(name, hwReferenceStdioArgv(bug), {
        cwd: REPO_ROOT,
        ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
      }),
  };
}

/** The hardware adapter names with a description, for `hw run --help` and error messages. */
export function hwAdapterNames(): { name: string; describe: string }[] {
  return [
    ...Object.entries(HW_BUILTIN).map(([name, a]) => ({ name, describe: a.describe })),
    { name: 'stdio:<command line>', describe: 'any IOMMU implementation speaking the hardware protocol' },
  ];
}

/** Builds the hardware adapter `name`. Unknown names raise a {@link UsageError} listing the known ones. */
export function createHwAdapter(name: string, opts: AdapterOptions = {}): HwAdapter {
  if (name.startsWith('stdio:')) {
    let argv: string[];
    try {
      argv = splitCommandLine(name.slice('stdio:'.length));
    } catch (e) {
      throw new UsageError(`bad adapter "${name}": ${(e as Error).message}`);
    }
    if (argv.length === 0)
      throw new UsageError('adapter "stdio:" needs a command line, e.g. stdio:./my-emulator-harness --flag');
    return new HwStdioAdapter(name, argv, opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs });
  }
  const entry = HW_BUILTIN[name];
  if (entry === undefined)
    throw new UsageError(
      `unknown hardware adapter "${name}"; known hardware adapters: ${hwAdapterNames()
        .map((a) => a.name)
        .join(', ')}`,
    );
  return entry.make(name, opts);
}

/** Whether an adapter name is of the reference family (it takes its profile, features and platform from the caller). */
export function isConfigurable(name: string): boolean {
  return name === 'reference' || name === 'reference-stdio' || name.startsWith('buggy-');
}
