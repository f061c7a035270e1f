#!/usr/bin/env node
// Compiles the AssemblyScript kernels of the CPU backend (src/core/backends/cpu/wasm/assembly)
// into four WebAssembly builds from the same source:
//   build/gemm-simd.wasm        SIMD128 only: runs everywhere WebAssembly SIMD does
//   build/gemm-relaxed.wasm     plus relaxed SIMD (fused f32x4.relaxed_madd); Chromium has it by default,
//                               Node 20 needs --experimental-wasm-relaxed-simd
//   build/gemm-simd-mt.wasm     the same two, importing a shared memory (threads feature), for the
//   build/gemm-relaxed-mt.wasm  worker pool; they need SharedArrayBuffer (cross-origin isolation)
// The source switches on the compile-time constant ASC_FEATURE_RELAXED_SIMD, so the flags below are
// the only difference. Runs before start/build/test (npm pre-scripts); skips the compile when the
// outputs are newer than every source (pass --force to rebuild anyway).
import { mkdir, readdir, stat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const wasmDir = join(root, 'src/core/backends/cpu/wasm');
const sourceDir = join(wasmDir, 'assembly');
const outDir = join(wasmDir, 'build');

// --runtime stub: no GC and no allocator (the kernels only touch caller-provided memory).
// --importMemory: the TypeScript loader owns and grows the memory. --use abort=: no env.abort import.
const common = ['-O3', '--noAssert', '--runtime', 'stub', '--importMemory', '--use', 'abort='];
// Shared memory must declare a maximum: 65536 pages (4 GiB, all of wasm32). The loader creates
// its memory with the same or a smaller maximum.
const shared = ['--sharedMemory', '--maximumMemory', '65536'];
const builds = [
  { out: 'gemm-simd.wasm', flags: ['--enable', 'simd'] },
  { out: 'gemm-relaxed.wasm', flags: ['--enable', 'simd,relaxed-simd'] },
  { out: 'gemm-simd-mt.wasm', flags: ['--enable', 'simd,threads', ...shared] },
  { out: 'gemm-relaxed-mt.wasm', flags: ['--enable', 'simd,relaxed-simd,threads', ...shared] },
];
const entry = join(sourceDir, 'index.ts');

async function mtime(path) {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return -1;
  }
}

async function newestInput() {
  const files = (await readdir(sourceDir)).map((f) => join(sourceDir, f));
  files.push(fileURLToPath(import.meta.url));
  return Math.max(...(await Promise.all(files.map(mtime))));
}

const force = process.argv.includes('--force');
const newest = await newestInput();
const outputs = await Promise.all(builds.map((b) => mtime(join(outDir, b.out))));
if (!force && outputs.every((t) => t > newest)) {
  console.log(`build:wasm: ${relative(root, outDir)} is up to date`);
  process.exit(0);
}

await mkdir(outDir, { recursive: true });
for (const build of builds) {
  const out = join(outDir, build.out);
  const t0 = performance.now();
  const { error, stderr } = await asc.main([relative(root, entry), '--baseDir', root, ...common, ...build.flags, '-o', relative(root, out)], {
    stdout: process.stdout,
    stderr: process.stderr,
  });
  if (error) {
    console.error(`build:wasm: ${build.out} failed: ${error.message}`);
    console.error(stderr.toString());
    process.exit(1);
  }
  const size = (await stat(out)).size;
  console.log(`build:wasm: ${relative(root, out)} (${size} bytes, ${Math.round(performance.now() - t0)} ms)`);
}
