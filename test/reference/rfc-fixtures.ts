// Fixtures of the rfc-profile model tests: a model with every rfc feature, a VT-d-like platform with a PASID-table
// format and a second mediated device, and helpers that name the objects of the RFC's sample flows.
import { strict as assert } from 'node:assert';
import type { Command, Outcome } from '../../src/reference/commands.ts';
import { Model, type StepResult } from '../../src/reference/model.ts';
import { defaultPlatform, type Platform } from '../../src/reference/platform.ts';
import type { State } from '../../src/reference/state.ts';

export const P = 4096n;
export const BASE = 0x10_0000n;
/** Every feature of the rfc profile. */
export const ALL_RFC = [
  'dma-probe',
  'enqcmd',
  'mdev',
  'migration',
  'nesting-hw',
  'nesting-sw',
  'pasid',
  'pasid-global',
  'pasid-table-user',
  'pasid-virt',
  'prereg',
] as const;
/** The platform's pgtable and PASID-table formats. */
export const PGTABLE = 'vtd-s1-4lvl';
export const PASIDTABLE = 'smmuv3-cd';

/**
 * The default platform with a PASID-table format and a second mediated device (index 4) on dev1. Devices: 0 and 1
 * physical (groups 1 and 2), 2 physical sharing group 2 with 1 (not ENQCMD-capable), 3 mediated on 0, 4 mediated on 1.
 */
export function rfcPlatform(edit: (p: Platform) => void = () => {}): Platform {
  const p = defaultPlatform();
  p.iommu.pasidTableFormats = [PASIDTABLE];
  p.devices.push({ ...p.devices[3]!, name: 'mdev1', rid: 0x0200, group: 2, parent: 1 });
  edit(p);
  return p;
}

/** A step that went wrong in a fixture: the command, what it returned. */
function show(c: Command, o: Outcome): string {
  return `${c.op} → ${o.ok ? 'ok' : o.errno} ${JSON.stringify(o.out ?? {}, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}`;
}

/** An rfc model with helpers; IDs are literal (the model numbers from 1, FD-004). */
export class Rfc {
  readonly model: Model;
  last: StepResult | undefined;

  constructor(features: readonly string[] = ALL_RFC, platform: Platform = rfcPlatform()) {
    this.model = new Model({ profile: 'rfc', features: new Set(features), platform });
  }

  /** Runs a command; returns its outcome (the clauses are in `last`). */
  step(c: Command): Outcome {
    this.last = this.model.step(c);
    return this.last.outcome;
  }
  /** Runs a command that must succeed; returns its outputs. */
  ok(c: Command): Record<string, unknown> {
    const o = this.step(c);
    assert.ok(o.ok, show(c, o));
    return o.out ?? {};
  }
  /** Runs a command that must fail with `errno`, recording clause `clause` when given. */
  fails(c: Command, errno: string, clause?: string): void {
    const o = this.step(c);
    assert.equal(o.ok ? 'ok' : o.errno, errno, show(c, o));
    if (clause !== undefined)
      assert.ok(this.last!.clauses.includes(clause), `${clause} not in ${this.last!.clauses.join(',')}`);
  }
  /** Whether the last step recorded `clause`. */
  hit(clause: string): boolean {
    return this.last?.clauses.includes(clause) ?? false;
  }
  /** The model's state (a snapshot). */
  get state(): State {
    return this.model.snapshot().state;
  }

