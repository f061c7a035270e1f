import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGemm, relaxedSimdSupported, type Gemm, type GemmVariant } from './gemm';
import {
  REL_TOL, SCALARS, SHAPES, caseName, firstBitDifference, maxRelError, randomFloats, referenceGemm, runCase, type GemmCase,
} from './testing/gemm-cases';

/*
 * Checks the WASM SGEMM against a float64 triple loop. The plain SIMD build runs in-process. The
 * relaxed build needs relaxed SIMD, which Node 20 (vitest's workers) only has behind
 * --experimental-wasm-relaxed-simd: without it the same cases run in a child Node started with
 * that flag (testing/relaxed-check.ts).
 */

const relaxedInProcess = relaxedSimdSupported();
const variants: GemmVariant[] = relaxedInProcess ? ['simd', 'relaxed'] : ['simd'];

describe.each(variants)('sgemm (%s build)', (variant) => {
  let gemm: Gemm;
  beforeAll(async () => {
    gemm = await createGemm({ variant });
  });

  it('loads the requested build', () => {
    expect(gemm.variant).toBe(variant);
    expect(gemm.blocking).toEqual({ mr: 4, nr: 8, mc: 128, kc: 384, nc: 2048 });
  });

  it.each(SHAPES.map(([M, N, K]) => ({ M, N, K })))('matches float64 for $M×$N×$K, all trans and α/β', ({ M, N, K }) => {
    const errors: string[] = [];
    let seed = M * 7919 + N * 104729 + K;
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const [alpha, beta] of SCALARS) {
          const c: GemmCase = { M, N, K, transA, transB, alpha, beta };
          const err = runCase(gemm, c, seed++);
          if (!(err <= REL_TOL)) errors.push(`${caseName(c)}: ${err}`);
        }
      }
    }
    expect(errors).toEqual([]);
  });

  it('alpha = 0 or K = 0 only scales C by beta (and beta = 0 clears NaN)', () => {
    const A = new Float32Array(12).fill(NaN); // must not be read
    const B = new Float32Array(12).fill(NaN);
    const C = Float32Array.from([1, 2, 3, 4, 5, 6]);
    gemm.sgemm(false, false, 2, 3, 4, 0, A, B, 2, C);
    expect([...C]).toEqual([2, 4, 6, 8, 10, 12]);
    gemm.sgemm(false, false, 2, 3, 0, 1, new Float32Array(0), new Float32Array(0), 0.5, C);
    expect([...C]).toEqual([1, 2, 3, 4, 5, 6]);
    C.fill(NaN);
    gemm.sgemm(false, false, 2, 3, 0, 1, new Float32Array(0), new Float32Array(0), 0, C);
    expect([...C]).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('M = 0 or N = 0 is a no-op', () => {
    const C = Float32Array.from([7]);
    gemm.sgemm(false, false, 0, 1, 3, 1, new Float32Array(0), new Float32Array(3), 0, C);
    gemm.sgemm(false, false, 1, 0, 3, 1, new Float32Array(3), new Float32Array(0), 0, C);
    expect(C[0]).toBe(7);
  });

  it('accepts longer arrays and rejects short ones', () => {
    const A = randomFloats(6 + 5, 1);
    const B = randomFloats(6 + 3, 2);
    const C = new Float32Array(4 + 2).fill(9);
    gemm.sgemm(false, false, 2, 2, 3, 1, A, B, 0, C);
    const ref = referenceGemm({ M: 2, N: 2, K: 3, transA: false, transB: false, alpha: 1, beta: 0 }, A, B, C);
    expect(maxRelError(C.subarray(0, 4), ref)).toBeLessThanOrEqual(REL_TOL);
    expect([...C.subarray(4)]).toEqual([9, 9]);
    expect(() => gemm.sgemm(false, false, 2, 2, 3, 1, A.subarray(0, 5), B, 0, C)).toThrow(RangeError);
    expect(() => gemm.sgemm(false, false, 2.5, 2, 3, 1, A, B, 0, C)).toThrow(RangeError);
  });

  it('zero-copy sgemmPtr works on strided sub-matrices and leaves the rest of C alone', () => {
    // op(A) = rows 1..19, columns 2..38 of a 24×40 matrix; op(B) = Bᵀ of columns 3..13 of a
    // 37×50 matrix (transB); C is the 19×11 block at (2, 5) of a 30×20 matrix.
    const [M, N, K] = [19, 11, 37];
    const lda = 40, ldb = 50, ldc = 20;
    const aPtr = gemm.alloc(24 * lda);
    const bPtr = gemm.alloc(K * ldb);
    const cPtr = gemm.alloc(30 * ldc);
    const aFull = randomFloats(24 * lda, 11);
    const bFull = randomFloats(K * ldb, 12);
    const cFull = randomFloats(30 * ldc, 13);
    gemm.f32(aPtr, aFull.length).set(aFull);
    gemm.f32(bPtr, bFull.length).set(bFull);
    gemm.f32(cPtr, cFull.length).set(cFull);

    // op(B)[k][j] = B[j·ldb + k] with B starting at element (0, 3)... stored as N×K rows: take
    // rows 3..13 of a matrix whose rows have ldb = 50 and use its first K = 37 columns.
    const a0 = aPtr + (1 * lda + 2) * 4;
    const b0 = bPtr + (3 * ldb + 0) * 4;
    const c0 = cPtr + (2 * ldc + 5) * 4;
    gemm.sgemmPtr(false, true, M, N, K, 0.75, a0, lda, b0, ldb, -0.5, c0, ldc);

    const A = new Float32Array(M * K);
    const Bt = new Float32Array(N * K);
    const Cblock = new Float32Array(M * N);
    for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) A[i * K + k] = aFull[(1 + i) * lda + 2 + k]!;
    for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) Bt[j * K + k] = bFull[(3 + j) * ldb + k]!;
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) Cblock[i * N + j] = cFull[(2 + i) * ldc + 5 + j]!;
    const ref = referenceGemm({ M, N, K, transA: false, transB: true, alpha: 0.75, beta: -0.5 }, A, Bt, Cblock);

    const out = gemm.f32(cPtr, cFull.length);
    const got = new Float32Array(M * N);
    for (let r = 0; r < 30; r++) {
      for (let col = 0; col < ldc; col++) {
        const inside = r >= 2 && r < 2 + M && col >= 5 && col < 5 + N;
        if (inside) got[(r - 2) * N + col - 5] = out[r * ldc + col]!;
        else expect(out[r * ldc + col]).toBe(cFull[r * ldc + col]);
      }
    }
    expect(maxRelError(got, ref)).toBeLessThanOrEqual(REL_TOL);
    gemm.reset();
  });

  it('sgemmPtr rejects pointers outside the arena', () => {
    const p = gemm.alloc(16);
    expect(() => gemm.sgemmPtr(false, false, 4, 4, 4, 1, 0, 4, p, 4, 0, p, 4)).toThrow(RangeError);
    expect(() => gemm.sgemmPtr(false, false, 4, 4, 4, 1, p, 3, p, 4, 0, p, 4)).toThrow(RangeError);
    const end = gemm.memory.buffer.byteLength;
    expect(() => gemm.sgemmPtr(false, false, 4, 4, 4, 1, p, 4, p, 4, 0, end - 32, 4)).toThrow(RangeError);
    gemm.reset();
  });

  it('reuses its buffers: repeated calls of stable sizes do not grow memory', () => {
    const [M, N, K] = [96, 300, 130];
    const A = randomFloats(M * K, 5);
    const B = randomFloats(K * N, 6);
    const C = new Float32Array(M * N);
    gemm.sgemm(false, false, M, N, K, 1, A, B, 0, C);
    const buffer = gemm.memory.buffer;
    const probe = gemm.alloc(0);
    for (let i = 0; i < 5; i++) {
      gemm.sgemm(false, false, M, N, K, 1, A, B, 0, C);
      gemm.sgemm(true, true, 10, 20, 30, 1, A, B, 0, C); // smaller: fits the same scratch
    }
    expect(gemm.memory.buffer).toBe(buffer);
    expect(gemm.alloc(0)).toBe(probe);
    gemm.reset();
  });

  it('grows memory for large problems and stays correct', () => {
    const [M, N, K] = [700, 600, 520]; // ≈ 4.4 MB of operands: more than the initial arena
    const c: GemmCase = { M, N, K, transA: true, transB: false, alpha: 1, beta: 1 };
    expect(runCase(gemm, c, 77)).toBeLessThanOrEqual(REL_TOL);
    gemm.reset();
  });
});

