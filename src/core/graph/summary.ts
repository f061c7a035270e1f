import type { ModelProto, ValueInfo } from '../onnx/schema';
import { DataType } from '../onnx/schema';
import { attrInt } from './attributes';
import { findQuantLayers, type LayerKind } from './layers';
import { inferShapes } from './shapes';
import { canonicalize } from './canonicalize';
import { partitionModel, PartitionError } from './partition';

export interface TensorInfo {
  readonly name: string;
  readonly type: string;
  /** A number per fixed dimension, the symbolic name (or '?') of a dynamic one. */
  readonly shape: readonly (number | string)[];
}

export interface LayerSummary {
  readonly name: string;
  readonly kind: LayerKind;
  readonly weightShape: readonly number[];
  readonly params: number;
  /** Multiply-accumulates per image; null when the shapes could not be measured. */
  readonly macs: number | null;
  /** Elements of the layer's output per image (what caches of it cost); null when the shapes could not be measured. */
  readonly outputElements: number | null;
  /** The layer's output shape at batch 1; null when the shapes could not be measured. */
  readonly outputShape: readonly number[] | null;
  readonly isFirst: boolean;
  readonly isLast: boolean;
}

export interface ModelSummary {
  readonly irVersion: number;
  readonly opset: number;
  readonly producer: string;
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  readonly ops: Readonly<Record<string, number>>;
  readonly layers: readonly LayerSummary[];
  readonly params: number;
  readonly macs: number | null;
  /** The automatic block partition of the canonicalised model; null when it cannot be made. */
  readonly blocks: readonly { readonly id: string; readonly kind: string; readonly layers: readonly string[] }[] | null;
}

function info(v: ValueInfo): TensorInfo {
  const t = v.type?.tensorType;
  return {
    name: v.name ?? '',
    type: DataType[t?.elemType ?? 0]?.toLowerCase() ?? 'unknown',
    shape: (t?.shape?.dim ?? []).map((d) => d.dimValue ?? d.dimParam ?? '?'),
  };
}

/**
 * What a user needs to know about a model before quantizing it. MACs come from static shape
 * inference at batch 1, when the input shape allows it.
 */
export function summarizeModel(model: ModelProto): ModelSummary {
  const graph = model.graph!;
  const initNames = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((v) => !initNames.has(v.name)).map(info);
  const ops: Record<string, number> = {};
  for (const n of graph.node ?? []) ops[n.opType ?? '?'] = (ops[n.opType ?? '?'] ?? 0) + 1;
  const layers = findQuantLayers(model);
  const counts = countMacs(model, inputs, layers);
  const macs = counts?.macs ?? null;
  const summaries = layers.map((l, i) => ({ name: l.name, kind: l.kind, weightShape: l.weightDims, params: l.params, macs: macs?.[i] ?? null, outputElements: counts?.outputs[i] ?? null, outputShape: counts?.shapes[i] ?? null, isFirst: l.isFirst, isLast: l.isLast }));
  const opset = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx')?.version ?? 0;
  return {
    irVersion: model.irVersion ?? 0,
    opset,
    producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
    inputs,
    outputs: (graph.output ?? []).map(info),
    ops,
    layers: summaries,
    params: (graph.initializer ?? []).reduce((a, t) => a + (t.dims ?? []).reduce((x, y) => x * y, 1), 0),
    macs: macs ? macs.reduce((a, b) => a + b, 0) : null,
    blocks: blocksOf(model),
  };
}

/** MACs and output sizes per image from inferred shapes at batch 1; null when the shapes cannot be inferred. */
function countMacs(model: ModelProto, inputs: readonly TensorInfo[], layers: ReturnType<typeof findQuantLayers>): { macs: number[]; outputs: number[]; shapes: (readonly number[])[] } | null {
  const shapes = new Map(inputs.map((i) => [i.name, i.shape.map((d, k) => (typeof d === 'number' ? d : k === 0 ? 1 : NaN))] as const));
  if ([...shapes.values()].some((s) => s.some(Number.isNaN))) return null;
  let info;
  try {
    info = inferShapes(model, shapes);
  } catch {
    return null;
  }
  const outputs = layers.map((l) => info.shapes.get(l.node.output![0]!)?.reduce((a, b) => a * b, 1) ?? NaN);
  const macs = layers.map((l) => {
    const out = info.shapes.get(l.node.output![0]!);
    if (!out) return NaN;
    const elems = out.reduce((a, b) => a * b, 1);
    const w = l.weightDims;
    if (l.kind === 'conv') return elems * w.slice(1).reduce((a, b) => a * b, 1);
    return elems * (l.kind === 'gemm' && attrInt(l.node, 'transB', 0) ? w[1]! : w[0]!);
  });
  const layerShapes = layers.map((l) => info.shapes.get(l.node.output![0]!)!);
  return macs.some(Number.isNaN) || outputs.some(Number.isNaN) ? null : { macs, outputs, shapes: layerShapes };
}

function blocksOf(model: ModelProto): ModelSummary['blocks'] {
  try {
    return partitionModel(canonicalize(model).model).blocks.map(({ id, kind, layers }) => ({ id, kind, layers }));
  } catch (e) {
    if (e instanceof PartitionError) return null;
    throw e;
  }
}
