import type { NodeProto } from '../onnx/schema';
import { scratch32, zeros32 } from '../tensor/buffer-pool';
import { attrFloat, attrInt, attrInts, attrString } from '../graph/attributes';
import {
  averagePoolBackward,
  averagePoolForward,
  clipBackward,
  clipForward,
  globalAveragePoolBackward,
  globalAveragePoolForward,
  hardSigmoidBackward,
  hardSigmoidForward,
  hardSwishBackward,
  hardSwishForward,
  leakyReluBackward,
  leakyReluForward,
  maxPoolBackward,
  maxPoolForward,
  pool2dAttrs,
  reluBackward,
  reluForward,
  sigmoidBackward,
  sigmoidForward,
  type Clamp,
  type Conv2dAttrs,
  type Nd,
  type Pool2dAttrs,
} from '../backends/cpu/reference';
import { broadcastIndex, Broadcaster, reduceTo } from './broadcast';
import type { ConvEngine } from './conv-engine';

/**
 * One ONNX node as the reconstruction engine runs it: a forward, and a backward that returns the
 * gradient of each input that is asked for (`need`), null for the others; a gradient may be `dy`'s
 * own array (Add, Identity), and the program copies when two inputs get it. Kernels keep whatever
 * depends only on shapes (index maps, padding) between calls, so a training loop allocates no
 * bookkeeping per iteration.
 */
export interface Kernel {
  forward(inputs: readonly (Nd | null)[]): Nd;
  backward(inputs: readonly (Nd | null)[], output: Nd, dy: Nd, need: readonly boolean[]): (Nd | null)[];
}

/** What a kernel factory may ask about the node's inputs beyond its attributes. */
export interface KernelContext {
  /** The value of input `i` when it is a constant (initializer or Constant node), else null. */
  constant(i: number): Nd | null;
  /** The convolution implementation to use (fast WASM path, or the reference). */
  conv(attrs: Conv2dAttrs, bias: Nd | null): ConvEngine;
}

export class UnsupportedOpError extends Error {
  override name = 'UnsupportedOpError';
}

type Factory = (node: NodeProto, ctx: KernelContext) => Kernel;

const size = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);
const req = (x: Nd | null | undefined, node: NodeProto, i: number): Nd => {
  if (!x) throw new Error(`node "${node.name}" (${node.opType}): input ${i} is missing`);
  return x;
};
const ints = (t: Nd | null): number[] | undefined => (t ? Array.from(t.data, (v) => Math.round(v)) : undefined);

/** A unary element-wise op, its gradient computed from the input. */
function unary(fwd: (x: Nd) => Nd, bwd: (x: Nd, dy: Nd) => Nd): Factory {
  return (node) => ({
    forward: (i) => fwd(req(i[0], node, 0)),
    backward: (i, _y, dy, need) => [need[0] ? bwd(req(i[0], node, 0), dy) : null],
  });
}

function clipBounds(node: NodeProto, ctx: KernelContext): [number, number] {
  const lo = ctx.constant(1)?.data[0] ?? attrFloat(node, 'min', -Infinity);
  const hi = ctx.constant(2)?.data[0] ?? attrFloat(node, 'max', Infinity);
  if ((node.input?.[1] && !ctx.constant(1)) || (node.input?.[2] && !ctx.constant(2))) throw new UnsupportedOpError(`node "${node.name}" (Clip): bounds computed at run time are not supported inside a reconstructed block`);
  return [lo, hi];
}

type BinaryOp = 'Add' | 'Sub' | 'Mul' | 'Div';

