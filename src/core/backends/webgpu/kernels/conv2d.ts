import type { Conv2dAttrs } from '../../cpu/reference/conv2d';
import type { BindingDef, ParamFields } from '../runtime';
import type { GemmSpec, MapSpec, ReduceSpec } from '../skeletons';
import { ADAROUND, DIV, GRID_PARAMS, SIGMOID, prelude } from '../wgsl';

/*
 * Convolution as implicit GEMM: the im2col matrix is never written; the GEMM's operand loads
 * compute, per element, which input pixel (or output-gradient pixel) a column stands for. Groups
 * are the GEMM's batch dimension. Three passes, as cuDNN names them:
 *   forward  Y[g]  (mg × B·OH·OW)     = W[g] (mg × cg·KH·KW) · cols(X)[g]
 *   dgrad    dX[g] (cg × B·H·W)       = W[g]ᵀ (cg × mg·KH·KW) · rows(dY)[g]   (zero where no tap lands)
 *   wgrad    dW[g] (mg × cg·KH·KW)    = dY[g] (mg × B·OH·OW) · cols(X)[g]ᵀ    (split over K when small)
 * A depthwise convolution (one input channel per group) has GEMMs of width 1: it runs on direct
 * kernels instead, one thread per output (input) element and a reduction per weight.
 */

export interface ConvGeometry {
  readonly n: number;
  readonly c: number;
  readonly h: number;
  readonly w: number;
  /** output channels */
  readonly m: number;
  readonly kh: number;
  readonly kw: number;
  readonly oh: number;
  readonly ow: number;
  readonly cg: number;
  readonly mg: number;
  readonly group: number;
}

