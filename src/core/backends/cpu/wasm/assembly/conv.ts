/*
 * NCHW convolution on the GEMM, chunk by chunk: forward, input gradient (col2im) and weight
 * gradient, grouped convolutions as one GEMM per group.
 *
 * The output pixels of the whole batch (P = B·Ho·Wo GEMM columns) are cut into chunks of about
 * `target` columns: column ranges inside one image when an image has at least `target` pixels,
 * otherwise runs of whole images. Only one chunk's column matrix exists at a time (per thread), so
 * it is written by im2col and read back by the GEMM's packing while it is still in cache, and a
 * batch-32 layer needs megabytes of scratch instead of the whole [C·kh·kw, P] matrix. When a chunk
 * lies inside one image, the GEMMs read dY and write Y or dX in place in NCHW (row stride Ho·Wo):
 * no transposes. Runs of whole images go through a [K, n] scratch matrix instead.
 *
 * Every driver is called on every thread of the pool with the same parameters and its own `tid`;
 * threads take units of work from a shared counter (nextUnit) until none are left:
 *   forward       a unit is one chunk (disjoint output columns)
 *   input grad    a unit is one image (or run of images) × one block of input channels: rows of
 *                 dcol = Wᵀ·dY and the dX planes col2im adds into, so no two units touch the same
 *                 dX element, and each unit goes through its image's chunks in order
 *   weight grad   a unit is one block of dW columns (rows of the column matrix) or of dW rows
 *                 (output channels) over all chunks; the chunks are the same for any thread count
 *                 and accumulate in the same order
 * Each output element is therefore computed by the same instructions in the same order whatever
 * the thread count and whoever takes which unit: results are bitwise identical with 1, 2 or 4
 * threads.
 */
import { sgemm, WORKSPACE_BYTES, MR, NR } from './gemm';
import { ConvParams, alignUp, copyF32, zeroF32, addF32, copyAddScalar, nextUnit } from './params';

/* ------------------------------------------------------------------ chunk plan (per instance) */

/** 0: column ranges inside one image; 1: runs of whole images */
let planMode: i32 = 0;
let planChunks: i32 = 0;
/** mode 0: columns per chunk (an image's last chunk may be shorter); mode 1: the most columns of a chunk */
let planCols: i32 = 0;
let planPerImage: i32 = 1;

/** The chunk selected by `chunk`: images [chB0, chB1), output pixels [chHw0, chHw0 + chN) when one image. */
let chB0: i32 = 0;
let chB1: i32 = 0;
let chHw0: i32 = 0;
let chN: i32 = 0;

/**
 * Cuts the batch into chunks. With `balance` > 1, runs of whole images are made a multiple of
 * `balance` chunks so threads get equal shares; that changes which images share a chunk, which
 * changes no result of the forward or input-gradient pass (their columns never mix images), so
 * only those passes balance. The weight gradient sums over chunks and always plans with 1.
 */
function plan(p: ConvParams, balance: i32): void {
  const HW = p.Ho * p.Wo;
  const target = max(p.target, NR);
  if (HW >= target) {
    let per = (HW + target - 1) / target;
    let cols = (((HW + per - 1) / per + NR - 1) / NR) * NR;
    if (cols > HW) cols = HW;
    per = (HW + cols - 1) / cols;
    planMode = 0;
    planCols = cols;
    planPerImage = per;
    planChunks = p.B * per;
  } else {
    let n = <i32>((<i64>p.B * HW + target - 1) / target);
    if (n < 1) n = 1;
    if (balance > 1) n = ((n + balance - 1) / balance) * balance;
    if (n > p.B) n = p.B;
    planMode = 1;
    planChunks = n;
    planPerImage = 1;
    planCols = ((p.B + n - 1) / n) * HW;
  }
}

function chunk(p: ConvParams, q: i32): void {
  const HW = p.Ho * p.Wo;
  if (planMode == 0) {
    const b = q / planPerImage;
    chB0 = b;
    chB1 = b + 1;
    chHw0 = (q - b * planPerImage) * planCols;
    chN = min(planCols, HW - chHw0);
  } else {
    chB0 = <i32>((<i64>p.B * q) / planChunks);
    chB1 = <i32>((<i64>p.B * (q + 1)) / planChunks);
    chHw0 = 0;
    chN = (chB1 - chB0) * HW;
  }
}