function binary(op: BinaryOp): Factory {
  return (node) => {
    const bc = new Broadcaster(op);
    return {
      forward(inp) {
        const a = req(inp[0], node, 0);
        const b = req(inp[1], node, 1);
        const { shape, ia, ib } = bc.plan(a, b);
        const y = scratch32(size(shape));
        if (!ia && !ib) sameShapeBinary(op, a.data, b.data, y);
        else {
          const A = a.data;
          const B = b.data;
          for (let k = 0; k < y.length; k++) {
            const u = A[ia ? ia[k]! : k]!;
            const v = B[ib ? ib[k]! : k]!;
            y[k] = op === 'Add' ? u + v : op === 'Sub' ? u - v : op === 'Mul' ? u * v : u / v;
          }
        }
        return { shape, data: y };
      },
      backward(inp, _y, dy, need) {
        const a = req(inp[0], node, 0);
        const b = req(inp[1], node, 1);
        const { ia, ib } = bc.plan(a, b);
        const D = dy.data;
        let da: Nd | null = null;
        let db: Nd | null = null;
        if (need[0]) {
          if (op === 'Add' || op === 'Sub') da = reduceTo(D, ia, a.shape);
          else {
            const g = scratch32(D.length);
            for (let k = 0; k < D.length; k++) {
              const v = b.data[ib ? ib[k]! : k]!;
              g[k] = op === 'Mul' ? D[k]! * v : D[k]! / v;
            }
            da = reduceTo(g, ia, a.shape);
          }
        }
        if (need[1]) {
          let g: Float32Array;
          if (op === 'Add') g = D;
          else {
            g = scratch32(D.length);
            for (let k = 0; k < D.length; k++) {
              const u = a.data[ia ? ia[k]! : k]!;
              const v = b.data[ib ? ib[k]! : k]!;
              g[k] = op === 'Sub' ? -D[k]! : op === 'Mul' ? D[k]! * u : (-D[k]! * u) / (v * v);
            }
          }
          db = reduceTo(g, ib, b.shape);
        }
        return [da, db];
      },
    };
  };
}

/** The common case of a residual Add: no index maps, one loop per op that the compiler can keep tight. */
function sameShapeBinary(op: BinaryOp, A: Float32Array, B: Float32Array, y: Float32Array): void {
  const n = y.length;
  if (op === 'Add') for (let k = 0; k < n; k++) y[k] = A[k]! + B[k]!;
  else if (op === 'Sub') for (let k = 0; k < n; k++) y[k] = A[k]! - B[k]!;
  else if (op === 'Mul') for (let k = 0; k < n; k++) y[k] = A[k]! * B[k]!;
  else for (let k = 0; k < n; k++) y[k] = A[k]! / B[k]!;
}

/** Pads for auto_pad SAME_* from the input size, as ONNX defines them. */
function samePads(inSize: number, k: number, s: number, d: number, upper: boolean): [number, number] {
  const out = Math.ceil(inSize / s);
  const total = Math.max(0, (out - 1) * s + (k - 1) * d + 1 - inSize);
  const small = Math.floor(total / 2);
  return upper ? [small, total - small] : [total - small, small];
}

/** [top, left, bottom, right] pads of a 2-D window op, auto_pad resolved against the input's size. */
export function spatialPads(node: NodeProto, x: Nd, kernel: readonly [number, number], strides: readonly [number, number], dilations: readonly [number, number]): [number, number, number, number] {
  const auto = attrString(node, 'auto_pad', 'NOTSET');
  if (auto === 'VALID') return [0, 0, 0, 0];
  if (auto === 'SAME_UPPER' || auto === 'SAME_LOWER') {
    const [t, b] = samePads(x.shape[2]!, kernel[0], strides[0], dilations[0], auto === 'SAME_UPPER');
    const [l, r] = samePads(x.shape[3]!, kernel[1], strides[1], dilations[1], auto === 'SAME_UPPER');
    return [t, l, b, r];
  }
  const p = attrInts(node, 'pads') ?? [0, 0, 0, 0];
  return [p[0]!, p[1]!, p[2]!, p[3]!];
}

function require2d(node: NodeProto, x: Nd): void {
  if (x.shape.length !== 4) throw new UnsupportedOpError(`node "${node.name}" (${node.opType}): only 2-D (N×C×H×W) inputs are supported inside a reconstructed block, got [${x.shape.join(', ')}]`);
}

/**
 * A Conv kernel that can also run with the activation after it fused (BlockProgram decides when):
 * the activation is applied in the convolution's own memory on the way out, and its gradient
 * masks dy on the way in, so the pre-activation tensor is never materialised.
 */
