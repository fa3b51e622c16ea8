/**
 * The reference model as an out-of-process implementation: reads protocol requests on stdin, answers on stdout
 * (`conformance/INTERPRETING.md`). It is what the `reference-stdio` adapter runs, and the example implementers can
 * copy.
 *
 * ```
 * node --import tsx conformance/reference-stdio.ts [--profile P] [--features a,b|none] [--platform-json JSON]
 *      [--bug NAME] [--misbehave KIND[:N]]
 * ```
 *
 * `--bug` injects a semantic defect (see `conformance/adapters/reference.ts`); `--misbehave` a transport one, for
 * the runner's robustness tests: `crash:N` exits during the Nth run request, `hang:N` never answers it, `garbage:N`
 * answers it with a line that is not JSON, `version` answers the handshake with protocol 2, `stderr` writes noise
 * to stderr on every request, `short:N` answers the Nth request with one reply too few.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { isLeft } from 'fp-ts/lib/Either.js';
import { PROFILES, type Profile } from '../src/reference/commands.ts';
import { Platform } from '../src/reference/platform.ts';
import { BUGS, executeTrace, referenceCapabilities } from './adapters/reference.ts';
import { PROTOCOL_VERSION, parseRequest } from './protocol.ts';
import { serveStdio, type Misbehave } from './stdio-program.ts';

/** Parsed command line of the program. */
interface Options {
  profile?: Profile;
  features?: string[];
  platform?: Platform;
  bug?: string;
  misbehave?: Misbehave;
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      profile: { type: 'string' },
      features: { type: 'string' },
      'platform-json': { type: 'string' },
      bug: { type: 'string' },
      misbehave: { type: 'string' },
    },
    allowPositionals: false,
  });
  const o: Options = {};
  if (values.profile !== undefined) {
    if (!PROFILES.includes(values.profile as Profile)) throw new Error(`unknown profile "${values.profile}"`);
    o.profile = values.profile as Profile;
  }
  if (values.features !== undefined)
    o.features = values.features === 'none' ? [] : values.features.split(',').filter((f) => f !== '');
  if (values['platform-json'] !== undefined) {
    const r = Platform.decode(JSON.parse(values['platform-json']));
    if (isLeft(r)) throw new Error('bad --platform-json');
    o.platform = r.right;
  }
  if (values.bug !== undefined) {
    if (BUGS[values.bug] === undefined) throw new Error(`unknown bug "${values.bug}"`);
    o.bug = values.bug;
  }
  if (values.misbehave !== undefined) {
    const [kind, n] = values.misbehave.split(':');
    o.misbehave = { kind: kind!, n: Number(n ?? 1) };
  }
  return o;
}

/** Runs the program on stdin/stdout until `bye` or end of input. */
export function serve(opts: Options): void {
  const caps = referenceCapabilities(opts);
  const bug = opts.bug === undefined ? undefined : BUGS[opts.bug];
  serveStdio({
    name: 'reference-stdio',
    protocol: PROTOCOL_VERSION,
    capabilities: caps,
    misbehave: opts.misbehave,
    parse: (line) => parseRequest(line, caps.profile),
    run(msg, send, mis) {
      if (opts.misbehave?.kind === 'stderr')
        process.stderr.write(`reference-stdio: request ${msg.id}: ${msg.steps.length} steps\n`);
      const reply = executeTrace(caps, msg.steps, bug);
      const sendSteps = (rs: typeof reply.replies) =>
        rs.forEach((r, index) => send({ type: 'step', id: msg.id, index, outcome: r.outcome }));
      if (mis === 'crash') {
        sendSteps(reply.replies.slice(0, 1));
        process.stderr.write('reference-stdio: crashing as asked (--misbehave crash)\n');
        process.exit(70);
      }
      if (reply.error !== undefined) {
        sendSteps(reply.replies);
        if (reply.error.kind === 'crash' && bug !== undefined && reply.error.message.startsWith('injected')) {
          process.stderr.write(`reference-stdio: ${reply.error.message}\n`);
          process.exit(70);
        }
        // The steps before the one it could not run, then the error: the runner knows which step it was.
        return send({ type: 'error', id: msg.id, message: reply.error.message });
      }
      send({ type: 'result', id: msg.id, replies: mis === 'short' ? reply.replies.slice(0, -1) : reply.replies });
    },
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`reference-stdio: ${(e as Error).message}\n`);
    process.exit(2);
  }
  serve(opts);
}
