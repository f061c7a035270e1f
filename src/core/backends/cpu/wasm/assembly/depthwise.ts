/*
 * Depthwise convolution (group = C = K: one kh×kw filter per channel), computed directly: as a
 * GEMM it would be C products of a 1×(kh·kw) row by a (kh·kw)×HW matrix, far too thin to pay.
 *
 * Every pass works on one (image, channel) plane at a time, through a per-thread scratch copy of
 * the input plane padded with zeros, so the inner loops read 4 neighbouring outputs' taps with
 * plain vector loads and test no bounds:
 *   forward       y[oy][ox]  = b + Σ w[i][j]·xp[oy·sh + i·dh][ox·sw + j·dw]      (xp: x padded)
 *   input grad    dx[iy][ix] = Σ w[kh−1−i][kw−1−j]·up[iy + i·dh][ix + j·dw]      (up: dY spread by the
 *                 strides and padded: the adjoint as a stride-1 correlation with the flipped filter)
 *   weight grad   dw[i][j]   = Σ_b Σ dy[oy][ox]·xp[oy·sh + i·dh][ox·sw + j·dw]   (vector accumulators
 *                 per tap, summed across lanes once per channel)
 * 3×3 filters have unrolled kernels with the 9 taps in registers; other sizes loop over taps.
 * Threads take units of planes (forward, input gradient) or single channels (weight gradient) from
 * the shared counter (nextUnit); units are disjoint, so results are bitwise identical for any
 * thread count.
 */
import { ConvParams, copyF32, zeroF32, nextUnit } from './params';

// @ts-ignore: decorator
@inline function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  else return f32x4.add(f32x4.mul(a, b), c);
}

/** 4 floats at addr, addr + s, addr + 2s, addr + 3s (s in elements); constant-folds for s = 1, 2. */
// @ts-ignore: decorator
@inline function ld(addr: usize, s: i32): v128 {
  if (s == 1) return v128.load(addr);
  if (s == 2) return v128.shuffle<f32>(v128.load(addr), v128.load(addr, 16), 0, 2, 4, 6);
  const sb = <usize>s << 2;
  let v = f32x4.splat(load<f32>(addr));
  v = f32x4.replace_lane(v, 1, load<f32>(addr + sb));
  v = f32x4.replace_lane(v, 2, load<f32>(addr + 2 * sb));
  v = f32x4.replace_lane(v, 3, load<f32>(addr + 3 * sb));
  return v;
}

