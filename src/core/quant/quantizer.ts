/**
 * The uniform affine quantizer (algorithms.md §1.1): q = clamp(round(x/s) + z, qmin, qmax),
 * x̂ = s·(q − z). One rounding rule everywhere — round half to even, as ONNX QuantizeLinear does —
 * so that what the studio simulates is bit-for-bit what the exported model computes.
 */

export type Bits = 2 | 3 | 4 | 5 | 6 | 7 | 8;

export interface IntRange {
  readonly qmin: number;
  readonly qmax: number;
}

/** Signed symmetric grids drop the most negative code (e.g. [−127, 127]) so that zero is centred, as ONNX Runtime's quantizer does. */
export function intRange(bits: Bits, signed: boolean, symmetric: boolean): IntRange {
  if (!signed) return { qmin: 0, qmax: 2 ** bits - 1 };
  const half = 2 ** (bits - 1);
  return { qmin: symmetric ? -(half - 1) : -half, qmax: half - 1 };
}

export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round rounds .5 up; pull exact ties that landed on an odd number back down
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function quantizeValue(x: number, scale: number, zero: number, range: IntRange): number {
  const q = roundHalfEven(x / scale) + zero;
  return q < range.qmin ? range.qmin : q > range.qmax ? range.qmax : q;
}

/** Quantization parameters of one tensor: one scale/zero per channel along `axis`, or one per tensor. */
export interface QuantParams {
  readonly bits: Bits;
  readonly signed: boolean;
  readonly symmetric: boolean;
  /** Channel axis, or null for per-tensor. */
  readonly axis: number | null;
  readonly scale: Float32Array;
  readonly zeroPoint: Int32Array;
  /**
   * decoupleQ's float offset per channel: x̂ = s·(q − zp) + offset, a real number rather than an
   * integer zero point times s (algorithms.md §1.1, §6). Absent for every other quantizer.
   */
  readonly offset?: Float32Array;
}

/** Guards against a zero step on constant channels (all-zero filters happen after pruning). */
const MIN_SCALE = 1e-12;

/** Min–max per-tensor parameters for activations: the range always includes 0 so that zero is exact. */
export function minMaxPerTensor(min: number, max: number, bits: Bits, signed: boolean, symmetric: boolean): QuantParams {
  const range = intRange(bits, signed, symmetric);
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  let scale: number;
  let zero: number;
  if (symmetric) {
    scale = Math.max(Math.max(-lo, hi) / ((range.qmax - range.qmin) / 2), MIN_SCALE);
    zero = signed ? 0 : Math.ceil((range.qmin + range.qmax) / 2);
  } else {
    scale = Math.max((hi - lo) / (range.qmax - range.qmin), MIN_SCALE);
    zero = Math.min(range.qmax, Math.max(range.qmin, roundHalfEven(range.qmin - lo / scale)));
  }
  return { bits, signed, symmetric, axis: null, scale: Float32Array.of(scale), zeroPoint: Int32Array.of(zero) };
}

/** Splits a tensor of shape `dims` around `axis`: element (o, c, i) sits at (o·C + c)·inner + i. */
export interface ChannelLayout {
  readonly outer: number;
  readonly channels: number;
  readonly inner: number;
}

export function channelLayout(dims: readonly number[], axis: number | null): ChannelLayout {
  const total = dims.reduce((a, b) => a * b, 1);
  if (axis === null) return { outer: 1, channels: 1, inner: total };
  const channels = dims[axis] ?? 1;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  return { outer: total / (channels * inner), channels, inner };
}

function forChannel(l: ChannelLayout, c: number, f: (index: number) => void): void {
  for (let o = 0; o < l.outer; o++) {
    const base = (o * l.channels + c) * l.inner;
    for (let i = 0; i < l.inner; i++) f(base + i);
  }
}

