// The worker threads' bundle (conformance/worker-bundle.ts): built once per source content, reused, and each
// module's import.meta.url pinned to its own source file.
import { strict as assert } from 'node:assert';
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BUNDLE_DIR, bundledEntry, sourceHash } from '../../conformance/worker-bundle.ts';

describe('runner: the worker threads bundle', function () {
  this.timeout(60_000);

  it('is built under node_modules/.cache, named by the sources hash, and reused while the sources are unchanged', async () => {
    const first = await bundledEntry('conformance/runner.ts');
    assert.ok(first !== undefined, 'no bundle was made');
    const file = fileURLToPath(first);
    assert.ok(file.startsWith(BUNDLE_DIR), file);
    const esbuild = await import('esbuild');
    assert.ok(file.endsWith(`-${sourceHash('conformance/runner.ts', esbuild.version)}.mjs`), file);
    const mtime = statSync(file).mtimeMs;
    const again = await bundledEntry('conformance/runner.ts');
    assert.equal(again?.href, first.href);
    assert.equal(statSync(file).mtimeMs, mtime, 'an unchanged tree rewrote the bundle');
    assert.notEqual(sourceHash('conformance/runner.ts', '0.0.0'), sourceHash('conformance/runner.ts', esbuild.version));
  });

  it('pins every module import.meta.url to its source file, so paths derived from it are those of the sources', async () => {
    const url = await bundledEntry('conformance/runner.ts');
    assert.ok(url !== undefined);
    const code = readFileSync(url, 'utf8');
    assert.ok(
      !/\bimport\.meta\.url\b/.test(code.replace(/\/\/# sourceMappingURL=.*$/m, '')),
      'an import.meta.url is left',
    );
    const spec = pathToFileURL(fileURLToPath(new URL('../../src/spec/spec.ts', import.meta.url))).href;
    assert.ok(code.includes(JSON.stringify(spec)), 'src/spec/spec.ts keeps its own URL');
  });
});
