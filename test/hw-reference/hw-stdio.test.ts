// Hardware traces over the hardware protocol (conformance/hw-protocol.ts, INTERPRETING.md §7): the hardware model as
// an out-of-process program gives the in-process results, a broken IOMMU is caught over stdio with a shrunk trace,
// and a crashing, hanging or garbage-speaking implementation is reported while the run goes on.
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { executeHwTrace, ReferenceHwAdapter, runHwConformance } from '../../conformance/adapters/hw.ts';
import { HwStdioAdapter } from '../../conformance/adapters/hw-stdio.ts';
import { createHwAdapter, hwReferenceStdioArgv, REPO_ROOT } from '../../conformance/adapters/registry.ts';
import { AdapterOpenError } from '../../conformance/adapters/stdio.ts';
import { main } from '../../conformance/cli.ts';
import { parseHwRequest, parseHwResponse } from '../../conformance/hw-protocol.ts';
import { readHwTraceFile } from '../../conformance/hw-cli.ts';
import { hwTraceArbitrary } from '../../generators/hw.ts';

const misbehaving = (kind: string, timeoutMs = 30_000) =>
  new HwStdioAdapter(`hw-misbehave-${kind}`, [...hwReferenceStdioArgv(), '--misbehave', kind], {
    cwd: REPO_ROOT,
    timeoutMs,
  });

/** Silences console.log while `f` runs (the CLI prints its report). */
async function quietly<T>(f: () => Promise<T>): Promise<T> {
  const log = console.log;
  console.log = () => undefined;
  try {
    return await f();
  } finally {
    console.log = log;
  }
}

describe('HW-025 HW-016 HW-028 HW-031 the hardware model answers the same in process and over stdio', function () {
  this.timeout(60_000);
  it('every step of 40 generated traces has the same outcome', async () => {
    const traces = fc.sample(hwTraceArbitrary(40), { seed: 11, numRuns: 40 });
    const stdio = createHwAdapter('hw-reference-stdio');
    await stdio.open();
    try {
      let steps = 0;
      const ops = new Set<string>();
      for (const t of traces) {
        const r = await stdio.runHwTrace(t);
        assert.equal(r.error, undefined);
        assert.deepEqual(r.replies, executeHwTrace(t));
        steps += r.replies.length;
        for (const s of t.steps) ops.add(s.op);
      }
      assert.ok(steps > 1000, `${steps} steps`);
      // The traces exercise every kind of hardware step over the wire.
      for (const op of [
        'HW_DMA',
        'HW_INVALIDATE',
        'DEVICE_PAGE_REQUEST',
        'HW_PRQ_READ',
        'HW_PAGE_RESPONSE',
        'HW_ENQCMD',
      ])
        assert.ok(ops.has(op), op);
    } finally {
      await stdio.close();
    }
  });
  it('a run of a seed gives identical results in process and over stdio', async () => {
    const a = await runHwConformance(new ReferenceHwAdapter(), { seed: 4, runs: 60 });
    const b = await runHwConformance(createHwAdapter('hw-reference-stdio'), { seed: 4, runs: 60 });
    assert.deepEqual(b, a);
    assert.equal(a.failures.length, 0);
    assert.equal(a.traces, 60);
  });
});

describe('HW-022 HW-020 an IOTLB that ignores page-selective invalidation is caught over stdio with a shrunk trace', function () {
  this.timeout(120_000);
  it('finds the same failing traces as in process and shrinks the first to the unmap that was not honoured', async () => {
    const inproc = await runHwConformance(new ReferenceHwAdapter('x', 'ignore-psi'), { seed: 1, runs: 40 });
    const stdio = await runHwConformance(createHwAdapter('hw-buggy-stdio-ignore-psi'), { seed: 1, runs: 40 });
    assert.ok(stdio.failures.length > 0, 'caught');
    assert.deepEqual(
      stdio.failures.map((f) => [f.index, f.kind, f.verdict.failure?.message]),
      inproc.failures.map((f) => [f.index, f.kind, f.verdict.failure?.message]),
    );
    const f = stdio.failure!;
    assert.equal(f.kind, 'divergence');
    assert.match(f.verdict.failure!.message, /^HW_DMA: expected fault, got ok/);
    assert.ok(f.trace.steps.length <= 16, `${f.trace.steps.length} steps`);
    assert.deepEqual(f, inproc.failure);
    // The shrunk trace still holds a page-selective invalidation (the step the broken IOTLB ignores), and the
    // correct model conforms on it.
    assert.ok(
      f.trace.steps.some((s) => s.op === 'HW_INVALIDATE' && (s.desc.type === 'iotlb' || s.desc.type === 'piotlb')),
    );
    const good = await runHwConformance(new ReferenceHwAdapter(), { seed: 1, runs: 40 });
    assert.equal(good.failures.length, 0);
  });
});

