/**
 * Hardware traces: what a driver and devices do to an IOMMU, step by step, as io-ts codecs (the source of the
 * format), and {@link applyHwStep}, which runs one step on the reference {@link Machine}. Steps are the hardware
 * commands of `spec/commands.txt`: `HW_SET_ROOT`, `HW_MEM_WRITE`, `HW_INVALIDATE`, `HW_DMA`, `DEVICE_PAGE_REQUEST`,
 * `HW_PRQ_READ`, `HW_PAGE_RESPONSE`, `HW_SET_PASID_XLATE`, `HW_ENQCMD`. Outcomes use the uAPI's outcome shape, so
 * the runner's comparison applies: `ok` with outputs, or an errno (`fault` with its condition code, `EINVAL` for an
 * invalid descriptor).
 *
 * Not for: uAPI traces (`src/reference/trace.ts`); a hardware trace has its own format tag and version.
 *
 * @module
 */
import * as t from 'io-ts';
import { isLeft } from 'fp-ts/lib/Either.js';
import type { Outcome } from '../reference/commands.ts';
import { U64 } from '../reference/u64.ts';
import type { Machine } from './machine.ts';

const step = <O extends string, R extends t.Props, P extends t.Props>(op: O, required: R, optional: P) =>
  t.intersection([t.type({ op: t.literal(op), ...required }), t.partial(optional)], op);

/** A VT-d invalidation descriptor (vt-d §6.5.2). */
export const VtdInvCodec = t.union(
  [
    t.intersection([
      t.type({ type: t.literal('context'), g: t.keyof({ global: null, domain: null, device: null }) }),
      t.partial({ sid: t.number, fm: t.number }),
    ]),
    t.intersection([t.type({ type: t.literal('pasid'), g: t.number, did: t.number }), t.partial({ pasid: t.number })]),
    t.intersection([
      t.type({ type: t.literal('iotlb'), g: t.keyof({ global: null, domain: null, page: null }) }),
      t.partial({ did: t.number, addr: U64, am: t.number, ih: t.boolean }),
    ]),
    t.intersection([
      t.type({ type: t.literal('piotlb'), g: t.number, did: t.number, pasid: t.number }),
      t.partial({ addr: U64, am: t.number, ih: t.boolean }),
    ]),
    t.type({ type: t.literal('devtlb'), sid: t.number, addr: U64, s: t.boolean }),
    t.intersection([
      t.type({ type: t.literal('pdevtlb'), sid: t.number, pasid: t.number, addr: U64, s: t.boolean }),
      t.partial({ gi: t.boolean }),
    ]),
  ],
  'VtdInv',
);

/** The steps of a hardware trace. */
export const HwStep = t.union(
  [
    step('HW_SET_ROOT', { addr: U64 }, {}),
    step('HW_MEM_WRITE', { addr: U64, value: U64 }, {}),
    step('HW_INVALIDATE', { desc: VtdInvCodec }, {}),
    step(
      'HW_DMA',
      { sid: t.number, addr: U64, size: U64, write: t.boolean },
      { pasid: t.number, supervisor: t.boolean, at: t.keyof({ untranslated: null, translated: null }) },
    ),
    step(
      'DEVICE_PAGE_REQUEST',
      { sid: t.number, addr: U64, read: t.boolean, write: t.boolean, group: t.number, last: t.boolean },
      { pasid: t.number, exec: t.boolean, priv: t.boolean },
    ),
    step('HW_PRQ_READ', {}, { clearOverflow: t.boolean }),
    step(
      'HW_PAGE_RESPONSE',
      { sid: t.number, group: t.number, code: t.keyof({ success: null, invalid: null, failure: null }) },
      { pasid: t.number },
    ),
    step(
      'HW_SET_PASID_XLATE',
      { vm: t.number },
      { enabled: t.boolean, local: t.number, global: t.union([t.number, t.null]) },
    ),
    step('HW_ENQCMD', { vm: t.number, msr: t.number, sid: t.number }, {}),
  ],
  'HwStep',
);
export type HwStep = t.TypeOf<typeof HwStep>;

/** The `format` tag of a hardware trace file. */
export const HW_TRACE_FORMAT = 'ioasid-conformance-hw-trace';