export interface ConvKernel extends Kernel {
  forwardFused(inputs: readonly (Nd | null)[], act: Clamp): Nd;
  /** `y` is what forwardFused returned; dy is the gradient there. */
  backwardFused(inputs: readonly (Nd | null)[], y: Nd, dy: Nd, need: readonly boolean[], act: Clamp): (Nd | null)[];
}

export function convKernel(node: NodeProto, ctx: KernelContext): ConvKernel {
  const bias = ctx.constant(2);
  const wConst = ctx.constant(1);
  let key = '';
  let engine: ConvEngine | null = null;
  const engineFor = (x: Nd, w: Nd): ConvEngine => {
    require2d(node, x);
    const k = `${x.shape.join(',')}/${w.shape.join(',')}`;
    if (k !== key || !engine) {
      const kernel = [w.shape[2]!, w.shape[3]!] as const;
      const strides = (attrInts(node, 'strides') ?? [1, 1]) as [number, number];
      const dilations = (attrInts(node, 'dilations') ?? [1, 1]) as [number, number];
      engine = ctx.conv({ strides, dilations, pads: spatialPads(node, x, kernel, strides, dilations), group: attrInt(node, 'group', 1) }, bias);
      key = k;
    }
    return engine;
  };
  const forward = (i: readonly (Nd | null)[], act?: Clamp): Nd => {
    const x = req(i[0], node, 0);
    const w = req(i[1] ?? wConst, node, 1);
    return engineFor(x, w).forward(x, w, act);
  };
  const backward = (i: readonly (Nd | null)[], dy: Nd, need: readonly boolean[], act?: { clamp: Clamp; y: Nd }): (Nd | null)[] => {
    const x = req(i[0], node, 0);
    const w = req(i[1] ?? wConst, node, 1);
    const { dx, dw } = engineFor(x, w).backward(x, w, dy, { dx: need[0] === true, dw: need[1] === true }, act);
    return [dx, dw, null];
  };
  return {
    forward: (i) => forward(i),
    backward: (i, _y, dy, need) => backward(i, dy, need),
    forwardFused: (i, act) => forward(i, act),
    backwardFused: (i, y, dy, need, act) => backward(i, dy, need, { clamp: act, y }),
  };
}

/** The clamp a Relu or a constant-bound Clip node computes, or null for any other node (not fusable). */
export function fusableClamp(node: NodeProto, constant: (i: number) => Nd | null): Clamp | null {
  if (node.opType === 'Relu') return { lo: 0, hi: Infinity };
  if (node.opType !== 'Clip') return null;
  try {
    const [lo, hi] = clipBounds(node, { constant, conv: () => { throw new Error('unused'); } });
    return { lo, hi };
  } catch {
    return null;
  }
}

/**
 * Gemm and MatMul as a linear layer y = x·Wᵀ·α + β·c, with W in [out, in] form: the engine hands
 * every layer its weight output channels first (the quantizer's layout), and the program turns
 * Gemm(transB = 0) and MatMul weights that way once. Leading axes of a MatMul input are rows.
 */
function linear(x: Nd, w: Nd, bias: Nd | null, alpha: number, beta: number): Nd {
  const inF = w.shape[1]!;
  const outF = w.shape[0]!;
  const rows = x.data.length / inF;
  const y = zeros32(rows * outF);
  const X = x.data;
  const W = w.data;
  for (let n = 0; n < rows; n++) {
    const xr = n * inF;
    for (let o = 0; o < outF; o++) {
      const wr = o * inF;
      let acc = 0;
      for (let i = 0; i < inF; i++) acc += X[xr + i]! * W[wr + i]!;
      y[n * outF + o] = alpha * acc + (bias ? beta * bias.data[bias.data.length === 1 ? 0 : o]! : 0);
    }
  }
  return { shape: [...x.shape.slice(0, -1), outF], data: y };
}

