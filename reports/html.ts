/**
 * The report as one static HTML page (`report.html`): opens from `file://`, fetches nothing (a Content Security
 * Policy forbids every network request and every script but its own), CSS inline. It shows the adapters, the
 * clauses no adapter reached (first), the implementation × clause matrix (as test262.fyi does for JavaScript
 * engines), the per-chapter summary with the models' code coverage, every failing cell with its replay command, and
 * the diff against a baseline. A chapter filter and an "only failing or unreached" switch hide rows (a few lines of
 * inline script that read only the page itself).
 *
 * Every string that came from a trace, an adapter or a results file is HTML-escaped (`reports/escape.ts`); the
 * script embeds no data. Cells carry a word and a symbol besides their colour, and the colours (Okabe–Ito blue and
 * vermillion) stay apart for colour-blind readers.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { percent, type ChapterCoverage, type Metric } from './coverage.ts';
import { escapeHtml as h } from './escape.ts';
import type { AdapterSummary, Cell, CellChange, CellStatus, NeverReached, Report, StatusCounts } from './model.ts';

const SYMBOL: Record<CellStatus, string> = { pass: '✓', fail: '✗', unreached: '○', 'n/a': '–', error: '!' };
const WORD: Record<CellStatus, string> = {
  pass: 'pass',
  fail: 'fail',
  unreached: 'unreached',
  'n/a': 'n/a',
  error: 'error',
};
const CLASS: Record<CellStatus, string> = { pass: 'pass', fail: 'fail', unreached: 'unr', 'n/a': 'na', error: 'err' };

const CSS = `
:root{--bar:3.25rem;--ink:#1d2430;--muted:#5b6472;--line:#dde2ea;--bg:#f6f7f9;--card:#fff;
--pass:#cfe5f6;--pass-ink:#0b4a75;--fail:#d55e00;--fail-ink:#fff;--unr:#fbe7ae;--unr-ink:#5e4300;--na:#eff1f4;--na-ink:#8a919c;--err:#cc79a7;--err-ink:#fff;--accent:#0072b2}
*{box-sizing:border-box}[hidden]{display:none!important}
html{scroll-padding-top:calc(var(--bar) + 2.5rem)}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:var(--bg)}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
.bar{position:sticky;top:0;z-index:20;height:var(--bar);display:flex;gap:1.25rem;align-items:center;padding:0 1.5rem;background:#1d2430;color:#fff;box-shadow:0 1px 4px rgba(0,0,0,.25)}
.bar h1{font-size:16px;margin:0;font-weight:650;white-space:nowrap}.bar h1 span{color:#9fc9ea;font-weight:500}
.bar nav{display:flex;gap:.8rem;white-space:nowrap;overflow:hidden;min-width:0}.bar nav a{color:#cfd8e3;text-decoration:none;font-size:13px}.bar nav a:hover{color:#fff;text-decoration:underline}
.bar .filters{margin-left:auto;display:flex;gap:1rem;align-items:center;font-size:13px;white-space:nowrap}
.bar select{font:inherit;max-width:15rem;padding:.2rem .4rem;border-radius:6px;border:1px solid #56606e;background:#2a3342;color:#fff}
#shown{color:#9fc9ea;min-width:8.5rem;text-align:right}
main{max-width:1500px;margin:0 auto;padding:1.25rem 1.5rem 3rem}
section{margin:0 0 2rem}h2{font-size:18px;margin:1.5rem 0 .6rem}h2 small{font-weight:400;color:var(--muted);font-size:13px;margin-left:.4rem}
p.lead{margin:.2rem 0 1rem;color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(400px,1fr));gap:1rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:.9rem 1rem;box-shadow:0 1px 2px rgba(0,0,0,.04)}
.card h3{margin:0 0 .15rem;font-size:15px;word-break:break-all}.card .meta{color:var(--muted);font-size:12.5px;margin-bottom:.6rem}
.card.down{border-color:var(--err)}
.stack{display:flex;height:12px;border-radius:6px;overflow:hidden;background:var(--na);margin:.5rem 0 .35rem}
.stack span{display:block;height:100%}
.legend{display:flex;flex-wrap:wrap;gap:.35rem .9rem;font-size:12.5px;color:var(--muted)}
.kpis{display:flex;gap:1.6rem;flex-wrap:wrap;margin:.5rem 0 0}.kpis b{display:block;font-size:19px;color:var(--ink);font-variant-numeric:tabular-nums}
.kpis div{font-size:12px;color:var(--muted)}
.totals{display:flex;gap:.8rem;flex-wrap:wrap;margin:0 0 1rem}
.totals div{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:.55rem .9rem;min-width:8.5rem}
.totals b{display:block;font-size:22px}.totals span{color:var(--muted);font-size:12.5px}
.tbl{background:var(--card);border:1px solid var(--line);border-radius:10px;overflow:auto;max-height:80vh}
table{border-collapse:separate;border-spacing:0;width:100%}
th,td{padding:.32rem .6rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
.matrix td{vertical-align:middle}
thead th{position:sticky;top:0;z-index:5;background:#eef1f5;font-size:12.5px;font-weight:650;border-bottom:1px solid #c9d0da;white-space:nowrap}
tbody tr:hover td{filter:brightness(.97)}
.matrix td.id,.matrix th.id{position:sticky;left:0;z-index:4;background:var(--card);white-space:nowrap;font-weight:600}
.matrix thead th.id{z-index:6;background:#eef1f5}
.matrix td.title{max-width:34rem;min-width:14rem;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.matrix th.ad{text-align:center;max-width:11rem;white-space:normal;word-break:break-all}
tr.chap th{position:sticky;top:2.05rem;z-index:3;background:#e3e8ef;font-size:13px;text-align:left;border-bottom:1px solid #c9d0da}
td.c{text-align:center;white-space:nowrap;font-weight:600;font-size:12.5px;border-left:2px solid var(--card);min-width:8.5rem}
td.c small{font-weight:400;font-size:11px;opacity:.8;margin-left:.1rem}
td.c a{color:inherit}
.pass{background:var(--pass);color:var(--pass-ink)}
.fail{background:var(--fail);color:var(--fail-ink)}
.unr{background:var(--unr) repeating-linear-gradient(135deg,transparent 0 6px,rgba(255,255,255,.45) 6px 9px);color:var(--unr-ink)}
.na{background:var(--na);color:var(--na-ink);font-weight:400!important}
.err{background:var(--err);color:var(--err-ink)}
.sw{display:inline-block;width:.85rem;height:.85rem;border-radius:3px;vertical-align:-2px;margin-right:.3rem;border:1px solid rgba(0,0,0,.12)}
.lvl{font-size:11px;color:var(--muted);white-space:nowrap}.files{white-space:normal;max-width:40rem}.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.kind{display:inline-block;padding:.05rem .45rem;border-radius:999px;font-size:11.5px;font-weight:600;white-space:nowrap}
.k-generator-gap{background:#fbe7ae;color:#5e4300}.k-spec-question{background:#e6d9f2;color:#4b2a6b}.k-not-applicable{background:#eff1f4;color:#5b6472}.k-withdrawn{background:#eff1f4;color:#8a919c}
.pct{position:relative;min-width:8rem;font-variant-numeric:tabular-nums}
.pct .fill{position:absolute;left:0;top:0;bottom:0;background:var(--pass);z-index:0}
.pct span{position:relative;z-index:1}.cov .fill{top:auto;height:5px;background:var(--accent);opacity:.55}.cov{padding-bottom:.5rem}.pct .f{color:#a64500;font-weight:650}
.replay{display:block;background:#1d2430;color:#e8eef6;padding:.35rem .55rem;border-radius:6px;margin-top:.3rem;white-space:pre-wrap;word-break:break-all;user-select:all}
td.mono b{white-space:nowrap}
.fails td{font-size:13px}.msg{color:#7a2e00}
details summary{cursor:pointer;color:var(--accent);margin:.6rem 0}
footer{color:var(--muted);font-size:12px;text-align:center;padding:1rem}
.empty{color:var(--muted);font-style:italic}
`;

const SCRIPT = `(() => {
  const sel = document.getElementById('chapter');
  const only = document.getElementById('only-problems');
  const shown = document.getElementById('shown');
  const apply = () => {
    const ch = sel.value;
    let n = 0;
    for (const tr of document.querySelectorAll('[data-chapter]')) {
      const inMatrix = tr.hasAttribute('data-clause');
      const hide = (ch !== '' && tr.getAttribute('data-chapter') !== ch) ||
        (only.checked && inMatrix && tr.getAttribute('data-problem') !== '1');
      tr.hidden = hide;
      if (!hide && inMatrix) n++;
    }
    shown.textContent = n + (n === 1 ? ' clause shown' : ' clauses shown');
  };
  sel.addEventListener('change', apply);
  only.addEventListener('change', apply);
  apply();
})();`;

/** The Content-Security-Policy of the page: no network, inline styles, only the page's own script. */
export function contentSecurityPolicy(): string {
  const hash = createHash('sha256').update(SCRIPT).digest('base64');
  return `default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-${hash}'; base-uri 'none'; form-action 'none'`;
}

