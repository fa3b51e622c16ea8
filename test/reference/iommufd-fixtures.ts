// Fixtures of the iommufd model tests (chapters NEST, INV, INFO, FMT, FAULT and the ioctl ABI): a model with the
// features these chapters need, and helpers that build the objects of a nesting with a fault queue. IDs are literal:
// the model numbers objects from 1 (FD-004), so a test can name them.
import { strict as assert } from 'node:assert';
import type { Command, Outcome, Outputs, Profile } from '../../src/reference/commands.ts';
import { Model, type StepResult } from '../../src/reference/model.ts';
import { defaultPlatform, type Platform } from '../../src/reference/platform.ts';
import type { State } from '../../src/reference/state.ts';

/** The features of the iommufd profile these tests use. */
export const IOMMUFD_FEATURES = ['auto-iova', 'copy', 'dirty-tracking', 'iopf', 'ioctl-abi', 'nesting-hw', 'dma-probe'];
/** An IOMMU_HWPT_ALLOC command. */
export type HwptAllocCommand = Extract<Command, { op: 'IOMMU_HWPT_ALLOC' }>;
/** A VT-d stage-1 description (struct iommu_hwpt_vtd_s1). */
export const S1 = { flags: 0, pgtbl_addr: 0x1_0000_0000n, addr_width: 48 };

function show(c: Command, o: Outcome): string {
  return `${c.op} → ${o.ok ? 'ok' : o.errno} ${JSON.stringify(o.out ?? {}, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}`;
}

/** A model of one fd with helpers. */
export class Fd {
  readonly model: Model;
  last: StepResult | undefined;

  constructor(
    profile: Profile = 'iommufd',
    features: readonly string[] = IOMMUFD_FEATURES,
    platform: Platform = defaultPlatform(),
  ) {
    this.model = new Model({ profile, features: new Set(features), platform });
  }

  /** Runs a command; returns its outcome (clauses in `last`). */
  step(c: Command): Outcome {
    this.last = this.model.step(c);
    return this.last.outcome;
  }
  /** Runs a command that must succeed; returns its outputs. */
  ok(c: Command): Outputs {
    const o = this.step(c);
    assert.ok(o.ok, `expected success: ${show(c, o)}`);
    return o.out ?? {};
  }
  /** Runs a command that must fail; returns its errno. */
  err(c: Command): string {
    const o = this.step(c);
    assert.ok(!o.ok, `expected an error: ${show(c, o)}`);
    return o.errno;
  }
  /** The errno of a command, or 'ok'. */
  result(c: Command): string {
    const o = this.step(c);
    return o.ok ? 'ok' : o.errno;
  }
  /** A copy of the state (for assertions that nothing changed). */
  state(): State {
    return this.model.snapshot().state;
  }
  /** The clauses the last step evaluated. */
  clauses(): readonly string[] {
    return this.last?.clauses ?? [];
  }
  /** Live object IDs and kinds, for "nothing changed" comparisons. */
  objects(): string {
    return this.model.view
      .objects()
      .map((o) => `${o.id}:${o.kind}`)
      .join(',');
  }

  // ----------------------------------------------------------------- builders (iommufd)
  ioas(): number {
    return this.ok({ op: 'IOMMU_IOAS_ALLOC' }).id as number;
  }
  bind(dev: number): number {
    return this.ok({ op: 'VFIO_DEVICE_BIND_IOMMUFD', dev }).id as number;
  }
  attach(dev: number, pt: number): number {
    return this.ok({ op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev, pt_id: pt }).pt_id as number;
  }
  paging(devId: number, ioas: number, flags = 0): number {
    return this.ok({ op: 'IOMMU_HWPT_ALLOC', flags, dev_id: devId, pt_id: ioas, data_type: 0 }).id as number;
  }
  faultQueue(): number {
    return this.ok({ op: 'IOMMU_FAULT_QUEUE_ALLOC' }).id as number;
  }
  nestedCmd(devId: number, parent: number, fault?: number): HwptAllocCommand {
    return fault === undefined
      ? { op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: devId, pt_id: parent, data_type: 1, data: S1, data_len: 24 }
      : {
          op: 'IOMMU_HWPT_ALLOC',
          flags: 4,
          dev_id: devId,
          pt_id: parent,
          data_type: 1,
          data: S1,
          data_len: 24,
          fault_id: fault,
        };
  }
  nested(devId: number, parent: number, fault?: number): number {
    return this.ok(this.nestedCmd(devId, parent, fault)).id as number;
  }
  /**
   * The fault flow's objects: IOAS 1, device 0 bound as 2, NEST_PARENT 3, FAULT 4, nested 5 reporting to 4, device 0
   * attached to 5.
   */
  faultSetup(): { ioas: number; dev: number; parent: number; fault: number; nested: number } {
    const ioas = this.ioas();
    const dev = this.bind(0);
    const parent = this.paging(dev, ioas, 1);
    const fault = this.faultQueue();
    const nested = this.nested(dev, parent, fault);
    this.attach(0, nested);
    return { ioas, dev, parent, fault, nested };
  }
  /** DEVICE_PAGE_REQUEST. */
  pr(dev: number, grpid: number, last = true, addr = 0x4000n, perm = 1, pasid?: number): Outcome {
    const c: Command = { op: 'DEVICE_PAGE_REQUEST', dev, addr, grpid, perm, last };
    return this.step(pasid === undefined ? c : { ...c, pasid });
  }
  /** The response the device got at once from a page request. */
  response(o: Outcome): string {
    assert.ok(o.ok, 'page request refused');
    return o.out?.response as string;
  }
  read(fault: number, count: number): Outcome {
    return this.step({ op: 'IOMMU_FAULT_READ', fault_id: fault, count });
  }
  respond(fault: number, cookie: number, code = 0): Outcome {
    return this.step({ op: 'IOMMU_FAULT_RESPOND', fault_id: fault, cookie, code });
  }
  /** FAULT-029's bookkeeping: groups raised, responses sent, groups pending in every queue. */
  pri(): { raised: number; answered: number; pending: number } {
    const st = this.state();
    let pending = st.rfcFaults.pending;
    for (const o of st.objects.values()) if (o.kind === 'fault') pending += o.queue.pending;
    return { raised: st.pri.raised, answered: st.pri.answered, pending };
  }
}

/** The records of a read outcome. */
export function records(o: Outcome): Outputs[] {
  assert.ok(o.ok, 'read failed');
  return o.out?.records as Outputs[];
}
