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

/**
 * Every grid has 2^b levels, except the signed symmetric 8-bit one, which drops −128 ([−127, 127])
 * as ONNX Runtime's quantizer does, to keep its u8s8 integer kernels from overflowing. Below 8 bits
 * weights are stored in int4/uint4 containers and dequantized, so dropping a code would buy
 * nothing and cost a third of a 2-bit grid (ternary instead of four levels).
 */
export function intRange(bits: Bits, signed: boolean, symmetric: boolean): IntRange {
  if (!signed) return { qmin: 0, qmax: 2 ** bits - 1 };
  const half = 2 ** (bits - 1);
  return { qmin: symmetric && bits === 8 ? -(half - 1) : -half, qmax: half - 1 };
}

export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round rounds .5 up; pull exact ties that landed on an odd number back down
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * ONNX QuantizeLinear divides in float32 (ONNX Runtime does, measured: rounding the double
 * quotient instead disagreed on 7% of values placed near ties), so the quotient is rounded to
 * float32 before it is rounded to an integer: the codes are then the exported file's, bit for bit.
 */
export function quantizeValue(x: number, scale: number, zero: number, range: IntRange): number {
  const q = roundHalfEven(Math.fround(x / scale)) + zero;
  return q < range.qmin ? range.qmin : q > range.qmax ? range.qmax : q;
}

/**
 * Which elements share one scale and zero point. `axis` is the output-channel axis. A group is a
 * run of `size` consecutive elements of one channel's row — the channel's elements in storage
 * order, i.e. the reduction dimension of the layer's GEMM (input channels × kernel positions for a
 * Conv, input features for a Gemm/MatMul), as GPTQ and decoupleQ group columns. A row whose length
 * is not a multiple of `size` ends with a shorter group, as ONNX blocked quantization does.
 */
export type QuantGranularity =
  | { readonly kind: 'tensor' }
  | { readonly kind: 'channel'; readonly axis: number }
  | { readonly kind: 'group'; readonly axis: number; readonly size: number };

export const PER_TENSOR: QuantGranularity = { kind: 'tensor' };

/**
 * Quantization parameters of one tensor. Per group, parameters are ordered channel-major
 * (channel c's groups are c·G … c·G + G − 1): the order stays the same when a 2-D weight is
 * transposed, so parameters found on the channels-first layout serve the stored one.
 */
export interface QuantParams {
  readonly bits: Bits;
  readonly signed: boolean;
  readonly symmetric: boolean;
  readonly granularity: QuantGranularity;
  readonly scale: Float32Array;
  readonly zeroPoint: Int32Array;
  /**
   * decoupleQ's float offset per channel or group: x̂ = s·(q − zp) + offset, a real number rather
   * than an integer zero point times s (algorithms.md §1.1, §6). Absent for every other quantizer.
   */
  readonly offset?: Float32Array;
}

/** The same parameters for the tensor laid out with its channels on `axis` (a transposed 2-D weight). */
export function onAxis(p: QuantParams, axis: number): QuantParams {
  return p.granularity.kind === 'tensor' ? p : { ...p, granularity: { ...p.granularity, axis } };
}

/** Guards against a zero step on constant channels (all-zero filters happen after pruning). */
const MIN_SCALE = 1e-12;

/** Splits a tensor of shape `dims` around `axis`: element (o, c, i) sits at (o·C + c)·inner + i. */
export interface ChannelLayout {
  readonly outer: number;
  readonly channels: number;
  readonly inner: number;
}

export function channelLayout(dims: readonly number[], g: QuantGranularity): ChannelLayout {
  const total = dims.reduce((a, b) => a * b, 1);
  if (g.kind === 'tensor') return { outer: 1, channels: 1, inner: total };
  const channels = dims[g.axis] ?? 1;
  const inner = dims.slice(g.axis + 1).reduce((a, b) => a * b, 1);
  return { outer: total / (channels * inner), channels, inner };
}

/** Length of one channel's row, and how many groups (parameters) it has. */
export function rowGroups(dims: readonly number[], g: QuantGranularity): { channels: number; row: number; groups: number; size: number } {
  const l = channelLayout(dims, g);
  const row = l.outer * l.inner;
  const size = g.kind === 'group' ? g.size : row;
  return { channels: l.channels, row, groups: Math.ceil(row / size), size };
}

