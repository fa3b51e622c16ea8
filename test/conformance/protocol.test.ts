// The adapter protocol: framing, wire encoding and message validation (runner mechanics).
import { strict as assert } from 'node:assert';
import {
  PROTOCOL_VERSION,
  LineSplitter,
  checkCapabilities,
  commandProfiles,
  outcomeFromWire,
  parseRequest,
  parseResponse,
  toWireJson,
} from '../../conformance/protocol.ts';
import { referenceCapabilities } from '../../conformance/adapters/reference.ts';
import { splitCommandLine } from '../../conformance/adapters/stdio.ts';

describe('protocol: framing', () => {
  it('splits a byte stream into lines across chunk boundaries, dropping CR and blank lines', () => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l));
    s.push('{"a":');
    s.push('1}\r\n\n{"b"');
    s.push(':2}\n{"c":3}');
    assert.deepEqual(lines, ['{"a":1}', '{"b":2}']);
    assert.equal(s.rest(), '{"c":3}');
  });

  it('reports a line longer than the limit instead of buffering forever', () => {
    let overflow = 0;
    const s = new LineSplitter(
      () => undefined,
      () => overflow++,
      16,
    );
    s.push('x'.repeat(40));
    assert.equal(overflow, 1);
    assert.equal(s.rest(), '');
  });
});

describe('protocol: wire encoding', () => {
  it('writes every bigint as a lowercase 0x string and reads 0x strings in outcomes back as bigints', () => {
    assert.equal(toWireJson({ iova: 0xffff_ffff_ffff_ffffn, n: 3 }), '{"iova":"0xffffffffffffffff","n":3}');
    const o = outcomeFromWire({
      ok: true,
      out: { iova: '0x1000', id: 2, reason: 'blocked', list: [{ start: '0x0' }] },
    });
    assert.deepEqual(o, { ok: true, out: { iova: 0x1000n, id: 2, reason: 'blocked', list: [{ start: 0n }] } });
    assert.deepEqual(outcomeFromWire({ ok: false, errno: 'EINVAL' }), { ok: false, errno: 'EINVAL' });
  });

  it('capabilities survive the wire (platform u64s as hex)', () => {
    const caps = referenceCapabilities({ profile: 'rfc' });
    const msg = parseResponse(toWireJson({ type: 'capabilities', protocol: PROTOCOL_VERSION, capabilities: caps }));
    assert.ok(msg.ok && msg.msg.type === 'capabilities');
    assert.deepEqual(msg.msg.capabilities, caps);
  });
});

describe('protocol: message validation', () => {
  it('names garbage, unknown message types and malformed messages', () => {
    const r1 = parseResponse('hello world');
    assert.ok(!r1.ok && /not JSON/.test(r1.reason));
    const r2 = parseResponse('{"type":"weird"}');
    assert.ok(!r2.ok && /unknown message type "weird"/.test(r2.reason));
    const r3 = parseResponse('{"type":"result","id":"x","replies":[]}');
    assert.ok(!r3.ok && /malformed "result" message: id/.test(r3.reason), !r3.ok ? r3.reason : '');
    const r4 = parseResponse('{"type":"result","id":1,"replies":[{"outcome":{"ok":true}}]}');
    assert.ok(r4.ok);
  });

  it('an implementation can refuse a step of another profile by request id', () => {
    const line = toWireJson({ type: 'run', id: 4, steps: [{ op: 'IOMMU_IOAS_ALLOC' }] });
    assert.ok(parseRequest(line, 'iommufd').ok);
    const r = parseRequest(line, 'rfc');
    assert.ok(!r.ok && r.id === 4 && /steps\[0\] is not a command of the rfc profile/.test(r.reason));
    const bad = parseRequest('{"type":"run","id":5,"steps":[{"op":"IOMMU_IOAS_MAP"}]}');
    assert.ok(!bad.ok && bad.id === 5);
  });

  it('knows which profile each command belongs to', () => {
    assert.deepEqual(commandProfiles('IOMMU_IOAS_MAP'), ['iommufd']);
    assert.deepEqual(commandProfiles('VFIO_DEVICE_BIND_IOMMUFD'), ['iommufd']);
    assert.deepEqual(commandProfiles('VFIO_ATTACH_IOASID'), ['rfc']);
    assert.deepEqual(commandProfiles('VFIO_IOMMU_MAP_DMA'), ['vfio-type1']);
    assert.equal(commandProfiles('DEVICE_DMA').length, 3);
  });

  it('capabilities must use the closed feature list', () => {
    const caps = { ...referenceCapabilities(), features: ['copy', 'teleport'] };
    assert.deepEqual(checkCapabilities(caps, ['copy']), ['unknown feature "teleport" (spec/features.txt)']);
  });
});

describe('stdio adapter: command lines', () => {
  it('splits words with quotes and escapes, without a shell', () => {
    assert.deepEqual(splitCommandLine(`./impl --dev /dev/iommu 'a b' "c \\"d\\"" e\\ f`), [
      './impl',
      '--dev',
      '/dev/iommu',
      'a b',
      'c "d"',
      'e f',
    ]);
    assert.deepEqual(splitCommandLine('  '), []);
    assert.throws(() => splitCommandLine('"open'), /unterminated/);
  });
});
