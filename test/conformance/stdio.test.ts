// The stdio adapter against real child processes: the reference behind the protocol, and the same program told to
// misbehave (runner mechanics: crash, hang, garbage, wrong version are reported and the next trace still runs).
import { strict as assert } from 'node:assert';
import type { Command } from '../../src/reference/commands.ts';
import { U64_MAX } from '../../src/reference/u64.ts';
import { executeTrace, referenceCapabilities } from '../../conformance/adapters/reference.ts';
import { REPO_ROOT, referenceStdioArgv } from '../../conformance/adapters/registry.ts';
import { AdapterOpenError, StdioAdapter } from '../../conformance/adapters/stdio.ts';

const TRACE: Command[] = [
  { op: 'IOMMU_IOAS_ALLOC' },
  {
    op: 'IOMMU_IOAS_MAP',
    ioas_id: { ref: 0 },
    flags: 7,
    user_va: { buf: 0, off: 0n },
    length: 0x4000n,
    iova: 0x10_0000n,
  },
  { op: 'IOMMU_IOAS_UNMAP', ioas_id: { ref: 0 }, iova: 0x10_1000n, length: 0x1000n },
  { op: 'IOMMU_IOAS_UNMAP', ioas_id: { ref: 0 }, iova: 0n, length: U64_MAX },
];

function stdio(extra: string[] = [], timeoutMs = 20_000): StdioAdapter {
  return new StdioAdapter('test-stdio', [...referenceStdioArgv({ profile: 'iommufd' }), ...extra], {
    cwd: REPO_ROOT,
    timeoutMs,
  });
}

describe('stdio adapter: the reference over the protocol', function () {
  this.timeout(60_000);

  it('handshake declares the same capabilities as the in-process reference; replies are identical', async () => {
    const a = stdio();
    try {
      const caps = await a.open();
      assert.deepEqual(caps, referenceCapabilities({ profile: 'iommufd' }));
      const r = await a.runTrace(TRACE);
      assert.equal(r.error, undefined);
      assert.deepEqual(r.replies, executeTrace(caps, TRACE).replies);
      assert.deepEqual(r.replies[3]!.outcome, { ok: true, out: { length: 0x4000n } });
    } finally {
      await a.close();
      await a.close();
    }
  });

  it('pipelines several traces in flight and matches answers by request id; every trace starts fresh', async () => {
    const a = stdio();
    try {
      await a.open();
      const rs = await Promise.all([a.runTrace(TRACE), a.runTrace(TRACE.slice(0, 2)), a.runTrace(TRACE)]);
      assert.equal(rs[1].replies.length, 2);
      assert.deepEqual(rs[0], rs[2], 'the second run of the same trace starts from a fresh fd');
      assert.deepEqual(rs[0].replies[0]!.outcome, { ok: true, out: { id: 1 } });
    } finally {
      await a.close();
    }
  });
});

describe('stdio adapter: misbehaving implementations', function () {
  this.timeout(60_000);

  it('a crash is reported with the step it interrupted and the stderr, and the next trace restarts the program', async () => {
    const a = stdio(['--misbehave', 'crash:1']);
    try {
      await a.open();
      const pid = a.pid;
      const r = await a.runTrace(TRACE);
      assert.equal(r.error?.kind, 'crash');
      assert.match(r.error.message, /exited with code 70 while running request 1/);
      assert.equal(r.error.step, 1, 'one step was streamed before the crash');
      assert.match(r.stderr ?? '', /crashing as asked/);
      // The restarted program is a new process whose first request crashes again (crash:1): a third one is fine.
      const r2 = await a.runTrace(TRACE);
      assert.notEqual(a.pid, pid);
      assert.equal(r2.error?.kind, 'crash');
    } finally {
      await a.close();
    }
  });

  it('a hang past the per-request timeout is reported as a timeout, the child killed and restarted', async () => {
    const a = stdio(['--misbehave', 'hang:1'], 800);
    try {
      await a.open();
      const r = await a.runTrace(TRACE);
      assert.equal(r.error?.kind, 'timeout');
      assert.match(r.error.message, /did not answer request 1 \(4 steps\) within 800 ms/);
      assert.equal(a.pid, undefined, 'the hung child was killed');
    } finally {
      await a.close();
    }
  });

  it('garbage on stdout is a protocol failure; the next trace runs on a fresh child', async () => {
    const a = stdio(['--misbehave', 'garbage:2']);
    try {
      await a.open();
      assert.equal((await a.runTrace(TRACE)).error, undefined);
      const r = await a.runTrace(TRACE);
      assert.equal(r.error?.kind, 'protocol');
      assert.match(r.error.message, /sent garbage: not JSON/);
      const r3 = await a.runTrace(TRACE);
      assert.equal(r3.error, undefined, 'the restarted child answers');
    } finally {
      await a.close();
    }
  });

  it('the wrong number of replies is a protocol failure', async () => {
    const a = stdio(['--misbehave', 'short:1']);
    try {
      await a.open();
      const r = await a.runTrace(TRACE);
      assert.equal(r.error?.kind, 'protocol');
      assert.match(r.error.message, /with 3 replies for 4 steps/);
    } finally {
      await a.close();
    }
  });

  it('another protocol version is refused at the handshake', async () => {
    const a = stdio(['--misbehave', 'version']);
    await assert.rejects(
      a.open(),
      (e: unknown) => e instanceof AdapterOpenError && e.kind === 'version' && /speaks protocol 2/.test(e.message),
    );
    await a.close();
  });

  it('a program that cannot start, or exits before the handshake, is reported with its stderr', async () => {
    const missing = new StdioAdapter('missing', ['/nonexistent/implementation']);
    await assert.rejects(missing.open(), (e: unknown) => e instanceof AdapterOpenError && e.kind === 'crash');
    const dies = new StdioAdapter('dies', [
      process.execPath,
      '-e',
      'process.stderr.write("no iommu here\\n"); process.exit(3)',
    ]);
    await assert.rejects(
      dies.open(),
      (e: unknown) =>
        e instanceof AdapterOpenError &&
        /exited with code 3 before the handshake/.test(e.message) &&
        /no iommu here/.test(e.stderr),
    );
  });

  it('an answer to the handshake that is not JSON is a protocol failure', async () => {
    const a = new StdioAdapter('chatty', [
      process.execPath,
      '-e',
      'console.log("Welcome!"); setInterval(() => {}, 1000)',
    ]);
    await assert.rejects(
      a.open(),
      (e: unknown) =>
        e instanceof AdapterOpenError && e.kind === 'protocol' && /handshake with garbage/.test(e.message),
    );
    await a.close();
  });
});
