/**
 * Summarises a V8 CPU profile (`node --cpu-prof`): self time per function and per source file, the top entries
 * first. Used to find the hot spots of the end-to-end run (BENCHMARKS.md, "Profile").
 *
 * usage: tsx bench/profile.ts PROFILE.cpuprofile [--top N]
 *        npm run bench -- --profile      (profiles a 100-trace run and summarises it)
 *
 * Not for: attributing time to callers (this is self time only; open the profile in Chrome DevTools for trees).
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One line of the summary. */
export interface HotSpot {
  readonly name: string;
  readonly ms: number;
  readonly share: number;
}

/** Self time per function and per file of a profile, descending. */
export function summarise(
  p: CpuProfile,
  cwd = process.cwd(),
): { functions: HotSpot[]; files: HotSpot[]; totalMs: number } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fn = new Map<string, number>();
  const file = new Map<string, number>();
  for (const [id, ms] of self) {
    const n = byId.get(id)!;
    const url = n.callFrame.url.startsWith('file://')
      ? relative(cwd, new URL(n.callFrame.url).pathname)
      : n.callFrame.url;
    const where = url === '' ? '(native)' : url;
    const name = `${n.callFrame.functionName || '(anonymous)'} ${where}${url === '' ? '' : `:${n.callFrame.lineNumber + 1}`}`;
    fn.set(name, (fn.get(name) ?? 0) + ms);
    const f = where.includes('node_modules/')
      ? where.replace(/^.*node_modules\/((@[^/]+\/)?[^/]+).*$/, 'node_modules/$1')
      : where;
    file.set(f, (file.get(f) ?? 0) + ms);
  }
  const sorted = (m: Map<string, number>) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).map(([name, ms]) => ({ name, ms, share: ms / total }));
  return { functions: sorted(fn), files: sorted(file), totalMs: total };
}

/** The summary as text. */
export function formatSummary(s: ReturnType<typeof summarise>, top: number): string {
  const row = (h: HotSpot) =>
    `${(h.share * 100).toFixed(1).padStart(5)}%  ${h.ms.toFixed(0).padStart(7)} ms  ${h.name}`;
  return [
    `total sampled: ${s.totalMs.toFixed(0)} ms`,
    'self time by file:',
    ...s.files.slice(0, top).map(row),
    'self time by function:',
    ...s.functions.slice(0, top).map(row),
  ].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2];
  if (file === undefined) {
    console.error('usage: tsx bench/profile.ts PROFILE.cpuprofile [--top N]');
    process.exit(2);
  }
  const top = process.argv[3] === '--top' ? Number(process.argv[4]) : 25;
  console.log(formatSummary(summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile), top));
}
