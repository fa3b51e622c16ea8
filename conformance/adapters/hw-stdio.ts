/**
 * The out-of-process hardware adapter: drives an IOMMU implementation that speaks the hardware protocol of
 * `conformance/hw-protocol.ts` (normative text: `conformance/INTERPRETING.md` §7) on its stdin/stdout. The transport
 * — spawning, JSON-lines framing, request IDs, the per-request time limit, stderr capture, killing and restarting a
 * child that crashed, hung or spoke garbage — is the uAPI stdio adapter's ({@link StdioAdapter} with the hardware
 * dialect); this module only maps hardware traces onto it.
 *
 * Not for: uAPI implementations (`conformance/adapters/stdio.ts`).
 *
 * @module
 */
import type { Outcome } from '../../src/reference/commands.ts';
import type { HwTrace } from '../../src/hw-reference/trace.ts';
import { HW_DIALECT, type HwCapabilities } from '../hw-protocol.ts';
import type { HwAdapter, HwTraceReply } from './hw-reference.ts';
import { StdioAdapter, type StdioOptions } from './stdio.ts';

/** A {@link HwAdapter} over a child process speaking the hardware protocol. */
export class HwStdioAdapter implements HwAdapter {
  private readonly stdio: StdioAdapter;

  /**
   * @param name the name reports use
   * @param argv the program and its arguments (started without a shell)
   */
  constructor(
    readonly name: string,
    argv: readonly string[],
    opts: Omit<StdioOptions, 'dialect'> = {},
  ) {
    this.stdio = new StdioAdapter(name, argv, { ...opts, dialect: HW_DIALECT });
  }

  /** The process ID of the current child (for tests), or undefined. */
  get pid(): number | undefined {
    return this.stdio.pid;
  }

  async open(): Promise<HwCapabilities> {
    // The hardware dialect's codec (HwCapabilitiesCodec) decoded the declaration.
    return (await this.stdio.open()) as unknown as HwCapabilities;
  }

  async runHwTrace(trace: HwTrace): Promise<HwTraceReply> {
    const r = await this.stdio.request({ devices: trace.devices, steps: trace.steps });
    const replies: Outcome[] = r.replies.map((x) => x.outcome);
    return {
      replies,
      ...(r.error === undefined ? {} : { error: r.error }),
      ...(r.stderr === undefined ? {} : { stderr: r.stderr }),
    };
  }

  close(): Promise<void> {
    return this.stdio.close();
  }
}
