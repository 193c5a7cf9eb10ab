/**
 * Preloaded into every test file's process (`npm test`: `--import "$PWD/packages/testkit/src/exit-watchdog.ts"`), in
 * place of `--test-force-exit`. That flag ends a file's process the moment its last test ends, and the test
 * runner then loses some of the verdicts still on their way to it, failures included, and exits 0 all the same
 * (nodejs/node#64833: a contiguous tail of a file's tests, 36 of 962 in one run here). Without it, a file whose
 * test leaked a server, a timer or a child process would keep CI waiting until its limit. Here, such a file fails
 * instead: GRACE_MS after its last test, a process still running names what holds it and exits 1. The file's own
 * `after` hooks run after this one, inside that time (stopping clusters and servers takes seconds each, at most
 * their stop timeouts). The timer is unref'd, so a file that ends cleanly is never held by it.
 */
const GRACE_MS = 60_000;

// The flag reaches every process a test starts with `process.execArgv` (cluster workers, launchers), hence an
// absolute path (their cwd may be anywhere) and this guard: only a test file's own process registers, where the
// runner's child context is set (children inherit it too) and the entry is the test file. node:test is loaded
// only then: a root hook in any other process would make it report as a test file.
if (process.env.NODE_TEST_CONTEXT?.startsWith('child') && /\.test\.[cm]?[jt]s$/.test(process.argv[1] ?? '')) {
  const { after } = await import('node:test');
  after(() => {
    setTimeout(() => {
      // Less this timer itself; stdout and stderr (pipes to the runner) are always listed and never the cause.
      const held = process.getActiveResourcesInfo();
      held.splice(held.indexOf('Timeout'), 1);
      for (let i = 0; i < 2 && held.includes('PipeWrap'); i++) held.splice(held.indexOf('PipeWrap'), 1);
      process.stderr.write(
        `# exit watchdog: this test file's process still runs ${GRACE_MS / 1000} s after its last test, held by ${held.join(', ') || 'timers'}: a test leaked it; failing the file\n`,
      );
      process.exit(1);
    }, GRACE_MS).unref();
  });
}