function linearBackward(x: Nd, w: Nd, dy: Nd, alpha: number, need: readonly boolean[]): [Nd | null, Nd | null] {
  const inF = w.shape[1]!;
  const outF = w.shape[0]!;
  const rows = x.data.length / inF;
  const X = x.data;
  const W = w.data;
  const D = dy.data;
  let dx: Nd | null = null;
  let dw: Nd | null = null;
  if (need[0]) {
    const g = zeros32(X.length);
    for (let n = 0; n < rows; n++) {
      for (let o = 0; o < outF; o++) {
        const d = alpha * D[n * outF + o]!;
        if (d === 0) continue;
        const wr = o * inF;
        const xr = n * inF;
        for (let i = 0; i < inF; i++) g[xr + i]! += d * W[wr + i]!;
      }
    }
    dx = { shape: [...x.shape], data: g };
  }
  if (need[1]) {
    const g = zeros32(W.length);
    for (let n = 0; n < rows; n++) {
      for (let o = 0; o < outF; o++) {
        const d = alpha * D[n * outF + o]!;
        if (d === 0) continue;
        const wr = o * inF;
        const xr = n * inF;
        for (let i = 0; i < inF; i++) g[wr + i]! += d * X[xr + i]!;
      }
    }
    dw = { shape: [...w.shape], data: g };
  }
  return [dx, dw];
}

const gemm: Factory = (node, ctx) => {
  if (attrInt(node, 'transA', 0) !== 0) throw new UnsupportedOpError(`node "${node.name}" (Gemm): transA = 1 is not supported inside a reconstructed block`);
  const alpha = attrFloat(node, 'alpha', 1);
  const beta = attrFloat(node, 'beta', 1);
  const bias = ctx.constant(2);
  if (node.input?.[2] && !bias) throw new UnsupportedOpError(`node "${node.name}" (Gemm): a bias computed at run time is not supported inside a reconstructed block`);
  return {
    forward: (i) => linear(req(i[0], node, 0), req(i[1], node, 1), bias, alpha, beta),
    backward: (i, _y, dy, need) => [...linearBackward(req(i[0], node, 0), req(i[1], node, 1), dy, alpha, need), null],
  };
};

const matmul: Factory = (node) => ({
  forward: (i) => linear(req(i[0], node, 0), req(i[1], node, 1), null, 1, 0),
  backward: (i, _y, dy, need) => linearBackward(req(i[0], node, 0), req(i[1], node, 1), dy, 1, need),
});

function poolAttrs(node: NodeProto, x: Nd): Pool2dAttrs {
  require2d(node, x);
  const k = attrInts(node, 'kernel_shape');
  if (!k || k.length !== 2) throw new UnsupportedOpError(`node "${node.name}" (${node.opType}): only 2-D pooling is supported`);
  if ((attrInts(node, 'dilations') ?? [1, 1]).some((d) => d !== 1)) throw new UnsupportedOpError(`node "${node.name}" (${node.opType}): dilated pooling is not supported`);
  const kernel = [k[0]!, k[1]!] as const;
  const strides = (attrInts(node, 'strides') ?? [1, 1]) as [number, number];
  const pads = spatialPads(node, x, kernel, strides, [1, 1]);
  if (attrInt(node, 'ceil_mode', 0) === 1) {
    // ceil mode = extra padding at the end, where the window's padding is ignored by both pools
    for (const axis of [0, 1] as const) {
      const n = x.shape[2 + axis]!;
      const span = n + pads[axis]! + pads[axis + 2]! - kernel[axis];
      let out = Math.ceil(span / strides[axis]) + 1;
      if ((out - 1) * strides[axis] >= n + pads[axis]!) out--;
      pads[axis + 2]! += Math.max(0, (out - 1) * strides[axis] + kernel[axis] - (n + pads[axis]! + pads[axis + 2]!));
    }
  }
  return pool2dAttrs(kernel, { strides, pads, countIncludePad: attrInt(node, 'count_include_pad', 0) === 1 });
}

const maxPool: Factory = (node) => ({
  forward: (i) => maxPoolForward(req(i[0], node, 0), poolAttrs(node, req(i[0], node, 0))),
  backward: (i, _y, dy, need) => [need[0] ? maxPoolBackward(req(i[0], node, 0), dy, poolAttrs(node, req(i[0], node, 0))) : null],
});

