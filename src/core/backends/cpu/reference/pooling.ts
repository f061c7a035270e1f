import { alloc, nchw, type Floats, type Nd } from './nd';

/** ONNX pooling attributes (floor mode, no dilation); `pads` is [top, left, bottom, right]. */
export interface Pool2dAttrs {
  readonly kernel: readonly [number, number];
  readonly strides: readonly [number, number];
  readonly pads: readonly [number, number, number, number];
  /**
   * AveragePool only: divide by the full window (true) or by the in-bounds elements only (false).
   * Default false, ONNX's default; PyTorch's AvgPool2d defaults to true, so importers must set it.
   */
  readonly countIncludePad?: boolean;
}

export function pool2dAttrs(kernel: readonly [number, number], a: Partial<Omit<Pool2dAttrs, 'kernel'>> = {}): Pool2dAttrs {
  return { kernel, strides: a.strides ?? [1, 1], pads: a.pads ?? [0, 0, 0, 0], countIncludePad: a.countIncludePad ?? false };
}

export function globalAveragePoolForward<D extends Floats>(x: Nd<D>): Nd<D> {
  const [n, c, h, w] = nchw(x, 'globalAveragePool');
  const plane = h * w;
  const X = x.data;
  const y = alloc(X, n * c);
  for (let p = 0; p < n * c; p++) {
    let acc = 0;
    for (let i = p * plane; i < (p + 1) * plane; i++) acc += X[i]!;
    y[p] = acc / plane;
  }
  return { shape: [n, c, 1, 1], data: y };
}

export function globalAveragePoolBackward<D extends Floats>(x: Nd<D>, dy: Nd<D>): Nd<D> {
  const [n, c, h, w] = nchw(x, 'globalAveragePool');
  if (dy.data.length !== n * c) throw new Error(`globalAveragePool backward: dy is [${dy.shape.join(', ')}], expected [${n}, ${c}, 1, 1]`);
  const plane = h * w;
  const dx = alloc(x.data, x.data.length);
  for (let p = 0; p < n * c; p++) dx.fill(dy.data[p]! / plane, p * plane, (p + 1) * plane);
  return { shape: [...x.shape], data: dx };
}

interface Windows {
  n: number;
  c: number;
  h: number;
  w: number;
  oh: number;
  ow: number;
}

function windows(x: Nd<Floats>, a: Pool2dAttrs, op: string): Windows {
  const [n, c, h, w] = nchw(x, op);
  const [kh, kw] = a.kernel;
  const [pt, pl, pb, pr] = a.pads;
  if (!(a.strides[0] >= 1 && a.strides[1] >= 1) || a.pads.some((p) => p < 0)) throw new Error(`${op}: strides must be ≥ 1 and pads ≥ 0`);
  // ONNX requires pads < kernel, which guarantees every window holds at least one real element
  if (pt >= kh || pb >= kh || pl >= kw || pr >= kw) throw new Error(`${op}: pads [${a.pads.join(', ')}] must be smaller than the kernel`);
  const oh = Math.floor((h + pt + pb - kh) / a.strides[0]) + 1;
  const ow = Math.floor((w + pl + pr - kw) / a.strides[1]) + 1;
  if (oh < 1 || ow < 1) throw new Error(`${op}: the kernel does not fit the ${h}×${w} input`);
  return { n, c, h, w, oh, ow };
}

/**
 * Visits every window: `f(out, plane, y0, y1, x0, x1)` gets the output index, the input plane
 * offset and the window clipped to the input (half-open ranges).
 */
function forEachWindow(g: Windows, a: Pool2dAttrs, f: (out: number, plane: number, y0: number, y1: number, x0: number, x1: number) => void): void {
  const [kh, kw] = a.kernel;
  const [sh, sw] = a.strides;
  const [pt, pl] = a.pads;
  let out = 0;
  for (let p = 0; p < g.n * g.c; p++) {
    const plane = p * g.h * g.w;
    for (let oy = 0; oy < g.oh; oy++) {
      const ys = oy * sh - pt;
      const y0 = Math.max(ys, 0);
      const y1 = Math.min(ys + kh, g.h);
      for (let ox = 0; ox < g.ow; ox++) {
        const xs = ox * sw - pl;
        f(out++, plane, y0, y1, Math.max(xs, 0), Math.min(xs + kw, g.w));
      }
    }
  }
}

