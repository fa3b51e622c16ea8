#!/usr/bin/env node
// The `ioasid-conformance` command: loads TypeScript through tsx and runs the CLI (conformance/cli.ts).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../conformance/cli.ts');
process.exitCode = await main(process.argv.slice(2));
