import { roundHalfEven } from '../quant/quantizer';
import { scratch32, zeros32 } from '../tensor/buffer-pool';
import type { Nd } from '../backends/cpu/reference';

/**
 * A per-tensor activation quantizer with a learnable step (LSQ), as BRECQ and QDrop place them
 * (algorithms.md §1.4): the zero point stays fixed, the step is a one-element parameter so that
 * Adam can update it in place.
 */
export interface ActQuantizer {
  readonly tensor: string;
  readonly scale: Float32Array;
  readonly zero: number;
  readonly qmin: number;
  readonly qmax: number;
}

/**
 * QDrop's element-wise drop: each element keeps its quantized value with probability `keep` and
 * passes the float value otherwise; a fresh mask per element and per iteration.
 */
export interface DropMask {
  readonly keep: number;
  readonly rand: () => number;
}

export interface QuantizedValue {
  readonly y: Nd;
  /** 1 where the quantized value was used, 0 where the float value passed; null when all were quantized. */
  readonly mask: Uint8Array | null;
}

export function actQuantForward(x: Nd, q: ActQuantizer, drop: DropMask | null): QuantizedValue {
  const s = q.scale[0]!;
  const X = x.data;
  const y = scratch32(X.length);
  const mask = drop ? new Uint8Array(X.length) : null;
  for (let i = 0; i < X.length; i++) {
    if (mask && drop!.rand() >= drop!.keep) {
      y[i] = X[i]!;
      continue;
    }
    if (mask) mask[i] = 1;
    // the quotient in float32, as QuantizeLinear computes it (quantizeValue)
    const c = roundHalfEven(Math.fround(X[i]! / s)) + q.zero;
    y[i] = s * ((c < q.qmin ? q.qmin : c > q.qmax ? q.qmax : c) - q.zero);
  }
  return { y: { shape: x.shape, data: y }, mask };
}

/**
 * Straight-through gradient to x inside the grid (0 where clamped) and LSQ's step gradient:
 * round(x/s) − x/s inside, qmin − z or qmax − z where clamped (§1.1). Elements that passed their
 * float value carry dy to x unchanged and nothing to the step. `gradScale` is LSQ's 1/√(N·qmax)
 * when the method uses it (QDrop), 1 otherwise (BRECQ).
 */
export function actQuantBackward(x: Nd, q: ActQuantizer, dy: Nd, mask: Uint8Array | null, gradScale: number): { dx: Nd; dscale: number } {
  const s = q.scale[0]!;
  const X = x.data;
  const D = dy.data;
  const dx = zeros32(X.length);
  let acc = 0;
  for (let i = 0; i < X.length; i++) {
    if (mask && mask[i] === 0) {
      dx[i] = D[i]!;
      continue;
    }
    const u = X[i]! / s;
    const r = roundHalfEven(Math.fround(u));
    const c = r + q.zero;
    if (c < q.qmin) acc += D[i]! * (q.qmin - q.zero);
    else if (c > q.qmax) acc += D[i]! * (q.qmax - q.zero);
    else {
      dx[i] = D[i]!;
      acc += D[i]! * (r - u);
    }
  }
  return { dx: { shape: x.shape, data: dx }, dscale: acc * gradScale };
}
