// The specification tooling: the real spec is clean, and the checker fails on each kind of broken clause.
import { strict as assert } from 'node:assert';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SPEC_DIR, loadSpec, normaliseForQuote, parseOutcome, parseSource } from '../../src/spec/spec.ts';

describe('spec check (tooling)', () => {
  it('passes on the repository spec, with at least 150 clauses over every chapter', () => {
    const { spec, diagnostics } = loadSpec();
    assert.deepEqual(diagnostics, []);
    assert.ok(spec.clauses.length >= 150, `${spec.clauses.length} clauses`);
    for (const ch of spec.vocabularies.chapters)
      assert.ok(spec.clauses.filter((c) => c.chapter === ch.name).length >= 5, `chapter ${ch.name}`);
    assert.ok(spec.register.length > 0, 'the register of spec questions exists');
  });

  it('cites every seed file in at least three clauses', () => {
    const { spec } = loadSpec();
    for (const seed of readdirSync(join(DEFAULT_SPEC_DIR, 'seeds'))) {
      const n = spec.clauses.filter((c) => c.sources.some((s) => s.kind === 'seed' && s.file === seed)).length;
      assert.ok(n >= 3, `${seed}: ${n}`);
    }
  });

  describe('fails on a broken clause', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'spec-'));
      cpSync(DEFAULT_SPEC_DIR, join(dir, 'spec'), { recursive: true });
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    const cases: [string, (text: string) => string, RegExp][] = [
      ['a missing Level field', (t) => t.replace(/^- Level: .*\n/m, ''), /MAP-001: missing field "Level"/],
      ['a level the statement does not use', (t) => t.replace('- Level: MUST\n', '- Level: MAY\n'), /MAP-001: the statement does not use its level keyword "MAY"/],
      ['an unknown feature', (t) => t.replace(/^- Features: none$/m, '- Features: warp-drive'), /unknown feature "warp-drive"/],
      ['an unknown profile', (t) => t.replace(/^- Profiles: all$/m, '- Profiles: freebsd'), /unknown profile "freebsd"/],
      ['a gap in the numbering', (t) => t.replace('### MAP-002 ', '### MAP-003 '), /expected MAP-002/],
      ['a misquoted seed', (t) => t.replace(/(seed 002_a6b413cc78fb2000\.md: ")([^"]+)"/, '$1this sentence was never written"'), /does not occur in seed 002/],
      ['an unknown related clause', (t) => t.replace(/^- Related: (.*)$/m, '- Related: MAP-999'), /related clause MAP-999 does not exist/],
      ['an unknown command', (t) => t.replace(/^- Commands: (.*)$/m, '- Commands: IOASID_LAUNCH'), /unknown command "IOASID_LAUNCH"/],
      ['an outcome errno outside the vocabulary', (t) => t.replace(/^- Outcome: rfc: EEXIST/m, '- Outcome: rfc: EWHATEVER'), /"EWHATEVER" is not in errnos.txt/],
      ['an unknown field', (t) => t.replace(/^- Level: /m, '- Severity: high\n- Level: '), /unknown field "Severity"/],
    ];
    for (const [what, edit, expected] of cases)
      it(`reports ${what}`, () => {
        const file = join(dir, 'spec', 'chapters', 'MAP.md');
        writeFileSync(file, edit(readFileSync(file, 'utf8')));
        const { diagnostics } = loadSpec(join(dir, 'spec'));
        assert.ok(diagnostics.some((d) => expected.test(d.message)), diagnostics.map((d) => d.message).join('\n'));
      });
  });

  it('parses the source and outcome forms', () => {
    assert.deepEqual(parseSource('linux drivers/iommu/iommufd/io_pagetable.c:iopt_unmap_iova_range'), {
      kind: 'linux',
      path: 'drivers/iommu/iommufd/io_pagetable.c',
      fn: 'iopt_unmap_iova_range',
    });
    assert.equal(typeof parseSource('wikipedia says so'), 'string');
    const { entries, errors } = parseOutcome('rfc: EINVAL; vfio-type1 v1: ok (size 0)');
    assert.deepEqual(errors, []);
    assert.deepEqual(entries[1], { profile: 'vfio-type1', variant: 'v1', result: 'ok', detail: 'size 0' });
    assert.equal(normaliseForQuote('> a\n>   b'), 'a b');
  });
});

describe('clause IDs named by the models (tooling)', () => {
  it('exist in the spec', () => {
    const { spec } = loadSpec();
    const srcDir = join(DEFAULT_SPEC_DIR, '..', 'src');
    const walk = (d: string): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : e.name.endsWith('.ts') ? [join(d, e.name)] : []));
    const missing: string[] = [];
    for (const f of walk(srcDir))
      for (const m of readFileSync(f, 'utf8').matchAll(/'([A-Z]{2,6}-\d{3})'/g)) if (!spec.byId.has(m[1]!)) missing.push(`${m[1]} in ${f}`);
    assert.deepEqual(missing, []);
  });
});
