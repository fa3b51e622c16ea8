// report.html as a person sees it: opened from file:// in headless Chromium (Debian's chromium, driven by
// playwright-core), for the two-adapter run of helpers.ts (the reference and buggy-unmap-bisect). Saves the
// screenshot to reports/out/report.png (git-ignored), or to the README's docs/report.png when UPDATE_SCREENSHOT=1.
// With CI=true a missing Chromium fails the test; elsewhere it skips with the reason.
import { strict as assert } from 'node:assert';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ReferenceAdapter } from '../../conformance/adapters/reference.ts';
import { registerAdapter, unregisterAdapter } from '../../conformance/adapters/registry.ts';
import { runConformance } from '../../conformance/runner.ts';
import { loadSpec } from '../../src/spec/spec.ts';
import { writeReportDir } from '../../reports/write.ts';
import { BROKEN_NAME, twoAdapterRun } from './helpers.ts';

/** Where Debian's chromium package installs the browser. */
const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const { spec } = loadSpec();

describe('reports: report.html in headless Chromium', function () {
  this.timeout(180_000);
  let profile: string;
  let ctx: BrowserContext;
  /** Requests other than the page itself, CSP violations, script errors and dialogs, per page. */
  let problems: string[];

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      if (process.env.CI === 'true')
        throw new Error(`${CHROMIUM} is missing: CI must install it (apt-get install -y chromium)`);
      console.log(`    (skipped: ${CHROMIUM} is not installed; in CI this fails)`);
      this.skip();
    }
    profile = mkdtempSync(join(tmpdir(), 'ioasid-chromium-'));
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      viewport: { width: 1440, height: 1000 },
      deviceScaleFactor: 1,
    });
  });
  after(async () => {
    await ctx?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  async function open(file: string): Promise<Page> {
    problems = [];
    const page = await ctx.newPage();
    const url = pathToFileURL(file).href;
    page.on('request', (r) => void (r.url() === url || problems.push(`request ${r.url()}`)));
    page.on('console', (m) => void (m.type() === 'error' && problems.push(`console ${m.text()}`)));
    page.on('pageerror', (e) => void problems.push(`pageerror ${e.message}`));
    page.on('dialog', (d) => void (problems.push(`dialog ${d.message()}`), d.dismiss()));
    await page.goto(url);
    return page;
  }

  /** The matrix rows shown: clause ID and the text of each adapter cell. */
  const visibleRows = (page: Page) =>
    page.evaluate<string[][]>(
      `[...document.querySelectorAll('#matrix tr[data-clause]')].filter((tr) => !tr.hidden).map((tr) => [tr.getAttribute('data-clause'), ...[...tr.querySelectorAll('td.c')].map((td) => td.innerText.replace(/\\s+/g, ' ').trim())])`,
    );

  it('MAP-026 MAP-027 the matrix shows every clause with the right cell for both adapters, failing cells linking to their replay command', async () => {
    const { rep, report } = await twoAdapterRun();
    const page = await open(join(rep, 'report.html'));
    const heads = await page.evaluate<string[]>(
      `[...document.querySelectorAll('#matrix thead th.ad')].map((th) => th.innerText)`,
    );
    assert.deepEqual(heads, ['reference', BROKEN_NAME]);
    const rows = await visibleRows(page);
    assert.equal(rows.length, spec.clauses.length);
    const want = (s: string) => ({ pass: '✓ pass', fail: '✗ fail', unreached: '○ unreached', 'n/a': '– n/a' })[s]!;
    rows.forEach(([id, ...cells], i) => {
      const row = report.clauses[i]!;
      assert.equal(id, row.id);
      ['reference', BROKEN_NAME].forEach((a, j) => {
        const c = row.cells[a]!;
        assert.ok(cells[j]!.startsWith(want(c.status)), `${id} ${a}: "${cells[j]}" for ${c.status}`);
        if (c.status === 'fail') assert.equal(cells[j], `✗ fail ${c.failures}/${c.traces} traces`);
        if (c.status === 'pass') assert.equal(cells[j], `✓ pass ${c.steps} step${c.steps === 1 ? '' : 's'}`);
      });
    });
    // MAP-026: passes on the reference, fails on the broken adapter, in colours that differ in more than hue.
    const map026 = rows.find((r) => r[0] === 'MAP-026')!;
    assert.ok(map026[1]!.startsWith('✓ pass') && map026[2]!.startsWith('✗ fail'));
    const colours = await page.evaluate<string[]>(
      `[...document.querySelectorAll('#matrix tr[data-clause="MAP-026"] td.c')].map((td) => getComputedStyle(td).backgroundColor)`,
    );
    assert.deepEqual(colours, ['rgb(207, 229, 246)', 'rgb(213, 94, 0)']);
    // The failing cell links to its failure row, which shows the replay command of report.json.
    await page.click('#matrix tr[data-clause="MAP-026"] td.fail a');
    assert.equal(new URL(page.url()).hash, '#f-1-MAP-026');
    const replay = await page.evaluate<string>(`document.querySelector('#f-1-MAP-026 .replay').innerText`);
    assert.equal(replay, report.clauses.find((c) => c.id === 'MAP-026')!.cells[BROKEN_NAME]!.firstFailure!.replay);
    assert.deepEqual(problems, [], 'no network request, no CSP violation, no script error');
    await page.close();
  });

  it('the chapter filter shows one chapter everywhere; "only failing or unreached" narrows the matrix; saves the screenshot', async () => {
    const { rep, report } = await twoAdapterRun();
    const page = await open(join(rep, 'report.html'));
    const mapIds = spec.clauses.filter((c) => c.chapter === 'MAP').map((c) => c.id);
    await page.selectOption('#chapter', 'MAP');
    assert.deepEqual(
      (await visibleRows(page)).map((r) => r[0]),
      mapIds,
    );
    assert.equal(await page.innerText('#shown'), `${mapIds.length} clauses shown`);
    const otherChapters = await page.evaluate<number>(
      `[...document.querySelectorAll('[data-chapter]')].filter((e) => !e.hidden && e.getAttribute('data-chapter') !== 'MAP').length`,
    );
    assert.equal(otherChapters, 0, 'never-reached, chapter and failure rows of other chapters are hidden too');
    await page.check('#only-problems');
    const problemIds = report.clauses
      .filter(
        (c) =>
          c.chapter === 'MAP' && Object.values(c.cells).some((x) => x.status === 'fail' || x.status === 'unreached'),
      )
      .map((c) => c.id);
    assert.ok(problemIds.includes('MAP-026'));
    assert.deepEqual(
      (await visibleRows(page)).map((r) => r[0]),
      problemIds,
    );
    // The screenshot of the README: the summary, then the matrix of chapter MAP with its failing cells.
    const docs = resolve(process.env.UPDATE_SCREENSHOT === '1' ? 'docs' : 'reports/out');
    mkdirSync(docs, { recursive: true });
    await page.evaluate(`window.scrollTo(0, 0)`);
    await page.screenshot({
      path: join(docs, 'report.png'),
      fullPage: true,
      clip: { x: 0, y: 0, width: 1440, height: 1500 },
    });
    await page.uncheck('#only-problems');
    await page.selectOption('#chapter', '');
    assert.equal((await visibleRows(page)).length, spec.clauses.length);
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('a hostile adapter name and failure message render as text and run no script', async () => {
    const HOSTILE = `evil<script>window.pwned=1</script><img src=x onerror="window.pwned=2">`;
    registerAdapter(
      HOSTILE,
      (name, o) => new ReferenceAdapter(name, { ...o, declaredName: HOSTILE, bug: 'unmap-bisect' }),
    );
    const dir = mkdtempSync(join(tmpdir(), 'ioasid-hostile-'));
    try {
      const out = await runConformance({
        adapter: HOSTILE,
        adapterOptions: {},
        seed: 1,
        runs: 3,
        maxSteps: 40,
        adversarial: 0.2,
        clauses: [],
        jobs: 1,
        shard: { index: 1, count: 1 },
        reportDir: dir,
        corpusDir: 'conformance/corpus',
        shrinkBudget: 20,
      });
      const results = JSON.parse(JSON.stringify(out.results)) as typeof out.results;
      const a = results.adapters[HOSTILE]!;
      if ('failures' in a) for (const f of a.failures) f.message = `<script>window.pwned=3</script>${f.message}`;
      writeReportDir(dir, results, { spec });
      const page = await open(join(dir, 'report.html'));
      assert.deepEqual(
        await page.evaluate<string[]>(
          `[...document.querySelectorAll('#matrix thead th.ad')].map((th) => th.innerText)`,
        ),
        [HOSTILE],
      );
      assert.equal(await page.evaluate<string>(`typeof window.pwned`), 'undefined');
      assert.equal(await page.evaluate<number>(`document.querySelectorAll('script').length`), 1);
      assert.equal(await page.evaluate<number>(`document.querySelectorAll('img').length`), 0);
      assert.ok((await page.innerText('#failures')).includes('<script>window.pwned=3</script>'));
      assert.deepEqual(problems, []);
      await page.close();
    } finally {
      unregisterAdapter(HOSTILE);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
