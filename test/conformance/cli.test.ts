// The run / replay / shrink / corpus / merge commands: exit codes, messages, files (CLI mechanics).
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../conformance/cli.ts';
import { encodeTrace, TRACE_FORMAT, TRACE_VERSION, type Trace } from '../../src/reference/trace.ts';
import { defaultPlatform } from '../../src/reference/platform.ts';
import type { Command } from '../../src/reference/commands.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'ioasid-cli-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the CLI, capturing what it prints. */
async function cli(...argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (...a: unknown[]) => void out.push(a.map(String).join(' '));
  console.error = (...a: unknown[]) => void err.push(a.map(String).join(' '));
  try {
    return { code: await main(argv), out, err };
  } finally {
    console.log = log;
    console.error = error;
  }
}

const STEPS: Command[] = [
  { op: 'IOMMU_IOAS_ALLOC' },
  {
    op: 'IOMMU_IOAS_MAP',
    ioas_id: { ref: 0 },
    flags: 7,
    user_va: { buf: 0, off: 0n },
    length: 0x4000n,
    iova: 0x10_0000n,
  },
  { op: 'IOMMU_IOAS_ALLOC' },
  { op: 'IOMMU_IOAS_UNMAP', ioas_id: { ref: 0 }, iova: 0x10_1000n, length: 0x1000n },
];
function traceFile(name: string, steps: Command[] = STEPS): string {
  const t: Trace = {
    format: TRACE_FORMAT,
    version: TRACE_VERSION,
    profile: 'iommufd',
    features: [],
    platform: defaultPlatform(),
    steps,
  };
  const p = join(dir, name);
  writeFileSync(p, encodeTrace(t));
  return p;
}

