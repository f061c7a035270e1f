import { alloc, nchw, type Floats, type Nd } from './nd';

/** ONNX Conv attributes in the order ONNX lists them; `pads` is [top, left, bottom, right]. */
export interface Conv2dAttrs {
  readonly strides: readonly [number, number];
  readonly pads: readonly [number, number, number, number];
  readonly dilations: readonly [number, number];
  /** Input and output channels split into `group` independent convolutions; group = C is depthwise. */
  readonly group: number;
}

export function conv2dAttrs(a: Partial<Conv2dAttrs> = {}): Conv2dAttrs {
  return { strides: a.strides ?? [1, 1], pads: a.pads ?? [0, 0, 0, 0], dilations: a.dilations ?? [1, 1], group: a.group ?? 1 };
}

interface Geometry {
  n: number;
  c: number;
  h: number;
  w: number;
  /** output channels */
  m: number;
  kh: number;
  kw: number;
  oh: number;
  ow: number;
  /** input / output channels per group */
  cg: number;
  mg: number;
}

function geometry(x: Nd<Floats>, w: Nd<Floats>, a: Conv2dAttrs): Geometry {
  const [n, c, h, wd] = nchw(x, 'conv2d');
  const [m, cg, kh, kw] = nchw(w, 'conv2d weight');
  if (c % a.group !== 0 || m % a.group !== 0 || cg * a.group !== c) {
    throw new Error(`conv2d: ${c} input and ${m} output channels do not split into ${a.group} groups of weight [${w.shape.join(', ')}]`);
  }
  const [sh, sw] = a.strides;
  const [dh, dw] = a.dilations;
  const [pt, pl, pb, pr] = a.pads;
  if (!(sh >= 1 && sw >= 1 && dh >= 1 && dw >= 1) || a.pads.some((p) => p < 0)) {
    throw new Error(`conv2d: strides and dilations must be ≥ 1 and pads ≥ 0, got ${JSON.stringify(a)}`);
  }
  const oh = Math.floor((h + pt + pb - dh * (kh - 1) - 1) / sh) + 1;
  const ow = Math.floor((wd + pl + pr - dw * (kw - 1) - 1) / sw) + 1;
  if (oh < 1 || ow < 1) throw new Error(`conv2d: the kernel does not fit the ${h}×${wd} input`);
  return { n, c, h, w: wd, m, kh, kw, oh, ow, cg, mg: m / a.group };
}

/**
 * The output positions o with 0 ≤ o·stride − pad + offset < size: where a kernel tap at `offset`
 * lands inside the input. Hoisting this out of the inner loops removes every per-element bounds test.
 */
function validRange(pad: number, offset: number, stride: number, inSize: number, outSize: number): [number, number] {
  const lo = Math.max(0, Math.ceil((pad - offset) / stride));
  const hi = Math.min(outSize, Math.floor((inSize - 1 + pad - offset) / stride) + 1);
  return [lo, hi];
}

export function conv2dForward<D extends Floats>(x: Nd<D>, w: Nd<D>, b: Nd<D> | null, a: Conv2dAttrs): Nd<D> {
  const g = geometry(x, w, a);
  const [sh, sw] = a.strides;
  const [dh, dw] = a.dilations;
  const [pt, pl] = a.pads;
  const X = x.data;
  const Wt = w.data;
  const y = alloc(X, g.n * g.m * g.oh * g.ow);
  // one output plane accumulates in float64, one kernel tap at a time, so the inner loop is a contiguous axpy
  const plane = new Float64Array(g.oh * g.ow);
  for (let n = 0; n < g.n; n++) {
    for (let m = 0; m < g.m; m++) {
      plane.fill(b ? b.data[m]! : 0);
      const c0 = Math.floor(m / g.mg) * g.cg;
      for (let ic = 0; ic < g.cg; ic++) {
        const xPlane = (n * g.c + c0 + ic) * g.h;
        for (let ky = 0; ky < g.kh; ky++) {
          const [oy0, oy1] = validRange(pt, ky * dh, sh, g.h, g.oh);
          for (let kx = 0; kx < g.kw; kx++) {
            const [ox0, ox1] = validRange(pl, kx * dw, sw, g.w, g.ow);
            const wv = Wt[((m * g.cg + ic) * g.kh + ky) * g.kw + kx]!;
            for (let oy = oy0; oy < oy1; oy++) {
              const xRow = (xPlane + oy * sh - pt + ky * dh) * g.w - pl + kx * dw;
              const yRow = oy * g.ow;
              for (let ox = ox0; ox < ox1; ox++) plane[yRow + ox]! += wv * X[xRow + ox * sw]!;
            }
          }
        }
      }
      y.set(plane, (n * g.m + m) * plane.length);
    }
  }
  return { shape: [g.n, g.m, g.oh, g.ow], data: y };
}

