#!/usr/bin/env node
// The CLI runs the TypeScript sources directly (through tsx), so the browser and the command line
// always execute the same core code, with no separate build to fall out of date.
import { setFlagsFromString } from 'node:v8';
import { register } from 'tsx/esm/api';

// Node 20 ships relaxed SIMD behind a flag that Chromium has on: enable it so the CLI runs the
// same kernel build, and so computes the same numbers, as the browser
setFlagsFromString('--experimental-wasm-relaxed-simd');

// `lowbit inspect model.onnx | head` closes the pipe early: that is not an error
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
