// The reports (reports/, `report`, `run --report-dir`) built from real runs of two adapters: the reference and
// buggy-unmap-bisect (the reference accepting bisecting unmaps, MAP-026/MAP-027). Cells are checked against the
// runs' own results and against replay; every clause of the spec must appear; hostile strings must stay text.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { splitCommandLine } from '../../conformance/adapters/stdio.ts';
import { ReferenceAdapter } from '../../conformance/adapters/reference.ts';
import { registerAdapter, unregisterAdapter } from '../../conformance/adapters/registry.ts';
import {
  readResultsFile,
  resultsText,
  runConformance,
  type AdapterResults,
  type Results,
  type RunOptions,
} from '../../conformance/runner.ts';
import { SCHEMA_DIR } from '../../conformance/schema/export.ts';
import { clauseApplies, loadSpec } from '../../src/spec/spec.ts';
import { chapterOfModule, readCoverageSummary } from '../../reports/coverage.ts';
import { escapeXml, mdCode, mdText } from '../../reports/escape.ts';
import { diffReports } from '../../reports/diff.ts';
import { buildReport, type Report } from '../../reports/model.ts';
import { REPORT_SCHEMA_FILE, reportSchemaIsCurrent } from '../../reports/schema.ts';
import { REPORT_FILES, writeReportDir } from '../../reports/write.ts';
import { BROKEN, BROKEN_NAME, cli, twoAdapterRun, validate, xmlProblem, type Schema } from './helpers.ts';

const { spec } = loadSpec();
let tmp: string;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'ioasid-reports-t-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const read = (...p: string[]) => readFileSync(join(...p), 'utf8');

function runOpts(reportDir: string, o: Partial<RunOptions> = {}): RunOptions {
  return {
    adapter: 'reference',
    adapterOptions: {},
    seed: 3,
    runs: 12,
    maxSteps: 60,
    adversarial: 0.2,
    clauses: [],
    jobs: 1,
    shard: { index: 1, count: 1 },
    reportDir,
    corpusDir: 'conformance/corpus',
    shrinkBudget: 50,
    ...o,
  };
}