const averagePool: Factory = (node) => ({
  forward: (i) => averagePoolForward(req(i[0], node, 0), poolAttrs(node, req(i[0], node, 0))),
  backward: (i, _y, dy, need) => [need[0] ? averagePoolBackward(req(i[0], node, 0), dy, poolAttrs(node, req(i[0], node, 0))) : null],
});

/** Ops that only re-label the elements: the gradient is dy with the input's shape. */
function reshapeLike(outShape: (node: NodeProto, x: Nd, ctx: KernelContext) => number[]): Factory {
  return (node, ctx) => ({
    forward: (i) => {
      const x = req(i[0], node, 0);
      return { shape: outShape(node, x, ctx), data: x.data };
    },
    backward: (i, _y, dy, need) => [need[0] ? { shape: [...req(i[0], node, 0).shape], data: dy.data } : null, null],
  });
}

const flattenShape = (node: NodeProto, x: Nd): number[] => {
  let axis = attrInt(node, 'axis', 1);
  if (axis < 0) axis += x.shape.length;
  return [size(x.shape.slice(0, axis)), size(x.shape.slice(axis))];
};

const reshapeShape = (node: NodeProto, x: Nd, ctx: KernelContext): number[] => {
  const target = ints(ctx.constant(1));
  if (!target) throw new UnsupportedOpError(`node "${node.name}" (Reshape): a shape computed at run time is not supported inside a reconstructed block`);
  const allowZero = attrInt(node, 'allowzero', 0) === 1;
  const out = target.map((d, i) => (d === 0 && !allowZero ? x.shape[i]! : d));
  const known = out.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
  return out.map((d) => (d === -1 ? x.data.length / known : d));
};

const axesOf = (node: NodeProto, ctx: KernelContext): number[] | undefined => attrInts(node, 'axes') ?? ints(ctx.constant(1));

const squeezeShape = (node: NodeProto, x: Nd, ctx: KernelContext): number[] => {
  const axes = (axesOf(node, ctx) ?? x.shape.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => (a < 0 ? a + x.shape.length : a));
  return x.shape.filter((_, i) => !axes.includes(i));
};

const unsqueezeShape = (node: NodeProto, x: Nd, ctx: KernelContext): number[] => {
  const axes = axesOf(node, ctx);
  if (!axes) throw new UnsupportedOpError(`node "${node.name}" (Unsqueeze): axes computed at run time are not supported`);
  const rank = x.shape.length + axes.length;
  const norm = axes.map((a) => (a < 0 ? a + rank : a));
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) out.push(norm.includes(i) ? 1 : x.shape[j++]!);
  return out;
};

function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1]! * shape[i + 1]!;
  return s;
}

/** For each output element of a transpose, the input element it reads. */
function transposeIndex(shape: readonly number[], perm: readonly number[]): Int32Array {
  const inStrides = strides(shape);
  const outShape = perm.map((p) => shape[p]!);
  return Int32Array.from({ length: size(shape) }, (_, k) => {
    let rest = k;
    let at = 0;
    for (let i = outShape.length - 1; i >= 0; i--) {
      const c = rest % outShape[i]!;
      rest = Math.floor(rest / outShape[i]!);
      at += c * inStrides[perm[i]!]!;
    }
    return at;
  });
}

const transpose: Factory = (node) => {
  let key = '';
  let idx: Int32Array = new Int32Array(0);
  const plan = (x: Nd) => {
    const perm = attrInts(node, 'perm') ?? x.shape.map((_, i) => x.shape.length - 1 - i);
    const k = x.shape.join(',');
    if (k !== key) {
      key = k;
      idx = transposeIndex(x.shape, perm);
    }
    return perm;
  };
  return {
    forward(i) {
      const x = req(i[0], node, 0);
      const perm = plan(x);
      const y = zeros32(x.data.length);
      for (let k = 0; k < y.length; k++) y[k] = x.data[idx[k]!]!;
      return { shape: perm.map((p) => x.shape[p]!), data: y };
    },
    backward(i, _y, dy, need) {
      if (!need[0]) return [null];
      const x = req(i[0], node, 0);
      plan(x);
      const g = zeros32(x.data.length);
      for (let k = 0; k < g.length; k++) g[idx[k]!] = dy.data[k]!;
      return [{ shape: [...x.shape], data: g }];
    },
  };
};