const STATUS_ORDER: readonly CellStatus[] = ['pass', 'fail', 'unreached', 'n/a', 'error'];

function stack(c: StatusCounts): string {
  const total = STATUS_ORDER.reduce((n, s) => n + c[s], 0) || 1;
  return `<div class="stack" aria-hidden="true">${STATUS_ORDER.filter((s) => c[s] > 0)
    .map((s) => `<span class="${CLASS[s]}" style="width:${((100 * c[s]) / total).toFixed(2)}%"></span>`)
    .join('')}</div>`;
}

function legend(c?: StatusCounts): string {
  return `<div class="legend">${STATUS_ORDER.filter((s) => c === undefined || c[s] > 0)
    .map(
      (s) =>
        `<span><i class="sw ${CLASS[s]}"></i>${SYMBOL[s]} ${WORD[s]}${c === undefined ? '' : ` <b>${c[s]}</b>`}</span>`,
    )
    .join('')}</div>`;
}

function adapterCard(a: AdapterSummary): string {
  const meta = a.opened
    ? `${h(a.profile ?? '')} · ${a.features?.length ? h(a.features.join(', ')) : 'no features'} · platform ${h(a.platform ?? '')}`
    : 'could not be started';
  const kpis = a.opened
    ? `<div class="kpis"><div><b>${a.traces?.passed ?? 0}</b>traces passed</div><div><b>${a.traces?.failed ?? 0}</b>traces failed</div><div><b>${a.steps ?? 0}</b>steps</div><div><b>${a.counts.fail}</b>failing clauses</div></div>`
    : `<p class="msg">${h(a.error?.kind ?? '')}: ${h(a.error?.message ?? '')}</p>${a.stderr ? `<pre class="replay">${h(a.stderr)}</pre>` : ''}`;
  const extra = [
    a.description ? h(a.description) : '',
    a.seed !== undefined ? `seed ${a.seed}, ${a.runs} random traces` : '',
    a.corpus && a.corpus.total > 0 ? `corpus ${a.corpus.passed}/${a.corpus.total} passed` : '',
    a.focus && a.focus.length > 0 ? `focus ${h(a.focus.join(','))}` : '',
    a.partial ? `<b>partial: shards ${a.partial.shards.join(',')} of ${a.partial.shardCount}</b>` : '',
  ].filter((s) => s !== '');
  return `<div class="card${a.opened ? '' : ' down'}"><h3 class="mono">${h(a.name)}</h3><div class="meta">${meta}${extra.length ? `<br>${extra.join(' · ')}` : ''}</div>${stack(a.counts)}${legend(a.counts)}${kpis}</div>`;
}

