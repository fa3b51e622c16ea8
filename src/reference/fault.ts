/**
 * Chapter FAULT — I/O page faults: routing, reporting, response (spec/chapters/FAULT.md). The DEVICE_PAGE_REQUEST
 * harness step in every profile; iommufd's FAULT objects (IOMMU_FAULT_QUEUE_ALLOC), their fault fd (read, write,
 * close) and the automatic responses at detach and destroy; the rfc profile's IOASID_FAULT_READ / RESPOND.
 *
 * Every page group owes its device exactly one response (FAULT-029): `st.pri` counts groups raised and responses
 * sent, and every pending group sits in exactly one queue, so `raised = answered + pending` after every step.
 *
 * Not for: the IOMMU's page request queue or its overflow bit (chapter HW, the hardware model), or which level of a
 * nested walk missed (the uAPI model routes by attachment only).
 *
 * @module
 */
import type { Outcome, Outputs } from './commands.ts';
import { PAGE_RESP, PGFAULT_PERM } from './commands.ts';
import { PROT } from './core/areas.ts';
import type { StepContext } from './core/context.ts';
import { adoptId, releaseIfUnheld } from './fd.ts';
import type {
  DevicePageRequestCmd,
  IoasidFaultReadCmd,
  IoasidFaultRespondCmd,
  IommuFaultCloseCmd,
  IommuFaultQueueAllocCmd,
  IommuFaultReadCmd,
  IommuFaultRespondCmd,
} from './resolved.ts';
import { FaultQueue, type FaultGroup, type FaultObject, type PageRequest, type State } from './state.ts';

/** sizeof(struct iommu_hwpt_pgfault). */
export const PGFAULT_SIZE = 40;
/** sizeof(struct iommu_hwpt_page_response). */
export const PAGE_RESPONSE_SIZE = 8;
/** `IOMMU_PGFAULT_FLAGS_*` of a record. */
export const PGFAULT_FLAGS = { PASID_VALID: 1, LAST_PAGE: 2 } as const;
/** rfc: the pending page groups an fd holds before further groups are answered SUCCESS (FAULT-014). */
export const RFC_FAULT_QUEUE_DEPTH = 32;

/** The response a device received: a PCIe code, or none yet. */
type Response = 'SUCCESS' | 'INVALID' | 'FAILURE';
const CODE_NAME: Record<number, Response> = { 0: 'SUCCESS', 1: 'INVALID', 2: 'FAILURE' };

/** Sends one page group response to a device (FAULT-029: counted once per group). */
function respond(st: State, ctx: StepContext): void {
  st.pri.answered++;
  ctx.hit('FAULT-029');
}

/** The outcome of a request the kernel answers at once: a new group that is answered immediately. */
function kernelAnswers(st: State, ctx: StepContext, response: Response, clause: string): Outcome {
  st.pri.raised++;
  respond(st, ctx);
  ctx.hit(clause);
  return ctx.ok({ response });
}

/** The lowest free cookie of a queue (the response xarray is XA_FLAGS_ALLOC1: cookies start at 1). */
function freeCookie(q: FaultQueue): number {
  let c = 1;
  while (q.response.has(c)) c++;
  return c;
}

/** Forms the group of a last request: the device's earlier requests of the same group index, then this one. */
function takeGroup(st: State, dev: number, grpid: number, last: PageRequest, table: number): FaultGroup {
  const key = `${dev}:${grpid}`;
  const earlier = st.pri.partial.get(key) ?? [];
  st.pri.partial.delete(key);
  st.pri.raised++;
  return { seq: st.pri.nextSeq++, dev, grpid, pasid: last.pasid, requests: [...earlier, last], table };
}

/** Holds a request that is not the last of its group (FAULT-009: nothing is readable before the last one). */
function holdPartial(st: State, ctx: StepContext, dev: number, grpid: number, r: PageRequest): Outcome {
  const key = `${dev}:${grpid}`;
  st.pri.partial.set(key, [...(st.pri.partial.get(key) ?? []), r]);
  ctx.hit('FAULT-009');
  return ctx.ok({ response: 'none' });
}

// ------------------------------------------------------------------------------------------------ routing

