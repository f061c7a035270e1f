/*
 * Single-precision GEMM for the CPU backend, compiled by AssemblyScript to WebAssembly SIMD.
 *
 *   C = alpha · op(A) · op(B) + beta · C      op(X) = X or Xᵀ, all matrices row-major
 *
 * op(A) is M×K, op(B) is K×N, C is M×N; lda/ldb/ldc are row strides in elements, so the caller can
 * pass sub-matrices (an im2col panel, one image of a batch) without copying.
 *
 * Structure (Goto/BLIS): the K×N operand is packed into KC×NC blocks of NR-wide column strips,
 * the M×K operand into MC×KC blocks of MR-high row strips, and a register-tiled MR×NR
 * micro-kernel multiplies one strip pair. Packing makes every micro-kernel load sequential and
 * handles transposes and ragged edges once, so the kernel itself has a single shape.
 *
 * The same source builds twice (scripts/build-wasm.mjs): with `--enable simd` and with
 * `--enable simd,relaxed-simd`. ASC_FEATURE_RELAXED_SIMD is a compile-time constant, so `madd`
 * becomes one fused f32x4.relaxed_madd in the relaxed build and mul+add in the plain one.
 *
 * Memory is imported; this module allocates nothing. The caller passes a workspace of
 * WORKSPACE_BYTES for the packed panels (the TypeScript loader owns the layout).
 */

/** Rows of the micro-tile: 4 rows × 2 vectors = 8 accumulators, plus 2 B vectors and one broadcast
 * A value = 11 live v128 registers. V8 (x64) has 16 xmm registers and reserves some as scratch. In
 * a micro-benchmark on Zen 3 (Node 20, data in L1), 4×8 and 2×16 ran at ~33 (simd) / ~49 (relaxed)
 * GFLOP/s, while 6×8, 5×8, 8×8 and 4×12 fell to ~21 and unrolling 4×8's k loop by two to ~25:
 * most likely register spills, so more accumulators do not pay here. */
export const MR: i32 = 4;
/** Columns of the micro-tile: two f32x4 vectors. */
export const NR: i32 = 8;
/** Depth of a packed block. An MR×KC A strip (6 KiB) and a KC×NR B strip (12 KiB) stay in the
 * 32 KiB L1 while the micro-kernel runs; a deeper KC also means fewer passes over C (K/KC) and
 * fewer kernel calls per flop. Measured on Zen 3: 128 → 256 → 384 → 512 gave ~40.5, 42.2, 42.9,
 * 43.5 GFLOP/s at 1024³ (relaxed); 384 takes most of the gain without filling L1. */
export const KC: i32 = 384;
/** Rows of a packed A block: MC×KC×4 B = 192 KiB, resident in the 512 KiB L2 while every B strip
 * of the NC block sweeps past it (64-256 measured within 1%). */
export const MC: i32 = 128;
/** Columns of a packed B block: KC×NC×4 B = 3 MiB, meant for L3 (a multiple of NR; 1024-4096
 * measured within 1%). */
export const NC: i32 = 2048;

const PACK_A_BYTES: usize = <usize>(MC * KC) << 2;
const PACK_B_BYTES: usize = <usize>(KC * NC) << 2;
const TILE_BYTES: usize = <usize>(MR * NR) << 2;
/** Scratch the caller must provide to sgemm: packed A block, packed B block, one edge tile. */
export const WORKSPACE_BYTES: usize = PACK_A_BYTES + PACK_B_BYTES + TILE_BYTES;

/** First byte after this module's static data: the caller lays out its buffers from here. */
export function heapBase(): usize {
  return __heap_base;
}

// @ts-ignore: decorator
@inline function madd(a: v128, b: v128, c: v128): v128 {
  // relaxed_madd may fuse or not (the engine decides per CPU); either is fine for GEMM and the
  // fused form halves the FP instruction count on x64 with FMA3.
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  else return f32x4.add(f32x4.mul(a, b), c);
}

