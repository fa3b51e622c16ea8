// The Linux lane's C adapter on the host, without QEMU: its protocol codec and its mapping of trace arguments onto
// ioctl structures, driven through the ordinary StdioAdapter against the fake kernel of linux/adapter/fake.c (every
// ioctl logged to stderr as one JSON line, answers scripted). The QEMU lane itself is `npm run test:linux`.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isLeft } from 'fp-ts/lib/Either.js';
import type { Capabilities, TraceReply } from '../../conformance/adapter.ts';
import { laneCacheDir, parseLaneEnv, qemuArgv, LINUX_ADAPTERS } from '../../conformance/adapters/linux.ts';
import { REPO_ROOT } from '../../conformance/adapters/registry.ts';
import { StdioAdapter } from '../../conformance/adapters/stdio.ts';
import type { Command } from '../../src/reference/commands.ts';
import { Platform } from '../../src/reference/platform.ts';

/** The 6.12 uAPI headers linux/setup.sh generated (`make headers` in the cache). */
function uapiHeaders(): string {
  const root = join(laneCacheDir(), 'headers-build');
  const found = existsSync(root)
    ? readdirSync(root)
        .map((v) => join(root, v, 'usr', 'include'))
        .find((d) => existsSync(join(d, 'linux', 'iommufd.h')))
    : undefined;
  if (found === undefined)
    throw new Error(`no Linux 6.12 uAPI headers under ${root}: run "bash linux/setup.sh" (it makes them) first`);
  return found;
}