/**
 * The elements each parameter covers, as one index list: parameter p owns
 * members[offsets[p]] … members[offsets[p + 1] − 1], in row order.
 */
export interface ParamSlices {
  readonly count: number;
  readonly offsets: Int32Array;
  readonly members: Int32Array;
}

export function paramSlices(dims: readonly number[], g: QuantGranularity): ParamSlices {
  const l = channelLayout(dims, g);
  const { row, groups, size } = rowGroups(dims, g);
  const count = l.channels * groups;
  const offsets = new Int32Array(count + 1);
  const members = new Int32Array(l.outer * l.channels * l.inner);
  let k = 0;
  for (let c = 0; c < l.channels; c++) {
    for (let gi = 0; gi < groups; gi++) {
      offsets[c * groups + gi] = k;
      for (let j = gi * size; j < Math.min(row, (gi + 1) * size); j++) {
        // position j of channel c's row: outer index ⌊j/inner⌋, inner index j mod inner
        members[k++] = (Math.floor(j / l.inner) * l.channels + c) * l.inner + (j % l.inner);
      }
    }
  }
  offsets[count] = k;
  return { count, offsets, members };
}

/** How a step size (and zero point) is initialised (algorithms.md §1.2). */
export type StepInit = 'minmax' | 'lp' | 'mse' | 'percentile';

export const STEP_INITS: readonly StepInit[] = ['minmax', 'lp', 'mse', 'percentile'];

/** The percentile of |x| (symmetric) or of each tail (asymmetric) that the 'percentile' init keeps. */
export const PERCENTILE = 99.99;

/** The grid that maps [lo, hi] (widened to include 0, so that zero stays exact) onto the integer range. */
function gridFromRange(lo0: number, hi0: number, range: IntRange, signed: boolean, symmetric: boolean): { scale: number; zero: number } {
  const lo = Math.min(lo0, 0);
  const hi = Math.max(hi0, 0);
  // a constant-zero channel (pruned filter) is exact on any grid: a unit step keeps its int32 bias (b / (s_in·s_w)) finite
  if (hi === lo) return { scale: 1, zero: symmetric ? (signed ? 0 : Math.ceil((range.qmin + range.qmax) / 2)) : range.qmin };
  if (symmetric) return { scale: Math.max(Math.max(-lo, hi) / ((range.qmax - range.qmin) / 2), MIN_SCALE), zero: signed ? 0 : Math.ceil((range.qmin + range.qmax) / 2) };
  const scale = Math.max((hi - lo) / (range.qmax - range.qmin), MIN_SCALE);
  return { scale, zero: Math.min(range.qmax, Math.max(range.qmin, roundHalfEven(range.qmin - lo / scale))) };
}

/** Mean |x − x̂|^p over `x`: the score both BRECQ's and QDrop's searches minimise (p = 2.4). */
function lpError(x: Float32Array, scale: number, zero: number, range: IntRange, p: number): number {
  let err = 0;
  for (let j = 0; j < x.length; j++) err += Math.abs(x[j]! - scale * (quantizeValue(x[j]!, scale, zero, range) - zero)) ** p;
  return err / Math.max(1, x.length);
}

/** The `pct`-th percentile of `sorted` (ascending), interpolating linearly between order statistics as NumPy does. */
export function percentileOf(sorted: ArrayLike<number>, pct: number): number {
  const pos = (pct / 100) * (sorted.length - 1);
  const i = Math.floor(pos);
  const f = pos - i;
  return i + 1 < sorted.length ? sorted[i]! + f * (sorted[i + 1]! - sorted[i]!) : sorted[i]!;
}

export interface StepChoice {
  readonly scale: number;
  readonly zero: number;
}

/**
 * QDrop's 2-D search, exactly, without its 100·2^b full passes (minutes per tensor at 8 bits on a
 * CPU): over sorted values, the codes that stay inside the range form one run whose error does not
 * depend on the zero point (a prefix sum), and the clipped ends are added from the outside in,
 * stopping as soon as the candidate can no longer beat the best so far.
 */