/** Stores the first `lanes` (1…4) lanes of v. */
// @ts-ignore: decorator
@inline function storeLanes(p: usize, v: v128, lanes: i32): void {
  if (lanes >= 4) {
    v128.store(p, v);
    return;
  }
  store<f32>(p, f32x4.extract_lane(v, 0));
  if (lanes > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (lanes > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

/** Loads the first `lanes` floats at p, zeros elsewhere (never reads past them). */
// @ts-ignore: decorator
@inline function loadLanes(p: usize, lanes: i32): v128 {
  if (lanes >= 4) return v128.load(p);
  let v = f32x4.splat(0);
  v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (lanes > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4));
  if (lanes > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8));
  return v;
}

/**
 * dst (hd rows × wd columns, row stride wd) = src (hs × ws) spread: src[r][c] lands at
 * [top + r·sy][left + c·sx], zeros elsewhere; sources that land outside are dropped.
 */
function place(src: usize, hs: i32, ws: i32, dst: usize, hd: i32, wd: i32, top: i32, left: i32, sy: i32, sx: i32): void {
  // source columns that land inside: c in [cf, cl)
  let cf = left >= 0 ? 0 : (-left + sx - 1) / sx;
  let cl = wd - 1 - left < 0 ? 0 : (wd - 1 - left) / sx + 1;
  if (cl > ws) cl = ws;
  if (cl < cf) cl = cf;
  const rowBytes = <usize>wd << 2;
  if (sy == 1 && sx == 1) {
    for (let u = 0; u < hd; u++) {
      const d = dst + <usize>u * rowBytes;
      const r = u - top;
      if (r < 0 || r >= hs || cf >= cl) {
        zeroF32(d, wd);
        continue;
      }
      const a = left + cf, e = left + cl;
      zeroF32(d, a);
      copyF32(d + (<usize>a << 2), src + ((<usize>r * <usize>ws + <usize>cf) << 2), cl - cf);
      zeroF32(d + (<usize>e << 2), wd - e);
    }
    return;
  }
  zeroF32(dst, hd * wd);
  for (let r = 0; r < hs; r++) {
    const u = top + r * sy;
    if (u < 0 || u >= hd) continue;
    const d = dst + <usize>u * rowBytes;
    const s = src + (<usize>r * <usize>ws << 2);
    for (let c = cf; c < cl; c++) store<f32>(d + (<usize>(left + c * sx) << 2), load<f32>(s + (<usize>c << 2)));
  }
}

/**
 * out[oy][ox] = bias + Σ_{i,j} f[i][j]·inp[oy·sy + i·dy][ox·sx + j·dx] for oy < ho, ox < wo
 * (row strides ldi, ldo floats; filter taps at f, or flipped when `flip`). `inp` must be readable
 * up to 3·sx columns past the last output's taps (vector overrun of the row tail).
 */
function corrPlane(
  inp: usize, ldi: i32, out: usize, ldo: i32, ho: i32, wo: i32,
  f: usize, kh: i32, kw: i32, sy: i32, sx: i32, dy: i32, dx: i32, bias: f32, flip: bool,
): void {
  const vb = f32x4.splat(bias);
  const ldiB = <usize>ldi << 2;
  if (kh == 3 && kw == 3) {
    // taps in registers; flip reverses the 9 taps
    const w0 = v128.load32_splat(f + (flip ? 32 : 0)), w1 = v128.load32_splat(f + (flip ? 28 : 4)), w2 = v128.load32_splat(f + (flip ? 24 : 8));
    const w3 = v128.load32_splat(f + (flip ? 20 : 12)), w4 = v128.load32_splat(f + 16), w5 = v128.load32_splat(f + (flip ? 12 : 20));
    const w6 = v128.load32_splat(f + (flip ? 8 : 24)), w7 = v128.load32_splat(f + (flip ? 4 : 28)), w8 = v128.load32_splat(f + (flip ? 0 : 32));
    const dxB = <usize>dx << 2, dyB = <usize>dy * ldiB;
    const full = wo & ~3;
    for (let oy = 0; oy < ho; oy++) {
      const r0 = inp + <usize>(oy * sy) * ldiB;
      const r1 = r0 + dyB, r2 = r1 + dyB;
      const o = out + (<usize>(oy * ldo) << 2);
      if (dx == 1 && (sx == 1 || sx == 2)) {
        // the common cases: taps at constant offsets from three moving row pointers, so each load
        // is one instruction (the general loops below compute nine addresses per vector)
        let p0 = r0, p1 = r1, p2 = r2, q = o;
        if (sx == 1) {
          for (let ox = 0; ox < full; ox += 4) {
            let a = madd(w0, v128.load(p0), vb);
            let c = f32x4.mul(w1, v128.load(p0, 4));
            a = madd(w2, v128.load(p0, 8), a);
            c = madd(w3, v128.load(p1), c);
            a = madd(w4, v128.load(p1, 4), a);
            c = madd(w5, v128.load(p1, 8), c);
            a = madd(w6, v128.load(p2), a);
            c = madd(w7, v128.load(p2, 4), c);
            a = madd(w8, v128.load(p2, 8), a);
            v128.store(q, f32x4.add(a, c));
            p0 += 16;
            p1 += 16;
            p2 += 16;
            q += 16;
          }
        } else {
          // stride 2: taps 0 and 1 are the even and odd lanes of the same two vectors
          for (let ox = 0; ox < full; ox += 4) {
            let u = v128.load(p0), v = v128.load(p0, 16);
            let a = madd(w0, v128.shuffle<f32>(u, v, 0, 2, 4, 6), vb);
            let c = f32x4.mul(w1, v128.shuffle<f32>(u, v, 1, 3, 5, 7));
            a = madd(w2, v128.shuffle<f32>(v128.load(p0, 8), v128.load(p0, 24), 0, 2, 4, 6), a);
            u = v128.load(p1);
            v = v128.load(p1, 16);
            c = madd(w3, v128.shuffle<f32>(u, v, 0, 2, 4, 6), c);
            a = madd(w4, v128.shuffle<f32>(u, v, 1, 3, 5, 7), a);
            c = madd(w5, v128.shuffle<f32>(v128.load(p1, 8), v128.load(p1, 24), 0, 2, 4, 6), c);
            u = v128.load(p2);
            v = v128.load(p2, 16);
            a = madd(w6, v128.shuffle<f32>(u, v, 0, 2, 4, 6), a);
            c = madd(w7, v128.shuffle<f32>(u, v, 1, 3, 5, 7), c);
            a = madd(w8, v128.shuffle<f32>(v128.load(p2, 8), v128.load(p2, 24), 0, 2, 4, 6), a);
            v128.store(q, f32x4.add(a, c));
            p0 += 32;
            p1 += 32;
            p2 += 32;
            q += 16;
          }
        }
        if (full == wo) continue;
        // the row's partial last vector goes through the general loop below
      }
      const ox0 = dx == 1 && (sx == 1 || sx == 2) ? full : 0;
      if (sx == 1) {
        for (let ox = ox0; ox < wo; ox += 4) {
          const off = <usize>ox << 2;
          let a = madd(w0, v128.load(r0 + off), vb);
          let c = f32x4.mul(w1, v128.load(r0 + off + dxB));
          a = madd(w2, v128.load(r0 + off + 2 * dxB), a);
          c = madd(w3, v128.load(r1 + off), c);
          a = madd(w4, v128.load(r1 + off + dxB), a);
          c = madd(w5, v128.load(r1 + off + 2 * dxB), c);
          a = madd(w6, v128.load(r2 + off), a);
          c = madd(w7, v128.load(r2 + off + dxB), c);
          a = madd(w8, v128.load(r2 + off + 2 * dxB), a);
          storeLanes(o + off, f32x4.add(a, c), wo - ox);
        }
      } else if (sx == 2) {
        for (let ox = ox0; ox < wo; ox += 4) {
          const off = <usize>ox << 3;
          let a = madd(w0, ld(r0 + off, 2), vb);
          let c = f32x4.mul(w1, ld(r0 + off + dxB, 2));
          a = madd(w2, ld(r0 + off + 2 * dxB, 2), a);
          c = madd(w3, ld(r1 + off, 2), c);
          a = madd(w4, ld(r1 + off + dxB, 2), a);
          c = madd(w5, ld(r1 + off + 2 * dxB, 2), c);
          a = madd(w6, ld(r2 + off, 2), a);
          c = madd(w7, ld(r2 + off + dxB, 2), c);
          a = madd(w8, ld(r2 + off + 2 * dxB, 2), a);
          storeLanes(o + (<usize>ox << 2), f32x4.add(a, c), wo - ox);
        }
      } else {
        for (let ox = 0; ox < wo; ox += 4) {
          const off = <usize>(ox * sx) << 2;
          let a = madd(w0, ld(r0 + off, sx), vb);
          let c = f32x4.mul(w1, ld(r0 + off + dxB, sx));
          a = madd(w2, ld(r0 + off + 2 * dxB, sx), a);
          c = madd(w3, ld(r1 + off, sx), c);
          a = madd(w4, ld(r1 + off + dxB, sx), a);
          c = madd(w5, ld(r1 + off + 2 * dxB, sx), c);
          a = madd(w6, ld(r2 + off, sx), a);
          c = madd(w7, ld(r2 + off + dxB, sx), c);
          a = madd(w8, ld(r2 + off + 2 * dxB, sx), a);
          storeLanes(o + (<usize>ox << 2), f32x4.add(a, c), wo - ox);
        }
      }
    }
    return;
  }
  const taps = kh * kw;
  for (let oy = 0; oy < ho; oy++) {
    const o = out + (<usize>(oy * ldo) << 2);
    for (let ox = 0; ox < wo; ox += 4) {
      let a = vb;
      for (let i = 0; i < kh; i++) {
        const row = inp + <usize>(oy * sy + i * dy) * ldiB + (<usize>(ox * sx) << 2);
        for (let j = 0; j < kw; j++) {
          const t = i * kw + j;
          const wv = v128.load32_splat(f + (<usize>(flip ? taps - 1 - t : t) << 2));
          a = madd(wv, ld(row + (<usize>(j * dx) << 2), sx), a);
        }
      }
      storeLanes(o + (<usize>ox << 2), a, wo - ox);
    }
  }
}

// @ts-ignore: decorator
@inline function roundUp4(x: i32): i32 {
  return (x + 3) & ~3;
}

/** The padded input plane of the forward and weight-gradient passes: rows, row stride. */
function paddedRows(p: ConvParams): i32 {
  return (p.Ho - 1) * p.sh + (p.kh - 1) * p.dh + 1;
}
function paddedStride(p: ConvParams): i32 {
  // + 4·sw + 4: vector loads of the last (partial) output vector read up to 3·sw + 3 floats past it
  return (roundUp4(p.Wo) - 1) * p.sw + (p.kw - 1) * p.dw + 1 + 4 * p.sw + 4;
}
/** The spread dY plane of the input-gradient pass: rows, row stride. */
function upRows(p: ConvParams): i32 {
  return p.H + (p.kh - 1) * p.dh;
}
function upStride(p: ConvParams): i32 {
  // the last (partial) vector of a dX row reads up to 3 floats into the next row; the scratch
  // has 64 floats of slack after the last row
  return p.W + (p.kw - 1) * p.dw;
}

/** Planes per unit of work: about 4096 outputs, so that taking a unit costs nothing in comparison. */
function planesPerUnit(p: ConvParams): i32 {
  return max(1, 4096 / max(p.H * p.W, p.Ho * p.Wo));
}

/** Bytes of scratch one thread needs for any depthwise pass. */
export function dwScratchBytes(pp: usize): usize {
  const p = changetype<ConvParams>(pp);
  const a = <usize>paddedRows(p) * <usize>paddedStride(p);
  const b = <usize>upRows(p) * <usize>upStride(p);
  return ((a > b ? a : b) + 64) << 2;
}

export function dwForward(pp: usize, tid: i32, nthreads: i32): void {
  const p = changetype<ConvParams>(pp);
  const C = p.C, planes = p.B * C;
  const hp = paddedRows(p), wp = paddedStride(p);
  const buf = p.scratch + <usize>tid * p.scratchStride;
  const inPlane = <usize>(p.H * p.W) << 2, outPlane = <usize>(p.Ho * p.Wo) << 2;
  const taps = p.kh * p.kw;
  const per = planesPerUnit(p);
  for (let u = nextUnit(p); u * per < planes; u = nextUnit(p)) {
    const end = min(planes, (u + 1) * per);
    for (let q = u * per; q < end; q++) {
      const c = q % C;
      place(p.x + <usize>q * inPlane, p.H, p.W, buf, hp, wp, p.pt, p.pl, 1, 1);
      const bias: f32 = p.bias != 0 ? load<f32>(p.bias + (<usize>c << 2)) : 0;
      corrPlane(buf, wp, p.out + <usize>q * outPlane, p.Wo, p.Ho, p.Wo, p.w + (<usize>(c * taps) << 2), p.kh, p.kw, p.sh, p.sw, p.dh, p.dw, bias, false);
    }
  }
}

export function dwInputGrad(pp: usize, tid: i32, nthreads: i32): void {
  const p = changetype<ConvParams>(pp);
  const C = p.C, planes = p.B * C;
  const hu = upRows(p), wu = upStride(p);
  const buf = p.scratch + <usize>tid * p.scratchStride;
  const inPlane = <usize>(p.H * p.W) << 2, outPlane = <usize>(p.Ho * p.Wo) << 2;
  const taps = p.kh * p.kw;
  const top = (p.kh - 1) * p.dh - p.pt, left = (p.kw - 1) * p.dw - p.pl;
  const per = planesPerUnit(p);
  for (let u = nextUnit(p); u * per < planes; u = nextUnit(p)) {
    const end = min(planes, (u + 1) * per);
    for (let q = u * per; q < end; q++) {
      const c = q % C;
      // dY[oy][ox] at [oy·sh + top][ox·sw + left]; what lands outside feeds no dX element
      place(p.dy + <usize>q * outPlane, p.Ho, p.Wo, buf, hu, wu, top, left, p.sh, p.sw);
      corrPlane(buf, wu, p.out + <usize>q * inPlane, p.W, p.H, p.W, p.w + (<usize>(c * taps) << 2), p.kh, p.kw, 1, 1, p.dh, p.dw, 0, true);
    }
  }
}

export function dwWeightGrad(pp: usize, tid: i32, nthreads: i32): void {
  const p = changetype<ConvParams>(pp);
  const C = p.C;
  const hp = paddedRows(p), wp = paddedStride(p);
  const buf = p.scratch + <usize>tid * p.scratchStride;
  const inPlane = <usize>(p.H * p.W) << 2, outPlane = <usize>(p.Ho * p.Wo) << 2;
  const taps = p.kh * p.kw;
  const ho = p.Ho, wo = p.Wo, sh = p.sh, sw = p.sw, dh = p.dh, dw = p.dw;
  const wpB = <usize>wp << 2;
  for (let c = nextUnit(p); c < C; c = nextUnit(p)) {
    const f = p.out + (<usize>(c * taps) << 2);
    if (p.kh == 3 && p.kw == 3) {
      let a0 = f32x4.splat(0);
      let a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0;
      const dxB = <usize>dw << 2, dyB = <usize>dh * wpB;
      for (let b = 0; b < p.B; b++) {
        const q = b * C + c;
        place(p.x + <usize>q * inPlane, p.H, p.W, buf, hp, wp, p.pt, p.pl, 1, 1);
        const g = p.dy + <usize>q * outPlane;
        for (let oy = 0; oy < ho; oy++) {
          const r0 = buf + <usize>(oy * sh) * wpB;
          const r1 = r0 + dyB, r2 = r1 + dyB;
          const grow = g + (<usize>(oy * wo) << 2);
          // specialised loops for the common strides (ld() constant-folds its stride for 1 and 2);
          // full vectors first, then the row's partial last vector (dY lanes past wo are zero)
          const full = wo & ~3;
          if (sw == 1 && dw == 1) {
            // constant tap offsets from three moving row pointers (see corrPlane)
            let p0 = r0, p1 = r1, p2 = r2, gp = grow;
            for (let ox = 0; ox < full; ox += 4) {
              const d = v128.load(gp);
              a0 = madd(d, v128.load(p0), a0);
              a1 = madd(d, v128.load(p0, 4), a1);
              a2 = madd(d, v128.load(p0, 8), a2);
              a3 = madd(d, v128.load(p1), a3);
              a4 = madd(d, v128.load(p1, 4), a4);
              a5 = madd(d, v128.load(p1, 8), a5);
              a6 = madd(d, v128.load(p2), a6);
              a7 = madd(d, v128.load(p2, 4), a7);
              a8 = madd(d, v128.load(p2, 8), a8);
              p0 += 16;
              p1 += 16;
              p2 += 16;
              gp += 16;
            }
          } else if (sw == 1) {
            for (let ox = 0; ox < full; ox += 4) {
              const d = v128.load(grow + (<usize>ox << 2));
              const off = <usize>(ox * 1) << 2;
              a0 = madd(d, ld(r0 + off, 1), a0);
              a1 = madd(d, ld(r0 + off + dxB, 1), a1);
              a2 = madd(d, ld(r0 + off + 2 * dxB, 1), a2);
              a3 = madd(d, ld(r1 + off, 1), a3);
              a4 = madd(d, ld(r1 + off + dxB, 1), a4);
              a5 = madd(d, ld(r1 + off + 2 * dxB, 1), a5);
              a6 = madd(d, ld(r2 + off, 1), a6);
              a7 = madd(d, ld(r2 + off + dxB, 1), a7);
              a8 = madd(d, ld(r2 + off + 2 * dxB, 1), a8);
            }
          } else if (sw == 2) {
            for (let ox = 0; ox < full; ox += 4) {
              const d = v128.load(grow + (<usize>ox << 2));
              const off = <usize>(ox * 2) << 2;
              a0 = madd(d, ld(r0 + off, 2), a0);
              a1 = madd(d, ld(r0 + off + dxB, 2), a1);
              a2 = madd(d, ld(r0 + off + 2 * dxB, 2), a2);
              a3 = madd(d, ld(r1 + off, 2), a3);
              a4 = madd(d, ld(r1 + off + dxB, 2), a4);
              a5 = madd(d, ld(r1 + off + 2 * dxB, 2), a5);
              a6 = madd(d, ld(r2 + off, 2), a6);
              a7 = madd(d, ld(r2 + off + dxB, 2), a7);
              a8 = madd(d, ld(r2 + off + 2 * dxB, 2), a8);
            }
          }
          for (let ox = sw <= 2 ? full : 0; ox < wo; ox += 4) {
            const d = loadLanes(grow + (<usize>ox << 2), wo - ox);
            const off = <usize>(ox * sw) << 2;
            a0 = madd(d, ld(r0 + off, sw), a0);
            a1 = madd(d, ld(r0 + off + dxB, sw), a1);
            a2 = madd(d, ld(r0 + off + 2 * dxB, sw), a2);
            a3 = madd(d, ld(r1 + off, sw), a3);
            a4 = madd(d, ld(r1 + off + dxB, sw), a4);
            a5 = madd(d, ld(r1 + off + 2 * dxB, sw), a5);
            a6 = madd(d, ld(r2 + off, sw), a6);
            a7 = madd(d, ld(r2 + off + dxB, sw), a7);
            a8 = madd(d, ld(r2 + off + 2 * dxB, sw), a8);
          }
        }
      }
      store<f32>(f, hsum(a0));
      store<f32>(f, hsum(a1), 4);
      store<f32>(f, hsum(a2), 8);
      store<f32>(f, hsum(a3), 12);
      store<f32>(f, hsum(a4), 16);
      store<f32>(f, hsum(a5), 20);
      store<f32>(f, hsum(a6), 24);
      store<f32>(f, hsum(a7), 28);
      store<f32>(f, hsum(a8), 32);
      continue;
    }
    for (let t = 0; t < taps; t++) store<f32>(f + (<usize>t << 2), 0);
    for (let b = 0; b < p.B; b++) {
      const q = b * C + c;
      place(p.x + <usize>q * inPlane, p.H, p.W, buf, hp, wp, p.pt, p.pl, 1, 1);
      const g = p.dy + <usize>q * outPlane;
      for (let t = 0; t < taps; t++) {
        const i = t / p.kw, j = t - i * p.kw;
        let a = f32x4.splat(0);
        for (let oy = 0; oy < ho; oy++) {
          const row = buf + <usize>(oy * sh + i * dh) * wpB + (<usize>(j * dw) << 2);
          const grow = g + (<usize>(oy * wo) << 2);
          for (let ox = 0; ox < wo; ox += 4) a = madd(loadLanes(grow + (<usize>ox << 2), wo - ox), ld(row + (<usize>(ox * sw) << 2), sw), a);
        }
        const ft = f + (<usize>t << 2);
        store<f32>(ft, load<f32>(ft) + hsum(a));
      }
    }
  }
}

// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}