export interface Conv2dGrads<D extends Floats> {
  dx: Nd<D>;
  dw: Nd<D>;
  /** Always computed; a layer without bias ignores it. */
  db: Nd<D>;
}

/** The same loops as the forward pass, run per kernel tap over the valid output positions. */
export function conv2dBackward<D extends Floats>(x: Nd<D>, w: Nd<D>, dy: Nd<D>, a: Conv2dAttrs): Conv2dGrads<D> {
  const g = geometry(x, w, a);
  const [dn, dm, doh, dow] = nchw(dy, 'conv2d dy');
  if (dn !== g.n || dm !== g.m || doh !== g.oh || dow !== g.ow) {
    throw new Error(`conv2d backward: dy is [${dy.shape.join(', ')}], expected [${[g.n, g.m, g.oh, g.ow].join(', ')}]`);
  }
  const [sh, sw] = a.strides;
  const [dh, dw] = a.dilations;
  const [pt, pl] = a.pads;
  const X = x.data;
  const Wt = w.data;
  const DY = dy.data;
  const outPlane = g.oh * g.ow;

  const db = alloc(X, g.m);
  for (let m = 0; m < g.m; m++) {
    let acc = 0;
    for (let n = 0; n < g.n; n++) {
      const base = (n * g.m + m) * outPlane;
      for (let i = 0; i < outPlane; i++) acc += DY[base + i]!;
    }
    db[m] = acc;
  }

  const dW = alloc(X, Wt.length);
  // dx is a scatter (each input feeds several outputs): it accumulates in float64 and is rounded once
  const dx64 = new Float64Array(X.length);
  for (let m = 0; m < g.m; m++) {
    const c0 = Math.floor(m / g.mg) * g.cg;
    for (let ic = 0; ic < g.cg; ic++) {
      for (let ky = 0; ky < g.kh; ky++) {
        const [oy0, oy1] = validRange(pt, ky * dh, sh, g.h, g.oh);
        for (let kx = 0; kx < g.kw; kx++) {
          const [ox0, ox1] = validRange(pl, kx * dw, sw, g.w, g.ow);
          const k = ((m * g.cg + ic) * g.kh + ky) * g.kw + kx;
          const wv = Wt[k]!;
          let acc = 0;
          for (let n = 0; n < g.n; n++) {
            const xPlane = (n * g.c + c0 + ic) * g.h;
            const dyPlane = (n * g.m + m) * g.oh;
            for (let oy = oy0; oy < oy1; oy++) {
              const xRow = (xPlane + oy * sh - pt + ky * dh) * g.w - pl + kx * dw;
              const dyRow = (dyPlane + oy) * g.ow;
              for (let ox = ox0; ox < ox1; ox++) {
                const d = DY[dyRow + ox]!;
                acc += d * X[xRow + ox * sw]!;
                dx64[xRow + ox * sw]! += d * wv;
              }
            }
          }
          dW[k] = acc;
        }
      }
    }
  }
  const dx = alloc(X, X.length);
  dx.set(dx64);

  return { dx: { shape: [...x.shape], data: dx }, dw: { shape: [...w.shape], data: dW }, db: { shape: [g.m], data: db } };
}
