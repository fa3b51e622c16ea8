/**
 * The hardware model as an out-of-process IOMMU implementation: reads hardware-protocol requests on stdin, answers
 * on stdout (`conformance/hw-protocol.ts`, `conformance/INTERPRETING.md` §7). It is what the `hw-reference-stdio`
 * adapter runs, and the template an IOMMU emulator's harness can follow: answer `hello` with the capabilities, and
 * for each `run` reset the IOMMU and memory, build the devices, run every step and answer one outcome per step.
 *
 * ```
 * node --import tsx conformance/hw-reference-stdio.ts [--bug NAME] [--misbehave KIND[:N]]
 * ```
 *
 * `--bug` injects a defect of `conformance/adapters/hw-reference.ts`; `--misbehave` a transport one, for the runner's
 * robustness tests: `crash:N` exits during the Nth run request, `hang:N` never answers it, `garbage:N` answers it
 * with a line that is not JSON, `version` answers the handshake with protocol 2, `short:N` answers the Nth request
 * with one reply too few.
 *
 * Not for: uAPI traces (`conformance/reference-stdio.ts`).
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { applyHwStep } from '../src/hw-reference/trace.ts';
import { Machine } from '../src/hw-reference/machine.ts';
import { HW_BUGS } from './adapters/hw-reference.ts';
import { HW_PROTOCOL_VERSION, parseHwRequest, type HwCapabilities } from './hw-protocol.ts';
import { serveStdio, type Misbehave } from './stdio-program.ts';

/** Parsed command line of the program. */
interface Options {
  bug?: string;
  misbehave?: Misbehave;
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: { bug: { type: 'string' }, misbehave: { type: 'string' } },
    allowPositionals: false,
  });
  const o: Options = {};
  if (values.bug !== undefined) {
    if (HW_BUGS[values.bug] === undefined)
      throw new Error(`unknown bug "${values.bug}" (known: ${Object.keys(HW_BUGS).join(', ')})`);
    o.bug = values.bug;
  }
  if (values.misbehave !== undefined) {
    const [kind, n] = values.misbehave.split(':');
    if (!['crash', 'hang', 'garbage', 'version', 'short'].includes(kind!))
      throw new Error(`unknown --misbehave "${values.misbehave}"`);
    o.misbehave = { kind: kind!, n: Number(n ?? 1) };
  }
  return o;
}

/** Runs the program on stdin/stdout until `bye` or end of input. */
export function serve(opts: Options): void {
  const caps: HwCapabilities = {
    name: opts.bug === undefined ? 'hw-reference' : `hw-reference-${opts.bug}`,
    arch: 'vt-d',
    description: 'the VT-d scalable-mode hardware model of src/hw-reference, over the hardware protocol',
  };
  serveStdio({
    name: 'hw-reference-stdio',
    protocol: HW_PROTOCOL_VERSION,
    capabilities: caps,
    misbehave: opts.misbehave,
    parse: parseHwRequest,
    run(msg, send, mis) {
      // A fresh machine per request: nothing survives from an earlier trace.
      const m = new Machine(msg.devices);
      if (opts.bug !== undefined) HW_BUGS[opts.bug]!.inject(m);
      const replies = [];
      for (let index = 0; index < msg.steps.length; index++) {
        const outcome = applyHwStep(m, msg.steps[index]!);
        replies.push({ outcome });
        if (mis === 'crash') {
          send({ type: 'step', id: msg.id, index, outcome });
          process.stderr.write('hw-reference-stdio: crashing as asked (--misbehave crash)\n');
          process.exit(70);
        }
      }
      send({ type: 'result', id: msg.id, replies: mis === 'short' ? replies.slice(0, -1) : replies });
    },
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`hw-reference-stdio: ${(e as Error).message}\n`);
    process.exit(2);
  }
  serve(opts);
}