// @ts-ignore: decorator
@inline function storeRow(p: usize, x0: v128, x1: v128, alpha: v128, beta: f32): void {
  // beta == 0 must not read C: BLAS semantics, and C may hold garbage or NaN on the first pass.
  if (beta == 0) {
    v128.store(p, f32x4.mul(x0, alpha));
    v128.store(p, f32x4.mul(x1, alpha), 16);
  } else {
    const vb = f32x4.splat(beta);
    v128.store(p, f32x4.add(f32x4.mul(x0, alpha), f32x4.mul(v128.load(p), vb)));
    v128.store(p, f32x4.add(f32x4.mul(x1, alpha), f32x4.mul(v128.load(p, 16), vb)), 16);
  }
}

/**
 * The MR×NR = 4×8 micro-kernel: C[0..4][0..8] = alpha·(Ap·Bp) + beta·C over kc steps.
 * `a` is a packed A strip (kc groups of 4 row values), `b` a packed B strip (kc groups of 8
 * column values), `ldcBytes` the byte stride between rows of C.
 * Per k step: 2 vector loads of B, 4 broadcast loads of A (v128.load32_splat: one vbroadcastss),
 * 8 multiply-adds into accumulators that never leave registers.
 */
function kernel4x8(kc: i32, a: usize, b: usize, c: usize, ldcBytes: usize, alpha: f32, beta: f32): void {
  let c00 = f32x4.splat(0);
  let c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(b);
    const b1 = v128.load(b, 16);
    let x = v128.load32_splat(a);
    c00 = madd(x, b0, c00);
    c01 = madd(x, b1, c01);
    x = v128.load32_splat(a, 4);
    c10 = madd(x, b0, c10);
    c11 = madd(x, b1, c11);
    x = v128.load32_splat(a, 8);
    c20 = madd(x, b0, c20);
    c21 = madd(x, b1, c21);
    x = v128.load32_splat(a, 12);
    c30 = madd(x, b0, c30);
    c31 = madd(x, b1, c31);
    a += 16;
    b += 32;
  }
  const va = f32x4.splat(alpha);
  storeRow(c, c00, c01, va, beta);
  storeRow(c + ldcBytes, c10, c11, va, beta);
  storeRow(c + 2 * ldcBytes, c20, c21, va, beta);
  storeRow(c + 3 * ldcBytes, c30, c31, va, beta);
}

/* 4×4 transpose of rows r0..r3 into columns, used by the packers that gather across rows. */
// @ts-ignore: decorator
@inline function lo(x: v128, y: v128): v128 { return v128.shuffle<f32>(x, y, 0, 4, 1, 5); }
// @ts-ignore: decorator
@inline function hi(x: v128, y: v128): v128 { return v128.shuffle<f32>(x, y, 2, 6, 3, 7); }
// @ts-ignore: decorator
@inline function col01(x: v128, y: v128): v128 { return v128.shuffle<f32>(x, y, 0, 1, 4, 5); }
// @ts-ignore: decorator
@inline function col23(x: v128, y: v128): v128 { return v128.shuffle<f32>(x, y, 2, 3, 6, 7); }

/**
 * Packs op(A)[0..mc][0..kc] into MR-row strips: strip s holds, for each k, the MR values
 * op(A)[s·MR + r][k]; rows past mc are zero so the kernel needs no row test.
 * `a` points at op(A)[0][0]; transA selects op(A)[i][k] = A[k·lda + i] instead of A[i·lda + k].
 */
