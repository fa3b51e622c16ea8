/**
 * The `ioasid-conformance` command line.
 *
 * Exit codes (documented in the README and in `conformance/INTERPRETING.md`):
 * - 0: everything passed (or the spec is clean);
 * - 1: a conformance failure, a crashing adapter, or spec errors;
 * - 2: bad input — an unknown command or flag, a malformed trace file, an unknown adapter.
 *
 * @module
 */
import { pathToFileURL } from 'node:url';
import { specCommand } from './spec-cli.ts';
import { corpusCommand, mergeCommand, replayTraceCommand, runCommand, shrinkCommand } from './run-cli.ts';
import { UsageError } from './errors.ts';
import { reportCommand } from './report-cli.ts';
import { hwCommand } from './hw-cli.ts';

const USAGE = `usage: ioasid-conformance <command> [options]

commands:
  spec check              validate the specification (IDs, fields, vocabularies, quotes, cross-references)
  spec list [--json]      print the clause index
  spec coverage [--json]  which clauses the tests name, and which none does
  run [options]           run randomized traces against an adapter in lockstep with the reference model
  replay TRACE            run one trace file on an adapter and show every step
  shrink TRACE            shrink a failing trace file by deleting steps
  corpus add TRACE        add a trace to the regression corpus (corpus list: show it)
  merge RESULTS...        merge the results.json of shards or adapters
  report RESULTS...       per-clause reports: report.json, junit.xml, summary.md, report.html
  hw run | hw replay      check an IOMMU implementation against the VT-d hardware model (hardware traces)

Run "ioasid-conformance <command> --help" for the options of a command.`;

/** Runs the CLI with `argv` (without node and script) and returns the exit code. Never throws. */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'spec':
        return specCommand(rest);
      case 'run':
        return await runCommand(rest);
      case 'replay':
        return await replayTraceCommand(rest);
      case 'shrink':
        return await shrinkCommand(rest);
      case 'corpus':
        return await corpusCommand(rest);
      case 'merge':
        return mergeCommand(rest);
      case 'report':
        return reportCommand(rest);
      case 'hw':
        return await hwCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"\n\n${USAGE}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`ioasid-conformance: ${e.message}`);
      return 2;
    }
    const err = e as Error;
    console.error(`ioasid-conformance: internal error: ${err.message}\n${err.stack ?? ''}`);
    return 1;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = await main(process.argv.slice(2));
}