/** DEVICE_PAGE_REQUEST (io-pgfault.c:iommu_report_device_fault): routes one page request by RID (and PASID). */
export function devicePageRequest(st: State, ctx: StepContext, c: DevicePageRequestCmd): Outcome {
  const pd = st.platform.devices[c.dev];
  // Only a physical function with PRI sends page requests; anything else is a malformed harness step.
  if (pd === undefined || pd.kind !== 'physical' || !pd.pri || (c.perm & ~0xf) !== 0)
    return ctx.reject('FAULT-001', 'EINVAL');
  if (c.pasid !== undefined && (!pd.pasid || c.pasid < 0 || c.pasid >= 2 ** st.platform.iommu.pasidBits))
    return ctx.reject('FAULT-001', 'EINVAL');
  const r: PageRequest = { addr: c.addr, perm: c.perm, pasid: c.pasid, last: c.last };
  ctx.hit('FAULT-001');
  switch (st.profile) {
    case 'vfio-type1':
      // The container reports no fault: every request is answered INVALID (FAULT-006).
      return kernelAnswers(st, ctx, 'INVALID', 'FAULT-006');
    case 'iommufd':
      return iommufdRoute(st, ctx, c.dev, c.grpid, r);
    case 'rfc':
      return rfcRoute(st, ctx, c.dev, c.grpid, r);
  }
}

/** iommufd: the RID's HWPT handles the fault only when it is a nested HWPT with a FAULT (FAULT-001, FAULT-005). */
function iommufdRoute(st: State, ctx: StepContext, dev: number, grpid: number, r: PageRequest): Outcome {
  const d = st.devices[dev]!;
  const h = st.get(d.hwpt, 'hwpt-nested');
  // VT-d has no user-managed PASID table: a PASID-tagged request finds no handler (FAULT-001, FAULT-006).
  if (d.boundId === 0 || h === undefined || h.fault === 0 || r.pasid !== undefined)
    return kernelAnswers(st, ctx, 'INVALID', 'FAULT-006');
  const fault = st.get(h.fault, 'fault')!;
  if (!r.last) return holdPartial(st, ctx, dev, grpid, r);
  // Queued whole on the FAULT of the HWPT that faulted, whatever level missed (FAULT-002, FAULT-005).
  fault.queue.deliver.push(takeGroup(st, dev, grpid, r, h.id));
  ctx.hit('FAULT-002');
  ctx.hit('FAULT-005');
  // iommufd sets no limit on a queue: the group is queued whatever is pending (FAULT-014's iommufd outcome).
  ctx.hit('FAULT-014');
  return ctx.ok({ response: 'queued' });
}

/** rfc: the IOASID the RID (or RID + PASID) is attached to; the leaf of a RID's nesting chain. */
function rfcTable(st: State, dev: number, pasid: number | undefined): number {
  const d = st.devices[dev]!;
  if (d.boundId === 0) return 0;
  if (pasid !== undefined) return d.attachments.find((a) => a.pasid === pasid)?.ioasid ?? 0;
  const rid = d.attachments.filter((a) => a.pasid === undefined).map((a) => a.ioasid);
  return rid.find((id) => !rid.some((other) => st.get(other, 'ioasid')?.parent === id)) ?? 0;
}

/** Whether every request of a group is mapped with its access in a kernel-managed IOASID. */
function kernelFixes(st: State, ioasid: number, requests: readonly PageRequest[]): boolean {
  const space = st.get(ioasid, 'ioasid')?.space;
  if (space === undefined) return false;
  return requests.every((q) => {
    const a = space.areas.containing(q.addr);
    const need =
      ((q.perm & PGFAULT_PERM.READ) !== 0 ? PROT.READ : 0) | ((q.perm & PGFAULT_PERM.WRITE) !== 0 ? PROT.WRITE : 0);
    return a !== undefined && (a.prot & need) === need;
  });
}

