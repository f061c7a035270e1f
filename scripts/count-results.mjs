// Sums vitest's and Playwright's JSON reports into the one line CI reads: "N passed, N failed".
// A missing report counts as a failure: a runner that crashed before reporting must not look green.
import { existsSync, readFileSync } from 'node:fs';

const [vitestPath, playwrightPath] = process.argv.slice(2);
let passed = 0;
let failed = 0;

if (existsSync(vitestPath)) {
  const v = JSON.parse(readFileSync(vitestPath, 'utf8'));
  passed += v.numPassedTests;
  failed += v.numFailedTests;
  if (v.numTotalTests === 0 || (v.success === false && v.numFailedTests === 0)) failed += 1;
} else {
  console.error(`no vitest report at ${vitestPath}`);
  failed += 1;
}

if (existsSync(playwrightPath)) {
  const p = JSON.parse(readFileSync(playwrightPath, 'utf8'));
  passed += p.stats.expected + p.stats.flaky;
  failed += p.stats.unexpected;
  if (p.errors?.length) failed += p.errors.length;
} else {
  console.error(`no Playwright report at ${playwrightPath}`);
  failed += 1;
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