const concat: Factory = (node) => {
  const blocks = (xs: readonly Nd[], axis: number) => {
    const outer = size(xs[0]!.shape.slice(0, axis));
    return { outer, runs: xs.map((x) => size(x.shape.slice(axis))) };
  };
  const axisOf = (x: Nd) => {
    const a = attrInt(node, 'axis', 1);
    return a < 0 ? a + x.shape.length : a;
  };
  return {
    forward(i) {
      const xs = i.map((x, k) => req(x, node, k));
      const axis = axisOf(xs[0]!);
      const { outer, runs } = blocks(xs, axis);
      const total = runs.reduce((a, b) => a + b, 0);
      const y = zeros32(outer * total);
      for (let o = 0; o < outer; o++) {
        let at = o * total;
        xs.forEach((x, k) => {
          y.set(x.data.subarray(o * runs[k]!, (o + 1) * runs[k]!), at);
          at += runs[k]!;
        });
      }
      const shape = [...xs[0]!.shape];
      shape[axis] = xs.reduce((a, x) => a + x.shape[axis]!, 0);
      return { shape, data: y };
    },
    backward(i, _y, dy, need) {
      const xs = i.map((x, k) => req(x, node, k));
      const axis = axisOf(xs[0]!);
      const { outer, runs } = blocks(xs, axis);
      const total = runs.reduce((a, b) => a + b, 0);
      let offset = 0;
      return xs.map((x, k) => {
        const start = offset;
        offset += runs[k]!;
        if (!need[k]) return null;
        const g = zeros32(x.data.length);
        for (let o = 0; o < outer; o++) g.set(dy.data.subarray(o * total + start, o * total + start + runs[k]!), o * runs[k]!);
        return { shape: [...x.shape], data: g };
      });
    },
  };
};

/** Softmax over the last axis (opset ≥ 13), or over the flattened trailing axes from `axis` (opset < 13 with a 2-D view). */
const softmax: Factory = (node) => {
  const run = (x: Nd) => {
    let axis = attrInt(node, 'axis', -1);
    if (axis < 0) axis += x.shape.length;
    return size(x.shape.slice(axis));
  };
  return {
    forward(i) {
      const x = req(i[0], node, 0);
      const n = run(x);
      const y = zeros32(x.data.length);
      for (let r = 0; r < x.data.length; r += n) {
        let m = -Infinity;
        for (let k = r; k < r + n; k++) m = Math.max(m, x.data[k]!);
        let s = 0;
        for (let k = r; k < r + n; k++) s += y[k] = Math.exp(x.data[k]! - m);
        for (let k = r; k < r + n; k++) y[k]! /= s;
      }
      return { shape: [...x.shape], data: y };
    },
    backward(i, y, dy, need) {
      if (!need[0]) return [null];
      const n = run(req(i[0], node, 0));
      const g = zeros32(y.data.length);
      for (let r = 0; r < y.data.length; r += n) {
        let dot = 0;
        for (let k = r; k < r + n; k++) dot += dy.data[k]! * y.data[k]!;
        for (let k = r; k < r + n; k++) g[k] = y.data[k]! * (dy.data[k]! - dot);
      }
      return [{ shape: [...y.shape], data: g }];
    },
  };
};

