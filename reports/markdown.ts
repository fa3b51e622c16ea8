/**
 * The report as Markdown (`summary.md`), short enough for a CI job page (GitHub's `$GITHUB_STEP_SUMMARY`): the
 * adapters, the failing clauses with their replay commands, the diff against a baseline, the never-reached clauses by
 * reason, and the per-chapter summary with the models' code coverage. The full matrix is in report.html.
 *
 * Untrusted strings are written as `<code>` elements with HTML escaping (see `reports/escape.ts`), so neither
 * Markdown nor HTML in an adapter name or a message can change the page.
 *
 * @module
 */
import { percent } from './coverage.ts';
import { mdCode, mdText } from './escape.ts';
import type { CellChange, NeverReached, Report, StatusCounts } from './model.ts';

/** How many rows a list shows before it says "and N more". */
const LIMIT = 60;

function counts(c: StatusCounts): string {
  const parts = [`${c.pass} pass`, `${c.fail} fail`, `${c.unreached} unreached`];
  if (c.error > 0) parts.push(`${c.error} error`);
  return parts.join(' · ');
}

function table(head: readonly string[], rows: readonly string[][]): string[] {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ];
}

function more(n: number): string[] {
  return n > LIMIT ? ['', `…and ${n - LIMIT} more (all of them are in report.html and report.json).`] : [];
}

const REASONS: readonly { label: string; test: (n: NeverReached) => boolean }[] = [
  { label: 'generator gap: drawable, not reached', test: (n) => n.kind === 'generator-gap' && n.drawable },
  { label: 'generator gap: no generator draws its commands', test: (n) => n.kind === 'generator-gap' && !n.drawable },
  { label: 'open spec question', test: (n) => n.kind === 'spec-question' },
  { label: 'not applicable to any adapter that ran', test: (n) => n.kind === 'not-applicable' },
  { label: 'withdrawn', test: (n) => n.kind === 'withdrawn' },
];

function changes(title: string, list: readonly CellChange[]): string[] {
  if (list.length === 0) return [];
  return [
    '',
    `**${title} (${list.length})**`,
    '',
    ...table(
      ['clause', 'adapter', 'was', 'now', 'replay'],
      list
        .slice(0, LIMIT)
        .map((c) => [c.id, mdCode(c.adapter), c.was, c.now, c.firstFailure ? mdCode(c.firstFailure.replay) : '']),
    ),
    ...more(list.length),
  ];
}