function cellHtml(c: Cell, anchor: string): string {
  const detail =
    c.status === 'pass'
      ? ` <small>${c.steps} step${c.steps === 1 ? '' : 's'}</small>`
      : c.status === 'fail'
        ? ` <small>${c.failures}/${c.traces} traces</small>`
        : '';
  const label = `${SYMBOL[c.status]} ${WORD[c.status]}`;
  const title =
    c.status === 'fail' && c.firstFailure
      ? ` title="${h(`${c.firstFailure.trace} step ${c.firstFailure.step}: ${c.firstFailure.message}`)}"`
      : c.status === 'pass'
        ? ` title="${c.steps} steps in ${c.traces} traces"`
        : '';
  const body = c.status === 'fail' ? `<a href="#${anchor}">${label}</a>` : label;
  return `<td class="c ${CLASS[c.status]}" data-status="${c.status}"${title}>${body}${detail}</td>`;
}

function failAnchor(adapterIndex: number, id: string): string {
  return `f-${adapterIndex}-${id}`;
}

function neverRow(n: NeverReached): string {
  const label =
    n.kind === 'generator-gap' ? (n.drawable ? 'generator gap · drawable' : 'generator gap') : n.kind.replace('-', ' ');
  return `<tr data-chapter="${h(n.chapter)}"><td class="mono"><b>${h(n.id)}</b></td><td>${h(n.title)}</td><td><span class="kind k-${n.kind}">${h(label)}</span></td><td>${h(n.detail)}${n.register.length > 0 ? ` <span class="lvl">(register: ${h(n.register.join(', '))})</span>` : ''}</td></tr>`;
}

