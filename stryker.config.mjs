// Mutation testing of the two executable models (issue 7 §3): `npm run mutation`.
//
// Stryker mutates src/reference (the uAPI model) and src/hw-reference (the hardware model and the reference driver)
// and runs, per mutant, only the mocha tests that cover it (coverageAnalysis perTest): the models' own clause tests,
// the generators' tests, the bug catalogue's detection tests and the conformance runner's default-run tests. A mutant
// survives when every covering test still passes. Survivors are triaged in docs/MUTATION.md.
//
// Not for: CI (a full run takes hours on two cores); the incremental file lets a later run re-test only what changed.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  mutate: ['src/reference/**/*.ts', 'src/hw-reference/**/*.ts'],
  testRunner: 'mocha',
  testRunnerNodeArgs: ['--import', 'tsx'],
  mochaOptions: {
    config: '.mocharc.json',
    spec: [
      'test/reference/**/*.test.ts',
      'test/hw-reference/hw.test.ts',
      'test/hw-reference/ref.test.ts',
      'test/hw-reference/refine-run.test.ts',
      'test/generators/**/*.test.ts',
      'test/bugs/catalogue.test.ts',
      'test/conformance/runner.test.ts',
    ],
  },
  coverageAnalysis: 'perTest',
  // Static mutants (module-level constants, codec definitions) would rerun every test: they are counted, not run.
  ignoreStatic: true,
  concurrency: 2,
  timeoutMS: 20000,
  timeoutFactor: 2,
  incremental: true,
  incrementalFile: 'reports/mutation/stryker-incremental.json',
  reporters: ['clear-text', 'progress', 'json', 'html'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
  thresholds: { high: 90, low: 85, break: null },
};
