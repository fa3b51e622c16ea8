/**
 * The code a worker thread (`run --jobs N`) loads: one JavaScript file bundled from the TypeScript sources, instead
 * of the sources themselves through tsx's loader hooks.
 *
 * A worker thread does not inherit its parent's TypeScript loader. Registering tsx in every worker and letting it
 * transpile the ~90 modules of a run again costs about 0.7–0.8 s per worker on these machines, which is longer than
 * a 200-trace run takes on one thread: `--jobs 2` was slower than `--jobs 1` for every run shorter than a few
 * seconds. A bundle (esbuild, the compiler tsx itself uses, so the same transform) loads in about 0.3 s.
 *
 * The bundle is built once per content of the sources: its name carries a hash of every `.ts` file under
 * `src/`, `conformance/` and `generators/` and of esbuild's version, so an edit makes a new bundle and an unchanged
 * tree reuses the one on disk (`node_modules/.cache/ioasid-conformance/`, written atomically; bundles of other
 * contents older than an hour are removed). Packages stay external and resolve from the repository's
 * `node_modules`. Each module's `import.meta.url` is pinned to its own source file, so paths it derives (the spec
 * directory, the schema directory, the repository root) are the same in the bundle as in the sources. The bundle
 * carries an inline source map, so stack traces and coverage name the TypeScript lines.
 *
 * Not for: distributing the tool (the CLI itself still runs the sources through tsx), or code that imports modules
 * by computed paths (none does; a bundle could not follow them).
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
/** Where bundles are kept. */
export const BUNDLE_DIR = join(ROOT, 'node_modules/.cache/ioasid-conformance');
/** The source directories whose content names a bundle. */
const SOURCE_DIRS = ['src', 'conformance', 'generators'];
/** Bundles of another content are removed once they are this old (another run may still be loading a newer one). */
const STALE_MS = 3_600_000;

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out.sort();
}

/** The hash naming a bundle of `entry`: the entry, esbuild's version and every source file's path and content. */
export function sourceHash(entry: string, esbuildVersion: string): string {
  const h = createHash('sha256').update(`${entry}\0${esbuildVersion}\0`);
  for (const f of SOURCE_DIRS.flatMap(tsFiles))
    h.update(`${f}\0`)
      .update(readFileSync(join(ROOT, f)))
      .update('\0');
  return h.digest('hex').slice(0, 16);
}

/**
 * The file URL of a bundle of `entry` (a path relative to the repository root, e.g. `conformance/runner.ts`),
 * built if the sources changed since the last one. Undefined when no bundle can be made (esbuild missing, the cache
 * directory not writable, a build error): the caller then loads the sources through tsx, as before.
 */
export async function bundledEntry(entry: string): Promise<URL | undefined> {
  try {
    const esbuild = await import('esbuild');
    const name = entry.replace(/[^A-Za-z0-9]+/g, '-');
    const file = join(BUNDLE_DIR, `${name}-${sourceHash(entry, esbuild.version)}.mjs`);
    if (!existsSync(file)) {
      const result = await esbuild.build({
        entryPoints: [join(ROOT, entry)],
        bundle: true,
        write: false,
        format: 'esm',
        platform: 'node',
        target: 'node20',
        packages: 'external',
        sourcemap: 'inline',
        logLevel: 'silent',
        plugins: [
          {
            name: 'pin-import-meta-url',
            setup(build) {
              build.onLoad({ filter: /\.ts$/ }, async (args) => ({
                loader: 'ts',
                contents: (await readFile(args.path, 'utf8')).replaceAll(
                  'import.meta.url',
                  JSON.stringify(pathToFileURL(args.path).href),
                ),
              }));
            },
          },
        ],
      });
      const code = result.outputFiles[0]?.text;
      if (code === undefined) return undefined;
      mkdirSync(BUNDLE_DIR, { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, code);
      renameSync(tmp, file);
      prune(name, file);
    }
    return pathToFileURL(file);
  } catch {
    return undefined;
  }
}

/** Removes bundles of `name` other than `keep` that are older than {@link STALE_MS}. */
function prune(name: string, keep: string): void {
  const now = Date.now();
  for (const f of readdirSync(BUNDLE_DIR)) {
    const p = join(BUNDLE_DIR, f);
    if (p === keep || !f.startsWith(`${name}-`)) continue;
    try {
      if (now - statSync(p).mtimeMs > STALE_MS) rmSync(p, { force: true });
    } catch {
      // another run removed it first
    }
  }
}