function rfcRoute(st: State, ctx: StepContext, dev: number, grpid: number, r: PageRequest): Outcome {
  const ioasid = rfcTable(st, dev, r.pasid);
  const io = st.get(ioasid, 'ioasid');
  if (io === undefined) return kernelAnswers(st, ctx, 'INVALID', 'FAULT-006');
  if (!r.last) return holdPartial(st, ctx, dev, grpid, r);
  if (io.format === 'kernel') {
    // A miss in a kernel-managed table is the kernel's: fixed (SUCCESS) when mapped by now, else INVALID.
    const g = takeGroup(st, dev, grpid, r, io.id);
    respond(st, ctx);
    ctx.hit('FAULT-004');
    return ctx.ok({ response: kernelFixes(st, io.id, g.requests) ? 'SUCCESS' : 'INVALID' });
  }
  if (st.rfcFaults.pending >= RFC_FAULT_QUEUE_DEPTH) {
    // A full queue: the kernel answers SUCCESS so the device retries later (FAULT-014).
    takeGroup(st, dev, grpid, r, io.id);
    respond(st, ctx);
    ctx.hit('FAULT-014');
    return ctx.ok({ response: 'SUCCESS' });
  }
  st.rfcFaults.deliver.push(takeGroup(st, dev, grpid, r, io.id));
  ctx.hit('FAULT-002');
  ctx.hit('FAULT-003');
  return ctx.ok({ response: 'queued' });
}

// ------------------------------------------------------------------------------------------------ teardown

/**
 * Ends a device's attachment to a fault-reporting table: answers INVALID every group the device raised through
 * it, queued or awaiting a response (FAULT-023, fault.c:iommufd_auto_response_faults). `table` is the HWPT
 * (iommufd) or the IOASID (rfc); `pasid` selects the rfc attachment (undefined: the RID's).
 */
export function autoRespond(st: State, ctx: StepContext | undefined, dev: number, table: number, pasid?: number): void {
  const queue =
    st.profile === 'iommufd'
      ? st.get(st.get(table, 'hwpt-nested')?.fault ?? 0, 'fault')?.queue
      : st.profile === 'rfc'
        ? st.rfcFaults
        : undefined;
  if (queue === undefined) return;
  const mine = (g: FaultGroup) => g.dev === dev && g.table === table && (st.profile === 'iommufd' || g.pasid === pasid);
  let n = 0;
  const kept = queue.deliver.filter((g) => !mine(g));
  n += queue.deliver.length - kept.length;
  queue.deliver = kept;
  for (const [cookie, a] of queue.response)
    if (mine(a.group)) {
      queue.response.delete(cookie);
      n++;
    }
  st.pri.answered += n;
  if (ctx !== undefined) ctx.hit('FAULT-023');
}

/**
 * Refuses to attach a device to a fault-capable HWPT when it cannot enable I/O page faults: without PRI or ATS
 * (FAULT-031, intel_iommu_enable_iopf). Returns the error outcome, or undefined to go on.
 */
export function iopfRefused(st: State, ctx: StepContext, dev: number, hwpt: number): Outcome | undefined {
  const h = st.get(hwpt, 'hwpt-nested');
  if (h === undefined || h.fault === 0) return undefined;
  const pd = st.platform.devices[dev]!;
  // FAULT-028: a PCI virtual function shares PRI with its PF, so iommufd_fault_iopf_enable refuses it first.
  if (pd.vf === true) return ctx.reject('FAULT-028', 'EINVAL');
  ctx.hit('FAULT-028');
  if (!pd.pri || !pd.ats) return ctx.reject('FAULT-031', 'ENODEV');
  ctx.hit('FAULT-031');
  return undefined;
}

/**
 * IOMMU_DESTROY of a FAULT object (main.c:iommufd_destroy, fault.c:iommufd_fault_destroy): EBUSY while its fd is
 * open or a HWPT reports to it (FD-014, FAULT-024); otherwise everything still pending is answered INVALID.
 * Returns the error outcome, or undefined when the object may go (the caller removes it).
 */
export function destroyFault(st: State, ctx: StepContext, f: FaultObject): Outcome | undefined {
  if (f.fdOpen) return ctx.reject('FAULT-024', 'EBUSY');
  for (const o of st.objects.values())
    if ((o.kind === 'hwpt-nested' || o.kind === 'hwpt-paging') && o.fault === f.id)
      return ctx.reject('FD-014', 'EBUSY');
  st.pri.answered += f.queue.pending;
  f.queue = new FaultQueue();
  ctx.hit('FD-014');
  ctx.hit('FAULT-024');
  return undefined;
}

// ------------------------------------------------------------------------------------------------ iommufd