/** Constant-mode Pad with non-negative pads: forward copies into a filled box, backward reads the box back. */
const pad: Factory = (node, ctx) => {
  if (attrString(node, 'mode', 'constant') !== 'constant') throw new UnsupportedOpError(`node "${node.name}" (Pad): only constant padding is supported inside a reconstructed block`);
  const pads = ints(ctx.constant(1)) ?? attrInts(node, 'pads');
  if (!pads) throw new UnsupportedOpError(`node "${node.name}" (Pad): pads computed at run time are not supported`);
  if (pads.some((p) => p < 0)) throw new UnsupportedOpError(`node "${node.name}" (Pad): negative pads (cropping) are not supported`);
  if (node.input?.[3]) throw new UnsupportedOpError(`node "${node.name}" (Pad): the axes input is not supported`);
  const value = ctx.constant(2)?.data[0] ?? attrFloat(node, 'value', 0);
  const geometry = (x: Nd) => {
    const r = x.shape.length;
    const out = x.shape.map((d, i) => d + pads[i]! + pads[i + r]!);
    const os = strides(out);
    // each input row (last axis) lands contiguously in the output
    const last = x.shape[r - 1]!;
    const rows = x.data.length / last;
    const starts = new Int32Array(rows);
    const outer = x.shape.slice(0, -1);
    for (let k = 0; k < rows; k++) {
      let rest = k;
      let at = pads[r - 1]!;
      for (let i = outer.length - 1; i >= 0; i--) {
        const c = rest % outer[i]!;
        rest = Math.floor(rest / outer[i]!);
        at += (c + pads[i]!) * os[i]!;
      }
      starts[k] = at;
    }
    return { out, starts, last };
  };
  return {
    forward(i) {
      const x = req(i[0], node, 0);
      const { out, starts, last } = geometry(x);
      const y = zeros32(size(out)).fill(value);
      for (let k = 0; k < starts.length; k++) y.set(x.data.subarray(k * last, (k + 1) * last), starts[k]!);
      return { shape: out, data: y };
    },
    backward(i, _y, dy, need) {
      if (!need[0]) return [null];
      const x = req(i[0], node, 0);
      const { starts, last } = geometry(x);
      const g = zeros32(x.data.length);
      for (let k = 0; k < starts.length; k++) g.set(dy.data.subarray(starts[k]!, starts[k]! + last), k * last);
      return [{ shape: [...x.shape], data: g }];
    },
  };
};

/** BatchNormalization in inference form, where no layer precedes it to fold into: y = x·a + b per channel. */
const batchNorm: Factory = (node, ctx) => {
  const [scale, bias, mean, variance] = [1, 2, 3, 4].map((k) => ctx.constant(k));
  if (!scale || !bias || !mean || !variance) throw new UnsupportedOpError(`node "${node.name}" (BatchNormalization): statistics computed at run time are not supported`);
  const eps = attrFloat(node, 'epsilon', 1e-5);
  const a = Float32Array.from(scale.data, (g, c) => g / Math.sqrt(variance.data[c]! + eps));
  const b = Float32Array.from(bias.data, (be, c) => be - a[c]! * mean.data[c]!);
  const run = (x: Nd) => size(x.shape.slice(2));
  return {
    forward(i) {
      const x = req(i[0], node, 0);
      const hw = run(x);
      const C = x.shape[1]!;
      const y = zeros32(x.data.length);
      for (let k = 0; k < x.data.length; k++) {
        const c = Math.floor(k / hw) % C;
        y[k] = x.data[k]! * a[c]! + b[c]!;
      }
      return { shape: [...x.shape], data: y };
    },
    backward(i, _y, dy, need) {
      if (!need[0]) return [null, null, null, null, null];
      const x = req(i[0], node, 0);
      const hw = run(x);
      const C = x.shape[1]!;
      const g = zeros32(x.data.length);
      for (let k = 0; k < g.length; k++) g[k] = dy.data[k]! * a[Math.floor(k / hw) % C]!;
      return [{ shape: [...x.shape], data: g }, null, null, null, null];
    },
  };
};

