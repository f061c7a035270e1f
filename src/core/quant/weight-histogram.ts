import { intRange, paramSlices, type QuantParams } from './quantizer';

/**
 * A layer's weights before and after quantization: every weight in units of its own channel's or
 * group's step, (w − offset)/s + zero point, so that all channels and groups share the integer grid; the
 * float weights as a fine histogram, the codes as counts per grid point.
 */
export interface WeightHistogram {
  /** Integer grid range of the codes. */
  readonly qmin: number;
  readonly qmax: number;
  /** Float weights: `bins` equal bins over [qmin − 1, qmax + 1] in step units (outliers clamped to the ends). */
  readonly float: readonly number[];
  /** Codes: count per grid point, qmin first. */
  readonly codes: readonly number[];
}

const BINS = 120;

export function weightHistogram(w: Float32Array, dims: readonly number[], codes: Int32Array, p: QuantParams): WeightHistogram {
  const { qmin, qmax } = intRange(p.bits, p.signed, p.symmetric);
  const lo = qmin - 1;
  const width = (qmax + 1 - lo) / BINS;
  const float = new Array<number>(BINS).fill(0);
  const counts = new Array<number>(qmax - qmin + 1).fill(0);
  const sl = paramSlices(dims, p.granularity);
  for (let k = 0; k < sl.count; k++) {
    const s = p.scale[k]!;
    const z = p.zeroPoint[k]!;
    const off = p.offset?.[k] ?? 0;
    for (let m = sl.offsets[k]!; m < sl.offsets[k + 1]!; m++) {
      const i = sl.members[m]!;
      const u = (w[i]! - off) / s + z;
      float[Math.min(BINS - 1, Math.max(0, Math.floor((u - lo) / width)))]!++;
      counts[codes[i]! - qmin]!++;
    }
  }
  return { qmin, qmax, float, codes: counts };
}
