import type { ModelProto, NodeProto, TensorProto } from '../onnx/schema';
import { elementCount, tensorToFloat32 } from '../onnx/tensor-data';
import { attrInt } from './attributes';
import { GraphIndex } from './graph-index';

export type LayerKind = 'conv' | 'gemm' | 'matmul';

/** A layer with a constant weight: what gets quantized. */
export interface QuantLayer {
  /** The node's name, or its output's when unnamed: stable across runs, used as the key in plans. */
  readonly name: string;
  readonly kind: LayerKind;
  readonly node: NodeProto;
  readonly weight: string;
  readonly weightTensor: TensorProto;
  readonly bias: string | null;
  readonly weightDims: readonly number[];
  /** Axis of the weight that indexes output channels (0 for Conv and transposed Gemm, 1 for MatMul). */
  readonly channelAxis: number;
  readonly params: number;
  readonly isFirst: boolean;
  readonly isLast: boolean;
}

export function layerName(node: NodeProto): string {
  return node.name || node.output?.[0] || '?';
}

/** Quantizable layers in topological (graph) order. */
export function findQuantLayers(model: ModelProto): QuantLayer[] {
  const index = new GraphIndex(model.graph!);
  const found: Omit<QuantLayer, 'isFirst' | 'isLast'>[] = [];
  for (const node of model.graph!.node ?? []) {
    const op = node.opType;
    if (op !== 'Conv' && op !== 'Gemm' && op !== 'MatMul') continue;
    const wName = node.input?.[1];
    const w = index.initializers.get(wName ?? '');
    if (!w || !wName) continue;
    const dims = w.dims ?? [];
    if (op === 'Gemm' && (attrInt(node, 'transA', 0) !== 0)) continue;
    if (op === 'MatMul' && dims.length !== 2) continue;
    const kind: LayerKind = op === 'Conv' ? 'conv' : op === 'Gemm' ? 'gemm' : 'matmul';
    const channelAxis = kind === 'conv' ? 0 : kind === 'gemm' ? (attrInt(node, 'transB', 0) ? 0 : 1) : 1;
    const bias = op === 'MatMul' ? null : (node.input?.[2] || null);
    found.push({ name: layerName(node), kind, node, weight: wName, weightTensor: w, bias, weightDims: dims, channelAxis, params: elementCount(dims) + (bias ? dims[channelAxis] ?? 0 : 0) });
  }
  return found.map((l, i) => ({ ...l, isFirst: i === 0, isLast: i === found.length - 1 }));
}

const ACTIVATIONS = new Set(['Relu', 'Clip', 'LeakyRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'PRelu', 'Elu', 'Selu', 'Softplus', 'Gelu']);
/** Ops that only move or pool values: a quantizer on their input serves their output too. */
const PASS_THROUGH = new Set(['MaxPool', 'Flatten', 'Reshape', 'Squeeze', 'Unsqueeze', 'Transpose', 'GlobalMaxPool', 'Pad']);
/**
 * Averaging ops: the references quantize what goes into the pooling, not its output (ResNet's
 * head, a squeeze-excitation's pooled input), so they pass "feeds a layer" through.
 */
const POOLING = new Set(['GlobalAveragePool', 'AveragePool', 'ReduceMean']);
const LAYER_OPS = new Set(['Conv', 'Gemm', 'MatMul']);

/**
 * Tensors whose values are quantized (algorithms.md §1.4): the outputs of activation functions,
 * of residual adds not followed by one, of products (x·sigmoid(x) and x·hardsigmoid(x) are SiLU
 * and hard-swish at opsets without those ops; x·gate is a squeeze-excitation's output), and of
 * layers whose output goes straight to another layer; in each case when the value reaches a
 * layer or a join (through pooling and reshapes). A concatenation's output only when a layer
 * reads it: what goes into it is quantized where it is made.
 * Never the network input or anything computed from it before the first layer, never the
 * network output (nor what only pools into it), and never a layer output or product that goes
 * only into an add (the end of a residual branch) or into an activation. The output of a linear
 * projection that is also the next residual block's input (MobileNetV2) is quantized.
 */
export function activationQuantPoints(model: ModelProto): string[] {
  const index = new GraphIndex(model.graph!);
  const points: string[] = [];
  /** Whether `t` reaches a layer, or with `joins` an Add or Concat, through pooling and reshapes. */
  const feedsLayer = (t: string, joins = true, depth = 0): boolean =>
    depth < 8 &&
    index.consumersOf(t).some((c) => {
      const op = c.opType ?? '';
      if (LAYER_OPS.has(op) || (joins && (op === 'Add' || op === 'Concat'))) return true;
      return (PASS_THROUGH.has(op) || POOLING.has(op)) && c.input?.[0] === t && feedsLayer(c.output?.[0] ?? '', joins, depth + 1);
    });
  // tensors computed after some layer: what comes before the first one is (a function of) the input image
  const afterLayer = new Set<string>();
  for (const node of model.graph!.node ?? []) {
    if (LAYER_OPS.has(node.opType ?? '') || (node.input ?? []).some((i) => afterLayer.has(i))) for (const o of node.output ?? []) if (o) afterLayer.add(o);
  }
  for (const node of model.graph!.node ?? []) {
    const out = node.output?.[0];
    if (!out || index.graphOutputs.has(out) || !afterLayer.has(out)) continue;
    const op = node.opType ?? '';
    const consumers = index.consumersOf(out);
    const intoActivation = consumers.length > 0 && consumers.every((c) => ACTIVATIONS.has(c.opType ?? ''));
    // the end of a residual branch goes only into its Add; a block's input also feeds its layers
    const intoAdd = consumers.length > 0 && consumers.every((c) => c.opType === 'Add');
    if (ACTIVATIONS.has(op)) {
      if (feedsLayer(out)) points.push(out);
    } else if (op === 'Add') {
      if (!intoActivation && feedsLayer(out)) points.push(out);
    } else if (op === 'Concat') {
      // a layer reading it needs one grid; re-quantizing DenseNet's running features at every
      // dense layer (a Concat feeding the next Concat) would only add noise
      if (!intoActivation && feedsLayer(out, false)) points.push(out);
    } else if (LAYER_OPS.has(op) || op === 'Mul') {
      if (!intoActivation && !intoAdd && feedsLayer(out)) points.push(out);
    }
  }
  return points;
}

export type ActivationKind = 'relu' | 'relu6' | 'clip' | 'leaky-relu' | 'sigmoid' | 'hard-sigmoid' | 'hard-swish';

/**
 * What an activation node computes. Clip(0, 6), whether its bounds are attributes (opset < 11)
 * or constant inputs, is ReLU6: MobileNet exports use it and the engine has a kernel for it.
 */
export function activationKind(node: NodeProto, index: GraphIndex): ActivationKind | null {
  switch (node.opType) {
    case 'Relu':
      return 'relu';
    case 'LeakyRelu':
      return 'leaky-relu';
    case 'Sigmoid':
      return 'sigmoid';
    case 'HardSigmoid':
      return 'hard-sigmoid';
    case 'HardSwish':
      return 'hard-swish';
    case 'Clip': {
      const bound = (i: number, attr: string): number | undefined => {
        const t = index.constant(node.input?.[i]);
        if (t) return tensorToFloat32(t)[0];
        return node.attribute?.find((a) => a.name === attr)?.f;
      };
      const lo = bound(1, 'min');
      const hi = bound(2, 'max');
      if (lo === 0 && hi === 6) return 'relu6';
      if (lo === 0 && hi === undefined) return 'relu';
      return 'clip';
    }
    default:
      return null;
  }
}
