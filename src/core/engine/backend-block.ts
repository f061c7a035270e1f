import type { ModelProto, NodeProto } from '../onnx/schema';
import { tensorToFloat32 } from '../onnx/tensor-data';
import { GraphIndex } from '../graph/graph-index';
import type { Block } from '../graph/partition';
import { attrFloat, attrInt, attrInts } from '../graph/attributes';
import type { Conv2dAttrs, Nd } from '../backends/cpu/reference';
import { IDENTITY, type Activation, type KernelBackend, type SoftRounding, type TensorLike } from '../backends/webgpu/types';
import type { WeightSlot } from './block-program';
import { spatialPads } from './kernels';

/*
 * A block of the canonical graph compiled into `KernelBackend` ops, so that a reconstruction loop
 * can run forward and backward on the device (WebGPU) with nothing but the loss coming back. It
 * covers the ops of CNN blocks (convolutions, dense, grouped and depthwise; activations; residual
 * Adds with their activation fused; squeeze-excitation Muls; global pooling; dense layers on
 * 2-D inputs); a block with anything else does not compile, and the caller keeps the CPU
 * `BlockProgram`, which runs every op the engine has. Activations stay float: activation
 * quantizers (QDrop's joint mode) run on the CPU only.
 */

/** A block's weight on the backend: read through AdaRound's soft rounding, or as it is (a layer kept at round-to-nearest). */
export interface BackendWeight<T> {
  readonly w: T;
  readonly soft: SoftRounding<T> | null;
}

/** Values are numbered: 0 is the block input, every op writes one new value. */
type Op<T> =
  | { readonly kind: 'conv'; readonly x: number; readonly out: number; readonly slot: number | null; readonly weight: T | null; readonly bias: T | null; readonly attrs: Conv2dAttrs }
  | { readonly kind: 'linear'; readonly x: number; readonly out: number; readonly slot: number; readonly bias: T | null }
  | { readonly kind: 'act'; readonly x: number; readonly out: number; readonly act: Activation }
  | { readonly kind: 'add'; readonly a: number; readonly b: number; readonly out: number; readonly act: Activation }
  /** `b` is `a`'s shape or broadcasts over its trailing axes (a gate [N, C, 1, 1]), whichever order the graph had them in. */
  | { readonly kind: 'mul'; readonly a: number; readonly b: number; readonly out: number }
  | { readonly kind: 'gap'; readonly x: number; readonly out: number };

/** What a forward pass leaves for the backward pass: every value, and the soft-rounded weights of dense layers. */
export interface BackendTape<T> {
  readonly values: (T | null)[];
  readonly output: T;
  /** Per op index: the soft-rounded weight a dense layer multiplied by. */
  readonly linearWeights: Map<number, T>;
}

export type Compiled<T extends TensorLike> = { readonly ok: true; readonly program: BackendBlock<T> } | { readonly ok: false; readonly reason: string };

const ACTIVATIONS = new Set(['Relu', 'Clip', 'LeakyRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish']);
/** Float32's largest value: stands for an absent Clip bound, so no infinity reaches a kernel's parameters. */
const F32_MAX = 3.4028234663852886e38;

class Unsupported extends Error {}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
/** ONNX's broadcasting restricted to what the backend's Mul does: b equals a on leading axes and is 1 on the rest. */
const trailingBroadcast = (a: readonly number[], b: readonly number[]) => {
  if (a.length !== b.length) return false;
  let k = 0;
  while (k < a.length && a[k] === b[k]) k++;
  return b.slice(k).every((d) => d === 1);
};

export class BackendBlock<T extends TensorLike> {
  private constructor(
    private readonly backend: KernelBackend<T>,
    private readonly ops: readonly Op<T>[],
    private readonly valueCount: number,
    private readonly outputId: number,
    /** Constants uploaded at compile time (biases, weights of layers that are not slots). */
    private readonly owned: readonly T[],
  ) {}

  /**
   * Compiles `block` for `backend`, given the batch shape of its input and the weight slots of the
   * CPU program compiled from the same block (so both order and lay out weights alike). Returns the
   * reason when some op or shape is outside what the backend runs.
   */
  static compile<T extends TensorLike>(model: ModelProto, block: Block, slots: readonly WeightSlot[], backend: KernelBackend<T>, inputShape: readonly number[]): Compiled<T> {
    const owned: T[] = [];
    try {
      const { ops, count, output } = lower(model, block, slots, inputShape, (nd) => {
        const t = backend.upload(nd);
        owned.push(t);
        return t;
      });
      return { ok: true, program: new BackendBlock(backend, ops, count, output, owned) };
    } catch (e) {
      backend.release(...owned);
      if (e instanceof Unsupported) return { ok: false, reason: e.message };
      throw e;
    }
  }