/** Rows of one group's column matrix: (C/group)·kh·kw. */
// @ts-ignore: decorator
@inline function groupRows(p: ConvParams): i32 {
  return (p.C / p.group) * p.kh * p.kw;
}

/** 1×1, stride 1, no padding: the column matrix of an image is the image itself. */
// @ts-ignore: decorator
@inline function isPointwise(p: ConvParams): bool {
  return p.kh == 1 && p.kw == 1 && p.sh == 1 && p.sw == 1 && p.pt == 0 && p.pl == 0 && p.Ho == p.H && p.Wo == p.W;
}

/** Bytes of scratch one thread needs: GEMM workspace, a column matrix and a [K, n] matrix. */
export function convScratchBytes(pp: usize): usize {
  const p = changetype<ConvParams>(pp);
  plan(p, 1);
  const cols = <usize>planCols;
  return alignUp(WORKSPACE_BYTES) + alignUp(<usize>groupRows(p) * cols * 4) + alignUp(<usize>p.K * cols * 4);
}

/* ------------------------------------------------------------------ im2col / col2im of one chunk */

/**
 * Rows [r0, r1) of the column matrix of image columns [hw0, hw0 + n), for the channels starting
 * at `xb` (x + (b·C + c0)·H·W): row r is (channel c0 + r / (kh·kw), tap r % (kh·kw)); written to
 * dst row r − r0, stride ldd floats. Zero where the tap falls in the padding.
 */
function im2colImage(p: ConvParams, xb: usize, r0: i32, r1: i32, hw0: i32, n: i32, dst: usize, ldd: i32): void {
  const H = p.H, W = p.W, Wo = p.Wo, kw = p.kw, khw = p.kh * p.kw;
  const sh = p.sh, sw = p.sw, pt = p.pt;
  const end = hw0 + n;
  const lddBytes = <usize>ldd << 2;
  if (isPointwise(p)) {
    for (let r = r0; r < r1; r++) copyF32(dst + <usize>(r - r0) * lddBytes, xb + ((<usize>r * <usize>(H * W) + <usize>hw0) << 2), n);
    return;
  }
  for (let r = r0; r < r1; r++) {
    const c = r / khw;
    const t = r - c * khw;
    const i = t / kw;
    const j = t - i * kw;
    const plane = xb + ((<usize>c * <usize>(H * W)) << 2);
    // output columns whose tap lands inside the input row: [first, last)
    const nl = p.pl - j * p.dw;
    let first = nl <= 0 ? 0 : (nl + sw - 1) / sw;
    if (first > Wo) first = Wo;
    const m = W - 1 + nl;
    let last = m < 0 ? 0 : m / sw + 1;
    if (last > Wo) last = Wo;
    if (last < first) last = first;
    let d = dst + <usize>(r - r0) * lddBytes;
    let q = hw0;
    let oy = q / Wo;
    let ox = q - oy * Wo;
    while (q < end) {
      const len = min(Wo - ox, end - q);
      const iy = oy * sh - pt + i * p.dh;
      const a = max(ox, first);
      const e = min(ox + len, last);
      if (iy < 0 || iy >= H || a >= e) {
        zeroF32(d, len);
      } else {
        zeroF32(d, a - ox);
        const src = plane + (<usize>(iy * W + a * sw - nl) << 2);
        const dd = d + (<usize>(a - ox) << 2);
        const cnt = e - a;
        if (sw == 1) copyF32(dd, src, cnt);
        else for (let u = 0; u < cnt; u++) store<f32>(dd + (<usize>u << 2), load<f32>(src + (<usize>(u * sw) << 2)));
        zeroF32(d + (<usize>(e - ox) << 2), ox + len - e);
      }
      d += <usize>len << 2;
      q += len;
      oy++;
      ox = 0;
    }
  }
}