describe('reports: a run of the reference and a broken adapter', function () {
  this.timeout(180_000);

  it('run --report-dir writes results.json and the four reports; report merges both and exits 1 on failures', async () => {
    const run = await twoAdapterRun();
    for (const d of [run.r1, run.r2]) for (const f of REPORT_FILES) assert.ok(existsSync(join(d, f)), `${d}/${f}`);
    for (const f of REPORT_FILES) assert.ok(existsSync(join(run.rep, f)), f);
    for (const d of [run.r1, run.r2, run.rep])
      assert.deepEqual(
        readdirSync(d).filter((n) => n.endsWith('.tmp')),
        [],
        'no temporary file left behind',
      );
    assert.deepEqual(
      run.report.adapters.map((a) => a.name),
      ['reference', BROKEN_NAME],
    );
    const merged = readResultsFile(join(run.rep, 'results.json'));
    assert.deepEqual(Object.keys(merged.adapters), ['reference', BROKEN_NAME]);
    assert.match(run.reportOut.at(-1)!, /^\d+ passed, [1-9]\d* failed$/);
    assert.ok(run.reportOut.some((l) => l.startsWith(`  ${BROKEN_NAME}: clauses `)));
  });

  it('MAP-026 MAP-027 the broken adapter fails exactly the clauses its results fail; the reference fails none', async () => {
    const { report, r1, r2 } = await twoAdapterRun();
    const own = {
      reference: readResultsFile(join(r1, 'results.json')).adapters.reference as AdapterResults,
      [BROKEN_NAME]: readResultsFile(join(r2, 'results.json')).adapters[BROKEN_NAME] as AdapterResults,
    };
    for (const [name, a] of Object.entries(own)) {
      const failing = report.clauses.filter((c) => c.cells[name]!.status === 'fail').map((c) => c.id);
      const expected = Object.entries(a.clauses)
        .filter(([, s]) => s.failures > 0)
        .map(([id]) => id)
        .sort();
      assert.deepEqual([...failing].sort(), expected, name);
      for (const row of report.clauses) {
        const cell = row.cells[name]!;
        const s = a.clauses[row.id];
        const clause = spec.byId.get(row.id)!;
        const want =
          (s?.failures ?? 0) > 0
            ? 'fail'
            : (s?.steps ?? 0) > 0
              ? 'pass'
              : clauseApplies(clause, a.capabilities.profile, new Set(a.capabilities.features))
                ? 'unreached'
                : 'n/a';
        assert.equal(cell.status, want, `${name} ${row.id}`);
        assert.equal(cell.steps, s?.steps ?? 0);
        assert.equal(cell.traces, s?.traces ?? 0);
      }
    }
    const broken = report.clauses.filter((c) => c.cells[BROKEN_NAME]!.status === 'fail').map((c) => c.id);
    assert.ok(broken.includes('MAP-026') && broken.includes('MAP-027'), broken.join(','));
    assert.equal(report.adapters[0]!.counts.fail, 0);
    assert.equal(report.adapters[1]!.counts.fail, broken.length);
  });

  it('MAP-026 MAP-027 every failing cell carries a trace file whose replay command reproduces the failure on that clause', async () => {
    const { report } = await twoAdapterRun();
    const fails = report.clauses.filter((c) => c.cells[BROKEN_NAME]!.status === 'fail');
    assert.ok(fails.length >= 2);
    for (const row of fails) {
      const f = row.cells[BROKEN_NAME]!.firstFailure!;
      assert.ok(existsSync(f.file), `${row.id}: ${f.file}`);
      const argv = splitCommandLine(f.replay);
      assert.deepEqual(argv.slice(0, 3), ['npx', 'ioasid-conformance', 'replay']);
      assert.deepEqual(argv.slice(4), ['--adapter', BROKEN]);
      const r = await cli(...argv.slice(2), '--quiet');
      assert.equal(r.code, 1, `${f.replay}\n${r.out.join('\n')}`);
      const verdict = r.out.find((l) => l.includes(': FAILS at step'))!;
      assert.ok(verdict.startsWith(`${argv[3]}: FAILS at step ${f.step} `), verdict);
      assert.match(verdict, new RegExp(`clauses: .*\\b${row.id}\\b`));
      // The same trace conforms on the reference: the failure is the adapter's.
      const ok = await cli('replay', argv[3]!, '--adapter', 'reference', '--quiet');
      assert.equal(ok.code, 0, ok.out.join('\n'));
    }
  });

  it('every clause of the spec appears, in spec order, in report.json, junit.xml, summary.md and report.html', async () => {
    const { report, rep } = await twoAdapterRun();
    assert.deepEqual(
      report.clauses.map((c) => c.id),
      spec.clauses.map((c) => c.id),
    );
    assert.equal(report.totals.clauses, spec.clauses.length);
    const html = read(rep, 'report.html');
    const rows = [...html.matchAll(/<tr data-chapter="[A-Z]+" data-clause="([A-Z]+-\d{3})"/g)].map((m) => m[1]);
    assert.deepEqual(
      rows,
      spec.clauses.map((c) => c.id),
    );
    const junit = read(rep, 'junit.xml');
    for (const a of ['reference', BROKEN_NAME]) {
      const names = [...junit.matchAll(/<testcase classname="([^"]+)\.[A-Z]+" name="([A-Z]+-\d{3}) /g)]
        .filter((m) => m[1] === a.replace('+', '+'))
        .map((m) => m[2]);
      assert.deepEqual(
        names,
        spec.clauses.map((c) => c.id),
        a,
      );
    }
    // Chapters: every chapter of chapters.txt, and the clause counts add up.
    assert.deepEqual(
      report.chapters.map((c) => c.chapter),
      spec.vocabularies.chapters.map((c) => c.name),
    );
    assert.equal(
      report.chapters.reduce((n, c) => n + c.clauses + c.withdrawn, 0),
      spec.clauses.length,
    );
    const md = read(rep, 'summary.md');
    for (const ch of spec.vocabularies.chapters) assert.ok(md.includes(`| ${ch.name} `), ch.name);
  });

  it('clauses no adapter reached come first, each a generator gap, a spec question, not applicable or withdrawn', async () => {
    const { report, rep } = await twoAdapterRun();
    const never = new Set(report.neverReached.map((n) => n.id));
    for (const row of report.clauses) {
      const reached = Object.values(row.cells).some((c) => c.status === 'pass' || c.status === 'fail');
      assert.equal(never.has(row.id), !reached, row.id);
    }
    const rank = { 'generator-gap': 0, 'spec-question': 1, 'not-applicable': 2, withdrawn: 3 };
    const ranks = report.neverReached.map((n) => rank[n.kind]);
    assert.deepEqual(
      ranks,
      [...ranks].sort((a, b) => a - b),
    );
    for (const n of report.neverReached) {
      const c = spec.byId.get(n.id)!;
      const applies = clauseApplies(c, 'iommufd', new Set(report.adapters[0]!.features));
      if (n.kind === 'not-applicable') assert.ok(!applies, n.id);
      if (n.kind === 'generator-gap' || n.kind === 'spec-question') assert.ok(applies, n.id);
      if (n.kind === 'generator-gap' && !n.drawable && c.commands.length > 0)
        assert.match(n.detail, /no generator draws/);
      if (n.kind === 'spec-question')
        assert.ok(
          spec.register.some((q) => q.kind === 'spec-question' && q.clauses.includes(n.id) && n.detail.includes(q.id)),
        );
    }
    // A clause of the rfc profile only is not applicable to an iommufd run.
    const rfcOnly = spec.clauses.find((c) => c.profiles.length === 1 && c.profiles[0] === 'rfc')!;
    assert.equal(report.neverReached.find((n) => n.id === rfcOnly.id)?.kind, 'not-applicable');
    // In the page and the summary, the never-reached section comes before the matrix.
    const html = read(rep, 'report.html');
    assert.ok(html.indexOf('id="never"') < html.indexOf('id="matrix"'));
    const md = read(rep, 'summary.md');
    assert.ok(md.indexOf('## Never reached') < md.indexOf('## Chapters'));
  });

  it('JUnit: well-formed, a test case per clause per adapter; a failing clause carries its replay command', async () => {
    const { report, rep } = await twoAdapterRun();
    const junit = read(rep, 'junit.xml');
    assert.equal(xmlProblem(junit), undefined);
    assert.equal((junit.match(/<testcase /g) ?? []).length, spec.clauses.length * 2);
    const all = report.clauses.flatMap((c) => Object.values(c.cells).filter((x) => x.status === 'fail'));
    assert.equal((junit.match(/<failure /g) ?? []).length, all.length);
    const suites = new Map(
      junit
        .split('<testsuite ')
        .slice(1)
        .map((x) => [/^name="([^"]*)"/.exec(x)![1]!.replace(/&#39;/g, "'").replace(/&amp;/g, '&'), x]),
    );
    assert.deepEqual([...suites.keys()], ['reference', BROKEN_NAME]);
    for (const [name, text] of suites) {
      const fails = report.clauses.filter((c) => c.cells[name]!.status === 'fail');
      assert.equal(/ failures="(\d+)"/.exec(text)![1], String(fails.length), name);
      assert.equal((text.match(/<testcase /g) ?? []).length, spec.clauses.length, name);
      for (const row of fails) {
        const f = row.cells[name]!.firstFailure!;
        const esc = f.replay.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
        const m = new RegExp(`name="${row.id} [^"]*"><failure [^>]*>([^<]*)</failure>`).exec(text);
        assert.ok(m !== null, `${name} ${row.id}`);
        assert.ok(m[1]!.includes(`replay: ${esc}`), row.id);
      }
    }
    assert.ok(report.clauses.some((c) => c.cells[BROKEN_NAME]!.status === 'fail'));
    // The checker itself rejects what it must.
    for (const bad of ['<a><b></a></b>', '<a x="1" x="2"/>', '<a>&nope;</a>', '<a>1 < 2</a>', '<a/><b/>', '<a>'])
      assert.notEqual(xmlProblem(bad), undefined, bad);
  });

  it('report.json validates against conformance/schema/report.schema.json, which is current', async () => {
    const { rep } = await twoAdapterRun();
    assert.ok(await reportSchemaIsCurrent(), 'run: npx tsx reports/schema.ts');
    const schema = JSON.parse(read(SCHEMA_DIR, REPORT_SCHEMA_FILE)) as Schema;
    const json = JSON.parse(read(rep, 'report.json')) as unknown;
    assert.equal(validate(schema, schema, json), undefined);
    assert.notEqual(validate(schema, schema, { ...(json as object), totals: {} }), undefined);
  });

  it('summary.md lists every failing cell with its replay command as escaped code', async () => {
    const { report, rep } = await twoAdapterRun();
    const md = read(rep, 'summary.md');
    const fails = report.clauses.flatMap((row) =>
      Object.entries(row.cells)
        .filter(([, c]) => c.status === 'fail')
        .map(([adapter, c]) => ({ row, adapter, c })),
    );
    assert.ok(fails.length > 0);
    assert.ok(md.includes(`## Failing clauses (${fails.length})`));
    const lines = md.split('\n');
    for (const { row, adapter, c } of fails) {
      const line = lines.find((l) => l.startsWith(`| ${row.id} `) && l.includes(`<code>${adapter}</code>`));
      assert.ok(line !== undefined, `${row.id} ${adapter}`);
      assert.ok(line.includes(`<code>${c.firstFailure!.replay}</code>`), line);
    }
  });
});