  forward(x: T, weights: readonly BackendWeight<T>[]): BackendTape<T> {
    const b = this.backend;
    const values: (T | null)[] = new Array<T | null>(this.valueCount).fill(null);
    values[0] = x;
    const linearWeights = new Map<number, T>();
    const v = (id: number): T => values[id]!;
    this.ops.forEach((op, k) => {
      switch (op.kind) {
        case 'conv': {
          const w = op.slot === null ? null : weights[op.slot]!;
          values[op.out] = b.conv2dForward(v(op.x), w ? w.w : op.weight!, op.bias, op.attrs, w?.soft ? { adaround: w.soft } : {});
          break;
        }
        case 'linear': {
          const w = weights[op.slot]!;
          const eff = w.soft ? b.adaroundForward(w.w, w.soft.v, w.soft.grid) : w.w;
          if (w.soft) linearWeights.set(k, eff);
          values[op.out] = b.gemmForward(v(op.x), eff, op.bias);
          break;
        }
        case 'act':
          values[op.out] = b.activationForward(v(op.x), op.act);
          break;
        case 'add':
          values[op.out] = b.addForward(v(op.a), v(op.b), op.act);
          break;
        case 'mul':
          values[op.out] = b.mulForward(v(op.a), v(op.b));
          break;
        case 'gap':
          values[op.out] = b.globalAveragePoolForward(v(op.x));
          break;
      }
    });
    return { values, output: values[this.outputId]!, linearWeights };
  }

  /**
   * d loss / d V for every soft-rounded slot (null for the others), given d loss / d output. No
   * gradient leaves the block: its input is data. Releases every gradient it makes except those returned.
   */
  backward(tape: BackendTape<T>, weights: readonly BackendWeight<T>[], dOut: T): (T | null)[] {
    const b = this.backend;
    const grads: (T | null)[] = new Array<T | null>(this.valueCount).fill(null);
    const dV: (T | null)[] = weights.map(() => null);
    const v = (id: number): T => tape.values[id]!;
    // a value read by several ops gets the sum of their gradients before its producer runs backward
    const add = (id: number, g: T) => {
      if (id === 0) return b.release(g);
      const prev = grads[id];
      if (!prev) grads[id] = g;
      else {
        grads[id] = b.addForward(prev, g);
        b.release(g);
        if (prev !== dOut) b.release(prev);
      }
    };
    grads[this.outputId] = dOut;
    for (let k = this.ops.length - 1; k >= 0; k--) {
      const op = this.ops[k]!;
      const g = grads[op.out];
      if (!g) continue;
      grads[op.out] = null;
      switch (op.kind) {
        case 'conv': {
          const w = op.slot === null ? null : weights[op.slot]!;
          const o = w?.soft ? { adaround: w.soft } : {};
          const wt = w ? w.w : op.weight!;
          if (op.x !== 0) add(op.x, b.conv2dInputGrad(wt, g, v(op.x).shape, op.attrs, o));
          // with soft rounding the weight gradient comes back as d loss / d V (fused on WebGPU)
          if (w?.soft) dV[op.slot!] = b.conv2dWeightGrad(v(op.x), wt, g, op.attrs, o);
          break;
        }
        case 'linear': {
          const w = weights[op.slot]!;
          const eff = tape.linearWeights.get(k) ?? w.w;
          const r = b.gemmBackward(v(op.x), eff, g);
          b.release(r.db);
          if (op.x !== 0) add(op.x, r.dx);
          else b.release(r.dx);
          if (w.soft) dV[op.slot] = b.adaroundBackward(w.w, w.soft.v, w.soft.grid, r.dw);
          b.release(r.dw);
          break;
        }
        case 'act':
          if (op.x !== 0) add(op.x, b.activationBackward(v(op.x), g, op.act));
          break;
        case 'add': {
          const r = b.addBackward(g, op.act.kind === 'identity' ? undefined : { a: v(op.a), b: v(op.b), act: op.act });
          add(op.a, r.da);
          add(op.b, r.db);
          break;
        }
        case 'mul': {
          const r = b.mulBackward(v(op.a), v(op.b), g);
          add(op.a, r.da);
          add(op.b, r.db);
          break;
        }
        case 'gap':
          if (op.x !== 0) add(op.x, b.globalAveragePoolBackward(v(op.x), g));
          break;
      }
      if (g !== dOut) b.release(g);
    }
    // gradients of values no op consumed backward (none in a well-formed block), dropped
    for (const g of grads) if (g && g !== dOut) b.release(g);
    return dV;
  }