/** IOMMU_FAULT_QUEUE_ALLOC (fault.c:iommufd_fault_alloc). */
export function iommufdFaultQueueAlloc(st: State, ctx: StepContext, c: IommuFaultQueueAllocCmd): Outcome {
  if ((c.flags ?? 0) !== 0) return ctx.reject('FAULT-025', 'EOPNOTSUPP');
  const id = adoptId(st, ctx);
  if (id === 0) return ctx.reject('FD-001', 'ENOSPC');
  st.objects.set(id, { kind: 'fault', id, fdOpen: true, queue: new FaultQueue() });
  ctx.hit('FAULT-025');
  return ctx.ok({ id });
}

/** The open fault fd of FAULT `id`, or the EBADF outcome (FAULT-030). */
function faultFd(st: State, ctx: StepContext, id: number): FaultObject | Outcome {
  const f = st.get(id, 'fault');
  if (f === undefined || !f.fdOpen) return ctx.reject('FAULT-030', 'EBADF');
  ctx.hit('FAULT-030');
  return f;
}

/** The 40-byte record of one request of a group (fault.c:iommufd_compose_fault_message). */
function record(st: State, g: FaultGroup, r: PageRequest, cookie: number): Outputs {
  return {
    flags: (r.pasid !== undefined ? PGFAULT_FLAGS.PASID_VALID : 0) | (r.last ? PGFAULT_FLAGS.LAST_PAGE : 0),
    dev_id: st.devices[g.dev]!.boundId,
    pasid: r.pasid ?? 0,
    grpid: g.grpid,
    perm: r.perm,
    addr: r.addr,
    length: 0,
    cookie,
  };
}

/** IOMMU_FAULT_READ: read() on the fault fd (fault.c:iommufd_fault_fops_read). */
export function iommufdFaultRead(st: State, ctx: StepContext, c: IommuFaultReadCmd): Outcome {
  const f = faultFd(st, ctx, c.fault_id);
  if ('ok' in f) return f;
  if ((c.pos ?? 0) !== 0 || c.count < 0 || c.count % PGFAULT_SIZE !== 0) return ctx.reject('FAULT-012', 'ESPIPE');
  ctx.hit('FAULT-012');
  const q = f.queue;
  const records: Outputs[] = [];
  let done = 0;
  while (q.deliver.length > 0) {
    const g = q.deliver[0]!;
    if (done >= c.count || g.requests.length * PGFAULT_SIZE > c.count - done) {
      // The group stays queued whole; nothing read at all is EINVAL (FAULT-013).
      if (done === 0) return ctx.reject('FAULT-013', 'EINVAL');
      ctx.hit('FAULT-013');
      break;
    }
    q.deliver = q.deliver.slice(1);
    const cookie = freeCookie(q);
    q.response.set(cookie, { group: g, readStep: st.stepIndex, first: records.length === 0 });
    for (const r of g.requests) records.push(record(st, g, r, cookie));
    done += g.requests.length * PGFAULT_SIZE;
    ctx.hit('FAULT-008');
    ctx.hit('FAULT-009');
    ctx.hit('FAULT-010');
  }
  if (done === 0) ctx.hit('FAULT-011');
  const first = records[0]?.cookie ?? 0;
  return ctx.ok({ bytes: done, records, cookie: first });
}

/** IOMMU_FAULT_RESPOND: write() on the fault fd (fault.c:iommufd_fault_fops_write). */
export function iommufdFaultRespond(st: State, ctx: StepContext, c: IommuFaultRespondCmd): Outcome {
  const f = faultFd(st, ctx, c.fault_id);
  if ('ok' in f) return f;
  const responses = [{ cookie: c.cookie, code: c.code }, ...(c.more ?? [])];
  const count = c.count ?? responses.length * PAGE_RESPONSE_SIZE;
  if ((c.pos ?? 0) !== 0 || count < 0 || count % PAGE_RESPONSE_SIZE !== 0) return ctx.reject('FAULT-021', 'ESPIPE');
  ctx.hit('FAULT-021');
  let done = 0;
  let err: string | undefined;
  let clause = 'FAULT-022';
  for (let i = 0; count > done; i++) {
    const resp = responses[i];
    // A count past the responses given reads memory the caller did not fill: EFAULT.
    if (resp === undefined) {
      err = 'EFAULT';
      break;
    }
    if (resp.code !== PAGE_RESP.SUCCESS && resp.code !== PAGE_RESP.INVALID) {
      err = 'EINVAL';
      clause = 'FAULT-016';
      break;
    }
    if (!f.queue.response.has(resp.cookie)) {
      err = 'EINVAL';
      clause = 'FAULT-018';
      break;
    }
    f.queue.response.delete(resp.cookie);
    respond(st, ctx);
    ctx.hit('FAULT-015');
    done += PAGE_RESPONSE_SIZE;
  }
  if (err !== undefined && done === 0) return ctx.reject(clause, err);
  if (err !== undefined) ctx.hit(clause);
  ctx.hit('FAULT-022');
  return ctx.ok({ bytes: done });
}

