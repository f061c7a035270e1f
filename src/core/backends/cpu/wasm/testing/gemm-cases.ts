/*
 * Shared correctness cases for the WASM SGEMM: used by gemm.test.ts in-process, and by
 * relaxed-check.ts in a child Node started with --experimental-wasm-relaxed-simd (vitest's Node 20
 * workers cannot run the relaxed build otherwise).
 */
import type { Gemm } from '../gemm';

export interface GemmCase {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
}

/** Shapes chosen to hit every edge of the blocking (MR 4, NR 8, KC 384, MC 128, NC 2048) and both
 * drivers (M ≤ MC packs B strip by strip; M > MC packs whole KC×NC blocks). */
export const SHAPES: readonly (readonly [number, number, number])[] = [
  [1, 1, 1],
  [7, 13, 5], // every dimension ragged
  [4, 8, 1], // exactly one micro-tile, K = 1
  [64, 64, 64],
  [33, 129, 65],
  [1, 300, 40], // row vector × matrix
  [300, 1, 40], // matrix × column vector
  [1000, 3, 17], // tall and skinny
  [3, 1000, 17], // short and wide
  [5, 7, 3000], // long K: 8 KC blocks accumulate onto C
  [129, 20, 385], // crosses MC and KC by one
  [130, 2050, 12], // crosses MC and NC: whole-block packing of B
  [16, 2100, 9], // crosses NC on the strip-by-strip path: stem-conv shape (M = channels, K = Cin·9)
  [32, 200, 288], // conv 3×3, 32 → 32 channels
];

export const SCALARS: readonly (readonly [number, number])[] = [
  [1, 0],
  [0.5, 2],
  [-1.5, 1],
];

/** Deterministic values in [-1, 1) (xorshift), so failures reproduce. */
export function randomFloats(length: number, seed: number): Float32Array {
  const out = new Float32Array(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

/**
 * Naive float64 triple loop. Returns the result and, per element, Σ|terms| (the scale of the
 * rounding error any float32 summation order can make), so tolerances are relative to the
 * magnitude of what was summed rather than to a possibly cancelled result.
 */
export function referenceGemm(c: GemmCase, A: Float32Array, B: Float32Array, C0: Float32Array): { C: Float64Array; scale: Float64Array } {
  const { M, N, K, transA, transB, alpha, beta } = c;
  const C = new Float64Array(M * N);
  const scale = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let acc = 0;
      let mag = 0;
      for (let k = 0; k < K; k++) {
        const a = transA ? A[k * M + i]! : A[i * K + k]!;
        const b = transB ? B[j * K + k]! : B[k * N + j]!;
        acc += a * b;
        mag += Math.abs(a * b);
      }
      const old = beta === 0 ? 0 : beta * C0[i * N + j]!;
      C[i * N + j] = alpha * acc + old;
      scale[i * N + j] = Math.abs(alpha) * mag + Math.abs(old);
    }
  }
  return { C, scale };
}

export const REL_TOL = 1e-5;

/** Largest |got − ref| / (scale + tiny) over the matrix; ≤ REL_TOL passes. */
export function maxRelError(got: Float32Array, ref: { C: Float64Array; scale: Float64Array }): number {
  let worst = 0;
  for (let i = 0; i < ref.C.length; i++) {
    const g = got[i]!;
    if (!Number.isFinite(g)) return Infinity;
    const e = Math.abs(g - ref.C[i]!) / (ref.scale[i]! + 1e-30);
    if (e > worst) worst = e;
  }
  return worst;
}

/** All shapes × trans combinations × scalars. */
export function allCases(): GemmCase[] {
  const cases: GemmCase[] = [];
  for (const [M, N, K] of SHAPES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const [alpha, beta] of SCALARS) cases.push({ M, N, K, transA, transB, alpha, beta });
      }
    }
  }
  return cases;
}

export function caseName(c: GemmCase): string {
  return `${c.M}×${c.N}×${c.K} ${c.transA ? 'T' : 'N'}${c.transB ? 'T' : 'N'} α=${c.alpha} β=${c.beta}`;
}

/** Runs one case through the copying API; beta = 0 cases start from a NaN-filled C, which must be ignored. */
export function runCase(gemm: Gemm, c: GemmCase, seed: number): number {
  const A = randomFloats(c.M * c.K, seed);
  const B = randomFloats(c.K * c.N, seed + 1);
  const C0 = c.beta === 0 ? new Float32Array(c.M * c.N).fill(NaN) : randomFloats(c.M * c.N, seed + 2);
  const ref = referenceGemm(c, A, B, C0);
  const C = C0.slice();
  gemm.sgemm(c.transA, c.transB, c.M, c.N, c.K, c.alpha, A, B, c.beta, C);
  return maxRelError(C, ref);
}

/** Runs every case; returns the failures as readable lines. */
export function runAllCases(gemm: Gemm): { count: number; worst: number; failures: string[] } {
  const failures: string[] = [];
  let worst = 0;
  const cases = allCases();
  cases.forEach((c, i) => {
    const err = runCase(gemm, c, 1234 + i * 7);
    worst = Math.max(worst, err);
    if (!(err <= REL_TOL)) failures.push(`${caseName(c)}: relative error ${err}`);
  });
  return { count: cases.length, worst, failures };
}

/** Index of the first element whose bits differ (NaNs included), or -1 when a and b are identical.
 * vitest's deep equality walks typed arrays element by element through generic code, which takes
 * seconds on the large outputs here. */
export function firstBitDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}
