/**
 * Throughput of the WASM SGEMM (src/core/backends/cpu/wasm) on one core: square sizes and the
 * GEMMs of the demo model's 3×3 convolutions (im2col over a batch of 32), forward and backward.
 * Prints a Markdown table and compares with the ceilings in shared/docs/platform.md.
 *
 *   npx tsx bench/gemm.ts                                              plain SIMD build only (Node 20)
 *   node --experimental-wasm-relaxed-simd --import tsx bench/gemm.ts   both builds
 *   … bench/gemm.ts --quick                                            shorter timing windows
 *   … bench/gemm.ts --only=bwd                                         cases whose group or name contains "bwd"
 *
 * Timing uses the zero-copy sgemmPtr (operands already in wasm memory, as in the training loop);
 * the "copy API" column adds the Float32Array copies of sgemm() for the relaxed-or-best build.
 * Each number is the best of 5 wall-clock windows after a warm-up that lets V8 tier the kernel up
 * to TurboFan: best-of filters out time stolen by other processes on this 2-core machine. The
 * "on-CPU" column is process CPU time / wall time in the window that set the best number (relaxed
 * build, or simd without it): well under 100% means the core was shared and the row is noisy.
 */
import { cpus, loadavg } from 'node:os';
import { createGemm, relaxedSimdSupported, type Gemm, type GemmVariant } from '../src/core/backends/cpu/wasm/gemm';

interface Case {
  group: string;
  name: string;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
}

const quick = process.argv.includes('--quick');
const WINDOW_S = quick ? 0.1 : 0.3;
const WINDOWS = 5;

const BATCH = 32;
const square = [64, 128, 256, 512, 1024].map(
  (n): Case => ({ group: 'square', name: `${n}³`, M: n, N: n, K: n, transA: false, transB: false }),
);
/** Forward conv as GEMM: Y[Cout, B·H·W] = W[Cout, Cin·9] · cols[Cin·9, B·H·W]. */
const conv = (name: string, cin: number, cout: number, hw: number): Case => ({
  group: 'conv fwd', name, M: cout, N: hw * hw * BATCH, K: cin * 9, transA: false, transB: false,
});
const demo: Case[] = [
  conv('stem 1→16 @28²', 1, 16, 28),
  conv('block1 16→16 @28²', 16, 16, 28),
  conv('block2.conv1 16→32 @14²', 16, 32, 14),
  conv('block2.conv2 32→32 @14²', 32, 32, 14),
  { ...conv('64→64 @14² (brief)', 32, 64, 14), K: 288 },
  conv('block3.conv1 32→64 @7²', 32, 64, 7),
  conv('block3.conv2 64→64 @7²', 64, 64, 7),
  // Backward of block1's conv: dW[Cout, Cin·9] = dY[Cout, P] · colsᵀ (B stored [Cin·9, P]) and
  // dcols[Cin·9, P] = Wᵀ · dY (A stored [Cout, Cin·9]), P = 28·28·32.
  { group: 'conv bwd', name: 'block1 dW = dY·colsᵀ', M: 16, N: 144, K: 28 * 28 * BATCH, transA: false, transB: true },
  { group: 'conv bwd', name: 'block1 dcols = Wᵀ·dY', M: 144, N: 28 * 28 * BATCH, K: 16, transA: true, transB: false },
  { group: 'conv bwd', name: 'block2.conv2 dW', M: 32, N: 288, K: 14 * 14 * BATCH, transA: false, transB: true },
  { group: 'conv bwd', name: 'block2.conv2 dcols', M: 288, N: 14 * 14 * BATCH, K: 32, transA: true, transB: false },
];
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const cases = [...square, ...demo].filter((c) => !only || `${c.group} ${c.name}`.includes(only));

function fill(view: Float32Array, seed: number): void {
  let s = seed;
  for (let i = 0; i < view.length; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    view[i] = s / 2 ** 31 - 1;
  }
}

/** GFLOP/s of sgemmPtr (or of the copying sgemm) for one case: best of WINDOWS timing windows,
 * with the share of that window this process spent on a CPU. */
