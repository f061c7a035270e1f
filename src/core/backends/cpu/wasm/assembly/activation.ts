/*
 * The activation that follows a convolution (ReLU, ReLU6, any Clip), applied where the tensor
 * already lies in this module's memory: on the convolution's output before it is copied out, and
 * on the incoming gradient before the backward passes read it. Fused this way the activation
 * costs a SIMD sweep split across the pool's threads instead of a scalar JavaScript pass over a
 * separate copy. The gradient mask reads the activation's *output*: lo < y < hi exactly when
 * lo < x < hi, so the pre-activation tensor need not be kept.
 */

/** [start, end) of thread tid's share of n floats, in whole 16-float runs. */
// @ts-ignore: decorator
@inline function share(n: i32, tid: i32, nthreads: i32, end: bool): i32 {
  const runs = (n + 15) >> 4;
  const per = (runs + nthreads - 1) / nthreads;
  const at = min(n, (tid + (end ? 1 : 0)) * per * 16);
  return at;
}

/** y = min(max(y, lo), hi) in place, for n floats at p (ReLU: lo = 0, hi = +∞). */
export function clampInPlace(p: usize, n: i32, lo: f32, hi: f32, tid: i32, nthreads: i32): void {
  const start = share(n, tid, nthreads, false);
  const end = share(n, tid, nthreads, true);
  const vlo = f32x4.splat(lo);
  const vhi = f32x4.splat(hi);
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const at = p + (<usize>i << 2);
    v128.store(at, f32x4.min(f32x4.max(v128.load(at), vlo), vhi));
  }
  for (; i < end; i++) {
    const at = p + (<usize>i << 2);
    store<f32>(at, min(max(load<f32>(at), lo), hi));
  }
}

/** dy = lo < y < hi ? dy : 0 in place, for n floats at dy, with the activation's output at y. */
export function clampGradInPlace(dy: usize, y: usize, n: i32, lo: f32, hi: f32, tid: i32, nthreads: i32): void {
  const start = share(n, tid, nthreads, false);
  const end = share(n, tid, nthreads, true);
  const vlo = f32x4.splat(lo);
  const vhi = f32x4.splat(hi);
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const off = <usize>i << 2;
    const v = v128.load(y + off);
    const inside = v128.and(f32x4.gt(v, vlo), f32x4.lt(v, vhi));
    v128.store(dy + off, v128.and(v128.load(dy + off), inside));
  }
  for (; i < end; i++) {
    const off = <usize>i << 2;
    const v = load<f32>(y + off);
    if (!(v > lo && v < hi)) store<f32>(dy + off, 0);
  }
}