/** The adjoint of im2colImage: adds rows [r0, r1) of `src` (stride lds) into the dX planes at `xb`. */
function col2imImage(p: ConvParams, xb: usize, r0: i32, r1: i32, hw0: i32, n: i32, src: usize, lds: i32): void {
  const H = p.H, W = p.W, Wo = p.Wo, kw = p.kw, khw = p.kh * p.kw;
  const sh = p.sh, sw = p.sw, pt = p.pt;
  const end = hw0 + n;
  const ldsBytes = <usize>lds << 2;
  if (isPointwise(p)) {
    for (let r = r0; r < r1; r++) addF32(xb + ((<usize>r * <usize>(H * W) + <usize>hw0) << 2), src + <usize>(r - r0) * ldsBytes, n);
    return;
  }
  for (let r = r0; r < r1; r++) {
    const c = r / khw;
    const t = r - c * khw;
    const i = t / kw;
    const j = t - i * kw;
    const plane = xb + ((<usize>c * <usize>(H * W)) << 2);
    const nl = p.pl - j * p.dw;
    let first = nl <= 0 ? 0 : (nl + sw - 1) / sw;
    if (first > Wo) first = Wo;
    const m = W - 1 + nl;
    let last = m < 0 ? 0 : m / sw + 1;
    if (last > Wo) last = Wo;
    if (last < first) last = first;
    let s = src + <usize>(r - r0) * ldsBytes;
    let q = hw0;
    let oy = q / Wo;
    let ox = q - oy * Wo;
    while (q < end) {
      const len = min(Wo - ox, end - q);
      const iy = oy * sh - pt + i * p.dh;
      const a = max(ox, first);
      const e = min(ox + len, last);
      if (iy >= 0 && iy < H && a < e) {
        const dst = plane + (<usize>(iy * W + a * sw - nl) << 2);
        const ss = s + (<usize>(a - ox) << 2);
        const cnt = e - a;
        if (sw == 1) addF32(dst, ss, cnt);
        else {
          for (let u = 0; u < cnt; u++) {
            const pd = dst + (<usize>(u * sw) << 2);
            store<f32>(pd, load<f32>(pd) + load<f32>(ss + (<usize>u << 2)));
          }
        }
      }
      s += <usize>len << 2;
      q += len;
      oy++;
      ox = 0;
    }
  }
}

/** im2colImage over the current chunk; the images of a run sit side by side in dst (ldd = chN). */
function im2colChunk(p: ConvParams, c0: i32, r0: i32, r1: i32, dst: usize, ldd: i32): void {
  const HW = p.Ho * p.Wo;
  const planeBytes = <usize>(p.H * p.W) << 2;
  if (planMode == 0) {
    im2colImage(p, p.x + (<usize>(chB0 * p.C + c0) * planeBytes), r0, r1, chHw0, chN, dst, ldd);
    return;
  }
  for (let b = chB0; b < chB1; b++) {
    im2colImage(p, p.x + (<usize>(b * p.C + c0) * planeBytes), r0, r1, 0, HW, dst + (<usize>((b - chB0) * HW) << 2), ldd);
  }
}

function col2imChunk(p: ConvParams, c0: i32, r0: i32, r1: i32, src: usize, lds: i32): void {
  const HW = p.Ho * p.Wo;
  const planeBytes = <usize>(p.H * p.W) << 2;
  if (planMode == 0) {
    col2imImage(p, p.out + (<usize>(chB0 * p.C + c0) * planeBytes), r0, r1, chHw0, chN, src, lds);
    return;
  }
  for (let b = chB0; b < chB1; b++) {
    col2imImage(p, p.out + (<usize>(b * p.C + c0) * planeBytes), r0, r1, 0, HW, src + (<usize>((b - chB0) * HW) << 2), lds);
  }
}

/** dY channels [k0, k1) of the current run of images into dst as a [K, chN] matrix (row k at k·chN). */
function gatherDy(p: ConvParams, k0: i32, k1: i32, dst: usize): void {
  const HW = p.Ho * p.Wo;
  for (let b = chB0; b < chB1; b++) {
    for (let k = k0; k < k1; k++) {
      copyF32(dst + (<usize>(k * chN + (b - chB0) * HW) << 2), p.dy + (<usize>(b * p.K + k) * <usize>HW << 2), HW);
    }
  }
}

/* ------------------------------------------------------------------ drivers */