describe('sgemm (relaxed build)', () => {
  it.runIf(!relaxedInProcess)('passes every case in a child Node with --experimental-wasm-relaxed-simd', () => {
    const script = fileURLToPath(new URL('./testing/relaxed-check.ts', import.meta.url));
    const child = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', '--import', 'tsx', script], {
      encoding: 'utf8',
      timeout: 110_000,
    });
    const line = child.stdout.trim().split('\n').pop() ?? '';
    expect(child.status, `${child.stderr}\n${child.stdout}`).toBe(0);
    const result = JSON.parse(line) as { variant: string; count: number; failures: string[] };
    expect(result.variant).toBe('relaxed');
    expect(result.failures).toEqual([]);
    expect(result.count).toBe(SHAPES.length * 4 * SCALARS.length);
  });

  it.runIf(relaxedInProcess)('runs in-process (this runtime has relaxed SIMD)', () => {
    expect(relaxedInProcess).toBe(true);
  });
});

describe('sgemm on several threads (shared memory, worker pool)', () => {
  const gemms = new Map<number, Gemm>();
  beforeAll(async () => {
    for (const threads of [1, 2, 3]) gemms.set(threads, await createGemm({ threads, parallelMinFlops: 0 }));
  });
  afterAll(() => gemms.forEach((g) => g.dispose()));

  it('runs the requested thread counts', () => {
    expect([...gemms.values()].map((g) => g.threads)).toEqual([1, 2, 3]);
  });

  // wide in N or in M, with ragged edges (parallelMinFlops 0: every one is split)
  const shapes: [number, number, number][] = [[64, 1000, 70], [300, 40, 200], [130, 2050, 12], [37, 333, 401]];
  it.each(shapes.map(([M, N, K]) => ({ M, N, K })))('$M×$N×$K: bitwise equal to one thread and within tolerance of float64', ({ M, N, K }) => {
    let seed = M * 31 + N * 7 + K;
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const [alpha, beta] of SCALARS) {
          const c: GemmCase = { M, N, K, transA, transB, alpha, beta };
          const A = randomFloats(M * K, seed++);
          const B = randomFloats(K * N, seed++);
          const C0 = randomFloats(M * N, seed++);
          const ref = referenceGemm(c, A, B, C0);
          const out = [...gemms.values()].map((g) => {
            const C = C0.slice();
            g.sgemm(transA, transB, M, N, K, alpha, A, B, beta, C);
            return C;
          });
          expect(maxRelError(out[0]!, ref), caseName(c)).toBeLessThanOrEqual(REL_TOL);
          for (const C of out.slice(1)) expect(firstBitDifference(C, out[0]!), caseName(c)).toBe(-1);
        }
      }
    }
  });

  it('the copying and zero-copy forms agree on a threaded instance', () => {
    const g = gemms.get(2)!;
    const [M, N, K] = [96, 700, 100];
    const A = randomFloats(M * K, 1), B = randomFloats(K * N, 2);
    const C = new Float32Array(M * N);
    g.sgemm(false, false, M, N, K, 1, A, B, 0, C);
    const a = g.alloc(M * K), b = g.alloc(K * N), c = g.alloc(M * N);
    g.f32(a, M * K).set(A);
    g.f32(b, K * N).set(B);
    g.sgemmPtr(false, false, M, N, K, 1, a, K, b, N, 0, c, N);
    expect(firstBitDifference(g.f32(c, M * N), C)).toBe(-1);
    g.reset();
  });

  it('rejects bad thread counts, and use after dispose', async () => {
    await expect(createGemm({ threads: 0 })).rejects.toThrow(RangeError);
    await expect(createGemm({ threads: 1.5 })).rejects.toThrow(RangeError);
    await expect(createGemm({ convChunkColumns: 0 })).rejects.toThrow(RangeError);
    const g = await createGemm({ threads: 2 });
    g.dispose();
    g.dispose(); // idempotent
    const [M, N, K] = [64, 1000, 70];
    expect(() => g.sgemm(false, false, M, N, K, 1, new Float32Array(M * K), new Float32Array(K * N), 0, new Float32Array(M * N))).toThrow(/dispose/);
  });

  it("'auto' picks between 1 and 4 threads", async () => {
    const g = await createGemm();
    expect(g.threads).toBeGreaterThanOrEqual(1);
    expect(g.threads).toBeLessThanOrEqual(4);
    g.dispose();
  });
});