function mseTwoSided(x: Float32Array, lo: number, hi: number, range: IntRange): StepChoice {
  const v = Float32Array.from(x).sort();
  const n = v.length;
  const levels = range.qmax - range.qmin;
  const r = new Int32Array(n);
  const prefix = new Float64Array(n + 1);
  // first index whose code is ≥ k (codes are non-decreasing over sorted values)
  const lowerBound = (k: number): number => {
    let a = 0;
    let b = n;
    while (a < b) {
      const m = (a + b) >> 1;
      if (r[m]! < k) a = m + 1;
      else b = m;
    }
    return a;
  };
  let best: StepChoice = gridFromRange(lo, hi, range, false, false);
  let bestErr = Infinity;
  // a bound from the widest range (i = 100) before the scan, so that hopeless candidates stop early from the start
  let bound = 0;
  for (let j = 0; j < n; j++) bound += Math.abs(v[j]! - best.scale * (quantizeValue(v[j]!, best.scale, best.zero, range) - best.zero)) ** 2.4;
  for (let i = 1; i <= 100; i++) {
    const scale = Math.max(((i / 100) * (hi - lo)) / levels, MIN_SCALE);
    for (let j = 0; j < n; j++) {
      r[j] = roundHalfEven(Math.fround(v[j]! / scale));
      prefix[j + 1] = prefix[j]! + Math.abs(v[j]! - scale * r[j]!) ** 2.4;
    }
    for (let zp = 0; zp <= levels; zp++) {
      // codes r + zero inside [qmin, qmax] ⇔ r ∈ [−zp, levels − zp]
      const a = lowerBound(-zp);
      const b = lowerBound(levels - zp + 1);
      // a candidate worse than the bound cannot win; one equal to it still can, as the first in scan order
      const stop = Math.min(bestErr, bound * (1 + 1e-9));
      let err = prefix[b]! - prefix[a]!;
      for (let j = 0; j < a && err < stop; j++) err += Math.abs(v[j]! + scale * zp) ** 2.4;
      for (let j = n - 1; j >= b && err < stop; j--) err += Math.abs(v[j]! - scale * (levels - zp)) ** 2.4;
      // below `stop`, both ends were added in full
      if (err < stop) {
        bestErr = err;
        best = { scale, zero: range.qmin + zp };
      }
    }
  }
  return best;
}

/**
 * One scale and zero point for the values `x`, whose range is [min, max] (for activations the
 * range over all images, `x` a sample), by `init`:
 * - 'minmax': the whole range;
 * - 'lp': BRECQ's search, 80 candidates shrinking both ends by 1% each, scored by mean |x − x̂|^2.4;
 * - 'mse': QDrop's observer, same score: thresholds (i/100)·max(|min|, max), i = 1…100, when
 *   symmetric or one-sided; otherwise 100 range lengths (i/100)·(max − min) × every zero point;
 * - 'percentile': the 99.99th percentile of |x| (symmetric), or the 0.01th and 99.99th percentiles.
 */
export function chooseStep(x: Float32Array, min: number, max: number, range: IntRange, signed: boolean, symmetric: boolean, init: StepInit): StepChoice {
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  const best = (candidates: Iterable<StepChoice>): StepChoice => {
    let pick: StepChoice = gridFromRange(lo, hi, range, signed, symmetric);
    let bestErr = Infinity;
    for (const c of candidates) {
      const e = lpError(x, c.scale, c.zero, range, 2.4);
      if (e < bestErr) {
        bestErr = e;
        pick = c;
      }
    }
    return pick;
  };
  switch (init) {
    case 'minmax':
      return gridFromRange(lo, hi, range, signed, symmetric);
    case 'lp':
      return best((function* () {
        for (let i = 0; i < 80; i++) yield gridFromRange(lo * (1 - 0.01 * i), hi * (1 - 0.01 * i), range, signed, symmetric);
      })());
    case 'mse': {
      if (!symmetric && lo < 0 && hi > 0) return mseTwoSided(x, lo, hi, range);
      const m = Math.max(-lo, hi);
      return best((function* () {
        for (let i = 1; i <= 100; i++) {
          const t = (i / 100) * m;
          yield gridFromRange(symmetric || lo < 0 ? -t : 0, symmetric || hi > 0 ? t : 0, range, signed, symmetric);
        }
      })());
    }
    case 'percentile': {
      if (x.length === 0) return gridFromRange(lo, hi, range, signed, symmetric);
      if (symmetric) {
        const t = percentileOf(Float32Array.from(x, Math.abs).sort(), PERCENTILE);
        return gridFromRange(-t, t, range, signed, symmetric);
      }
      const sorted = Float32Array.from(x).sort();
      return gridFromRange(percentileOf(sorted, 100 - PERCENTILE), percentileOf(sorted, PERCENTILE), range, signed, symmetric);
    }
  }
}

