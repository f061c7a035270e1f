import type { Floats, Nd } from './nd';

/**
 * The integer grid of the affine quantizer (algorithms.md §1.1): x̂ = s·(clamp(q + z, qmin, qmax) − z).
 * One scale and zero point for the whole tensor, or one per slice along axis 0 (output channels of
 * a Conv/Gemm weight); which one is read from the length of `scale`.
 */
export interface QuantGrid<D extends Floats = Float32Array> {
  readonly scale: D;
  /** Integer zero points, one per scale. */
  readonly zero: ArrayLike<number>;
  readonly qmin: number;
  readonly qmax: number;
}

/** The number of consecutive elements that share one scale. */
export function channelRun(x: Nd<Floats>, g: QuantGrid<Floats>, op: string): number {
  const channels = g.scale.length;
  if (g.zero.length !== channels) throw new Error(`${op}: ${channels} scales but ${g.zero.length} zero points`);
  if (channels === 1) return x.data.length;
  if (x.shape[0] !== channels) throw new Error(`${op}: ${channels} scales do not match axis 0 of [${x.shape.join(', ')}]`);
  return x.data.length / channels;
}