  /** Hands back what a forward pass allocated (not the block input, which the caller owns). */
  releaseTape(tape: BackendTape<T>): void {
    this.backend.release(...tape.values.slice(1), ...tape.linearWeights.values());
  }

  dispose(): void {
    this.backend.release(...this.owned);
  }
}

/** The block's nodes as backend ops, with every value's shape worked out from the input's. */
function lower<T>(model: ModelProto, block: Block, slots: readonly WeightSlot[], inputShape: readonly number[], upload: (nd: Nd) => T): { ops: Op<T>[]; count: number; output: number } {
  const index = new GraphIndex(model.graph!);
  const inBlock = new Set(block.nodes);
  const nodes = (model.graph!.node ?? []).filter((n) => inBlock.has(n.name || n.output?.[0] || '') && n.opType !== 'Constant');
  const slotOf = new Map(slots.map((s, i) => [s.layer.weight, i]));
  const ids = new Map<string, number>([[block.input, 0]]);
  const shapes: number[][] = [[...inputShape]];
  const ops: Op<T>[] = [];
  const label = (n: NodeProto) => `op ${n.opType} (node "${n.name || n.output?.[0]}")`;
  const consumers = (name: string) => nodes.filter((n) => n.input?.includes(name));
  /** Add nodes whose activation is fused into them, by the activation node. */
  const fusedInto = new Map<NodeProto, NodeProto>();
  const value = (n: NodeProto, i: number): number => {
    const name = n.input?.[i];
    const id = name ? ids.get(name) : undefined;
    if (id === undefined) throw new Unsupported(`${label(n)} with ${name && index.constant(name) ? 'a constant' : 'no'} input ${i}`);
    return id;
  };
  const constant = (n: NodeProto, i: number): Nd | null => {
    const t = index.constant(n.input?.[i]);
    if (!t) {
      if (n.input?.[i]) throw new Unsupported(`${label(n)} with input ${i} computed at run time`);
      return null;
    }
    return { shape: (t.dims ?? []).map(Number), data: tensorToFloat32(t) };
  };
  const define = (n: NodeProto, shape: number[]): number => {
    const id = shapes.length;
    shapes.push(shape);
    ids.set(n.output![0]!, id);
    return id;
  };

  for (const n of nodes) {
    const op = n.opType ?? '';
    if ((n.domain ?? '') !== '' && n.domain !== 'ai.onnx') throw new Unsupported(`op ${n.domain}.${op} (node "${n.name}")`);
    if (op === 'Identity' || op === 'Dropout') {
      ids.set(n.output![0]!, value(n, 0));
      continue;
    }
    if (ACTIVATIONS.has(op)) {
      const act = activationOf(n, (i) => constant(n, i));
      const add = fusedInto.get(n);
      if (add) {
        const a = value(add, 0);
        ops.push({ kind: 'add', a, b: value(add, 1), act, out: define(n, shapes[a]!) });
        continue;
      }
      const x = value(n, 0);
      ops.push({ kind: 'act', x, act, out: define(n, shapes[x]!) });
      continue;
    }
    switch (op) {
      case 'Conv': {
        const x = value(n, 0);
        const xs = shapes[x]!;
        if (xs.length !== 4) throw new Unsupported(`${label(n)} with a ${xs.length}-D input`);
        const wName = n.input?.[1] ?? '';
        const slot = slotOf.get(wName);
        const isSlot = slot !== undefined && slots[slot]!.layer.node === n;
        const wConst = isSlot ? null : constant(n, 1);
        if (!isSlot && !wConst) throw new Unsupported(`${label(n)} with a weight computed at run time`);
        const ws = isSlot ? slots[slot]!.weight.shape : wConst!.shape;
        const kernel = [ws[2]!, ws[3]!] as const;
        const strides = (attrInts(n, 'strides') ?? [1, 1]) as [number, number];
        const dilations = (attrInts(n, 'dilations') ?? [1, 1]) as [number, number];
        const pads = spatialPads(n, { shape: xs, data: new Float32Array(0) }, kernel, strides, dilations);
        const attrs: Conv2dAttrs = { strides, dilations, pads, group: attrInt(n, 'group', 1) };
        const bias = constant(n, 2);
        const oh = Math.floor((xs[2]! + pads[0] + pads[2] - dilations[0] * (kernel[0] - 1) - 1) / strides[0]) + 1;
        const ow = Math.floor((xs[3]! + pads[1] + pads[3] - dilations[1] * (kernel[1] - 1) - 1) / strides[1]) + 1;
        ops.push({ kind: 'conv', x, slot: isSlot ? slot : null, weight: wConst ? upload(wConst) : null, bias: bias ? upload(bias) : null, attrs, out: define(n, [xs[0]!, ws[0]!, oh, ow]) });
        break;
      }
      case 'Gemm':
      case 'MatMul': {
        const x = value(n, 0);
        const xs = shapes[x]!;
        const slot = slotOf.get(n.input?.[1] ?? '');
        if (slot === undefined || slots[slot]!.layer.node !== n) throw new Unsupported(`${label(n)} with a weight that is not a quantizable layer's`);
        if (xs.length !== 2) throw new Unsupported(`${label(n)} with a ${xs.length}-D input`);
        if (op === 'Gemm' && (attrInt(n, 'transA', 0) !== 0 || attrFloat(n, 'alpha', 1) !== 1)) throw new Unsupported(`${label(n)} with transA = 1 or alpha ≠ 1`);
        const outF = slots[slot]!.weight.shape[0]!;
        const c = op === 'Gemm' ? constant(n, 2) : null;
        const beta = attrFloat(n, 'beta', 1);
        // the engine's bias rule (kernels.ts): one value for every output, or one per output, times β
        const bias = c ? upload({ shape: [outF], data: Float32Array.from({ length: outF }, (_, o) => beta * c.data[c.data.length === 1 ? 0 : o]!) }) : null;
        ops.push({ kind: 'linear', x, slot, bias, out: define(n, [xs[0]!, outF]) });
        break;
      }
      case 'Add': {
        const a = value(n, 0);
        const b = value(n, 1);
        if (!sameShape(shapes[a]!, shapes[b]!)) throw new Unsupported(`${label(n)} broadcasting [${shapes[a]!.join(', ')}] and [${shapes[b]!.join(', ')}]`);
        const next = consumers(n.output![0]!);
        const only = next.length === 1 ? next[0]! : null;
        if (only && ACTIVATIONS.has(only.opType ?? '') && n.output![0] !== block.output) {
          // the residual Add and the activation after it are one kernel on the device
          fusedInto.set(only, n);
          ids.set(n.output![0]!, -1);
          break;
        }
        ops.push({ kind: 'add', a, b, act: IDENTITY, out: define(n, shapes[a]!) });
        break;
      }
      case 'Mul': {
        let a = value(n, 0);
        let b = value(n, 1);
        if (!trailingBroadcast(shapes[a]!, shapes[b]!)) [a, b] = [b, a];
        if (!trailingBroadcast(shapes[a]!, shapes[b]!)) throw new Unsupported(`${label(n)} broadcasting [${shapes[a]!.join(', ')}] and [${shapes[b]!.join(', ')}]`);
        ops.push({ kind: 'mul', a, b, out: define(n, shapes[a]!) });
        break;
      }
      case 'GlobalAveragePool': {
        const x = value(n, 0);
        const xs = shapes[x]!;
        if (xs.length !== 4) throw new Unsupported(`${label(n)} with a ${xs.length}-D input`);
        ops.push({ kind: 'gap', x, out: define(n, [xs[0]!, xs[1]!, 1, 1]) });
        break;
      }
      default:
        throw new Unsupported(label(n));
    }
  }
  const output = ids.get(block.output);
  // an output that is the input itself (a block of Identity nodes) has nothing to learn
  if (output === undefined || output <= 0) throw new Unsupported(`a block output ("${block.output}") that no op computes`);
  return { ops, count: shapes.length, output };
}

function activationOf(n: NodeProto, constant: (i: number) => Nd | null): Activation {
  switch (n.opType) {
    case 'Relu':
      return { kind: 'relu' };
    case 'Clip': {
      const lo = constant(1)?.data[0] ?? attrFloat(n, 'min', -Infinity);
      const hi = constant(2)?.data[0] ?? attrFloat(n, 'max', Infinity);
      return { kind: 'clip', min: Math.max(lo, -F32_MAX), max: Math.min(hi, F32_MAX) };
    }
    case 'LeakyRelu':
      return { kind: 'leakyRelu', alpha: attrFloat(n, 'alpha', 0.01) };
    case 'Sigmoid':
      return { kind: 'sigmoid' };
    case 'HardSigmoid':
      return { kind: 'hardSigmoid', alpha: attrFloat(n, 'alpha', 0.2), beta: attrFloat(n, 'beta', 0.5) };
    default:
      return { kind: 'hardSwish' };
  }
}