function packA(transA: bool, mc: i32, kc: i32, a: usize, lda: i32, dst: usize): void {
  const ldaBytes = <usize>lda << 2;
  let i = 0;
  for (; i + MR <= mc; i += MR) {
    if (transA) {
      // Each k already stores the strip's MR values contiguously: one vector copy per k.
      let src = a + (<usize>i << 2);
      for (let k = 0; k < kc; k++) {
        v128.store(dst, v128.load(src));
        src += ldaBytes;
        dst += 16;
      }
    } else {
      // Rows are contiguous along k: read 4 k values from each of the 4 rows and transpose.
      const p0 = a + <usize>i * ldaBytes;
      const p1 = p0 + ldaBytes, p2 = p1 + ldaBytes, p3 = p2 + ldaBytes;
      let k = 0;
      for (; k + 4 <= kc; k += 4) {
        const off = <usize>k << 2;
        const r0 = v128.load(p0 + off), r1 = v128.load(p1 + off);
        const r2 = v128.load(p2 + off), r3 = v128.load(p3 + off);
        const l01 = lo(r0, r1), l23 = lo(r2, r3), h01 = hi(r0, r1), h23 = hi(r2, r3);
        v128.store(dst, col01(l01, l23));
        v128.store(dst, col23(l01, l23), 16);
        v128.store(dst, col01(h01, h23), 32);
        v128.store(dst, col23(h01, h23), 48);
        dst += 64;
      }
      for (; k < kc; k++) {
        const off = <usize>k << 2;
        store<f32>(dst, load<f32>(p0 + off));
        store<f32>(dst, load<f32>(p1 + off), 4);
        store<f32>(dst, load<f32>(p2 + off), 8);
        store<f32>(dst, load<f32>(p3 + off), 12);
        dst += 16;
      }
    }
  }
  if (i < mc) {
    // Ragged last strip: scalar, zero-padded to MR rows.
    const rows = mc - i;
    for (let k = 0; k < kc; k++) {
      for (let r = 0; r < MR; r++) {
        let v: f32 = 0;
        if (r < rows) {
          const row = <usize>(i + r);
          v = transA ? load<f32>(a + ((<usize>k * <usize>lda + row) << 2)) : load<f32>(a + ((row * <usize>lda + <usize>k) << 2));
        }
        store<f32>(dst, v);
        dst += 4;
      }
    }
  }
}

/**
 * Packs op(B)[0..kc][0..nc] into NR-column strips: strip s holds, for each k, the NR values
 * op(B)[k][s·NR + j]; columns past nc are zero.
 * `b` points at op(B)[0][0]; transB selects op(B)[k][j] = B[j·ldb + k] instead of B[k·ldb + j].
 */
