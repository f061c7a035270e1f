import type { ModelProto, NodeProto } from '../onnx/schema';
import { DataType } from '../onnx/schema';
import { tensorToInts, type ExternalFiles } from '../onnx/tensor-data';
import { attrInt, attrInts, attrString } from './attributes';
import { GraphIndex } from './graph-index';

/**
 * Static shape inference for the CNN op set, plus the values of small integer tensors (shapes,
 * axes, indices): enough to fold the Shape→Gather→Unsqueeze→Concat→Reshape chains exporters emit
 * for a flatten, and to count MACs without running the model.
 */
export interface ShapeInfo {
  readonly shapes: ReadonlyMap<string, readonly number[]>;
  /** Known values of integer tensors computed from constants and static shapes. */
  readonly values: ReadonlyMap<string, readonly number[]>;
}

export class ShapeError extends Error {
  override name = 'ShapeError';
}

const UNARY = new Set([
  'Relu', 'Clip', 'LeakyRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Elu', 'Selu', 'Softplus', 'Gelu', 'Erf', 'Sqrt', 'Exp', 'Log', 'Neg', 'Abs',
  'Identity', 'Dropout', 'BatchNormalization', 'Softmax', 'LogSoftmax', 'Cast', 'QuantizeLinear', 'DequantizeLinear', 'LRN', 'InstanceNormalization', 'PRelu',
]);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Equal', 'Where']);