let dir: string;
let fake: string;
before(function () {
  this.timeout(120_000);
  dir = mkdtempSync(join(tmpdir(), 'ioasid-linux-'));
  execFileSync(
    'make',
    ['-s', '-C', join(REPO_ROOT, 'linux', 'adapter'), 'fake', `UAPI=${uapiHeaders()}`, `OUT=${dir}`],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  fake = join(dir, 'ioasid-adapter-fake');
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** The ioctl calls the fake kernel logged, in order. */
function calls(r: TraceReply): Record<string, unknown>[] {
  return (r.stderr ?? '')
    .split('\n')
    .filter((l) => l.startsWith('{"call"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function withAdapter<T>(mode: 'iommufd' | 'type1', f: (a: StdioAdapter, caps: Capabilities) => Promise<T>) {
  const a = new StdioAdapter('fake', [fake, '--no-device', '--mode', mode], { timeoutMs: 10_000 });
  const caps = await a.open();
  try {
    return await f(a, caps);
  } finally {
    await a.close();
  }
}

describe('linux adapter (host, fake kernel): FD-001 FD-004 handshake declares the lane platform', () => {
  it('declares profile, features and a platform that decodes (INFO-013: the MSI window reserved)', async () => {
    await withAdapter('iommufd', async (_a, caps) => {
      assert.equal(caps.profile, 'iommufd');
      assert.deepEqual([...caps.features].sort(), ['auto-iova', 'copy']);
      const p = Platform.decode(
        JSON.parse(
          JSON.stringify(caps.platform, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)),
        ) as unknown,
      );
      assert.ok(!isLeft(p), 'the declared platform decodes');
      assert.equal(caps.platform.iommu.pageSizes, 0x4020_1000n);
      assert.deepEqual(caps.platform.iommu.aperture, { start: 0n, last: 0x7f_ffff_ffffn });
      assert.deepEqual(caps.platform.devices[0]!.reserved, [{ start: 0xfee0_0000n, last: 0xfeef_ffffn, kind: 'msi' }]);
    });
    await withAdapter('type1', async (_a, caps) => {
      assert.equal(caps.profile, 'vfio-type1');
      assert.deepEqual(caps.features, ['type1-v1']);
    });
  });
});

describe('linux adapter (host, fake kernel): MAP-001 MAP-007 DEV-019 arguments reach the ioctls', () => {
  it('MAP-007 resolves {ref} to its own outputs and places buffers at 2 MiB-aligned bases', async () => {
    const steps: Command[] = [
      { op: 'IOMMU_IOAS_ALLOC' },
      {
        op: 'IOMMU_IOAS_MAP',
        ioas_id: { ref: 0 },
        flags: 7,
        user_va: { buf: 1, off: 0x1234n },
        length: 0x2000n,
        iova: 0x10_0000n,
      },
      { op: 'IOMMU_IOAS_MAP', ioas_id: { ref: 0 }, flags: 6, user_va: { buf: 0, off: 0n }, length: 0x1000n, iova: 0n },
      { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0 },
      { op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 0, pt_id: { ref: 0 } },
    ];
    await withAdapter('iommufd', async (a) => {
      const r = await a.runTrace(steps);
      assert.equal(r.error, undefined);
      assert.deepEqual(
        r.replies.map((x) => x.outcome),
        [
          { ok: true, out: { id: 1 } },
          { ok: true, out: { iova: 0x10_0000n } },
          { ok: true, out: { iova: 0x20_0000n } },
          { ok: true, out: { id: 2 } },
          { ok: true, out: { pt_id: 1 } },
        ],
      );
      const log = calls(r).filter((c) => c['call'] !== 'open');
      const map1 = log[1]!;
      assert.equal(map1['ioas_id'], 1);
      const va1 = BigInt(map1['user_va'] as string);
      assert.equal(va1 & 0x1f_ffffn, 0x1234n, 'buffer 1 starts on a 2 MiB boundary');
      const va0 = BigInt(log[2]!['user_va'] as string);
      assert.equal(va0 & 0x1f_ffffn, 0n);
      assert.notEqual(va0, va1 - 0x1234n, 'two buffers, two bases');
      assert.equal(log[3]!['iommufd_valid'], true, 'BIND passes the iommufd');
      assert.equal(log[4]!['pt_id'], 1);
    });
  });

  it('FD-002 resolves a reference to a failed step to 0, and reports errnos by name with write-back outputs (INFO-015)', async () => {
    const steps: Command[] = [
      { op: 'IOMMU_IOAS_ALLOC', flags: 1 },
      { op: 'IOMMU_DESTROY', id: { ref: 0 } },
      { op: 'IOMMU_IOAS_ALLOC' },
      { op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: { ref: 2 }, num_iovas: 1 },
      { op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: { ref: 2 }, num_iovas: 4 },
      { op: 'IOMMU_IOAS_UNMAP', ioas_id: { ref: 2, field: 'nonesuch' }, iova: 0xbad000n, length: 0x1000n },
    ];
    await withAdapter('iommufd', async (a) => {
      const r = await a.runTrace(steps);
      const o = r.replies.map((x) => x.outcome);
      assert.deepEqual(o[0], { ok: false, errno: 'EOPNOTSUPP' });
      assert.deepEqual(o[1], { ok: false, errno: 'ENOENT' });
      assert.deepEqual(o[3], { ok: false, errno: 'EMSGSIZE', out: { num_iovas: 2, out_iova_alignment: 0x1000n } });
      assert.deepEqual(o[4], {
        ok: true,
        out: {
          num_iovas: 2,
          out_iova_alignment: 0x1000n,
          allowed_iovas: [
            { start: 0n, last: 0xfedf_ffffn },
            { start: 0xfef0_0000n, last: 0x7f_ffff_ffffn },
          ],
        },
      });
      assert.deepEqual(o[5], { ok: false, errno: 'ENOENT' });
      const log = calls(r).filter((c) => c['call'] !== 'open');
      assert.equal(log[1]!['id'], 0, 'a reference to a failed step is 0');
      assert.equal(log[4]!['ioas_id'], 1);
      assert.equal(log[5]!['ioas_id'], 0, 'a reference to an output the step does not have is 0');
    });
  });

  it("INFO-021 INFO-023 observes what GET_HW_INFO copied and zeroed in the caller's buffer", async () => {
    await withAdapter('iommufd', async (a) => {
      const r = await a.runTrace([
        { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0 },
        { op: 'IOMMU_GET_HW_INFO', dev_id: { ref: 0 }, data_len: 40 },
        { op: 'IOMMU_GET_HW_INFO', dev_id: { ref: 0 }, data_len: 8 },
      ]);
      assert.deepEqual(r.replies[1]!.outcome, {
        ok: true,
        out: { data_len: 24, out_data_type: 1, copied: 24, zeroed: 16, out_max_pasid_log2: 0, out_capabilities: 0 },
      });
      assert.deepEqual(r.replies[2]!.outcome, {
        ok: true,
        out: { data_len: 24, out_data_type: 1, copied: 8, zeroed: 0, out_max_pasid_log2: 0, out_capabilities: 0 },
      });
      assert.equal(calls(r).find((c) => c['call'] === 'IOMMU_GET_HW_INFO')!['dev_id'], 1);
    });
  });

  it('FD-005 starts every trace from fresh fds: IDs begin again and the device is unbound (DEV-017)', async () => {
    await withAdapter('iommufd', async (a) => {
      await a.runTrace([{ op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0 }]);
      const r = await a.runTrace([{ op: 'VFIO_DEVICE_CLOSE', dev: 0 }]);
      assert.deepEqual(r.replies[0]!.outcome, { ok: false, errno: 'EBADF' }, 'no bound fd survives a trace');
    });
  });
});

describe('linux adapter (host, fake kernel): INFO-024 INFO-025 INFO-027 INFO-028 type1 container', () => {
  it('maps the container commands and decodes the GET_INFO capability chain', async () => {
    const steps: Command[] = [
      { op: 'VFIO_GET_API_VERSION' },
      { op: 'VFIO_CHECK_EXTENSION', extension: 3 },
      { op: 'VFIO_GROUP_SET_CONTAINER', group: 0 },
      { op: 'VFIO_SET_IOMMU', type: 3 },
      { op: 'VFIO_IOMMU_GET_INFO', argsz: 16 },
      { op: 'VFIO_IOMMU_GET_INFO', argsz: 4096 },
      { op: 'VFIO_IOMMU_MAP_DMA', flags: 3, vaddr: { bad: 'unmapped' }, iova: 0x1000n, size: 0x1000n },
      { op: 'VFIO_IOMMU_UNMAP_DMA', flags: 0, iova: 0x1000n, size: 0x1000n },
      { op: 'VFIO_GROUP_SET_CONTAINER', group: 99 },
    ];
    await withAdapter('type1', async (a) => {
      const r = await a.runTrace(steps);
      const o = r.replies.map((x) => x.outcome);
      assert.deepEqual(o[0], { ok: true, out: { version: 0 } });
      assert.deepEqual(o[1], { ok: true, out: { value: 1 } });
      assert.deepEqual(o[3], { ok: true });
      assert.deepEqual(o[4], {
        ok: true,
        out: { argsz: 84, iova_pgsizes: 0x4020_1000n, cap_offset: 0, iova_ranges: [] },
      });
      assert.deepEqual(o[5], {
        ok: true,
        out: {
          argsz: 4096,
          iova_pgsizes: 0x4020_1000n,
          cap_offset: 24,
          iova_ranges: [
            { start: 0n, end: 0xfedf_ffffn },
            { start: 0xfef0_0000n, end: 0x7f_ffff_ffffn },
          ],
          dma_avail: 65535,
        },
      });
      assert.deepEqual(o[7], { ok: true, out: { size: 0x1000n } });
      assert.deepEqual(o[8], { ok: false, errno: 'ENOENT' }, 'a group with no node: the open fails');
      const map = calls(r).find((c) => c['call'] === 'VFIO_IOMMU_MAP_DMA')!;
      assert.equal(map['argsz'], 32);
      assert.ok(BigInt(map['vaddr'] as string) >= 0x1000_0000n, '{bad: unmapped} is a real unmapped address');
    });
  });
});

describe('linux adapter (host, fake kernel): REF-001 protocol errors and DMA probes without a device', () => {
  it('answers a malformed step or a foreign command with an error for the request, and refuses protocol 2', async () => {
    await withAdapter('iommufd', async (a) => {
      const r1 = await a.runTrace([{ op: 'IOMMU_IOAS_MAP', ioas_id: 1 } as unknown as Command]);
      assert.equal(r1.error?.kind, 'protocol');
      assert.match(r1.error.message, /malformed field "flags"/);
    });
    await withAdapter('iommufd', async (a) => {
      const r = await a.runTrace([{ op: 'VFIO_SET_IOMMU', type: 3 }]);
      assert.equal(r.error?.kind, 'protocol');
      assert.match(r.error.message, /not a command of this adapter's profile/);
    });
    const out = execFileSync(fake, ['--no-device'], { input: '{"type":"hello","protocol":2}\n', encoding: 'utf8' });
    assert.match(out, /^\{"type":"error","message":"this adapter speaks protocol 1 only"\}/);
  });

  it('REF-001 refuses a probe of no bytes or of a device the platform lacks with EINVAL', async () => {
    await withAdapter('iommufd', async (a) => {
      const r = await a.runTrace([
        { op: 'DEVICE_DMA', dev: 0, iova: 0n, length: 0n, write: false },
        { op: 'DEVICE_DMA', dev: 3, iova: 0n, length: 8n, write: false },
        { op: 'DEVICE_DMA', dev: 0, iova: 0xffff_ffff_ffff_fff8n, length: 16n, write: true },
      ]);
      assert.deepEqual(
        r.replies.map((x) => x.outcome),
        [
          { ok: false, errno: 'EINVAL' },
          { ok: false, errno: 'EINVAL' },
          { ok: false, errno: 'EINVAL' },
        ],
      );
    });
  });
});

describe('linux adapter (host): the QEMU command line and lane files', () => {
  it('REF-001 wires the protocol to stdio, the console to a file, and picks kernel A or B per adapter', () => {
    const files = { kernelA: '/k/A', kernelB: '/k/B', initrd: '/i.gz' };
    const argv = qemuArgv(
      'linux-iommufd-vfio-compat',
      LINUX_ADAPTERS['linux-iommufd-vfio-compat']!,
      files,
      '/log',
      '/s',
    );
    assert.equal(argv[argv.indexOf('-kernel') + 1], '/k/B');
    assert.ok(argv.includes('socket,id=ioasid,path=/s,server=on,wait=off'));
    assert.ok(argv.includes('virtserialport,chardev=ioasid,name=ioasid'));
    assert.ok(argv.includes('file,id=con,path=/log,append=on'));
    assert.match(argv[argv.length - 1]!, /ioasid\.mode=type1 ioasid\.name=linux-iommufd-vfio-compat/);
    const t1 = qemuArgv('linux-vfio-type1', LINUX_ADAPTERS['linux-vfio-type1']!, files, '/log', '/s');
    assert.equal(t1[t1.indexOf('-kernel') + 1], '/k/A');
    assert.deepEqual(parseLaneEnv('KERNEL_A=/a\n# x\nINITRD=/i\n'), { KERNEL_A: '/a', INITRD: '/i' });
  });
});