/** The reference's shape rules and messages (reference/conv2d.ts), on shapes alone. */
export function convGeometry(x: readonly number[], w: readonly number[], a: Conv2dAttrs): ConvGeometry {
  const [n, c, h, wd] = x;
  const [m, cg, kh, kw] = w;
  if (x.length !== 4 || n === undefined || c === undefined || h === undefined || wd === undefined) throw new Error(`conv2d: expected an NCHW tensor, got shape [${x.join(', ')}]`);
  if (w.length !== 4 || m === undefined || cg === undefined || kh === undefined || kw === undefined) throw new Error(`conv2d weight: expected an NCHW tensor, got shape [${w.join(', ')}]`);
  if (c % a.group !== 0 || m % a.group !== 0 || cg * a.group !== c) {
    throw new Error(`conv2d: ${c} input and ${m} output channels do not split into ${a.group} groups of weight [${w.join(', ')}]`);
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
  return { n, c, h, w: wd, m, kh, kw, oh, ow, cg, mg: m / a.group, group: a.group };
}

export function isDepthwise(g: ConvGeometry): boolean {
  return g.cg === 1 && g.group === g.c && g.group > 1;
}

export const CONV_PARAMS = {
  C: 'u32', H: 'u32', W: 'u32', Mt: 'u32', cg: 'u32', mg: 'u32', KH: 'u32', KW: 'u32', KHW: 'u32',
  OH: 'u32', OW: 'u32', OHW: 'u32', HW: 'u32', sh: 'u32', sw: 'u32', dh: 'u32', dw: 'u32', pt: 'i32', pl: 'i32',
  ...GRID_PARAMS,
} as const satisfies ParamFields;

export function convValues(g: ConvGeometry, a: Conv2dAttrs): Record<keyof typeof CONV_PARAMS, number> {
  return {
    C: g.c, H: g.h, W: g.w, Mt: g.m, cg: g.cg, mg: g.mg, KH: g.kh, KW: g.kw, KHW: g.kh * g.kw,
    OH: g.oh, OW: g.ow, OHW: g.oh * g.ow, HW: g.h * g.w, sh: a.strides[0], sw: a.strides[1], dh: a.dilations[0], dw: a.dilations[1],
    pt: a.pads[0], pl: a.pads[1], qrun: 1, qmin: 0, qmax: 0,
  };
}

/** The soft-rounding inputs of a weight read through AdaRound. */
const SOFT_BINDINGS: BindingDef[] = [
  { name: 'V', access: 'read' },
  { name: 'Scale', access: 'read' },
  { name: 'Zero', access: 'read' },
];
const SOFT_PRELUDE = prelude(SIGMOID, DIV, ADAROUND);

/** Reads weight element `i` (of output channel `oc`), soft-rounded or not. */
const weightAt = (soft: boolean, i: string): string => (soft ? `softW(Wt[${i}], V[${i}], Scale[${i} / p.qrun], Zero[${i} / p.qrun])` : `Wt[${i}]`);

/** Column (ic, ky, kx) × position (b, oy, ox) of the im2col matrix: an input pixel or padding. */
const IM2COL = /* wgsl */ `
fn im2col(g: u32, ic: u32, r: u32, b: u32, q: u32) -> f32 {
  let ky = r / p.KW;
  let kx = r - ky * p.KW;
  let oy = q / p.OW;
  let ox = q - oy * p.OW;
  let iy = i32(oy * p.sh + ky * p.dh) - p.pt;
  let ix = i32(ox * p.sw + kx * p.dw) - p.pl;
  if (iy < 0 || ix < 0 || iy >= i32(p.H) || ix >= i32(p.W)) { return 0.0; }
  return X[((b * p.C + g * p.cg + ic) * p.H + u32(iy)) * p.W + u32(ix)];
}`;

const specs = new Map<string, GemmSpec | MapSpec | ReduceSpec>();
function memo<S extends GemmSpec | MapSpec | ReduceSpec>(key: string, make: () => S): S {
  let s = specs.get(key);
  if (!s) specs.set(key, (s = make()));
  return s as S;
}

export function convForwardSpec(bias: boolean, soft: boolean): GemmSpec {
  return memo(`fwd${bias}${soft}`, () => ({
    label: `conv2d forward${soft ? ' (AdaRound weights)' : ''}`,
    params: CONV_PARAMS,
    bindings: [{ name: 'X', access: 'read' }, { name: 'Wt', access: 'read' }, { name: 'Bias', access: 'read' }, { name: 'Y', access: 'read_write' }, ...(soft ? SOFT_BINDINGS : [])],
    prelude: prelude(soft ? SOFT_PRELUDE : '', IM2COL),
    loadA: `  let i = (g * p.mg + m) * p.K + k;\n  return ${weightAt(soft, 'i')};`,
    loadB: `  let ic = k / p.KHW;
  let b = n / p.OHW;
  return im2col(g, ic, k - ic * p.KHW, b, n - b * p.OHW);`,
    epilogue: `  let oc = g * p.mg + m;
  let b = n / p.OHW;
  Y[(b * p.Mt + oc) * p.OHW + n - b * p.OHW] = v${bias ? ' + Bias[oc]' : ''};`,
    aFast: 'k',
    bFast: 'n',
  }));
}

export function convInputGradSpec(soft: boolean): GemmSpec {
  return memo(`dgrad${soft}`, () => ({
    label: `conv2d input gradient${soft ? ' (AdaRound weights)' : ''}`,
    params: CONV_PARAMS,
    bindings: [{ name: 'DY', access: 'read' }, { name: 'Wt', access: 'read' }, { name: 'DX', access: 'read_write' }, ...(soft ? SOFT_BINDINGS : [])],
    prelude: soft ? SOFT_PRELUDE : '',
    loadA: `  let mm = k / p.KHW;
  let i = ((g * p.mg + mm) * p.cg + m) * p.KHW + k - mm * p.KHW;
  return ${weightAt(soft, 'i')};`,
    // the output position that tap (ky, kx) of input pixel (iy, ix) came from, if any
    loadB: `  let mm = k / p.KHW;
  let r = k - mm * p.KHW;
  let ky = r / p.KW;
  let kx = r - ky * p.KW;
  let b = n / p.HW;
  let q = n - b * p.HW;
  let iy = q / p.W;
  let ix = q - iy * p.W;
  let ty = i32(iy) + p.pt - i32(ky * p.dh);
  let tx = i32(ix) + p.pl - i32(kx * p.dw);
  if (ty < 0 || tx < 0) { return 0.0; }
  let oy = u32(ty) / p.sh;
  let ox = u32(tx) / p.sw;
  if (oy * p.sh != u32(ty) || ox * p.sw != u32(tx) || oy >= p.OH || ox >= p.OW) { return 0.0; }
  return DY[((b * p.Mt + g * p.mg + mm) * p.OH + oy) * p.OW + ox];`,
    epilogue: `  let b = n / p.HW;
  DX[(b * p.C + g * p.cg + m) * p.HW + n - b * p.HW] = v;`,
    aFast: 'k',
    bFast: 'n',
  }));
}

export function convWeightGradSpec(soft: boolean): GemmSpec {
  return memo(`wgrad${soft}`, () => ({
    label: `conv2d weight gradient${soft ? ' → AdaRound dV' : ''}`,
    params: CONV_PARAMS,
    bindings: [{ name: 'X', access: 'read' }, { name: 'DY', access: 'read' }, { name: 'DW', access: 'read_write' }, ...(soft ? [{ name: 'Wt', access: 'read' } as const, ...SOFT_BINDINGS] : [])],
    prelude: prelude(soft ? SOFT_PRELUDE : '', IM2COL),
    loadA: `  let b = k / p.OHW;
  return DY[(b * p.Mt + g * p.mg + m) * p.OHW + k - b * p.OHW];`,
    loadB: `  let ic = n / p.KHW;
  let b = k / p.OHW;
  return im2col(g, ic, n - ic * p.KHW, b, k - b * p.OHW);`,
    epilogue: soft
      ? `  let i = (g * p.mg + m) * p.N + n;
  let c = i / p.qrun;
  DW[i] = v * softWGrad(Wt[i], V[i], Scale[c], Zero[c]);`
      : `  DW[(g * p.mg + m) * p.N + n] = v;`,
    aFast: 'k',
    bFast: 'k',
  }));
}

/** Σ over every axis but 1 of dY [B, C, inner]: conv and Gemm bias gradients (inner = 1 for Gemm). */
export const CHANNEL_SUM: ReduceSpec = {
  label: 'bias gradient',
  params: { inner: 'u32' },
  bindings: [{ name: 'DY', access: 'read' }],
  prelude: '',
  elem: `  let b = j / p.inner;
  return DY[(b * p.channels + c) * p.inner + j - b * p.inner];`,
};

// ---------------------------------------------------------------------------------------------
// depthwise (cg = 1): mg = channel multiplier

export function depthwiseForwardSpec(bias: boolean): MapSpec {
  return memo(`dwfwd${bias}`, () => ({
    label: 'depthwise conv2d forward',
    params: CONV_PARAMS,
    bindings: [{ name: 'X', access: 'read' }, { name: 'Wt', access: 'read' }, { name: 'Bias', access: 'read' }, { name: 'Y', access: 'read_write' }],
    prelude: '',
    body: `    let ox = i % p.OW;
    let t1 = i / p.OW;
    let oy = t1 % p.OH;
    let t2 = t1 / p.OH;
    let m = t2 % p.Mt;
    let b = t2 / p.Mt;
    let xb = (b * p.C + m / p.mg) * p.H;
    var acc = ${bias ? 'Bias[m]' : '0.0'};
    for (var ky = 0u; ky < p.KH; ky++) {
      let iy = i32(oy * p.sh + ky * p.dh) - p.pt;
      if (iy < 0 || iy >= i32(p.H)) { continue; }
      for (var kx = 0u; kx < p.KW; kx++) {
        let ix = i32(ox * p.sw + kx * p.dw) - p.pl;
        if (ix < 0 || ix >= i32(p.W)) { continue; }
        acc = fma(X[(xb + u32(iy)) * p.W + u32(ix)], Wt[m * p.KHW + ky * p.KW + kx], acc);
      }
    }
    Y[i] = acc;`,
  }));
}

export const DEPTHWISE_INPUT_GRAD: MapSpec = {
  label: 'depthwise conv2d input gradient',
  params: CONV_PARAMS,
  bindings: [{ name: 'DY', access: 'read' }, { name: 'Wt', access: 'read' }, { name: 'DX', access: 'read_write' }],
  prelude: '',
  body: `    let ix = i % p.W;
    let t1 = i / p.W;
    let iy = t1 % p.H;
    let t2 = t1 / p.H;
    let c = t2 % p.C;
    let b = t2 / p.C;
    var acc = 0.0;
    for (var j = 0u; j < p.mg; j++) {
      let m = c * p.mg + j;
      let dyb = (b * p.Mt + m) * p.OH;
      for (var ky = 0u; ky < p.KH; ky++) {
        let ty = i32(iy) + p.pt - i32(ky * p.dh);
        if (ty < 0) { continue; }
        let oy = u32(ty) / p.sh;
        if (oy * p.sh != u32(ty) || oy >= p.OH) { continue; }
        for (var kx = 0u; kx < p.KW; kx++) {
          let tx = i32(ix) + p.pl - i32(kx * p.dw);
          if (tx < 0) { continue; }
          let ox = u32(tx) / p.sw;
          if (ox * p.sw != u32(tx) || ox >= p.OW) { continue; }
          acc = fma(DY[(dyb + oy) * p.OW + ox], Wt[m * p.KHW + ky * p.KW + kx], acc);
        }
      }
    }
    DX[i] = acc;`,
};

/** dW[m, ky, kx] = Σ_{b, oy, ox} dY·X: one reduction per weight; with AdaRound, dV on the way out. */
export function depthwiseWeightGradSpec(soft: boolean): ReduceSpec {
  return memo(`dwwgrad${soft}`, () => ({
    label: `depthwise conv2d weight gradient${soft ? ' → AdaRound dV' : ''}`,
    params: CONV_PARAMS,
    bindings: [{ name: 'X', access: 'read' }, { name: 'DY', access: 'read' }, ...(soft ? [{ name: 'Wt', access: 'read' } as const, ...SOFT_BINDINGS] : [])],
    prelude: soft ? SOFT_PRELUDE : '',
    elem: `  let m = c / p.KHW;
  let r = c - m * p.KHW;
  let ky = r / p.KW;
  let kx = r - ky * p.KW;
  let b = j / p.OHW;
  let q = j - b * p.OHW;
  let oy = q / p.OW;
  let ox = q - oy * p.OW;
  let iy = i32(oy * p.sh + ky * p.dh) - p.pt;
  let ix = i32(ox * p.sw + kx * p.dw) - p.pl;
  if (iy < 0 || ix < 0 || iy >= i32(p.H) || ix >= i32(p.W)) { return 0.0; }
  return DY[(b * p.Mt + m) * p.OHW + q] * X[((b * p.C + m / p.mg) * p.H + u32(iy)) * p.W + u32(ix)];`,
    finish: soft ? `  let s = c / p.qrun;\n  return v * softWGrad(Wt[c], V[c], Scale[s], Zero[s]);` : undefined,
  }));
}