function packB(transB: bool, kc: i32, nc: i32, b: usize, ldb: i32, dst: usize): void {
  const ldbBytes = <usize>ldb << 2;
  let j = 0;
  for (; j + NR <= nc; j += NR) {
    if (!transB) {
      // Rows of B are contiguous along j: two vector copies per k.
      let src = b + (<usize>j << 2);
      for (let k = 0; k < kc; k++) {
        v128.store(dst, v128.load(src));
        v128.store(dst, v128.load(src, 16), 16);
        src += ldbBytes;
        dst += 32;
      }
    } else {
      // Bᵀ: the strip's 8 columns are 8 rows of B, contiguous along k. Read 4 k values from each
      // and transpose the two 4×4 blocks (rows 0-3 → lanes of the left vector, 4-7 → right).
      const p0 = b + <usize>j * ldbBytes;
      const p1 = p0 + ldbBytes, p2 = p1 + ldbBytes, p3 = p2 + ldbBytes;
      const p4 = p3 + ldbBytes, p5 = p4 + ldbBytes, p6 = p5 + ldbBytes, p7 = p6 + ldbBytes;
      let k = 0;
      for (; k + 4 <= kc; k += 4) {
        const off = <usize>k << 2;
        let r0 = v128.load(p0 + off), r1 = v128.load(p1 + off);
        let r2 = v128.load(p2 + off), r3 = v128.load(p3 + off);
        let l01 = lo(r0, r1), l23 = lo(r2, r3), h01 = hi(r0, r1), h23 = hi(r2, r3);
        v128.store(dst, col01(l01, l23));
        v128.store(dst, col23(l01, l23), 32);
        v128.store(dst, col01(h01, h23), 64);
        v128.store(dst, col23(h01, h23), 96);
        r0 = v128.load(p4 + off); r1 = v128.load(p5 + off);
        r2 = v128.load(p6 + off); r3 = v128.load(p7 + off);
        l01 = lo(r0, r1); l23 = lo(r2, r3); h01 = hi(r0, r1); h23 = hi(r2, r3);
        v128.store(dst, col01(l01, l23), 16);
        v128.store(dst, col23(l01, l23), 48);
        v128.store(dst, col01(h01, h23), 80);
        v128.store(dst, col23(h01, h23), 112);
        dst += 128;
      }
      for (; k < kc; k++) {
        const off = <usize>k << 2;
        store<f32>(dst, load<f32>(p0 + off));
        store<f32>(dst, load<f32>(p1 + off), 4);
        store<f32>(dst, load<f32>(p2 + off), 8);
        store<f32>(dst, load<f32>(p3 + off), 12);
        store<f32>(dst, load<f32>(p4 + off), 16);
        store<f32>(dst, load<f32>(p5 + off), 20);
        store<f32>(dst, load<f32>(p6 + off), 24);
        store<f32>(dst, load<f32>(p7 + off), 28);
        dst += 32;
      }
    }
  }
  if (j < nc) {
    // Ragged last strip: scalar, zero-padded to NR columns.
    const cols = nc - j;
    for (let k = 0; k < kc; k++) {
      for (let jj = 0; jj < NR; jj++) {
        let v: f32 = 0;
        if (jj < cols) {
          const col = <usize>(j + jj);
          v = transB ? load<f32>(b + ((col * <usize>ldb + <usize>k) << 2)) : load<f32>(b + ((<usize>k * <usize>ldb + col) << 2));
        }
        store<f32>(dst, v);
        dst += 4;
      }
    }
  }
}

/** C[0..m][0..n] = beta·C (beta == 0 writes zeros without reading, as BLAS does). */
function scaleC(m: i32, n: i32, beta: f32, c: usize, ldc: i32): void {
  if (beta == 1) return;
  for (let i = 0; i < m; i++) {
    const row = c + ((<usize>i * <usize>ldc) << 2);
    for (let j = 0; j < n; j++) {
      const p = row + (<usize>j << 2);
      store<f32>(p, beta == 0 ? 0 : beta * load<f32>(p));
    }
  }
}

/**
 * Runs the micro-kernel over packed blocks: an mc×kc A block (MR-row strips) times a kc×nc B block
 * (NR-column strips) into C (pointing at the block's first element). jr outside ir: one KC×NR B
 * strip stays in L1 while all A strips of the block stream past it from L2.
 */
function macroKernel(
  mc: i32, nc: i32, kc: i32, packedA: usize, packedB: usize,
  c: usize, ldcBytes: usize, alpha: f32, beta: f32, tile: usize,
): void {
  for (let jr = 0; jr < nc; jr += NR) {
    const nr = min(NR, nc - jr);
    const bStrip = packedB + <usize>jr * <usize>kc * 4;
    for (let ir = 0; ir < mc; ir += MR) {
      const mr = min(MR, mc - ir);
      const aStrip = packedA + <usize>ir * <usize>kc * 4;
      const cTile = c + <usize>ir * ldcBytes + (<usize>jr << 2);
      if (mr == MR && nr == NR) {
        kernel4x8(kc, aStrip, bStrip, cTile, ldcBytes, alpha, beta);
      } else {
        // Edge tile: compute the full zero-padded tile into scratch, then merge the valid part.
        kernel4x8(kc, aStrip, bStrip, tile, <usize>NR << 2, 1, 0);
        for (let r = 0; r < mr; r++) {
          const cRow = cTile + <usize>r * ldcBytes;
          const tRow = tile + (<usize>(r * NR) << 2);
          for (let j = 0; j < nr; j++) {
            const p = cRow + (<usize>j << 2);
            const t = alpha * load<f32>(tRow + (<usize>j << 2));
            store<f32>(p, beta == 0 ? t : t + beta * load<f32>(p));
          }
        }
      }
    }
  }
}

