import { roundHalfEven } from '../../../quant/quantizer';
import { alloc, assertSameShape, type Floats, type Nd } from './nd';
import { gridRuns, type QuantGrid } from './quant-grid';

/**
 * Fake quantization x̂ = s·(clamp(round(x/s) + z, qmin, qmax) − z), rounding half to even as ONNX
 * QuantizeLinear and src/core/quant/quantizer.ts do, so what is optimised is what gets exported.
 */
export function fakeQuantForward<D extends Floats>(x: Nd<D>, g: QuantGrid<D>): Nd<D> {
  const X = x.data;
  const y = alloc(X, X.length);
  gridRuns(x, g, 'fakeQuant', (c, start, end) => {
    const s = g.scale[c]!;
    const z = g.zero[c]!;
    for (let i = start; i < end; i++) {
      const q = roundHalfEven(Math.fround(X[i]! / s)) + z;
      y[i] = s * ((q < g.qmin ? g.qmin : q > g.qmax ? g.qmax : q) - z);
    }
  });
  return { shape: [...x.shape], data: y };
}

export interface FakeQuantGrads<D extends Floats> {
  dx: Nd<D>;
  /** One entry per scale. Without LSQ's 1/√(N·qmax) factor: QDrop applies it and BRECQ does not (§1.1), so the caller chooses. */
  dscale: D;
}

/**
 * Straight-through estimator: round(·) passes gradients as the identity, so x gets dy wherever the
 * integer code q = round(x/s) + z lies in [qmin, qmax] (inclusive, as PyTorch's learnable fake
 * quantizer tests it) and 0 where it was clamped. The LSQ scale gradient is ∂x̂/∂s = round(x/s) − x/s
 * inside the range and qmin − z or qmax − z where clamped.
 */
export function fakeQuantBackward<D extends Floats>(x: Nd<D>, g: QuantGrid<D>, dy: Nd<D>): FakeQuantGrads<D> {
  assertSameShape(x, dy, 'fakeQuant');
  const X = x.data;
  const DY = dy.data;
  const dx = alloc(X, X.length);
  const dscale = alloc(X, g.scale.length);
  gridRuns(x, g, 'fakeQuant', (c, start, end) => {
    const s = g.scale[c]!;
    const z = g.zero[c]!;
    let acc = 0;
    for (let i = start; i < end; i++) {
      const u = X[i]! / s;
      const r = roundHalfEven(Math.fround(u));
      const q = r + z;
      const d = DY[i]!;
      if (q < g.qmin) acc += d * (g.qmin - z);
      else if (q > g.qmax) acc += d * (g.qmax - z);
      else {
        dx[i] = d;
        acc += d * (r - u);
      }
    }
    dscale[c] = acc;
  });
  return { dx: { shape: [...x.shape], data: dx }, dscale };
}