/** Symmetric per-channel min–max for weights (channels on `axis`: 0 for Conv OIHW, 1 for a MatMul B). */
export function minMaxPerChannelSymmetric(w: Float32Array, dims: readonly number[], axis: number, bits: Bits): QuantParams {
  const range = intRange(bits, true, true);
  const l = channelLayout(dims, axis);
  const scale = new Float32Array(l.channels);
  for (let c = 0; c < l.channels; c++) {
    let m = 0;
    forChannel(l, c, (j) => (m = Math.max(m, Math.abs(w[j]!))));
    scale[c] = Math.max(m / range.qmax, MIN_SCALE);
  }
  return { bits, signed: true, symmetric: true, axis, scale, zeroPoint: new Int32Array(l.channels) };
}

/** Integer codes of `x` (shape `dims`) under `p`. */
export function quantizeTensor(x: Float32Array, dims: readonly number[], p: QuantParams): Int32Array {
  const range = intRange(p.bits, p.signed, p.symmetric);
  const l = channelLayout(dims, p.axis);
  const q = new Int32Array(x.length);
  for (let c = 0; c < l.channels; c++) {
    const s = p.scale[c]!;
    const z = p.zeroPoint[c]!;
    const o = p.offset?.[c] ?? 0;
    forChannel(l, c, (j) => (q[j] = quantizeValue(x[j]! - o, s, z, range)));
  }
  return q;
}

export function dequantizeTensor(q: Int32Array, dims: readonly number[], p: QuantParams): Float32Array {
  const l = channelLayout(dims, p.axis);
  const out = new Float32Array(q.length);
  for (let c = 0; c < l.channels; c++) {
    const s = p.scale[c]!;
    const z = p.zeroPoint[c]!;
    const o = p.offset?.[c] ?? 0;
    forChannel(l, c, (j) => (out[j] = (q[j]! - z) * s + o));
  }
  return out;
}

/**
 * Symmetric per-channel scales chosen by BRECQ's search (algorithms.md §1.2): 80 candidates
 * shrinking the range by 1% each, scored by mean |w − ŵ|^2.4, the best kept per channel.
 */
export function lpSearchPerChannelSymmetric(w: Float32Array, dims: readonly number[], axis: number, bits: Bits, p = 2.4): QuantParams {
  const base = minMaxPerChannelSymmetric(w, dims, axis, bits);
  const range = intRange(bits, true, true);
  const l = channelLayout(dims, axis);
  const scale = new Float32Array(l.channels);
  for (let c = 0; c < l.channels; c++) {
    let best = Infinity;
    for (let i = 0; i < 80; i++) {
      const s = base.scale[c]! * (1 - 0.01 * i);
      let err = 0;
      forChannel(l, c, (j) => {
        const x = w[j]!;
        err += Math.abs(x - s * quantizeValue(x, s, 0, range)) ** p;
      });
      if (err < best) {
        best = err;
        scale[c] = s;
      }
    }
  }
  return { ...base, scale };
}

/**
 * Per-tensor unsigned asymmetric activation parameters by BRECQ's search (§1.2): min and max both
 * shrink by 1% per candidate over 80 candidates, each scored by mean |x − x̂|^p on `sample`.
 * The range is first widened to include 0, so that zero stays exact (as min–max does).
 */
export function lpSearchPerTensor(sample: Float32Array, min: number, max: number, bits: Bits, p = 2.4): QuantParams {
  const lo0 = Math.min(min, 0);
  const hi0 = Math.max(max, 0);
  const range = intRange(bits, false, false);
  let best: QuantParams = minMaxPerTensor(lo0, hi0, bits, false, false);
  let bestErr = Infinity;
  for (let i = 0; i < 80; i++) {
    const lo = lo0 * (1 - 0.01 * i);
    const hi = hi0 * (1 - 0.01 * i);
    const cand = minMaxPerTensor(lo, hi, bits, false, false);
    const s = cand.scale[0]!;
    const z = cand.zeroPoint[0]!;
    let err = 0;
    for (let j = 0; j < sample.length; j++) {
      const x = sample[j]!;
      err += Math.abs(x - s * (quantizeValue(x, s, z, range) - z)) ** p;
    }
    if (err < bestErr) {
      bestErr = err;
      best = cand;
    }
  }
  return best;
}
