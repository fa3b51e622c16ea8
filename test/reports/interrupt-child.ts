// Child process of the atomic-write test (not a test file): writes the report directory of a results file and is
// killed (SIGKILL, as a power cut or an OOM kill would) halfway through writing its Nth file.
//
// usage: node --import tsx test/reports/interrupt-child.ts RESULTS.json OUT-DIR N
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const [resultsPath, outDir, nth] = process.argv.slice(2) as [string, string, string];
let opened = 0;
let armed = false;
const { openSync, writeSync } = fs;
// Count the temporary files the writer opens; on the Nth, write half of the first chunk and die.
fs.openSync = ((path: fs.PathLike, flags?: fs.OpenMode, mode?: fs.Mode) => {
  if (flags === 'wx' && ++opened === Number(nth)) armed = true;
  return openSync(path, flags ?? 'r', mode);
}) as typeof fs.openSync;
fs.writeSync = ((fd: number, buf: Buffer, off: number, len: number) => {
  if (!armed) return writeSync(fd, buf, off, len);
  writeSync(fd, buf, off, Math.floor(len / 2));
  process.kill(process.pid, 'SIGKILL');
  return 0;
}) as typeof fs.writeSync;
syncBuiltinESMExports();

const { writeReportDir } = await import('../../reports/write.ts');
const { readResultsFile } = await import('../../conformance/runner.ts');
const { loadSpec } = await import('../../src/spec/spec.ts');
writeReportDir(outDir, readResultsFile(resultsPath), { spec: loadSpec().spec });
console.log('not interrupted');