describe('hardware protocol: misbehaving implementations are reported and the run goes on', function () {
  this.timeout(60_000);
  it('a crash fails that trace only (kind crash, with stderr); a fresh child runs the next traces', async () => {
    // Every child crashes during its 2nd request: traces 1, 3 and 5 fail, the others pass on restarted children.
    const r = await runHwConformance(misbehaving('crash:2'), { seed: 1, runs: 6 });
    assert.equal(r.traces, 6);
    assert.deepEqual(
      r.failures.map((f) => [f.index, f.kind]),
      [
        [1, 'crash'],
        [3, 'crash'],
        [5, 'crash'],
      ],
    );
    assert.match(r.failures[0]!.verdict.failure!.message, /exited with code 70 while running request/);
    assert.match(r.failures[0]!.stderr ?? '', /crashing as asked/);
    assert.equal(r.passed, 3);
    // A crash is not shrunk: the failure reported is the trace as run.
    assert.equal(r.failure?.kind, 'crash');
  });
  it('garbage on stdout fails that trace with kind protocol', async () => {
    const r = await runHwConformance(misbehaving('garbage:3'), { seed: 1, runs: 5 });
    assert.deepEqual(
      r.failures.map((f) => [f.index, f.kind]),
      [[2, 'protocol']],
    );
    assert.match(r.failures[0]!.verdict.failure!.message, /sent garbage: not JSON/);
    assert.equal(r.passed, 4);
  });
  it('a reply too few fails with kind protocol', async () => {
    const r = await runHwConformance(misbehaving('short:2'), { seed: 1, runs: 3 });
    assert.deepEqual(
      r.failures.map((f) => [f.index, f.kind]),
      [[1, 'protocol']],
    );
    assert.match(r.failures[0]!.verdict.failure!.message, /replies for \d+ steps/);
  });
  it('a hang past the time limit fails with kind timeout', async () => {
    const r = await runHwConformance(misbehaving('hang:2', 1500), { seed: 1, runs: 3 });
    assert.deepEqual(
      r.failures.map((f) => [f.index, f.kind]),
      [[1, 'timeout']],
    );
    assert.equal(r.passed, 2);
  });
  it('another protocol version is refused at the handshake', async () => {
    await assert.rejects(
      () => runHwConformance(misbehaving('version'), { seed: 1, runs: 1 }),
      (e: unknown) => e instanceof AdapterOpenError && e.kind === 'version' && /speaks protocol 2/.test(e.message),
    );
  });
  it('a uAPI implementation answering the hardware hello is refused for its capabilities', async () => {
    await assert.rejects(
      () =>
        runHwConformance(createHwAdapter(`stdio:${process.execPath} --import tsx conformance/reference-stdio.ts`), {
          seed: 1,
          runs: 1,
        }),
      (e: unknown) => e instanceof AdapterOpenError && /garbage|capabilities/.test(e.message),
    );
  });
});

describe('hardware protocol: messages', () => {
  it('parses requests and responses, and names what is wrong in a bad one', () => {
    const run = parseHwRequest(
      '{"type":"run","id":3,"devices":[{"sid":256,"ats":true,"pri":true}],"steps":[{"op":"HW_SET_ROOT","addr":"0x1000"}]}',
    );
    assert.ok(run.ok && run.msg.type === 'run' && run.msg.steps[0]!.op === 'HW_SET_ROOT');
    const bad = parseHwRequest('{"type":"run","id":4,"devices":[],"steps":[{"op":"HW_FLY"}]}');
    assert.ok(!bad.ok && bad.id === 4 && /malformed hardware request/.test(bad.reason));
    const caps = parseHwResponse('{"type":"capabilities","protocol":1,"capabilities":{"name":"e","arch":"vt-d"}}');
    assert.ok(caps.ok);
    const uapi = parseHwResponse(
      '{"type":"capabilities","protocol":1,"capabilities":{"name":"e","profile":"rfc","features":[],"platform":{}}}',
    );
    assert.ok(!uapi.ok && /malformed "capabilities" message/.test(uapi.reason));
    assert.ok(!parseHwResponse('nonsense').ok);
  });
});

describe('HW-022 hw run and hw replay on the command line', function () {
  this.timeout(60_000);
  it('hw run --adapter hw-reference-stdio passes; a broken one fails, writes the shrunk trace, and hw replay reproduces it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-cli-'));
    try {
      assert.equal(
        await quietly(() => main(['hw', 'run', '--adapter', 'hw-reference-stdio', '--seed', '1', '--runs', '20'])),
        0,
      );
      const lines: string[] = [];
      const log = console.log;
      console.log = (s: string) => void lines.push(s);
      let code: number;
      try {
        code = await main([
          'hw',
          'run',
          '--adapter',
          'hw-buggy-ignore-psi',
          '--seed',
          '1',
          '--runs',
          '10',
          '--report-dir',
          dir,
          '--quiet',
        ]);
      } finally {
        console.log = log;
      }
      assert.equal(code, 1);
      const replay = lines
        .join('\n')
        .match(/replay: npx ioasid-conformance hw replay (\S+) --adapter hw-buggy-ignore-psi/);
      assert.ok(replay, lines.join('\n'));
      const file = replay[1]!;
      assert.ok(readHwTraceFile(file).steps.length <= 16);
      assert.match(readFileSync(file, 'utf8'), /"format":"ioasid-conformance-hw-trace"/);
      assert.equal(await quietly(() => main(['hw', 'replay', file, '--adapter', 'hw-buggy-stdio-ignore-psi'])), 1);
      assert.equal(await quietly(() => main(['hw', 'replay', file, '--adapter', 'hw-reference'])), 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('bad input is a one-line usage error (exit 2)', async () => {
    const errors: string[] = [];
    const err = console.error;
    console.error = (s: string) => void errors.push(s);
    try {
      assert.equal(await main(['hw', 'run', '--adapter', 'no-such-iommu']), 2);
      assert.equal(await main(['hw', 'replay', '/nonexistent/trace.json']), 2);
      assert.equal(await main(['hw', 'run', '--runs', 'many']), 2);
    } finally {
      console.error = err;
    }
    assert.match(errors[0]!, /unknown hardware adapter "no-such-iommu"; known hardware adapters: hw-reference, /);
    assert.match(errors[1]!, /\/nonexistent\/trace.json: cannot read: ENOENT/);
    assert.match(errors[2]!, /--runs must be an integer/);
    assert.ok(errors.every((e) => !e.includes('\n    at ')));
  });
});
