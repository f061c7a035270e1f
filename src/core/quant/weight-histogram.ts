import { channelLayout, intRange, type QuantParams } from './quantizer';

/**
 * A layer's weights before and after quantization on one axis: every weight in units of its own
 * channel's step, (w − offset)/s + zero point, so that all channels share the integer grid; the
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
  const l = channelLayout(dims, p.axis);
  for (let o = 0; o < l.outer; o++) {
    for (let c = 0; c < l.channels; c++) {
      const s = p.scale[c]!;
      const z = p.zeroPoint[c]!;
      const off = p.offset?.[c] ?? 0;
      const base = (o * l.channels + c) * l.inner;
      for (let i = base; i < base + l.inner; i++) {
        const u = (w[i]! - off) / s + z;
        float[Math.min(BINS - 1, Math.max(0, Math.floor((u - lo) / width)))]!++;
        counts[codes[i]! - qmin]!++;
      }
    }
  }
  return { qmin, qmax, float, codes: counts };
}
