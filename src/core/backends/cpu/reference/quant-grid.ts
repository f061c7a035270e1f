import type { Floats, Nd } from './nd';

/**
 * The integer grid of the affine quantizer (algorithms.md §1.1): x̂ = s·(clamp(q + z, qmin, qmax) − z).
 * One scale and zero point for the whole tensor, one per slice along axis 0 (output channels of
 * a Conv/Gemm weight), or, with `group`, one per run of `group` consecutive elements of each slice
 * (the last run of a slice may be shorter), ordered slice-major as in src/core/quant/quantizer.ts.
 */
export interface QuantGrid<D extends Floats = Float32Array> {
  readonly scale: D;
  /** Integer zero points, one per scale. */
  readonly zero: ArrayLike<number>;
  readonly qmin: number;
  readonly qmax: number;
  readonly group?: number;
}

/** Calls `f(p, start, end)` for every run [start, end) of consecutive elements that share scale p. */
export function gridRuns(x: Nd<Floats>, g: QuantGrid<Floats>, op: string, f: (p: number, start: number, end: number) => void): void {
  const params = g.scale.length;
  if (g.zero.length !== params) throw new Error(`${op}: ${params} scales but ${g.zero.length} zero points`);
  const n = x.data.length;
  if (params === 1 && g.group === undefined) return f(0, 0, n);
  const rows = x.shape[0]!;
  const row = n / rows;
  const size = g.group ?? row;
  const groups = Math.ceil(row / size);
  if (rows * groups !== params) throw new Error(`${op}: ${params} scales do not match axis 0 of [${x.shape.join(', ')}]${g.group ? ` in groups of ${g.group}` : ''}`);
  for (let r = 0; r < rows; r++) for (let k = 0; k < groups; k++) f(r * groups + k, r * row + k * size, r * row + Math.min(row, (k + 1) * size));
}
