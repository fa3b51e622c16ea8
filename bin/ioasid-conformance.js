#!/usr/bin/env node
// The `ioasid-conformance` command: runs the CLI (conformance/cli.ts) from one JavaScript bundle of the sources,
// rebuilt when a source changes (conformance/worker-bundle.ts; about 4x faster to start than transpiling every
// module), or, when no bundle can be made, from the sources through tsx.
import { register } from 'tsx/esm/api';

const unregister = register();
const { bundledEntry } = await import('../conformance/worker-bundle.ts');
const bundle = await bundledEntry('conformance/cli.ts');
if (bundle !== undefined) await unregister();
const { main } = await import(bundle?.href ?? '../conformance/cli.ts');
process.exitCode = await main(process.argv.slice(2));
