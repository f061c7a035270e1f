import type { ModelProto, ValueInfo } from '../onnx/schema';
import { DataType } from '../onnx/schema';
import { encodeModel } from '../onnx/codec';
import { attrInt } from './attributes';
import { findQuantLayers, type LayerKind } from './layers';
import { withOutputs } from '../quant/calibrate';
import { ModelSession } from '../eval/runtime';

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
 * What a user needs to know about a model before quantizing it. MACs come from the real output
 * shapes, measured by one ONNX Runtime pass on a zero image of batch 1, when the input shape allows it.
 */
export async function summarizeModel(model: ModelProto): Promise<ModelSummary> {
  const graph = model.graph!;
  const initNames = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((v) => !initNames.has(v.name)).map(info);
  const ops: Record<string, number> = {};
  for (const n of graph.node ?? []) ops[n.opType ?? '?'] = (ops[n.opType ?? '?'] ?? 0) + 1;
  const layers = findQuantLayers(model);
  const macs = await measureMacs(model, inputs, layers);
  const summaries = layers.map((l, i) => ({ name: l.name, kind: l.kind, weightShape: l.weightDims, params: l.params, macs: macs?.[i] ?? null, isFirst: l.isFirst, isLast: l.isLast }));
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
  };
}

async function measureMacs(model: ModelProto, inputs: readonly TensorInfo[], layers: ReturnType<typeof findQuantLayers>): Promise<number[] | null> {
  const input = inputs[0];
  if (inputs.length !== 1 || !input || input.type !== 'float') return null;
  const shape = input.shape.map((d, i) => (typeof d === 'number' ? d : i === 0 ? 1 : NaN));
  if (shape.some(Number.isNaN) || (typeof input.shape[0] === 'number' && input.shape[0] !== 1)) return null;
  const outs = layers.map((l) => l.node.output![0]!);
  try {
    const session = await ModelSession.create(encodeModel(withOutputs(model, outs)), 'none');
    try {
      const res = await session.run(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, outs);
      return layers.map((l, i) => {
        const out = res.get(outs[i]!)!;
        const elems = out.data.length;
        const w = l.weightDims;
        if (l.kind === 'conv') return (elems * w.slice(1).reduce((a, b) => a * b, 1));
        const k = l.kind === 'gemm' && attrInt(l.node, 'transB', 0) ? w[1]! : w[0]!;
        return elems * k;
      });
    } finally {
      await session.release();
    }
  } catch {
    return null;
  }
}