describe('reports: merging, determinism and the diff', function () {
  this.timeout(180_000);

  it('the report of two shards is byte-identical to the report of the whole run; the same results give the same files', async () => {
    const whole = await runConformance(runOpts(join(tmp, 'whole'), { adapter: BROKEN }));
    const s1 = await runConformance(runOpts(join(tmp, 's1'), { adapter: BROKEN, shard: { index: 1, count: 2 } }));
    const s2 = await runConformance(runOpts(join(tmp, 's2'), { adapter: BROKEN, shard: { index: 2, count: 2 } }));
    assert.ok(whole.failed > 0);
    assert.equal(s1.failed + s2.failed, whole.failed);
    const files = [join(tmp, 's1', 'results.json'), join(tmp, 's2', 'results.json')];
    const a = await cli('report', ...files, '--out', join(tmp, 'rep-shards'), '--no-coverage');
    const b = await cli('report', join(tmp, 'whole', 'results.json'), '--out', join(tmp, 'rep-whole'), '--no-coverage');
    assert.equal(a.code, 1);
    assert.equal(b.code, 1);
    // Failing traces are saved per shard directory; the trace files differ in path only.
    const norm = (t: string) => t.replace(/\/(s1|s2|whole)\/failures\//g, '/X/failures/');
    for (const f of ['report.json', 'junit.xml', 'summary.md', 'report.html'])
      assert.equal(norm(read(tmp, 'rep-shards', f)), norm(read(tmp, 'rep-whole', f)), f);
    // A partial merge (one shard) says so.
    const one = buildReport(readResultsFile(files[0]!), { spec });
    assert.deepEqual(one.adapters[0]!.partial, { shardCount: 2, shards: [1] });
    // Twice the same input: the same bytes.
    const c = await cli('report', join(tmp, 'whole', 'results.json'), '--out', join(tmp, 'rep-again'), '--no-coverage');
    assert.equal(c.code, 1);
    for (const f of REPORT_FILES) assert.equal(read(tmp, 'rep-again', f), read(tmp, 'rep-whole', f), f);
  });

  it('MAP-026 MAP-027 the diff of a fixed implementation against its broken run: newly passing; the reverse: newly failing', async () => {
    // One implementation name, two builds: with the bug, then fixed.
    let bug: string | undefined = 'unmap-bisect';
    registerAdapter('impl-under-test', (name, o) => new ReferenceAdapter(name, { ...o, declaredName: 'impl', bug }));
    try {
      await runConformance(runOpts(join(tmp, 'd-old'), { adapter: 'impl-under-test' }));
      bug = undefined;
      await runConformance(runOpts(join(tmp, 'd-new'), { adapter: 'impl-under-test' }));
    } finally {
      unregisterAdapter('impl-under-test');
    }
    const oldRep = buildReport(readResultsFile(join(tmp, 'd-old', 'results.json')), { spec });
    const newRep = buildReport(readResultsFile(join(tmp, 'd-new', 'results.json')), { spec });
    const failedBefore = oldRep.clauses.filter((c) => c.cells.impl!.status === 'fail').map((c) => c.id);
    assert.ok(failedBefore.includes('MAP-026') && failedBefore.includes('MAP-027'));
    const fixed = diffReports(oldRep, newRep, 'old');
    assert.deepEqual(
      fixed.newlyPassing.map((c) => c.id),
      failedBefore,
    );
    assert.ok(fixed.newlyPassing.every((c) => c.adapter === 'impl' && c.was === 'fail' && c.now === 'pass'));
    assert.deepEqual(fixed.newlyFailing, []);
    for (const c of fixed.newlyReached) assert.ok(c.was !== 'pass' && c.was !== 'fail' && c.now === 'pass');
    const broke = diffReports(newRep, oldRep, 'new');
    assert.deepEqual(
      broke.newlyFailing.map((c) => c.id),
      failedBefore,
    );
    for (const c of broke.newlyFailing)
      assert.equal(c.firstFailure?.replay, oldRep.clauses.find((r) => r.id === c.id)!.cells.impl!.firstFailure?.replay);
    // Through the CLI, against a results.json or a report.json baseline: the same diff, shown in every format.
    const viaResults = await cli(
      'report',
      join(tmp, 'd-old', 'results.json'),
      '--diff',
      join(tmp, 'd-new', 'results.json'),
      '--out',
      join(tmp, 'd-rep1'),
      '--no-coverage',
    );
    writeReportDir(join(tmp, 'd-new-rep'), readResultsFile(join(tmp, 'd-new', 'results.json')), { spec });
    const viaReport = await cli(
      'report',
      join(tmp, 'd-old', 'results.json'),
      '--diff',
      join(tmp, 'd-new-rep', 'report.json'),
      '--out',
      join(tmp, 'd-rep2'),
      '--no-coverage',
    );
    assert.equal(viaResults.code, 1, viaResults.err.join('\n'));
    assert.equal(viaReport.code, 1, viaReport.err.join('\n'));
    const d1 = (JSON.parse(read(tmp, 'd-rep1', 'report.json')) as Report).diff!;
    const d2 = (JSON.parse(read(tmp, 'd-rep2', 'report.json')) as Report).diff!;
    assert.deepEqual({ ...d1, baseline: '' }, { ...broke, baseline: '' });
    assert.deepEqual({ ...d2, baseline: '' }, { ...broke, baseline: '' });
    assert.ok(viaResults.out.some((l) => l.includes(`${failedBefore.length} newly failing, 0 newly passing`)));
    assert.ok(read(tmp, 'd-rep1', 'summary.md').includes(`**Newly failing (${failedBefore.length})**`));
    assert.ok(read(tmp, 'd-rep1', 'report.html').includes('id="diff"'));
    assert.equal(xmlProblem(read(tmp, 'd-rep1', 'junit.xml')), undefined);
  });

  it('an adapter that could not be started: every cell is an error, in every format', async () => {
    const out = await runConformance(runOpts(join(tmp, 'down'), { adapter: 'stdio:/nonexistent/impl --x' }));
    assert.ok(out.openError !== undefined);
    const dir = join(tmp, 'down-rep');
    const { report } = writeReportDir(dir, out.results, { spec });
    const a = report.adapters[0]!;
    assert.equal(a.opened, false);
    assert.equal(a.counts.error, spec.clauses.length);
    assert.ok(report.clauses.every((c) => c.cells[a.name]!.status === 'error'));
    const junit = read(dir, 'junit.xml');
    assert.equal(xmlProblem(junit), undefined);
    assert.equal((junit.match(/<error /g) ?? []).length, spec.clauses.length);
    assert.ok(read(dir, 'report.html').includes('could not be started'));
  });
});

describe('reports: hostile strings and bad input', function () {
  this.timeout(120_000);

  const HOSTILE = `evil<script>window.pwned=1</script><img src=x onerror="window.pwned=2">&amp;'"|*_\``;

  /** A real failing run of an adapter with a hostile name, then hostile strings in every trace-derived field. */
  async function hostileResults(): Promise<Results> {
    registerAdapter(
      HOSTILE,
      (name, o) => new ReferenceAdapter(name, { ...o, declaredName: HOSTILE, bug: 'unmap-bisect' }),
    );
    let out;
    try {
      out = await runConformance(runOpts(join(tmp, 'hostile-run'), { adapter: HOSTILE, runs: 4 }));
    } finally {
      unregisterAdapter(HOSTILE);
    }
    const r = JSON.parse(resultsText(out.results)) as Results;
    const a = r.adapters[HOSTILE] as AdapterResults;
    assert.ok(a.failures.length > 0);
    const evil = '</td></tr></table><script>window.pwned=3</script><!--';
    (a.capabilities as { description?: string }).description = `desc ${evil}`;
    for (const f of a.failures) {
      f.message = `message ${evil}`;
      f.stderr = `stderr ${evil}\u0007\u0000`;
    }
    for (const s of Object.values(a.clauses))
      if (s.firstFailure) {
        s.firstFailure.trace = `corpus/<img src=x onerror=alert(1)>.json`;
        s.firstFailure.file = `/tmp/<b>x</b>&.json`;
      }
    for (const f of a.failures) f.trace = `corpus/<img src=x onerror=alert(1)>.json`;
    return r;
  }

  it('a trace or adapter name containing <script> stays text in report.html, summary.md, junit.xml and report.json', async () => {
    const results = await hostileResults();
    const dir = join(tmp, 'hostile');
    writeReportDir(dir, results, { spec });
    const html = read(dir, 'report.html');
    assert.equal((html.match(/<script/gi) ?? []).length, 1, 'only the page script');
    assert.ok(!/<img/i.test(html));
    assert.ok(!html.includes('<!--'));
    assert.ok(
      html.includes(
        'evil&lt;script&gt;window.pwned=1&lt;/script&gt;&lt;img src=x onerror=&quot;window.pwned=2&quot;&gt;&amp;amp;&#39;&quot;',
      ),
    );
    assert.ok(html.includes('message &lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;script&gt;'));
    const md = read(dir, 'summary.md');
    assert.ok(!/<script|<img|<\/td>/i.test(md));
    assert.ok(md.includes('<code>evil&lt;script&gt;'));
    const junit = read(dir, 'junit.xml');
    assert.equal(xmlProblem(junit), undefined);
    assert.ok(!junit.includes('\u0007') && !junit.includes('\u0000'));
    const json = JSON.parse(read(dir, 'report.json')) as Report;
    assert.equal(json.adapters[0]!.name, HOSTILE);
  });

  it('escaping: XML/HTML entities, forbidden control characters and lone surrogates replaced, Markdown cells kept whole', () => {
    assert.equal(escapeXml(`<a href="x">&'</a>`), '&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;');
    assert.equal(escapeXml('a\u0000b\u0007c\td\ne\uFFFEf\uD800g😀'), 'a\uFFFDb\uFFFDc\td\ne\uFFFDf\uFFFDg😀');
    assert.equal(mdCode('a|b\n<c>'), '<code>a&#124;b &lt;c&gt;</code>');
    assert.equal(mdText('*x* | [y](z) `w` <b>'), '\\*x\\* \\| \\[y\\](z) \\`w\\` &lt;b&gt;');
  });

  it('bad input: one line, exit code 2, never a stack trace', async () => {
    const notResults = join(tmp, 'not-results.json');
    writeFileSync(notResults, '{"format":"x","version":1}');
    const garbage = join(tmp, 'garbage.json');
    writeFileSync(garbage, 'not json');
    const { r1 } = await twoAdapterRun();
    const cases: [string[], RegExp][] = [
      [['report'], /report takes one or more results files/],
      [['report', notResults], /not a results file/],
      [['report', garbage], /cannot read results/],
      [['report', join(r1, 'results.json'), '--coverage', join(tmp, 'nope.json')], /--coverage .*no such file/],
      [['report', join(r1, 'results.json'), '--coverage', garbage], /cannot read coverage summary/],
      [['report', join(r1, 'results.json'), '--diff', garbage], /cannot read baseline/],
      [['report', join(r1, 'results.json'), '--bogus'], /Unknown option '--bogus'/],
      [['report', join(r1, 'results.json'), join(r1, 'results.json')], /cannot merge/],
    ];
    for (const [argv, want] of cases) {
      const r = await cli(...argv, '--out', join(tmp, 'bad-out'));
      assert.equal(r.code, 2, argv.join(' '));
      assert.equal(r.err.length, 1, r.err.join('\n'));
      assert.match(r.err[0]!, want);
      assert.ok(!/\n\s+at /.test(r.err[0]!), 'no stack trace');
    }
  });
});

describe('reports: code coverage of the models per chapter', function () {
  this.timeout(180_000);

  it('attributes each model module to the chapter its module comment names, else to shared', async () => {
    const chapters = spec.vocabularies.chapters.map((c) => c.name);
    const root = resolve('.');
    const src = (f: string) => read(root, f);
    assert.equal(chapterOfModule('src/reference/map.ts', src('src/reference/map.ts'), chapters), 'MAP');
    assert.equal(chapterOfModule('src/reference/dma.ts', src('src/reference/dma.ts'), chapters), 'REF');
    assert.equal(chapterOfModule('src/reference/ioas.ts', src('src/reference/ioas.ts'), chapters), 'IOAS');
    assert.equal(chapterOfModule('src/reference/state.ts', src('src/reference/state.ts'), chapters), 'shared');
    assert.equal(chapterOfModule('src/hw-reference/pasid.ts', undefined, chapters), 'PASID');
    const doc = (text: string) => `/**\n * ${text}\n *\n * @module\n */\nexport {};\n`;
    assert.equal(chapterOfModule('src/reference/abi.ts', doc('The ABI (spec/chapters/FD.md, FD-025)'), chapters), 'FD');
    assert.equal(chapterOfModule('src/hw-reference/c.ts', doc('caches (HW-015, HW-018 to HW-022)'), chapters), 'HW');
    assert.equal(
      chapterOfModule('src/reference/invariants.ts', doc('checks MAP-001, DEV-002 and FD-003'), chapters),
      'shared',
    );
    assert.equal(chapterOfModule('src/reference/core/context.ts', doc('ctx.check(MAP-026, …)'), chapters), 'shared');
    // A c8 json-summary with absolute paths, as `npm test` writes it.
    const m = (covered: number, total: number) => ({ total, covered, skipped: 0, pct: (100 * covered) / total });
    const entry = (c: number, t: number) => ({
      lines: m(c, t),
      statements: m(c, t),
      functions: m(1, 2),
      branches: m(c, t),
    });
    const summary = {
      total: entry(0, 1),
      [join(root, 'src/reference/map.ts')]: entry(90, 100),
      [join(root, 'src/reference/dma.ts')]: entry(5, 10),
      [join(root, 'src/reference/state.ts')]: entry(30, 40),
      [join(root, 'src/reference/core/areas.ts')]: entry(10, 10),
      [join(root, 'conformance/runner.ts')]: entry(1, 1000),
      '/elsewhere/src/hw-reference/walk.ts': entry(3, 4),
    };
    const file = join(tmp, 'coverage-summary.json');
    writeFileSync(file, JSON.stringify(summary));
    const cov = readCoverageSummary(file, chapters, root);
    const uapi = cov.models.find((x) => x.model === 'uapi')!;
    assert.deepEqual(Object.keys(uapi.chapters), ['MAP', 'REF', 'shared']);
    assert.deepEqual(uapi.chapters.MAP!.lines, { covered: 90, total: 100 });
    assert.deepEqual(uapi.chapters.shared!.files, ['src/reference/core/areas.ts', 'src/reference/state.ts']);
    assert.deepEqual(uapi.total.lines, { covered: 135, total: 160 });
    assert.deepEqual(cov.models.find((x) => x.model === 'hw')!.chapters.shared!.files, ['src/hw-reference/walk.ts']);
    // Beside the clause coverage: the chapter summaries and every format carry it.
    const { r1 } = await twoAdapterRun();
    const dir = join(tmp, 'cov-rep');
    const { report } = writeReportDir(dir, readResultsFile(join(r1, 'results.json')), {
      spec,
      coveragePath: file,
      repoRoot: root,
    });
    const map = report.chapters.find((c) => c.chapter === 'MAP')!;
    assert.deepEqual(map.coverage?.uapi?.lines, { covered: 90, total: 100 });
    assert.equal(report.chapters.find((c) => c.chapter === 'FD')!.coverage, undefined);
    assert.ok(read(dir, 'report.html').includes('id="coverage"'));
    assert.ok(read(dir, 'summary.md').includes('| 90.0% of 100 |'));
  });
});

describe('reports: atomic writes', function () {
  this.timeout(120_000);

  it('a report interrupted halfway through a file (SIGKILL) leaves every file either as it was or complete', async () => {
    const { r1, r2 } = await twoAdapterRun();
    const dir = join(tmp, 'atomic');
    const newDir = join(tmp, 'atomic-new');
    writeReportDir(dir, readResultsFile(join(r1, 'results.json')), { spec });
    writeReportDir(newDir, readResultsFile(join(r2, 'results.json')), { spec });
    const before = Object.fromEntries(REPORT_FILES.map((f) => [f, read(dir, f)]));
    const after = Object.fromEntries(REPORT_FILES.map((f) => [f, read(newDir, f)]));
    for (const f of REPORT_FILES) assert.notEqual(before[f], after[f], f);
    // Killed while writing the 3rd file (junit.xml): results.json and report.json are new, the rest as before.
    const child = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'test/reports/interrupt-child.ts', join(r2, 'results.json'), dir, '3'],
      { encoding: 'utf8' },
    );
    assert.equal(child.signal, 'SIGKILL', child.stdout + child.stderr);
    REPORT_FILES.forEach((f, i) => assert.equal(read(dir, f), i < 2 ? after[f] : before[f], f));
    const left = readdirSync(dir).filter((n) => n.endsWith('.tmp'));
    assert.equal(left.length, 1, 'the half-written temporary of junit.xml');
    assert.match(left[0]!, /^\.junit\.xml\.\d+\.\d+\.tmp$/);
    assert.ok(read(dir, left[0]!).length < after['junit.xml']!.length);
    // The next write completes the report and removes the dead writer's temporary.
    writeReportDir(dir, readResultsFile(join(r2, 'results.json')), { spec });
    for (const f of REPORT_FILES) assert.equal(read(dir, f), after[f], f);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.endsWith('.tmp')),
      [],
    );
  });
});