/** Min–max per-tensor parameters for activations: the range always includes 0 so that zero is exact. */
export function minMaxPerTensor(min: number, max: number, bits: Bits, signed: boolean, symmetric: boolean): QuantParams {
  const { scale, zero } = gridFromRange(min, max, intRange(bits, signed, symmetric), signed, symmetric);
  return { bits, signed, symmetric, granularity: PER_TENSOR, scale: Float32Array.of(scale), zeroPoint: Int32Array.of(zero) };
}

/** Per-tensor unsigned asymmetric activation parameters from `sample` (values) and the tensor's full range. */
export function activationQuantParams(sample: Float32Array, min: number, max: number, bits: Bits, init: StepInit): QuantParams {
  const { scale, zero } = chooseStep(sample, min, max, intRange(bits, false, false), false, false, init);
  return { bits, signed: false, symmetric: false, granularity: PER_TENSOR, scale: Float32Array.of(scale), zeroPoint: Int32Array.of(zero) };
}

/** How a weight is gridded: symmetric weights are signed with zero point 0 (what ORT fuses), asymmetric ones unsigned with a zero point per channel or group. */
export interface WeightGrid {
  readonly bits: Bits;
  readonly symmetric: boolean;
  readonly granularity: QuantGranularity;
}

/** Weight parameters, one scale and zero point per channel or group, each chosen from its own values by `init`. */
export function weightParams(w: Float32Array, dims: readonly number[], grid: WeightGrid, init: StepInit): QuantParams {
  const signed = grid.symmetric;
  const range = intRange(grid.bits, signed, grid.symmetric);
  const sl = paramSlices(dims, grid.granularity);
  const scale = new Float32Array(sl.count);
  const zeroPoint = new Int32Array(sl.count);
  for (let p = 0; p < sl.count; p++) {
    const x = new Float32Array(sl.offsets[p + 1]! - sl.offsets[p]!);
    let min = 0;
    let max = 0;
    for (let k = 0; k < x.length; k++) {
      const v = (x[k] = w[sl.members[sl.offsets[p]! + k]!]!);
      if (v < min) min = v;
      if (v > max) max = v;
    }
    ({ scale: scale[p], zero: zeroPoint[p] } = chooseStep(x, min, max, range, signed, grid.symmetric, init));
  }
  return { bits: grid.bits, signed, symmetric: grid.symmetric, granularity: grid.granularity, scale, zeroPoint };
}

/** Integer codes of `x` (shape `dims`) under `p`. */
export function quantizeTensor(x: Float32Array, dims: readonly number[], p: QuantParams): Int32Array {
  const range = intRange(p.bits, p.signed, p.symmetric);
  const sl = paramSlices(dims, p.granularity);
  const q = new Int32Array(x.length);
  for (let k = 0; k < sl.count; k++) {
    const s = p.scale[k]!;
    const z = p.zeroPoint[k]!;
    const o = p.offset?.[k] ?? 0;
    for (let m = sl.offsets[k]!; m < sl.offsets[k + 1]!; m++) {
      const j = sl.members[m]!;
      q[j] = quantizeValue(x[j]! - o, s, z, range);
    }
  }
  return q;
}

export function dequantizeTensor(q: Int32Array, dims: readonly number[], p: QuantParams): Float32Array {
  const sl = paramSlices(dims, p.granularity);
  const out = new Float32Array(q.length);
  for (let k = 0; k < sl.count; k++) {
    const s = p.scale[k]!;
    const z = p.zeroPoint[k]!;
    const o = p.offset?.[k] ?? 0;
    for (let m = sl.offsets[k]!; m < sl.offsets[k + 1]!; m++) {
      const j = sl.members[m]!;
      out[j] = (q[j]! - z) * s + o;
    }
  }
  return out;
}