/** y = conv(x, w) + bias. */
export function convForward(pp: usize, tid: i32, nthreads: i32): void {
  const p = changetype<ConvParams>(pp);
  plan(p, 2 * nthreads);
  const HW = p.Ho * p.Wo;
  const group = p.group, Cg = p.C / group, Kg = p.K / group;
  const rows = groupRows(p);
  const work = p.scratch + <usize>tid * p.scratchStride;
  const col = work + alignUp(WORKSPACE_BYTES);
  const yt = col + alignUp(<usize>rows * <usize>planCols * 4);
  const pointwise = isPointwise(p);
  for (let q = nextUnit(p); q < planChunks; q = nextUnit(p)) {
    chunk(p, q);
    const n = chN;
    const direct = planMode == 0;
    for (let g = 0; g < group; g++) {
      let bm: usize, ldb: i32;
      if (pointwise && direct) {
        bm = p.x + ((<usize>((chB0 * p.C + g * Cg) * HW + chHw0)) << 2);
        ldb = HW;
      } else {
        im2colChunk(p, g * Cg, 0, rows, col, n);
        bm = col;
        ldb = n;
      }
      let cm: usize, ldc: i32;
      if (direct) {
        cm = p.out + ((<usize>(chB0 * p.K + g * Kg) * <usize>HW + <usize>chHw0) << 2);
        ldc = HW;
      } else {
        cm = yt + (<usize>(g * Kg) * <usize>n << 2);
        ldc = n;
      }
      sgemm(0, 0, Kg, n, rows, 1, p.w + (<usize>(g * Kg) * <usize>rows << 2), rows, bm, ldb, 0, cm, ldc, work);
    }
    if (direct) {
      if (p.bias != 0) {
        for (let k = 0; k < p.K; k++) {
          const y = p.out + ((<usize>(chB0 * p.K + k) * <usize>HW + <usize>chHw0) << 2);
          copyAddScalar(y, y, n, load<f32>(p.bias + (<usize>k << 2)));
        }
      }
    } else {
      for (let b = chB0; b < chB1; b++) {
        for (let k = 0; k < p.K; k++) {
          const bk: f32 = p.bias != 0 ? load<f32>(p.bias + (<usize>k << 2)) : 0;
          copyAddScalar(p.out + (<usize>(b * p.K + k) * <usize>HW << 2), yt + (<usize>(k * n + (b - chB0) * HW) << 2), HW, bk);
        }
      }
    }
  }
}

/** dx = col2im(Wᵀ·dY), by units of (image or run of images) × (block of input channels). */
export function convInputGrad(pp: usize, tid: i32, nthreads: i32): void {
  const p = changetype<ConvParams>(pp);
  plan(p, 2 * nthreads);
  const HW = p.Ho * p.Wo;
  const inPlane = <usize>(p.H * p.W);
  const group = p.group, Cg = p.C / group, Kg = p.K / group;
  const khw = p.kh * p.kw;
  const rows = groupRows(p);
  const work = p.scratch + <usize>tid * p.scratchStride;
  const dcol = work + alignUp(WORKSPACE_BYTES);
  const dyt = dcol + alignUp(<usize>rows * <usize>planCols * 4);
  const pointwise = isPointwise(p);
  // one channel block per thread: each block reads all of dY once, so more blocks would cost reads
  const blocks = min(nthreads, p.C);
  // units: images (in-image chunks) or runs of images, each × channel block
  const spans = planMode == 0 ? p.B : planChunks;
  // col2im adds into dX: a unit clears its planes of an image just before the image's first chunk,
  // so they are still in cache when the additions come (pointwise with in-image chunks writes
  // every element once with beta = 0 and needs no clear)
  const clear = !(pointwise && planMode == 0);
  for (let u = nextUnit(p); u < spans * blocks; u = nextUnit(p)) {
    const span = u / blocks, blk = u - span * blocks;
    const c0 = <i32>((<i64>p.C * blk) / blocks);
    const c1 = <i32>((<i64>p.C * (blk + 1)) / blocks);
    const g0 = c0 / Cg, g1 = (c1 - 1) / Cg + 1;
    const qFirst = planMode == 0 ? span * planPerImage : span;
    const qEnd = planMode == 0 ? qFirst + planPerImage : span + 1;
    for (let q = qFirst; q < qEnd; q++) {
      chunk(p, q);
      const n = chN;
      const direct = planMode == 0;
      if (clear && chHw0 == 0) {
        for (let b = chB0; b < chB1; b++) zeroF32(p.out + ((<usize>(b * p.C + c0) * inPlane) << 2), (c1 - c0) * <i32>inPlane);
      }
      if (!direct) gatherDy(p, g0 * Kg, g1 * Kg, dyt);
      for (let g = g0; g < g1; g++) {
        const cl0 = max(c0, g * Cg) - g * Cg;
        const cl1 = min(c1, (g + 1) * Cg) - g * Cg;
        const r0 = cl0 * khw, r1 = cl1 * khw;
        let bm: usize, ldb: i32;
        if (direct) {
          bm = p.dy + ((<usize>(chB0 * p.K + g * Kg) * <usize>HW + <usize>chHw0) << 2);
          ldb = HW;
        } else {
          bm = dyt + (<usize>(g * Kg) * <usize>n << 2);
          ldb = n;
        }
        const am = p.w + ((<usize>(g * Kg) * <usize>rows + <usize>r0) << 2);
        if (pointwise && direct) {
          const cm = p.out + ((<usize>(chB0 * p.C + g * Cg + cl0) * inPlane + <usize>chHw0) << 2);
          sgemm(1, 0, r1 - r0, n, Kg, 1, am, rows, bm, ldb, 0, cm, HW, work);
        } else {
          sgemm(1, 0, r1 - r0, n, Kg, 1, am, rows, bm, ldb, 0, dcol, n, work);
          col2imChunk(p, g * Cg + cl0, 0, r1 - r0, dcol, n);
        }
      }
    }
  }
}