  /** IOASID_ALLOC; returns the new ID. */
  alloc(): number {
    return this.ok({ op: 'IOASID_ALLOC' }).id as number;
  }
  /** VFIO_BIND_IOASID_FD of each device. */
  bind(...devs: number[]): void {
    for (const dev of devs) this.ok({ op: 'VFIO_BIND_IOASID_FD', dev });
  }
  /** VFIO_ATTACH_IOASID (with a user PASID when given). */
  attach(dev: number, ioasid: number, pasid?: number): Outcome {
    return this.step(
      pasid === undefined
        ? { op: 'VFIO_ATTACH_IOASID', dev, ioasid }
        : { op: 'VFIO_ATTACH_IOASID', dev, ioasid, pasid },
    );
  }
  /** IOASID_CREATE_NESTING; returns the child's ID. */
  nest(parent: number, format: 'kernel' | 'pgtable' | 'pasid-table'): number {
    const table_format = format === 'pgtable' ? PGTABLE : format === 'pasid-table' ? PASIDTABLE : undefined;
    const c: Command =
      table_format === undefined
        ? { op: 'IOASID_CREATE_NESTING', parent, format }
        : { op: 'IOASID_CREATE_NESTING', parent, format, table_format };
    return this.ok(c).id as number;
  }
  /** IOASID_MAP_DMA of user memory (buffer 0 at offset `off`, default the IOVA). */
  mapCmd(
    ioasid: number,
    iova: bigint,
    size: bigint,
    opts: { off?: bigint; flags?: number; buf?: number } = {},
  ): Command {
    return {
      op: 'IOASID_MAP_DMA',
      ioasid,
      flags: opts.flags ?? 3,
      vaddr: { buf: opts.buf ?? 0, off: opts.off ?? iova },
      iova,
      size,
    };
  }
  map(ioasid: number, iova: bigint, size: bigint, opts: { off?: bigint; flags?: number; buf?: number } = {}): Outcome {
    return this.step(this.mapCmd(ioasid, iova, size, opts));
  }
  /** IOASID_MAP_DMA on a software-nesting child: child IOVA `iova` → parent IOVA `from`. */
  mapChild(ioasid: number, iova: bigint, from: bigint, size: bigint, flags = 3): Outcome {
    return this.step({ op: 'IOASID_MAP_DMA', ioasid, flags, vaddr: { iova: from }, iova, size });
  }
  unmap(ioasid: number, iova: bigint, size: bigint): Outcome {
    return this.step({ op: 'IOASID_UNMAP_DMA', ioasid, flags: 0, iova, size });
  }
  /** DEVICE_DMA of 8 bytes; returns the outcome. */
  dma(dev: number, iova: bigint, opts: { write?: boolean; pasid?: number } = {}): Outcome {
    const c: Command = { op: 'DEVICE_DMA', dev, iova, length: 8n, write: opts.write ?? false };
    return this.step(opts.pasid === undefined ? c : { ...c, pasid: opts.pasid });
  }
  /** The buffer offset a DMA reached, or its fault reason. */
  reach(dev: number, iova: bigint, opts: { write?: boolean; pasid?: number } = {}): string {
    const o = this.dma(dev, iova, opts);
    if (o.ok) return `buf${o.out!.buf as number}+0x${(o.out!.off as bigint).toString(16)}`;
    return `fault:${o.out?.reason as string}`;
  }
  /** The PASID a CPU_ENQCMD delivers, or `fault:<reason>`. */
  enqcmd(dev: number, pasid: number): string | number {
    const o = this.step({ op: 'CPU_ENQCMD', dev, pasid });
    return o.ok ? (o.out!.pasid as number) : `fault:${o.out?.reason as string}`;
  }
  /** Switches the fd to the global scheme with split `min`. */
  global(min: number): void {
    this.ok({ op: 'IOASID_SET_HWID_MODE', mode: 1 });
    this.ok({ op: 'IOASID_HWID_SET_GLOBAL_MIN', min });
  }
  /** A root IOASID with device(s) bound and attached by RID (ready); returns its ID. */
  readyRoot(...devs: number[]): number {
    const id = this.alloc();
    for (const d of devs) {
      if (this.state.devices[d]!.boundId === 0) this.bind(d);
      assert.ok(this.attach(d, id).ok, `attach dev${d} to ${id}`);
    }
    return id;
  }
  /** The real PASID the model gave attachment (dev, user PASID). */
  real(dev: number, pasid: number): number | undefined {
    return this.state.devices[dev]!.attachments.find((a) => a.pasid === pasid)?.real;
  }
  /** Pages accounted against RLIMIT_MEMLOCK. */
  get locked(): bigint {
    return this.state.rfcx.locked;
  }
  /** A cheap fingerprint of everything a rejected command must leave unchanged (FMT-018). */
  fingerprint(): string {
    const st = this.state;
    const objs = [...st.objects.values()].map((o) =>
      o.kind === 'ioasid'
        ? `${o.id}:${o.format}:${o.parent}:${o.attachments}:${o.children}:${String(o.bound)}:${[...(o.space?.areas.all() ?? [])].map((a) => `${a.iova}-${a.last}`).join('/')}`
        : `${o.id}:${o.kind}`,
    );
    const devs = st.devices.map(
      (d) => `${d.boundId}:${d.attachments.map((a) => `${a.ioasid}.${String(a.pasid)}.${String(a.real)}`).join('/')}`,
    );
    return JSON.stringify([
      objs,
      devs,
      st.ids.peek(),
      st.rfcx.locked.toString(),
      [...st.rfcx.kpasids.keys()],
      st.rfcx.mode,
    ]);
  }
}