function measure(gemm: Gemm, c: Case, copy: boolean): { gflops: number; onCpu: number } {
  const flops = 2 * c.M * c.N * c.K;
  let run: () => void;
  gemm.reset();
  if (copy) {
    const A = new Float32Array(c.M * c.K), B = new Float32Array(c.K * c.N), C = new Float32Array(c.M * c.N);
    fill(A, 1);
    fill(B, 2);
    run = () => gemm.sgemm(c.transA, c.transB, c.M, c.N, c.K, 1, A, B, 0, C);
  } else {
    const a = gemm.alloc(c.M * c.K), b = gemm.alloc(c.K * c.N), cp = gemm.alloc(c.M * c.N);
    fill(gemm.f32(a, c.M * c.K), 1);
    fill(gemm.f32(b, c.K * c.N), 2);
    const lda = c.transA ? c.M : c.K, ldb = c.transB ? c.K : c.N;
    run = () => gemm.sgemmPtr(c.transA, c.transB, c.M, c.N, c.K, 1, a, lda, b, ldb, 0, cp, c.N);
  }
  // Warm-up: the first calls run in V8's baseline tier; a few tens of ms lets TurboFan take over.
  const warmEnd = performance.now() + 150;
  do run(); while (performance.now() < warmEnd);
  let best = { gflops: 0, onCpu: 0 };
  for (let w = 0; w < WINDOWS; w++) {
    let reps = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let t = t0;
    do {
      run();
      reps++;
      t = performance.now();
    } while (t - t0 < WINDOW_S * 1000);
    const cpu = process.cpuUsage(cpu0);
    const gflops = (flops * reps) / ((t - t0) / 1000) / 1e9;
    if (gflops > best.gflops) best = { gflops, onCpu: (cpu.user + cpu.system) / 1000 / (t - t0) };
  }
  return best;
}

const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
const variants: GemmVariant[] = relaxedSimdSupported() ? ['simd', 'relaxed'] : ['simd'];
const gemms = new Map<GemmVariant, Gemm>();
// one thread: this table is the single-core GEMM (createGemm defaults to several threads where it can)
for (const v of variants) gemms.set(v, await createGemm({ variant: v, threads: 1 }));
const best = gemms.get('relaxed') ?? gemms.get('simd')!;
const b = best.blocking;

console.log(`machine: ${cpus()[0]?.model} ×${cpus().length}, Node ${process.version}, load average before: ${load()}`);
console.log(`kernel: ${b.mr}×${b.nr} micro-tile, MC ${b.mc}, KC ${b.kc}, NC ${b.nc}; builds: ${variants.join(', ')}`);
if (!gemms.has('relaxed')) console.log('relaxed SIMD unavailable here: run with node --experimental-wasm-relaxed-simd --import tsx bench/gemm.ts');
console.log('');
const fmt = (x: number | undefined): string => (x === undefined ? 'n/a' : x.toFixed(1));
console.log(`| group | case | M | N | K | op | simd GFLOP/s | relaxed GFLOP/s | ${best.variant}, copy API | best / SIMD ceiling 51 | best / ORT-web 22 | on-CPU |`);
console.log('| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const c of cases) {
  const simd = measure(gemms.get('simd')!, c, false);
  const relaxed = gemms.has('relaxed') ? measure(gemms.get('relaxed')!, c, false) : undefined;
  const copy = measure(best, c, true);
  const top = Math.max(simd.gflops, relaxed?.gflops ?? 0);
  const onCpu = (relaxed ?? simd).onCpu;
  const op = `${c.transA ? 'T' : 'N'}${c.transB ? 'T' : 'N'}`;
  console.log(
    `| ${c.group} | ${c.name} | ${c.M} | ${c.N} | ${c.K} | ${op} | ${fmt(simd.gflops)} | ${fmt(relaxed?.gflops)} | ${fmt(copy.gflops)} | ${((top / 51) * 100).toFixed(0)}% | ${(top / 22).toFixed(2)}× | ${(onCpu * 100).toFixed(0)}% |`,
  );
  for (const g of gemms.values()) g.reset();
}
console.log('');
console.log(`load average after: ${load()} (2 cores: above ~1 means other work shared the core; re-run when quiet)`);