/**
 * dW = Σ over chunks of dY·colᵀ, by units of dW: blocks of columns (column-matrix rows) when the
 * column matrix is the taller operand, else blocks of rows (output channels). A unit reads all of
 * the operand it does not split, so the split goes along the larger of the two: a pointwise 24→144
 * layer split by its 24 columns would have every unit stream all of dY (144 channels) again.
 */
export function convWeightGrad(pp: usize, tid: i32, nthreads: i32): void {
  const p = changetype<ConvParams>(pp);
  plan(p, 1);
  const rows = groupRows(p);
  const Kg = p.K / p.group;
  const work = p.scratch + <usize>tid * p.scratchStride;
  const col = work + alignUp(WORKSPACE_BYTES);
  const dyt = col + alignUp(<usize>rows * <usize>planCols * 4);
  const byColumns = rows >= Kg;
  // split in whole micro-tile strips (NR columns or MR rows), two blocks per thread
  const step = byColumns ? NR : MR;
  const extent = byColumns ? rows : Kg;
  const strips = (extent + step - 1) / step;
  const blocks = nthreads == 1 ? 1 : min(strips, 2 * nthreads);
  for (let u = nextUnit(p); u < blocks; u = nextUnit(p)) {
    const e0 = min(extent, <i32>((<i64>strips * u) / blocks) * step);
    const e1 = min(extent, <i32>((<i64>strips * (u + 1)) / blocks) * step);
    if (e1 <= e0) continue;
    if (byColumns) weightGradBlock(p, 0, Kg, e0, e1, work, col, dyt);
    else weightGradBlock(p, e0, e1, 0, rows, work, col, dyt);
  }
}

/** dW[k0..k1)[r0..r1) of every group, summed over all chunks in order. */
function weightGradBlock(p: ConvParams, k0: i32, k1: i32, r0: i32, r1: i32, work: usize, col: usize, dyt: usize): void {
  const HW = p.Ho * p.Wo;
  const group = p.group, Cg = p.C / group, Kg = p.K / group;
  const rows = groupRows(p);
  const pointwise = isPointwise(p);
  for (let q = 0; q < planChunks; q++) {
    chunk(p, q);
    const n = chN;
    const direct = planMode == 0;
    if (!direct) {
      for (let g = 0; g < group; g++) gatherDy(p, g * Kg + k0, g * Kg + k1, dyt);
    }
    for (let g = 0; g < group; g++) {
      const kg0 = g * Kg + k0;
      let am: usize, lda: i32;
      if (direct) {
        am = p.dy + ((<usize>(chB0 * p.K + kg0) * <usize>HW + <usize>chHw0) << 2);
        lda = HW;
      } else {
        am = dyt + (<usize>kg0 * <usize>n << 2);
        lda = n;
      }
      let bm: usize, ldb: i32;
      if (pointwise && direct) {
        bm = p.x + ((<usize>(chB0 * p.C + g * Cg + r0) * <usize>HW + <usize>chHw0) << 2);
        ldb = HW;
      } else {
        im2colChunk(p, g * Cg, r0, r1, col, n);
        bm = col;
        ldb = n;
      }
      sgemm(0, 1, k1 - k0, r1 - r0, n, 1, am, lda, bm, ldb, q == 0 ? 0 : 1, p.out + ((<usize>kg0 * <usize>rows + <usize>r0) << 2), rows, work);
    }
  }
}
