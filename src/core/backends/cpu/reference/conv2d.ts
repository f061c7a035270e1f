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
  const oh = Math.floor((h + pt + pb - dh * (kh - 1) - 1) / sh) + 1;
  const ow = Math.floor((wd + pl + pr - dw * (kw - 1) - 1) / sw) + 1;
  if (oh < 1 || ow < 1) throw new Error(`conv2d: the kernel does not fit the ${h}×${wd} input`);
  return { n, c, h, w: wd, m, kh, kw, oh, ow, cg, mg: m / a.group };
}

export function conv2dForward<D extends Floats>(x: Nd<D>, w: Nd<D>, b: Nd<D> | null, a: Conv2dAttrs): Nd<D> {
  const g = geometry(x, w, a);
  const [sh, sw] = a.strides;
  const [dh, dw] = a.dilations;
  const [pt, pl] = a.pads;
  const X = x.data;
  const Wt = w.data;
  const y = alloc(X, g.n * g.m * g.oh * g.ow);
  let o = 0;
  for (let n = 0; n < g.n; n++) {
    for (let m = 0; m < g.m; m++) {
      const c0 = Math.floor(m / g.mg) * g.cg;
      const bias = b ? b.data[m]! : 0;
      for (let oy = 0; oy < g.oh; oy++) {
        for (let ox = 0; ox < g.ow; ox++) {
          let acc = bias;
          for (let ic = 0; ic < g.cg; ic++) {
            const xPlane = (n * g.c + c0 + ic) * g.h;
            const wBase = (m * g.cg + ic) * g.kh;
            for (let ky = 0; ky < g.kh; ky++) {
              const iy = oy * sh - pt + ky * dh;
              if (iy < 0 || iy >= g.h) continue;
              const xRow = (xPlane + iy) * g.w;
              const wRow = (wBase + ky) * g.kw;
              for (let kx = 0; kx < g.kw; kx++) {
                const ix = ox * sw - pl + kx * dw;
                if (ix < 0 || ix >= g.w) continue;
                acc += X[xRow + ix]! * Wt[wRow + kx]!;
              }
            }
          }
          y[o++] = acc;
        }
      }
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

/**
 * Each gradient element is gathered into its own float64 accumulator (no scatter), so results do
 * not depend on summation order across threads when a fast backend splits the same loops.
 */
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
  for (let m = 0; m < g.m; m++) {
    const c0 = Math.floor(m / g.mg) * g.cg;
    for (let ic = 0; ic < g.cg; ic++) {
      for (let ky = 0; ky < g.kh; ky++) {
        for (let kx = 0; kx < g.kw; kx++) {
          let acc = 0;
          for (let n = 0; n < g.n; n++) {
            const xPlane = (n * g.c + c0 + ic) * g.h;
            const dyPlane = (n * g.m + m) * g.oh;
            for (let oy = 0; oy < g.oh; oy++) {
              const iy = oy * sh - pt + ky * dh;
              if (iy < 0 || iy >= g.h) continue;
              const xRow = (xPlane + iy) * g.w;
              const dyRow = (dyPlane + oy) * g.ow;
              for (let ox = 0; ox < g.ow; ox++) {
                const ix = ox * sw - pl + kx * dw;
                if (ix < 0 || ix >= g.w) continue;
                acc += DY[dyRow + ox]! * X[xRow + ix]!;
              }
            }
          }
          dW[((m * g.cg + ic) * g.kh + ky) * g.kw + kx] = acc;
        }
      }
    }
  }

  // dx[iy] collects every (oy, ky) with oy·sh − pt + ky·dh = iy: the strided positions it was read from
  const dx = alloc(X, X.length);
  let o = 0;
  for (let n = 0; n < g.n; n++) {
    for (let c = 0; c < g.c; c++) {
      const group = Math.floor(c / g.cg);
      const ic = c - group * g.cg;
      for (let iy = 0; iy < g.h; iy++) {
        for (let ix = 0; ix < g.w; ix++) {
          let acc = 0;
          for (let m = group * g.mg; m < (group + 1) * g.mg; m++) {
            const dyPlane = (n * g.m + m) * g.oh;
            const wBase = (m * g.cg + ic) * g.kh;
            for (let ky = 0; ky < g.kh; ky++) {
              const ty = iy + pt - ky * dh;
              if (ty < 0 || ty % sh !== 0) continue;
              const oy = ty / sh;
              if (oy >= g.oh) continue;
              const dyRow = (dyPlane + oy) * g.ow;
              const wRow = (wBase + ky) * g.kw;
              for (let kx = 0; kx < g.kw; kx++) {
                const tx = ix + pl - kx * dw;
                if (tx < 0 || tx % sw !== 0) continue;
                const ox = tx / sw;
                if (ox >= g.ow) continue;
                acc += DY[dyRow + ox]! * Wt[wRow + kx]!;
              }
            }
          }
          dx[o++] = acc;
        }
      }
    }
  }

  return { dx: { shape: [...x.shape], data: dx }, dw: { shape: [...w.shape], data: dW }, db: { shape: [g.m], data: db } };
}