function broadcast(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new ShapeError(`cannot broadcast [${a}] with [${b}]`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

const norm = (axis: number, rank: number): number => (axis < 0 ? axis + rank : axis);

function poolOut(node: NodeProto, x: readonly number[], kernel: readonly number[]): number[] {
  if (x.length < 3) throw new ShapeError(`expects an N×C×spatial input, got [${x.join(', ')}]`);
  const spatial = x.length - 2;
  const strides = attrInts(node, 'strides') ?? Array(spatial).fill(1);
  const dil = attrInts(node, 'dilations') ?? Array(spatial).fill(1);
  const pads = attrInts(node, 'pads') ?? Array(2 * spatial).fill(0);
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  const ceil = attrInt(node, 'ceil_mode', 0) === 1;
  const out: number[] = [];
  for (let i = 0; i < spatial; i++) {
    const inp = x[i + 2]!;
    const s = strides[i]!;
    const k = (kernel[i]! - 1) * dil[i]! + 1;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') out.push(Math.ceil(inp / s));
    else if (autoPad === 'VALID') out.push(Math.floor((inp - k) / s) + 1);
    else {
      const span = inp + pads[i]! + pads[i + spatial]! - k;
      out.push((ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1);
    }
  }
  return out;
}

export function inferShapes(model: ModelProto, inputShapes: ReadonlyMap<string, readonly number[]>, external?: ExternalFiles): ShapeInfo {
  const index = new GraphIndex(model.graph!);
  const shapes = new Map<string, readonly number[]>(inputShapes);
  const values = new Map<string, readonly number[]>();
  for (const [name, t] of index.initializers) {
    shapes.set(name, t.dims ?? []);
    if ((t.dataType === DataType.INT64 || t.dataType === DataType.INT32) && (t.dims ?? []).reduce((a, b) => a * b, 1) <= 64) values.set(name, tensorToInts(t, external));
  }
  for (const node of model.graph!.node ?? []) {
    try {
      inferNode(node, shapes, values, external);
    } catch (e) {
      // attributes come from an untrusted file: any failure here means a malformed node
      throw new ShapeError(`node "${node.name || node.output?.[0]}" (${node.opType}): ${e instanceof ShapeError ? e.message : `malformed attributes or inputs (${(e as Error).message})`}`);
    }
  }
  return { shapes, values };
}

function inferNode(node: NodeProto, shapes: Map<string, readonly number[]>, values: Map<string, readonly number[]>, external?: ExternalFiles): void {
  const op = node.opType ?? '';
  const ins = node.input ?? [];
  const out = node.output?.[0];
  if (!out) return;
  const s = (i: number): readonly number[] | undefined => (ins[i] ? shapes.get(ins[i]!) : undefined);
  const v = (i: number): readonly number[] | undefined => (ins[i] ? values.get(ins[i]!) : undefined);
  const set = (shape: readonly number[], value?: readonly number[]): void => {
    shapes.set(out, shape);
    if (value) values.set(out, value);
  };
  if (op === 'Constant') {
    const t = node.attribute?.find((a) => a.name === 'value')?.t;
    if (t) set(t.dims ?? [], t.dataType === DataType.INT64 || t.dataType === DataType.INT32 ? tensorToInts(t, external) : undefined);
    return;
  }
  const x = s(0);
  if (!x) return; // unknown input shape: leave downstream unknown rather than guess
  switch (true) {
    case UNARY.has(op):
      return set(x, op === 'Identity' || op === 'Cast' ? v(0) : undefined);
    case BINARY.has(op): {
      let shape = x;
      for (let i = 1; i < ins.length; i++) {
        const y = s(i);
        if (!y) return;
        shape = broadcast(shape, y);
      }
      const a = v(0);
      const b = v(1);
      if (a && b && a.length === b.length && (op === 'Add' || op === 'Mul' || op === 'Sub' || op === 'Div')) {
        const f = { Add: (p: number, q: number) => p + q, Mul: (p: number, q: number) => p * q, Sub: (p: number, q: number) => p - q, Div: (p: number, q: number) => Math.trunc(p / q) }[op];
        return set(shape, a.map((p, i) => f(p, b[i]!)));
      }
      return set(shape);
    }
    case op === 'Conv': {
      const w = s(1);
      if (!w) return;
      return set([x[0]!, w[0]!, ...poolOut(node, x, attrInts(node, 'kernel_shape') ?? w.slice(2))]);
    }
    case op === 'MaxPool' || op === 'AveragePool':
      return set([x[0]!, x[1]!, ...poolOut(node, x, attrInts(node, 'kernel_shape') ?? [])]);
    case op === 'GlobalAveragePool' || op === 'GlobalMaxPool':
      return set([x[0]!, x[1]!, ...x.slice(2).map(() => 1)]);
    case op === 'Gemm': {
      const w = s(1);
      if (!w) return;
      const m = attrInt(node, 'transA', 0) ? x[1]! : x[0]!;
      const n = attrInt(node, 'transB', 0) ? w[0]! : w[1]!;
      return set([m, n]);
    }
    case op === 'MatMul': {
      const w = s(1);
      if (!w) return;
      if (w.length === 2) return set([...x.slice(0, -1), w[1]!]);
      return set([...broadcast(x.slice(0, -2), w.slice(0, -2)), x[x.length - 2]!, w[w.length - 1]!]);
    }
    case op === 'Flatten': {
      const axis = norm(attrInt(node, 'axis', 1), x.length);
      const prod = (d: readonly number[]): number => d.reduce((a, b) => a * b, 1);
      return set([prod(x.slice(0, axis)), prod(x.slice(axis))]);
    }
    case op === 'Reshape': {
      const target = v(1);
      if (!target) return;
      const total = x.reduce((a, b) => a * b, 1);
      const shape = target.map((d, i) => (d === 0 && attrInt(node, 'allowzero', 0) === 0 ? x[i]! : d));
      const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
      return set(shape.map((d) => (d === -1 ? total / known : d)));
    }
    case op === 'Transpose': {
      const perm = attrInts(node, 'perm') ?? x.map((_, i) => x.length - 1 - i);
      return set(perm.map((p) => x[p]!));
    }
    case op === 'Squeeze': {
      const axes = (attrInts(node, 'axes') ?? v(1) ?? x.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0)).map((a) => norm(a, x.length));
      return set(x.filter((_, i) => !axes.includes(i)), v(0));
    }
    case op === 'Unsqueeze': {
      const axesRaw = attrInts(node, 'axes') ?? v(1);
      if (!axesRaw) return;
      const rank = x.length + axesRaw.length;
      const axes = axesRaw.map((a) => norm(a, rank));
      const shape: number[] = [];
      let j = 0;
      for (let i = 0; i < rank; i++) shape.push(axes.includes(i) ? 1 : x[j++]!);
      return set(shape, v(0));
    }
    case op === 'Concat': {
      const axis = norm(attrInt(node, 'axis', 0), x.length);
      const all = ins.map((_, i) => s(i));
      if (all.some((a) => !a)) return;
      const shape = [...x];
      shape[axis] = all.reduce((acc, a) => acc + a![axis]!, 0);
      const vals = ins.map((_, i) => v(i));
      return set(shape, vals.every(Boolean) ? vals.flatMap((a) => [...a!]) : undefined);
    }
    case op === 'Shape':
      return set([x.length], x);
    case op === 'Gather': {
      const idx = s(1);
      const iv = v(1);
      if (!idx) return;
      const axis = norm(attrInt(node, 'axis', 0), x.length);
      const shape = [...x.slice(0, axis), ...idx, ...x.slice(axis + 1)];
      const data = v(0);
      return set(shape, data && iv && x.length === 1 ? iv.map((i) => data[norm(i, data.length)]!) : undefined);
    }
    case op === 'Pad': {
      const pads = attrInts(node, 'pads') ?? v(1);
      if (!pads) return;
      return set(x.map((d, i) => d + pads[i]! + pads[i + x.length]!));
    }
    case op === 'ReduceMean' || op === 'ReduceMax' || op === 'ReduceSum': {
      const axes = (attrInts(node, 'axes') ?? v(1) ?? x.map((_, i) => i)).map((a) => norm(a, x.length));
      const keep = attrInt(node, 'keepdims', 1) === 1;
      return set(keep ? x.map((d, i) => (axes.includes(i) ? 1 : d)) : x.filter((_, i) => !axes.includes(i)));
    }
    default:
      return; // an op outside the set: its outputs stay unknown
  }
}