describe('cli: run', function () {
  this.timeout(120_000);

  it('passes on the reference and ends with exactly "N passed, N failed"; exit code 0', async () => {
    const r = await cli(
      'run',
      '--runs',
      '5',
      '--report-dir',
      join(dir, 'run'),
      '--quiet',
      '--no-corpus',
      '--junit',
      join(dir, 'run', 'junit.xml'),
    );
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.equal(r.out.at(-1), '5 passed, 0 failed');
    assert.ok(
      r.out.some((l) => /steps\/s/.test(l)),
      'timing goes to stdout',
    );
    assert.ok(existsSync(join(dir, 'run', 'results.json')));
    assert.match(readFileSync(join(dir, 'run', 'junit.xml'), 'utf8'), /<testsuites name="ioasid-conformance"/);
  });

  it('a failing adapter gives exit code 1 and prints the replay command of each first failure', async () => {
    const r = await cli(
      'run',
      '--adapter',
      'buggy-destroy-errno',
      '--runs',
      '6',
      '--report-dir',
      join(dir, 'fail'),
      '--quiet',
      '--no-corpus',
    );
    assert.equal(r.code, 1);
    assert.match(r.out.at(-1)!, /^\d+ passed, [1-9]\d* failed$/);
    assert.ok(
      r.out.some((l) =>
        /replay: npx ioasid-conformance replay .*buggy-destroy-errno-1-\d+\.json --adapter buggy-destroy-errno/.test(l),
      ),
    );
  });

  it('bad input: one clear message and exit code 2, never a stack trace', async () => {
    const cases: [string[], RegExp][] = [
      [['run', '--bogus'], /Unknown option '--bogus' \(see "ioasid-conformance run --help"\)/],
      [
        ['run', '--adapter', 'nope'],
        /unknown adapter "nope"; known adapters: reference, reference-stdio, .*stdio:<command line>/,
      ],
      [['run', '--runs', 'many'], /--runs must be an integer/],
      [['run', '--shard', '0/2'], /--shard must be I\/N/],
      [['run', '--features', 'teleport'], /unknown feature\(s\) teleport; known features: ioctl-abi/],
      [['run', '--profile', 'windows'], /--profile must be one of rfc, iommufd, vfio-type1/],
      [['run', '--adversarial', '2'], /--adversarial must be a number from 0 to 1/],
      [['run', '--clause', 'map'], /bad clause pattern "map"/],
      [['run', '--adapter', 'stdio:"unterminated'], /unterminated " quote/],
      [['frobnicate'], /unknown command "frobnicate"/],
    ];
    for (const [argv, re] of cases) {
      const r = await cli(...argv);
      assert.equal(r.code, 2, argv.join(' '));
      assert.equal(r.err.length, 1, argv.join(' '));
      assert.match(r.err[0]!, re);
      assert.ok(!/\n\s+at /.test(r.err[0]!), 'no stack trace');
    }
  });

  it('a malformed trace names the file, the step, the path and the schema definition', async () => {
    const p = join(dir, 'bad.json');
    const t = JSON.parse(readFileSync(traceFile('good.json'), 'utf8')) as { steps: Record<string, unknown>[] };
    t.steps[3]!.iova = 'minus one';
    writeFileSync(p, JSON.stringify(t));
    const r = await cli('replay', p);
    assert.equal(r.code, 2);
    assert.equal(
      r.err[0],
      `ioasid-conformance: bad trace ${p}: step 3 (IOMMU_IOAS_UNMAP): iova: expected a u64: "0x…" hex string, decimal string or safe integer; see conformance/schema/trace.schema.json#/definitions/IOMMU_IOAS_UNMAP`,
    );
    writeFileSync(p, '{"format":"ioasid-conformance-trace","version":9}');
    assert.match((await cli('replay', p)).err[0]!, /unsupported trace version 9/);
  });
});

describe('cli: replay, shrink, corpus, merge', function () {
  this.timeout(120_000);

  it('replay: exit code 0 when the trace conforms, 1 with the diverging step when it does not', async () => {
    const f = traceFile('replay.json');
    const ok = await cli('replay', f);
    assert.equal(ok.code, 0);
    assert.equal(ok.out.at(-1), '1 passed, 0 failed');
    const bad = await cli('replay', f, '--adapter', 'buggy-unmap-bisect');
    assert.equal(bad.code, 1);
    assert.ok(bad.out.some((l) => /FAILS at step 3 \(divergence\): expected ENOENT, got ok/.test(l)));
    assert.ok(bad.out.some((l) => /DIFF implementation: ok/.test(l)));
    const stdio = await cli('replay', f, '--adapter', 'buggy-stdio-unmap-bisect', '--quiet');
    assert.equal(stdio.code, 1);
  });

  it('shrink: deletes the steps that do not matter and writes FILE.shrunk.json', async () => {
    const f = traceFile('shrink.json');
    const r = await cli('shrink', f, '--adapter', 'buggy-unmap-bisect');
    assert.equal(r.code, 1);
    const out = f.replace(/\.json$/, '.shrunk.json');
    const shrunk = JSON.parse(readFileSync(out, 'utf8')) as Trace;
    assert.equal(shrunk.steps.length, 3, 'the second IOAS_ALLOC is gone');
    assert.ok(
      r.out.some((l) => l.includes(`replay: npx ioasid-conformance replay ${out} --adapter buggy-unmap-bisect`)),
    );
    assert.equal((await cli('shrink', f)).code, 0, 'nothing to shrink on the reference');
  });

  it('corpus add: validates, names, refuses duplicates; corpus list shows it', async () => {
    const corpus = join(dir, 'corpus');
    const f = traceFile('c.json');
    const a = await cli('corpus', 'add', f, '--corpus-dir', corpus, '--name', 'iommufd-bisect');
    assert.equal(a.code, 0, a.err.join());
    assert.ok(existsSync(join(corpus, 'iommufd-bisect.json')));
    const again = await cli('corpus', 'add', f, '--corpus-dir', corpus);
    assert.match(again.out[0]!, /already in the corpus as .*iommufd-bisect\.json/);
    const list = await cli('corpus', 'list', '--corpus-dir', corpus);
    assert.match(list.out[0]!, /^iommufd-bisect\.json\s+iommufd\s+4 steps/);
    assert.equal((await cli('corpus', 'add', f, '--corpus-dir', corpus, '--name', '../escape')).code, 2);
    // The corpus runs first on "run".
    const run = await cli(
      'run',
      '--adapter',
      'buggy-unmap-bisect',
      '--runs',
      '0',
      '--corpus-dir',
      corpus,
      '--report-dir',
      join(dir, 'crun'),
      '--quiet',
    );
    assert.equal(run.code, 1);
    assert.ok(run.out.some((l) => /FAIL corpus\/iommufd-bisect\.json: step 3/.test(l)));
  });

  it('merge: shards of a run merge into one results file', async () => {
    for (const s of ['1/2', '2/2'])
      await cli('run', '--runs', '4', '--shard', s, '--report-dir', join(dir, `m${s[0]}`), '--quiet', '--no-corpus');
    const r = await cli(
      'merge',
      join(dir, 'm1', 'results.json'),
      join(dir, 'm2', 'results.json'),
      '--out',
      join(dir, 'merged.json'),
    );
    assert.equal(r.code, 0, r.err.join());
    assert.equal(r.out.at(-1), '4 passed, 0 failed');
    const whole = await cli('run', '--runs', '4', '--report-dir', join(dir, 'mw'), '--quiet', '--no-corpus');
    assert.equal(whole.code, 0);
    assert.equal(readFileSync(join(dir, 'merged.json'), 'utf8'), readFileSync(join(dir, 'mw', 'results.json'), 'utf8'));
    assert.equal((await cli('merge', join(dir, 'm1', 'results.json'))).code, 2, '--out is required');
  });
});
