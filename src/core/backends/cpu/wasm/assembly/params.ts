/*
 * The parameter block of one convolution call, written by the TypeScript loader (gemm.ts,
 * CONV_PARAM_WORDS u32 words in this order) and read here in place: an unmanaged class is a typed
 * view of memory, so reading a field is one load and nothing is allocated.
 */

// @ts-ignore: decorator
@unmanaged
export class ConvParams {
  /** x: [B, C, H, W]; w: [K, C/group, kh, kw]; y: [B, K, Ho, Wo] */
  B: i32;
  C: i32;
  H: i32;
  W: i32;
  K: i32;
  kh: i32;
  kw: i32;
  group: i32;
  sh: i32;
  sw: i32;
  pt: i32;
  pl: i32;
  dh: i32;
  dw: i32;
  Ho: i32;
  Wo: i32;
  /** byte offsets in memory; bias = 0 means none */
  x: usize;
  w: usize;
  bias: usize;
  /** y (forward), dx (input gradient) or dw (weight gradient) */
  out: usize;
  dy: usize;
  /** per-thread scratch: thread t uses [scratch + t·scratchStride, + scratchStride) */
  scratch: usize;
  scratchStride: usize;
  /** target number of GEMM columns (output pixels) per chunk */
  target: i32;
  /** work units handed out so far (zeroed by the caller before each call): see nextUnit */
  counter: i32;
}

/**
 * The next unit of work for the calling thread. Threads take units from this shared counter as
 * they finish the previous one, so a thread on a slower core (shared with other work, or with a
 * busy hyperthread sibling on a virtual machine) simply takes fewer units instead of holding the
 * others at the end of the call. Every driver defines its units so that no two write the same
 * output and each is computed the same way whichever thread takes it: results do not depend on
 * who took what.
 */
// @ts-ignore: decorator
@inline export function nextUnit(p: ConvParams): i32 {
  const at = changetype<usize>(p) + offsetof<ConvParams>('counter');
  if (ASC_FEATURE_THREADS) return atomic.add<i32>(at, 1);
  const v = load<i32>(at);
  store<i32>(at, v + 1);
  return v;
}

// @ts-ignore: decorator
@inline export const ALIGN: usize = 64;

// @ts-ignore: decorator
@inline export function alignUp(x: usize): usize {
  return (x + ALIGN - 1) & ~(ALIGN - 1);
}

/** count floats from src to dst (may be unaligned; must not overlap). */
// @ts-ignore: decorator
@inline export function copyF32(dst: usize, src: usize, count: i32): void {
  let i = 0;
  for (; i + 4 <= count; i += 4) {
    v128.store(dst, v128.load(src));
    dst += 16;
    src += 16;
  }
  for (; i < count; i++) {
    store<f32>(dst, load<f32>(src));
    dst += 4;
    src += 4;
  }
}

/** count zeros at dst. */
// @ts-ignore: decorator
@inline export function zeroF32(dst: usize, count: i32): void {
  let i = 0;
  const z = f32x4.splat(0);
  for (; i + 4 <= count; i += 4) {
    v128.store(dst, z);
    dst += 16;
  }
  for (; i < count; i++) {
    store<f32>(dst, 0);
    dst += 4;
  }
}

/** dst[i] += src[i] for count floats. */
// @ts-ignore: decorator
@inline export function addF32(dst: usize, src: usize, count: i32): void {
  let i = 0;
  for (; i + 4 <= count; i += 4) {
    v128.store(dst, f32x4.add(v128.load(dst), v128.load(src)));
    dst += 16;
    src += 16;
  }
  for (; i < count; i++) {
    store<f32>(dst, load<f32>(dst) + load<f32>(src));
    dst += 4;
    src += 4;
  }
}

/** dst[i] = src[i] + v for count floats (dst may equal src). */
// @ts-ignore: decorator
@inline export function copyAddScalar(dst: usize, src: usize, count: i32, v: f32): void {
  let i = 0;
  const vv = f32x4.splat(v);
  for (; i + 4 <= count; i += 4) {
    v128.store(dst, f32x4.add(v128.load(src), vv));
    dst += 16;
    src += 16;
  }
  for (; i < count; i++) {
    store<f32>(dst, load<f32>(src) + v);
    dst += 4;
    src += 4;
  }
}