/** A hardware trace: the devices behind the IOMMU, then the steps. */
export const HwTrace = t.intersection([
  t.type({
    format: t.literal(HW_TRACE_FORMAT),
    version: t.literal(1),
    devices: t.array(t.type({ sid: t.number, ats: t.boolean, pri: t.boolean })),
    steps: t.array(HwStep),
  }),
  t.partial({ origin: t.string }),
]);
export type HwTrace = t.TypeOf<typeof HwTrace>;

/** Decodes a hardware trace; a bad one gives a one-line message naming the first wrong path. */
export function decodeHwTrace(json: unknown): { ok: true; trace: HwTrace } | { ok: false; message: string } {
  const r = HwTrace.decode(json);
  if (!isLeft(r)) return { ok: true, trace: r.right };
  const e = r.left[0]!;
  const path = e.context
    .map((c) => c.key)
    .filter((k) => k !== '')
    .join('.');
  return {
    ok: false,
    message: `bad hardware trace at ${path || '(document)'}: ${JSON.stringify(e.value)} is not valid`,
  };
}

const fault = (code: string, out: Record<string, string | number | boolean> = {}): Outcome => ({
  ok: false,
  errno: 'fault',
  out: { code, ...out },
});

/** Runs one hardware step on the reference machine and returns its outcome. */
export function applyHwStep(m: Machine, s: HwStep): Outcome {
  switch (s.op) {
    case 'HW_SET_ROOT':
      m.setRoot(s.addr);
      return { ok: true };
    case 'HW_MEM_WRITE':
      if ((s.addr & 7n) !== 0n) return { ok: false, errno: 'EINVAL', out: { reason: 'unaligned' } };
      m.mem.writeQ(s.addr, s.value);
      return { ok: true };
    case 'HW_INVALIDATE': {
      const r = m.invalidate(s.desc);
      return r.ok ? { ok: true } : { ok: false, errno: 'EINVAL', out: { reason: r.error } };
    }
    case 'HW_DMA': {
      if (s.size === 0n) return { ok: false, errno: 'EINVAL', out: { reason: 'empty' } };
      const r = m.dma({
        sid: s.sid,
        addr: s.addr,
        size: s.size,
        write: s.write,
        ...(s.pasid === undefined ? {} : { pasid: s.pasid }),
        ...(s.supervisor === undefined ? {} : { supervisor: s.supervisor }),
        ...(s.at === undefined ? {} : { at: s.at }),
      });
      return r.ok
        ? { ok: true, out: { hpa: r.hpa } }
        : fault(r.fault.code, {
            page: r.page,
            recoverable: r.recoverable,
            ...(r.fault.stage === undefined ? {} : { stage: r.fault.stage }),
          });
    }
    case 'DEVICE_PAGE_REQUEST': {
      const r = m.pageRequest({
        sid: s.sid,
        addr: s.addr,
        read: s.read,
        write: s.write,
        group: s.group,
        last: s.last,
        ...(s.pasid === undefined ? {} : { pasid: s.pasid }),
        ...(s.exec === undefined ? {} : { exec: s.exec }),
        ...(s.priv === undefined ? {} : { priv: s.priv }),
      });
      if (r.queued) return { ok: true, out: { queued: true } };
      return {
        ok: true,
        out: {
          queued: false,
          ...(r.autoResponse === undefined ? {} : { response: r.autoResponse }),
          ...(r.fault === undefined ? {} : { code: r.fault.code }),
        },
      };
    }
    case 'HW_PRQ_READ': {
      const { records, overflow } = m.prqRead(s.clearOverflow === true);
      return {
        ok: true,
        out: {
          overflow,
          records: records.map((r) => ({
            sid: r.sid,
            pasidPresent: r.pasidPresent,
            pasid: r.pasid,
            addr: r.addr,
            read: r.read,
            write: r.write,
            exec: r.exec,
            priv: r.priv,
            group: r.group,
            last: r.last,
          })),
        },
      };
    }
    case 'HW_PAGE_RESPONSE':
      return { ok: true, out: { matched: m.pageResponse(s.sid, s.pasid, s.group, s.code) } };
    case 'HW_SET_PASID_XLATE':
      m.cpu.set(s.vm, {
        ...(s.enabled === undefined ? {} : { enabled: s.enabled }),
        ...(s.local === undefined ? {} : { local: s.local }),
        ...(s.global === undefined ? {} : { global: s.global }),
      });
      return { ok: true };
    case 'HW_ENQCMD': {
      const p = m.enqcmd(s.vm, s.msr, s.sid);
      return p === undefined ? fault('PASID-XLATE') : { ok: true, out: { pasid: p } };
    }
  }
}
