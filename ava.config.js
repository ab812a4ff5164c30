// Unit tests sit beside the code (*.test.ts); e2e tests live in e2e/ (*.e2e.ts) and share one control plane
// per run, started by e2e/harness/run.ts. Tests run from the compiled output in dist/.
export default {
  files: ["dist/**/*.test.js", "dist/e2e/**/*.e2e.js"],
  timeout: "3m",
  concurrency: 4,
  workerThreads: false,
};