function divisor(a: Pool2dAttrs, y0: number, y1: number, x0: number, x1: number): number {
  return a.countIncludePad ? a.kernel[0] * a.kernel[1] : (y1 - y0) * (x1 - x0);
}

export function averagePoolForward<D extends Floats>(x: Nd<D>, a: Pool2dAttrs): Nd<D> {
  const g = windows(x, a, 'averagePool');
  const X = x.data;
  const y = alloc(X, g.n * g.c * g.oh * g.ow);
  forEachWindow(g, a, (out, plane, y0, y1, x0, x1) => {
    let acc = 0;
    for (let iy = y0; iy < y1; iy++) for (let ix = x0; ix < x1; ix++) acc += X[plane + iy * g.w + ix]!;
    y[out] = acc / divisor(a, y0, y1, x0, x1);
  });
  return { shape: [g.n, g.c, g.oh, g.ow], data: y };
}

/** Overlapping windows scatter into a float64 buffer, rounded to the output type once at the end. */
export function averagePoolBackward<D extends Floats>(x: Nd<D>, dy: Nd<D>, a: Pool2dAttrs): Nd<D> {
  const g = windows(x, a, 'averagePool');
  const DY = dy.data;
  if (DY.length !== g.n * g.c * g.oh * g.ow) throw new Error(`averagePool backward: dy is [${dy.shape.join(', ')}]`);
  const acc = new Float64Array(x.data.length);
  forEachWindow(g, a, (out, plane, y0, y1, x0, x1) => {
    const d = DY[out]! / divisor(a, y0, y1, x0, x1);
    for (let iy = y0; iy < y1; iy++) for (let ix = x0; ix < x1; ix++) acc[plane + iy * g.w + ix]! += d;
  });
  const dx = alloc(x.data, acc.length);
  dx.set(acc);
  return { shape: [...x.shape], data: dx };
}

/** Index of the window's maximum; the first one in scan order on ties, as PyTorch picks it. */
function argmax(X: Floats, w: number, plane: number, y0: number, y1: number, x0: number, x1: number): number {
  let best = plane + y0 * w + x0;
  for (let iy = y0; iy < y1; iy++) {
    for (let ix = x0; ix < x1; ix++) {
      const i = plane + iy * w + ix;
      if (X[i]! > X[best]!) best = i;
    }
  }
  return best;
}

export function maxPoolForward<D extends Floats>(x: Nd<D>, a: Pool2dAttrs): Nd<D> {
  const g = windows(x, a, 'maxPool');
  const X = x.data;
  const y = alloc(X, g.n * g.c * g.oh * g.ow);
  forEachWindow(g, a, (out, plane, y0, y1, x0, x1) => (y[out] = X[argmax(X, g.w, plane, y0, y1, x0, x1)]!));
  return { shape: [g.n, g.c, g.oh, g.ow], data: y };
}

/** Routes each output's gradient to the element it copied; recomputes the argmax rather than caching indices. */
export function maxPoolBackward<D extends Floats>(x: Nd<D>, dy: Nd<D>, a: Pool2dAttrs): Nd<D> {
  const g = windows(x, a, 'maxPool');
  const X = x.data;
  const DY = dy.data;
  if (DY.length !== g.n * g.c * g.oh * g.ow) throw new Error(`maxPool backward: dy is [${dy.shape.join(', ')}]`);
  const acc = new Float64Array(X.length);
  forEachWindow(g, a, (out, plane, y0, y1, x0, x1) => (acc[argmax(X, g.w, plane, y0, y1, x0, x1)]! += DY[out]!));
  const dx = alloc(X, acc.length);
  dx.set(acc);
  return { shape: [...x.shape], data: dx };
}