/** IOMMU_FAULT_CLOSE: close() of the fault fd drops its hold on the FAULT object (fault.c:iommufd_fault_fops_release). */
export function iommufdFaultClose(st: State, ctx: StepContext, c: IommuFaultCloseCmd): Outcome {
  const f = faultFd(st, ctx, c.fault_id);
  if ('ok' in f) return f;
  f.fdOpen = false;
  // The fault fd held the iommufd context too: a closed fd's context may go with it (FD-020).
  releaseIfUnheld(st, ctx);
  return ctx.ok();
}

// ------------------------------------------------------------------------------------------------ rfc

/** IOASID_FAULT_READ: up to `count` records, whole groups only, in arrival order (FAULT-007, 009..011, 013). */
export function rfcFaultRead(st: State, ctx: StepContext, c: IoasidFaultReadCmd): Outcome {
  const q = st.rfcFaults;
  const records: Outputs[] = [];
  let done = 0;
  while (q.deliver.length > 0) {
    const g = q.deliver[0]!;
    if (g.requests.length > c.count - done) {
      if (done === 0) return ctx.reject('FAULT-013', 'EINVAL');
      ctx.hit('FAULT-013');
      break;
    }
    q.deliver = q.deliver.slice(1);
    const cookie = freeCookie(q);
    q.response.set(cookie, { group: g, readStep: st.stepIndex, first: records.length === 0 });
    for (const r of g.requests) records.push({ ioasid: g.table, addr: r.addr, perm: r.perm, cookie });
    done += g.requests.length;
    ctx.hit('FAULT-007');
    ctx.hit('FAULT-009');
    ctx.hit('FAULT-010');
  }
  if (done === 0) ctx.hit('FAULT-011');
  return ctx.ok({ count: done, records, cookie: records[0]?.cookie ?? 0 });
}

/** Whether a function's PRI is shared with other users: the parent of a mediated device (FAULT-017). */
function sharedPri(st: State, dev: number): boolean {
  return st.platform.devices.some((d) => d.kind === 'mediated' && d.parent === dev);
}

/** IOASID_FAULT_RESPOND: IOASID (ENOENT), code (EINVAL), cookie under that IOASID (ENOENT) — FAULT-020. */
export function rfcFaultRespond(st: State, ctx: StepContext, c: IoasidFaultRespondCmd): Outcome {
  if (!st.get(c.ioasid, 'ioasid')) return ctx.reject('FAULT-020', 'ENOENT');
  const code = CODE_NAME[c.code];
  if (code === undefined) return ctx.reject('FAULT-016', 'EINVAL');
  ctx.hit('FAULT-016');
  const g = st.rfcFaults.response.get(c.cookie)?.group;
  if (g === undefined) return ctx.reject('FAULT-018', 'ENOENT');
  if (g.table !== c.ioasid) return ctx.reject('FAULT-019', 'ENOENT');
  ctx.hit('FAULT-020');
  st.rfcFaults.response.delete(c.cookie);
  respond(st, ctx);
  ctx.hit('FAULT-015');
  // A user's FAILURE never reaches a PRI other users share: the device gets INVALID (FAULT-017).
  let sent: Response = code;
  if (code === 'FAILURE') {
    ctx.hit('FAULT-017');
    if (sharedPri(st, g.dev)) sent = 'INVALID';
  }
  return ctx.ok({ response: sent });
}

/** Pending page groups of the fd in every queue (for the completion invariant, FAULT-029). */
export function pendingGroups(st: State): number {
  let n = st.rfcFaults.pending;
  for (const o of st.objects.values()) if (o.kind === 'fault') n += o.queue.pending;
  return n;
}