/** The Markdown summary of a report. */
export function markdownSummary(r: Report): string {
  const t = r.totals;
  const out: string[] = ['# ioasid-conformance report', ''];
  out.push(
    `${r.adapters.length} adapter(s); ${t.clauses} clauses (${t.active} active, ${t.withdrawn} withdrawn): ` +
      `**${t.reached} reached**, **${t.failing} failing**, ${t.neverReached} never reached. ` +
      `Traces: ${t.traces.passed} passed, ${t.traces.failed} failed.`,
    '',
  );
  out.push(
    ...table(
      ['adapter', 'profile', 'traces', 'clauses'],
      r.adapters.map((a) => [
        mdCode(a.name),
        a.opened ? (a.profile ?? '') : '**could not start**',
        a.traces
          ? `${a.traces.passed} passed, ${a.traces.failed} failed${a.partial ? ` (shards ${a.partial.shards.join(',')} of ${a.partial.shardCount})` : ''}`
          : mdCode(a.error?.message ?? ''),
        counts(a.counts),
      ]),
    ),
  );

  const failing = r.clauses.flatMap((row) =>
    Object.entries(row.cells)
      .filter(([, c]) => c.status === 'fail')
      .map(([adapter, c]) => ({ row, adapter, c })),
  );
  out.push('', `## Failing clauses (${failing.length})`, '');
  if (failing.length === 0) out.push('None.');
  else
    out.push(
      ...table(
        ['clause', 'adapter', 'failing traces', 'first failure', 'replay'],
        failing
          .slice(0, LIMIT)
          .map(({ row, adapter, c }) => [
            `${row.id} ${mdText(row.title)}`,
            mdCode(adapter),
            `${c.failures} of ${c.traces}`,
            c.firstFailure
              ? `${mdCode(c.firstFailure.trace)} step ${c.firstFailure.step}: ${mdCode(c.firstFailure.message)}`
              : '',
            c.firstFailure ? mdCode(c.firstFailure.replay) : '',
          ]),
      ),
      ...more(failing.length),
    );

  if (r.diff !== undefined) {
    const d = r.diff;
    out.push('', `## Changes since ${mdCode(d.baseline)}`, '');
    const total = d.newlyFailing.length + d.newlyPassing.length + d.newlyReached.length + d.noLongerReached.length;
    out.push(
      `${d.newlyFailing.length} newly failing, ${d.newlyPassing.length} newly passing, ${d.newlyReached.length} newly reached, ${d.noLongerReached.length} no longer reached.`,
    );
    if (d.adaptersAdded.length > 0) out.push('', `Adapters added: ${d.adaptersAdded.map(mdCode).join(', ')}.`);
    if (d.adaptersRemoved.length > 0) out.push('', `Adapters removed: ${d.adaptersRemoved.map(mdCode).join(', ')}.`);
    if (total === 0) out.push('', 'No cell changed.');
    out.push(
      ...changes('Newly failing', d.newlyFailing),
      ...changes('Newly passing', d.newlyPassing),
      ...changes('Newly reached', d.newlyReached),
      ...changes('No longer reached', d.noLongerReached),
    );
  }

  out.push('', `## Never reached (${r.neverReached.length})`, '');
  out.push(
    ...table(
      ['why', 'clauses'],
      REASONS.map((x) => [x.label, String(r.neverReached.filter(x.test).length)]),
    ),
  );
  const gaps = r.neverReached.filter((n) => n.kind === 'generator-gap' || n.kind === 'spec-question');
  if (gaps.length > 0)
    out.push(
      '',
      '<details><summary>Applicable but never reached</summary>',
      '',
      ...table(
        ['clause', 'why'],
        gaps.slice(0, LIMIT).map((n) => [`${n.id} ${mdText(n.title)}`, mdText(n.detail)]),
      ),
      ...more(gaps.length),
      '',
      '</details>',
    );

  const models = r.coverage?.models ?? [];
  out.push('', '## Chapters', '');
  out.push(
    ...table(
      [
        'chapter',
        'clauses',
        'reached',
        ...r.adapters.map((a) => mdCode(a.name)),
        ...models.map((m) => `${m.model} model lines`),
      ],
      r.chapters.map((ch) => [
        `${ch.chapter} ${mdText(ch.title)}`,
        String(ch.clauses),
        String(ch.reached),
        ...r.adapters.map((a) => counts(ch.cells[a.name]!)),
        ...models.map((m) => {
          const c = m.chapters[ch.chapter];
          return c === undefined ? '–' : `${percent(c.lines)} of ${c.lines.total}`;
        }),
      ]),
    ),
  );
  for (const m of models) {
    const shared = m.chapters.shared;
    out.push(
      '',
      `Code coverage of the ${m.model} model (${mdCode(m.root)}, from ${mdCode(r.coverage!.source)}): lines ${percent(m.total.lines)}, branches ${percent(m.total.branches)}, functions ${percent(m.total.functions)}` +
        (shared === undefined
          ? '.'
          : `; modules of no chapter (${shared.files.length} files): lines ${percent(shared.lines)}.`),
    );
  }
  if (r.unknownClauses.length > 0)
    out.push(
      '',
      `**Unknown clause IDs** counted by runs but not in the spec: ${r.unknownClauses.map((u) => mdCode(u.id)).join(', ')}.`,
    );
  out.push('');
  return out.join('\n');
}