function neverTable(rows: readonly NeverReached[]): string {
  if (rows.length === 0) return '<p class="empty">None.</p>';
  return `<div class="tbl"><table><thead><tr><th>Clause</th><th>Title</th><th>Why</th><th>Detail</th></tr></thead><tbody>${rows.map(neverRow).join('')}</tbody></table></div>`;
}

function pctCell(c: StatusCounts): string {
  const applicable = c.pass + c.fail + c.unreached;
  if (applicable === 0 && c.error === 0) return `<td class="pct na"><span>n/a</span></td>`;
  if (applicable === 0) return `<td class="pct err"><span>! error</span></td>`;
  const p = (100 * c.pass) / applicable;
  return `<td class="pct" title="${c.pass} pass, ${c.fail} fail, ${c.unreached} unreached of ${applicable} applicable"><div class="fill" style="width:${p.toFixed(1)}%"></div><span>${p.toFixed(0)}% <span class="lvl">${c.pass}/${applicable}</span>${c.fail > 0 ? ` · <span class="f">✗ ${c.fail} fail</span>` : ''}</span></td>`;
}

function covCell(m: Metric | undefined): string {
  if (m === undefined || m.total === 0) return '<td class="num na">–</td>';
  const p = (100 * m.covered) / m.total;
  return `<td class="pct cov"><div class="fill" style="width:${p.toFixed(1)}%"></div><span>${percent(m)} <span class="lvl">${m.covered}/${m.total}</span></span></td>`;
}

function changeTable(title: string, list: readonly CellChange[]): string {
  if (list.length === 0) return '';
  return `<h3>${h(title)} <small>(${list.length})</small></h3><div class="tbl"><table><thead><tr><th>Clause</th><th>Adapter</th><th>Was</th><th>Now</th><th>Replay</th></tr></thead><tbody>${list
    .map(
      (c) =>
        `<tr data-chapter="${h(c.id.split('-')[0]!)}"><td class="mono"><b>${h(c.id)}</b></td><td class="mono">${h(c.adapter)}</td><td class="c ${CLASS[c.was]}">${SYMBOL[c.was]} ${WORD[c.was]}</td><td class="c ${CLASS[c.now]}">${SYMBOL[c.now]} ${WORD[c.now]}</td><td>${c.firstFailure ? `<code class="replay">${h(c.firstFailure.replay)}</code>` : ''}</td></tr>`,
    )
    .join('')}</tbody></table></div>`;
}