/**
 * C = alpha·op(A)·op(B) + beta·C. Pointers are byte offsets into the imported memory; lda, ldb,
 * ldc are row strides in elements of the matrices as stored (A is M×K, or K×M when transA; B is
 * K×N, or N×K when transB). `work` points at WORKSPACE_BYTES of scratch (16-byte aligned is best).
 */
export function sgemm(
  transA: i32, transB: i32, m: i32, n: i32, k: i32,
  alpha: f32, a: usize, lda: i32, b: usize, ldb: i32,
  beta: f32, c: usize, ldc: i32, work: usize,
): void {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0) {
    scaleC(m, n, beta, c, ldc);
    return;
  }
  const ta = transA != 0, tb = transB != 0;
  const packedA = work;
  const packedB = work + PACK_A_BYTES;
  const tile = packedB + PACK_B_BYTES;
  const ldcBytes = <usize>ldc << 2;
  const ldaU = <usize>lda, ldbU = <usize>ldb;

  for (let jc = 0; jc < n; jc += NC) {
    const nc = min(NC, n - jc);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = min(KC, k - pc);
      // Only the first K block applies the caller's beta; later ones accumulate onto it.
      const betaK: f32 = pc == 0 ? beta : 1;
      if (m <= MC) {
        // One A block (the conv case: M = output channels). Each B strip is used by this block
        // only, so pack it just before use: it goes from packB to the kernel through L1 instead
        // of being written out as a whole KC×NC block and read back from L2/L3 (+1-4% on the demo
        // model's conv GEMMs). With M this small, reading B (8 flops per byte at M = 16) is the
        // limit: packing alone streams B at ~18 GB/s and takes ~20% of the time.
        packA(ta, m, kc, ta ? a + ((<usize>pc * ldaU) << 2) : a + (<usize>pc << 2), lda, packedA);
        for (let jr = 0; jr < nc; jr += NR) {
          const j = <usize>(jc + jr);
          const nr = min(NR, nc - jr);
          packB(tb, kc, nr, tb ? b + ((j * ldbU + <usize>pc) << 2) : b + ((<usize>pc * ldbU + j) << 2), ldb, packedB);
          macroKernel(m, nr, kc, packedA, packedB, c + (j << 2), ldcBytes, alpha, betaK, tile);
        }
      } else {
        // op(B)[pc][jc]: packed once, reused by every A block of this column panel.
        const bBlock = tb ? b + ((<usize>jc * ldbU + <usize>pc) << 2) : b + ((<usize>pc * ldbU + <usize>jc) << 2);
        packB(tb, kc, nc, bBlock, ldb, packedB);
        // equal row blocks of at most MC (M = 144 runs as 2×72, not 128 + 16): a thin last
        // block would run the micro-kernel with a B strip that barely amortises its loads
        const mBlocks = (m + MC - 1) / MC;
        const mcMax = ((((m + mBlocks - 1) / mBlocks) + MR - 1) / MR) * MR;
        for (let ic = 0; ic < m; ic += mcMax) {
          const mc = min(mcMax, m - ic);
          // op(A)[ic][pc]
          const aBlock = ta ? a + ((<usize>pc * ldaU + <usize>ic) << 2) : a + ((<usize>ic * ldaU + <usize>pc) << 2);
          packA(ta, mc, kc, aBlock, lda, packedA);
          macroKernel(mc, nc, kc, packedA, packedB, c + <usize>ic * ldcBytes + (<usize>jc << 2), ldcBytes, alpha, betaK, tile);
        }
      }
    }
  }
}