/** ReduceMean over constant axes (attribute before opset 18, input after), as MnasNet's head pools. */
const reduceMean: Factory = (node, ctx) => {
  const attrAxes = attrInts(node, 'axes') ?? ints(ctx.constant(1));
  const keep = attrInt(node, 'keepdims', 1) === 1;
  if (node.input?.[1] && !ctx.constant(1)) throw new UnsupportedOpError(`node "${node.name}" (ReduceMean): axes computed at run time are not supported`);
  let key = '';
  let idx: Int32Array = new Int32Array(0);
  let kept: number[] = [];
  let count = 1;
  const plan = (x: Nd) => {
    const k = x.shape.join(',');
    if (k !== key) {
      key = k;
      const axes = (attrAxes ?? x.shape.map((_, i) => i)).map((a) => (a < 0 ? a + x.shape.length : a));
      kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
      count = axes.reduce((p, a) => p * x.shape[a]!, 1);
      idx = broadcastIndex(x.shape, kept);
      // the output shape without the reduced axes when keepdims = 0
      if (!keep) kept = kept.filter((_, i) => !axes.includes(i));
    }
  };
  return {
    forward(i) {
      const x = req(i[0], node, 0);
      plan(x);
      const y = zeros32(size(kept));
      for (let k = 0; k < x.data.length; k++) y[idx[k]!]! += x.data[k]!;
      for (let k = 0; k < y.length; k++) y[k]! /= count;
      return { shape: [...kept], data: y };
    },
    backward(i, _y, dy, need) {
      if (!need[0]) return [null, null];
      const x = req(i[0], node, 0);
      plan(x);
      const g = zeros32(x.data.length);
      for (let k = 0; k < g.length; k++) g[k] = dy.data[idx[k]!]! / count;
      return [{ shape: [...x.shape], data: g }, null];
    },
  };
};

const identity: Factory = (node) => ({
  forward: (i) => req(i[0], node, 0),
  backward: (_i, _y, dy, need) => [need[0] ? dy : null],
});

const FACTORIES: Record<string, Factory> = {
  Conv: convKernel,
  Gemm: gemm,
  MatMul: matmul,
  Relu: unary(reluForward, reluBackward),
  LeakyRelu: (node, ctx) => {
    const alpha = attrFloat(node, 'alpha', 0.01);
    return unary((x) => leakyReluForward(x, alpha), (x, dy) => leakyReluBackward(x, dy, alpha))(node, ctx);
  },
  Clip: (node, ctx) => {
    const [lo, hi] = clipBounds(node, ctx);
    return unary((x) => clipForward(x, lo, hi), (x, dy) => clipBackward(x, dy, lo, hi))(node, ctx);
  },
  Sigmoid: unary(sigmoidForward, sigmoidBackward),
  HardSigmoid: (node, ctx) => {
    const alpha = attrFloat(node, 'alpha', 0.2);
    const beta = attrFloat(node, 'beta', 0.5);
    return unary((x) => hardSigmoidForward(x, alpha, beta), (x, dy) => hardSigmoidBackward(x, dy, alpha, beta))(node, ctx);
  },
  HardSwish: unary(hardSwishForward, hardSwishBackward),
  Add: binary('Add'),
  Sub: binary('Sub'),
  Mul: binary('Mul'),
  Div: binary('Div'),
  BatchNormalization: batchNorm,
  GlobalAveragePool: unary(globalAveragePoolForward, globalAveragePoolBackward),
  ReduceMean: reduceMean,
  AveragePool: averagePool,
  MaxPool: maxPool,
  Concat: concat,
  Flatten: reshapeLike(flattenShape),
  Reshape: reshapeLike(reshapeShape),
  Squeeze: reshapeLike(squeezeShape),
  Unsqueeze: reshapeLike(unsqueezeShape),
  Transpose: transpose,
  Softmax: softmax,
  Pad: pad,
  Identity: identity,
  Dropout: identity,
};

/** The op types the engine can reconstruct through. */
export const SUPPORTED_OPS: readonly string[] = Object.keys(FACTORIES);

export function kernelFor(node: NodeProto, ctx: KernelContext): Kernel {
  const factory = FACTORIES[node.opType ?? ''];
  if (!factory) throw new UnsupportedOpError(`node "${node.name || node.output?.[0]}" is a ${node.opType}, which the reconstruction engine does not support; choose a granularity that leaves it outside the reconstructed blocks, or use round-to-nearest`);
  if ((node.domain ?? '') !== '' && node.domain !== 'ai.onnx') throw new UnsupportedOpError(`node "${node.name}" is ${node.domain}.${node.opType}, a custom-domain op the reconstruction engine does not support`);
  return factory(node, ctx);
}
