/**
 * The architecture-neutral face of an IOMMU in the hardware model: requests in, translations or faults out. Intel
 * VT-d scalable mode (`vtd.ts`) implements it; the types leave room for ARM SMMUv3 (a StreamID where VT-d has a
 * requester ID, a SubstreamID where VT-d has a PASID, context descriptors where VT-d has PASID-table entries), whose
 * invalidation commands and structures would be its own.
 *
 * Not for: the driver's view of the hardware (see `driver.ts`), or devices and CPUs (see `machine.ts`).
 *
 * @module
 */

/** Which translation stage caused a fault (HW-013). */
export type Stage = 'first' | 'second';

/** A memory request a device sends to the IOMMU, confined to one 4-KiB page (HW-025; `machine.ts` splits, HW-026). */
export interface DmaRequest {
  /** The requester ID (VT-d) or StreamID (SMMUv3). */
  readonly sid: number;
  /** The PASID (SubstreamID); undefined for a request without PASID. */
  readonly pasid?: number;
  readonly addr: bigint;
  /** Bytes, at least 1, not crossing a 4-KiB boundary. */
  readonly size: number;
  readonly write: boolean;
  /** Supervisor privilege (default: user, as device DMA is). */
  readonly supervisor?: boolean;
  /** `translated` is an ATS translated request (AT = 10b, HW-023): its address is already host-physical. */
  readonly at?: 'untranslated' | 'translated';
}

/** A blocked request: the condition code of the architecture's fault table, and for nested walks the stage. */
export interface Fault {
  readonly code: string;
  readonly stage?: Stage;
  readonly sid: number;
  readonly pasid?: number;
  readonly addr: bigint;
  /** Whether a non-recoverable fault record was written (HW-025: suppressible only for qualified conditions). */
  readonly recorded: boolean;
}

/** A translation: the input page, the output page, its size, and the permissions the whole walk grants. */
export interface Translation {
  readonly iovaBase: bigint;
  readonly hpaBase: bigint;
  /** 4 KiB, 2 MiB or 1 GiB (HW-009). */
  readonly size: bigint;
  readonly r: boolean;
  readonly w: boolean;
  /** For a write denied: which stage denied it (HW-013). */
  readonly wDeniedBy?: Stage;
  /** For a read denied: which stage denied it. */
  readonly rDeniedBy?: Stage;
}

/** The outcome of a request: the host-physical address of its first byte, or a fault. */
export type DmaResult = { readonly ok: true; readonly hpa: bigint } | { readonly ok: false; readonly fault: Fault };

/** The completion of an ATS translation request (HW-027): a translation with possibly reduced permissions, or a fault. */
export type TranslationCompletion =
  | { readonly ok: true; readonly t: Translation; readonly code?: string; readonly stage?: Stage }
  | { readonly ok: false; readonly fault: Fault };

/** An IOMMU of the hardware model, parameterised by its invalidation-command type. */
export interface Iommu<Inv> {
  /** The architecture (`vt-d`; `smmuv3` is the room left for a second one). */
  readonly arch: 'vt-d' | 'smmuv3';
  /** Translates one untranslated (or translated) request. */
  dma(req: DmaRequest): DmaResult;
  /** Answers an ATS translation request for the page of `req.addr`. */
  translate(req: DmaRequest): TranslationCompletion;
  /** Carries out one invalidation command to completion, or says why the command is invalid. */
  invalidate(cmd: Inv): { readonly ok: true } | { readonly ok: false; readonly error: string };
  /** The non-recoverable faults recorded so far (oldest first). */
  faultLog(): readonly Fault[];
}
