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
const PASS_THROUGH = new Set(['MaxPool', 'Flatten', 'Reshape', 'Squeeze', 'Unsqueeze', 'Transpose', 'GlobalMaxPool']);

/**
 * Tensors whose values are quantized (algorithms.md §1.4): the outputs of activation functions,
 * of residual adds not followed by one, and of layers whose output goes straight to another layer.
 * Never the network input or output, and never a layer output that feeds an add or an activation.
 */
export function activationQuantPoints(model: ModelProto): string[] {
  const index = new GraphIndex(model.graph!);
  const points: string[] = [];
  const feedsLayer = (t: string, depth = 0): boolean =>
    depth < 8 &&
    index.consumersOf(t).some((c) => {
      if (c.opType === 'Conv' || c.opType === 'Gemm' || c.opType === 'MatMul' || c.opType === 'GlobalAveragePool' || c.opType === 'AveragePool' || c.opType === 'Add' || c.opType === 'Concat') return true;
      return PASS_THROUGH.has(c.opType ?? '') && feedsLayer(c.output?.[0] ?? '', depth + 1);
    });
  for (const node of model.graph!.node ?? []) {
    const out = node.output?.[0];
    if (!out || index.graphOutputs.has(out)) continue;
    const op = node.opType ?? '';
    const consumers = index.consumersOf(out);
    const intoActivation = consumers.length > 0 && consumers.every((c) => ACTIVATIONS.has(c.opType ?? ''));
    if (ACTIVATIONS.has(op)) {
      if (feedsLayer(out)) points.push(out);
    } else if (op === 'Add' || op === 'Concat') {
      if (!intoActivation && feedsLayer(out)) points.push(out);
    } else if (op === 'Conv' || op === 'Gemm' || op === 'MatMul') {
      const intoAdd = consumers.some((c) => c.opType === 'Add');
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
