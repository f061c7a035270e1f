/*
 * The activation that follows a convolution (ReLU, ReLU6, any Clip), applied where the tensor
 * already lies in this module's memory: on the convolution's output before it is copied out, and
 * on the incoming gradient before the backward passes read it. Fused this way the activation
 * costs a SIMD sweep split across the pool's threads instead of a scalar JavaScript pass over a
 * separate copy. The gradient mask reads the activation's *output*: lo < y < hi exactly when
 * lo < x < hi, so the pre-activation tensor need not be kept.
 */

/** y = min(max(y, lo), hi) in place, for n floats at p (ReLU: lo = 0, hi = +∞). */
export function clampInPlace(p: usize, n: i32, lo: f32, hi: f32, tid: i32, nthreads: i32): void {
  sweep(p, p, n, lo, hi, false, tid, nthreads);
}

/** dy = lo < y < hi ? dy : 0 in place, for n floats at dy, with the activation's output at y. */
export function clampGradInPlace(dy: usize, y: usize, n: i32, lo: f32, hi: f32, tid: i32, nthreads: i32): void {
  sweep(dy, y, n, lo, hi, true, tid, nthreads);
}

/** Thread tid's share of the n floats, in whole 16-float runs: the clamp of y into dst, or dst masked by y's range. */
// @ts-ignore: decorator
@inline function sweep(dst: usize, y: usize, n: i32, lo: f32, hi: f32, grad: bool, tid: i32, nthreads: i32): void {
  const per = (((n + 15) >> 4) + nthreads - 1) / nthreads;
  const end = min(n, (tid + 1) * per * 16);
  const vlo = f32x4.splat(lo);
  const vhi = f32x4.splat(hi);
  let i = min(n, tid * per * 16);
  for (; i + 4 <= end; i += 4) {
    const off = <usize>i << 2;
    const v = v128.load(y + off);
    if (grad) v128.store(dst + off, v128.and(v128.load(dst + off), v128.and(f32x4.gt(v, vlo), f32x4.lt(v, vhi))));
    else v128.store(dst + off, f32x4.min(f32x4.max(v, vlo), vhi));
  }
  for (; i < end; i++) {
    const off = <usize>i << 2;
    const v = load<f32>(y + off);
    if (grad) {
      if (!(v > lo && v < hi)) store<f32>(dst + off, 0);
    } else store<f32>(dst + off, min(max(v, lo), hi));
  }
}