/**
 * One thread's share of sgemm: the caller runs this on every thread of the pool with the same
 * arguments and its own `tid`. Each thread computes a disjoint block of C (columns in multiples of
 * NR when N is the wider side, otherwise rows in multiples of MR) with the same code and the same
 * K blocking, so the result is bitwise identical for any thread count. Thread t's packing
 * workspace is `work + t·workStride`.
 */
export function sgemmPart(
  transA: i32, transB: i32, m: i32, n: i32, k: i32,
  alpha: f32, a: usize, lda: i32, b: usize, ldb: i32,
  beta: f32, c: usize, ldc: i32, work: usize, workStride: usize, tid: i32, nthreads: i32,
): void {
  const w = work + <usize>tid * workStride;
  if (nthreads <= 1) {
    sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, w);
    return;
  }
  if (n >= m) {
    const strips = (n + NR - 1) / NR;
    const j0 = min(n, (<i32>(<i64>strips * tid / nthreads)) * NR);
    const j1 = min(n, (<i32>(<i64>strips * (tid + 1) / nthreads)) * NR);
    if (j1 <= j0) return;
    const bj = transB != 0 ? b + ((<usize>j0 * <usize>ldb) << 2) : b + (<usize>j0 << 2);
    sgemm(transA, transB, m, j1 - j0, k, alpha, a, lda, bj, ldb, beta, c + (<usize>j0 << 2), ldc, w);
  } else {
    const strips = (m + MR - 1) / MR;
    const i0 = min(m, (<i32>(<i64>strips * tid / nthreads)) * MR);
    const i1 = min(m, (<i32>(<i64>strips * (tid + 1) / nthreads)) * MR);
    if (i1 <= i0) return;
    const ai = transA != 0 ? a + (<usize>i0 << 2) : a + ((<usize>i0 * <usize>lda) << 2);
    sgemm(transA, transB, i1 - i0, n, k, alpha, ai, lda, b, ldb, beta, c + ((<usize>i0 * <usize>ldc) << 2), ldc, w);
  }
}

/**
 * im2col for NCHW convolution: x [B, C, H, W] → col [C·kh·kw, B·Ho·Wo], zero where a window tap
 * falls in the padding. Lives beside the GEMM so that the column matrix is written where the GEMM
 * reads it; in TypeScript this copy cost more than the multiplication.
 */
export function im2col(
  x: usize, B: i32, C: i32, H: i32, W: i32, kh: i32, kw: i32,
  sh: i32, sw: i32, pt: i32, pl: i32, dh: i32, dw: i32, Ho: i32, Wo: i32, col: usize,
): void {
  const P = B * Ho * Wo;
  const swBytes = <usize>sw << 2;
  for (let c = 0; c < C; c++) {
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const row = ((c * kh + i) * kw + j) * P;
        // output columns whose tap lands inside the input row: [first, last)
        const n = pl - j * dw;
        let first = n <= 0 ? 0 : (n + sw - 1) / sw;
        if (first > Wo) first = Wo;
        const m = W - 1 + pl - j * dw;
        let last = m < 0 ? 0 : m / sw + 1;
        if (last > Wo) last = Wo;
        if (last < first) last = first;
        for (let b = 0; b < B; b++) {
          const plane = (b * C + c) * H * W;
          for (let oy = 0; oy < Ho; oy++) {
            const dst = col + (<usize>(row + (b * Ho + oy) * Wo) << 2);
            const iy = oy * sh - pt + i * dh;
            if (iy < 0 || iy >= H) {
              memory.fill(dst, 0, <usize>Wo << 2);
              continue;
            }
            if (first > 0) memory.fill(dst, 0, <usize>first << 2);
            if (last < Wo) memory.fill(dst + (<usize>last << 2), 0, <usize>(Wo - last) << 2);
            let src = x + (<usize>(plane + iy * W + first * sw - n) << 2);
            let d = dst + (<usize>first << 2);
            for (let ox = first; ox < last; ox++) {
              store<f32>(d, load<f32>(src));
              src += swBytes;
              d += 4;
            }
          }
        }
      }
    }
  }
}