/** The HTML page of a report. */
export function reportHtml(r: Report): string {
  const t = r.totals;
  const adapters = r.adapters;
  const models = r.coverage?.models ?? [];
  const parts: string[] = [];
  parts.push(
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8">`,
    `<meta http-equiv="Content-Security-Policy" content="${h(contentSecurityPolicy())}">`,
    `<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer">`,
    `<title>ioasid-conformance report — ${adapters.length} adapter(s)</title><style>${CSS}</style></head><body>`,
  );
  // The bar: title, navigation, filters.
  parts.push(
    `<header class="bar"><h1>ioasid-conformance <span>report</span></h1><nav><a href="#summary">Summary</a><a href="#never">Never reached</a><a href="#matrix">Matrix</a><a href="#chapters">Chapters</a><a href="#failures">Failures</a>${r.diff ? '<a href="#diff">Diff</a>' : ''}${models.length ? '<a href="#coverage">Coverage</a>' : ''}</nav>`,
    `<div class="filters"><label>Chapter <select id="chapter"><option value="">all chapters</option>${r.chapters.map((c) => `<option value="${h(c.chapter)}">${h(c.chapter)} — ${h(c.title)}</option>`).join('')}</select></label><label><input type="checkbox" id="only-problems"> only failing or unreached</label><span id="shown">${r.clauses.length} clauses shown</span></div></header><main>`,
  );
  // Summary.
  parts.push(
    `<section id="summary"><h2>Summary</h2><div class="totals"><div><b>${t.clauses}</b><span>clauses (${t.withdrawn} withdrawn)</span></div><div><b>${t.applicable}</b><span>apply to an adapter</span></div><div><b>${t.reached}</b><span>reached</span></div><div><b>${t.failing}</b><span>failing on an adapter</span></div><div><b>${t.neverReached}</b><span>never reached</span></div><div><b>${t.traces.passed}/${t.traces.total}</b><span>traces passed</span></div></div>`,
    `<div class="cards">${adapters.map(adapterCard).join('')}</div>`,
    r.unknownClauses.length > 0
      ? `<p class="msg">Clause IDs counted by runs but not defined by the spec: ${r.unknownClauses.map((u) => `<code>${h(u.id)}</code>`).join(', ')}</p>`
      : '',
    `</section>`,
  );
  // Never reached, first of the per-clause views.
  const gaps = r.neverReached.filter((n) => n.kind === 'generator-gap' || n.kind === 'spec-question');
  const rest = r.neverReached.filter((n) => n.kind === 'not-applicable' || n.kind === 'withdrawn');
  parts.push(
    `<section id="never"><h2>Never reached <small>${r.neverReached.length} clauses no adapter reached</small></h2>`,
    `<p class="lead">Each applicable clause no trace reached is a generator gap (no generator draws its commands, or one does and the traces missed it) or an open spec question. ${gaps.length} apply to an adapter of this run; ${rest.length} apply to none (another profile or feature) or are withdrawn.</p>`,
    neverTable(gaps),
    rest.length > 0
      ? `<details><summary>Not applicable to any adapter of this run, or withdrawn (${rest.length})</summary>${neverTable(rest)}</details>`
      : '',
    `</section>`,
  );
  // The matrix.
  const colspan = 4 + adapters.length;
  const body: string[] = [];
  let chapter = '';
  for (const row of r.clauses) {
    if (row.chapter !== chapter) {
      chapter = row.chapter;
      const ch = r.chapters.find((c) => c.chapter === chapter);
      body.push(
        `<tr class="chap" data-chapter="${h(chapter)}"><th colspan="${colspan}">${h(chapter)} — ${h(ch?.title ?? '')} <span class="lvl">${ch?.clauses ?? 0} clauses, ${ch?.reached ?? 0} reached</span></th></tr>`,
      );
    }
    const problem = Object.values(row.cells).some((c) => c.status === 'fail' || c.status === 'unreached');
    body.push(
      `<tr data-chapter="${h(row.chapter)}" data-clause="${h(row.id)}" data-problem="${problem ? 1 : 0}"><td class="id mono">${h(row.id)}</td><td class="title" title="${h(row.title)}">${row.withdrawn ? '<s>' : ''}${h(row.title)}${row.withdrawn ? '</s>' : ''}</td><td class="lvl">${h(row.level)}</td><td class="num">${row.steps}</td>${adapters.map((a, i) => cellHtml(row.cells[a.name]!, failAnchor(i, row.id))).join('')}</tr>`,
    );
  }
  parts.push(
    `<section id="matrix"><h2>Implementation × clause <small>${r.clauses.length} clauses × ${adapters.length} adapter(s)</small></h2>${legend()}`,
    `<p class="lead">A clause passes on an adapter when traces reached it and no failure was counted against it (a violation counts against the clauses it broke, an expected error not given against the clause of that check, any other divergence against every clause the failing step evaluated); a failing cell links to its first failing trace and replay command. Steps: how many checked steps evaluated the clause, over all adapters.</p>`,
    `<div class="tbl"><table class="matrix"><thead><tr><th class="id">Clause</th><th>Title</th><th>Level</th><th class="num">Steps</th>${adapters.map((a) => `<th class="ad mono">${h(a.name)}</th>`).join('')}</tr></thead><tbody>${body.join('')}</tbody></table></div></section>`,
  );
  // Chapters.
  parts.push(
    `<section id="chapters"><h2>Chapters</h2><p class="lead">Per adapter: share of the applicable clauses that pass. ${models.length > 0 ? `Beside it, line coverage of each chapter's model modules by the test run (${h(r.coverage!.source)}).` : 'No code coverage summary was given (run npm test, then report with --coverage coverage/coverage-summary.json).'}</p>`,
    `<div class="tbl"><table><thead><tr><th>Chapter</th><th class="num">Clauses</th><th class="num">Reached</th><th class="num">Never reached</th>${adapters.map((a) => `<th class="mono">${h(a.name)}</th>`).join('')}${models.map((m) => `<th>${h(m.model)} model lines</th>`).join('')}</tr></thead><tbody>${r.chapters
      .map(
        (ch) =>
          `<tr data-chapter="${h(ch.chapter)}"><td><b>${h(ch.chapter)}</b> ${h(ch.title)}</td><td class="num">${ch.clauses}</td><td class="num">${ch.reached}</td><td class="num">${ch.neverReached}</td>${adapters.map((a) => pctCell(ch.cells[a.name]!)).join('')}${models.map((m) => covCell(m.chapters[ch.chapter]?.lines)).join('')}</tr>`,
      )
      .join('')}</tbody></table></div></section>`,
  );
  // Failures.
  const fails: string[] = [];
  for (const row of r.clauses)
    adapters.forEach((a, i) => {
      const c = row.cells[a.name]!;
      if (c.status !== 'fail') return;
      const f = c.firstFailure;
      fails.push(
        `<tr id="${failAnchor(i, row.id)}" data-chapter="${h(row.chapter)}"><td class="mono"><b>${h(row.id)}</b></td><td>${h(row.title)}</td><td class="mono">${h(a.name)}</td><td class="num">${c.failures}/${c.traces}</td><td>${
          f === undefined
            ? ''
            : `<span class="mono">${h(f.trace)}</span>, step ${f.step} (${h(f.kind)}): <span class="msg">${h(f.message)}</span><br><span class="lvl">trace file</span> <code>${h(f.file)}</code><code class="replay">${h(f.replay)}</code>`
        }</td></tr>`,
      );
    });
  parts.push(
    `<section id="failures"><h2>Failures <small>${fails.length} failing cells</small></h2>`,
    fails.length === 0
      ? '<p class="empty">No clause fails on any adapter.</p>'
      : `<div class="tbl fails"><table><thead><tr><th>Clause</th><th>Title</th><th>Adapter</th><th class="num">Failing traces</th><th>First failing trace and its replay command</th></tr></thead><tbody>${fails.join('')}</tbody></table></div>`,
    `</section>`,
  );
  // Diff.
  if (r.diff) {
    const d = r.diff;
    const n = d.newlyFailing.length + d.newlyPassing.length + d.newlyReached.length + d.noLongerReached.length;
    parts.push(
      `<section id="diff"><h2>Changes since <code>${h(d.baseline)}</code></h2><p class="lead">${d.newlyFailing.length} newly failing, ${d.newlyPassing.length} newly passing, ${d.newlyReached.length} newly reached, ${d.noLongerReached.length} no longer reached.${d.adaptersAdded.length ? ` Adapters added: ${d.adaptersAdded.map((x) => `<code>${h(x)}</code>`).join(', ')}.` : ''}${d.adaptersRemoved.length ? ` Adapters removed: ${d.adaptersRemoved.map((x) => `<code>${h(x)}</code>`).join(', ')}.` : ''}</p>`,
      n === 0 ? '<p class="empty">No cell changed.</p>' : '',
      changeTable('Newly failing', d.newlyFailing),
      changeTable('Newly passing', d.newlyPassing),
      changeTable('Newly reached', d.newlyReached),
      changeTable('No longer reached', d.noLongerReached),
      `</section>`,
    );
  }
  // Code coverage.
  if (models.length > 0) {
    const rows = (m: (typeof models)[number]) =>
      Object.entries(m.chapters)
        .map(
          ([ch, c]: [string, ChapterCoverage]) =>
            `<tr${ch === 'shared' ? '' : ` data-chapter="${h(ch)}"`}><td><b>${h(ch)}</b></td><td class="mono lvl files">${c.files.map(h).join(', ')}</td>${covCell(c.lines)}${covCell(c.branches)}${covCell(c.functions)}</tr>`,
        )
        .join('');
    parts.push(
      `<section id="coverage"><h2>Code coverage of the models <small>from ${h(r.coverage!.source)}</small></h2>`,
      ...models.map(
        (m) =>
          `<h3>${h(m.model)} model <small class="mono">${h(m.root)}</small> — lines ${percent(m.total.lines)}, branches ${percent(m.total.branches)}, functions ${percent(m.total.functions)}</h3><div class="tbl"><table><thead><tr><th>Chapter</th><th>Modules</th><th>Lines</th><th>Branches</th><th>Functions</th></tr></thead><tbody>${rows(m)}</tbody></table></div>`,
      ),
      `</section>`,
    );
  }
  parts.push(
    `</main><footer>ioasid-conformance report ${r.version} · built from results.json files; no timestamps, so the same results give the same page · the chapter filter needs JavaScript; everything else is plain HTML</footer>`,
    `<script>${SCRIPT}</script></body></html>\n`,
  );
  return parts.join('\n');
}
