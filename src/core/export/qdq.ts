import { DataType, type ModelProto, type NodeProto, type TensorProto } from '../onnx/schema';
import { floatTensor, int32Tensor, int8Tensor, packSubByte, tensorToFloat32, type ExternalFiles } from '../onnx/tensor-data';
import { intAttr } from '../graph/attributes';
import type { QuantLayer } from '../graph/layers';
import { dequantizeTensor, roundHalfEven, type QuantParams } from '../quant/quantizer';

/** A layer's weight as integer codes with their parameters (codes laid out like the float weight). */
export interface QuantizedWeight {
  readonly layer: QuantLayer;
  readonly codes: Int32Array;
  readonly params: QuantParams;
}

export interface QdqExportInput {
  readonly model: ModelProto;
  readonly weights: readonly QuantizedWeight[];
  /** Activation tensor name → its per-tensor parameters. */
  readonly activations: ReadonlyMap<string, QuantParams>;
  readonly external?: ExternalFiles;
  /**
   * 'integer' (default) stores weights as integer codes behind DequantizeLinear, the deployable
   * form; 'float' stores the dequantized float weights, for runtimes without integer kernels.
   */
  readonly weightFormat?: 'integer' | 'float';
}

/** The ONNX integer type that stores `bits`-bit codes, and the opset it needs. */
function storage(p: QuantParams): { type: DataType; opset: number } {
  if (p.bits > 4) return { type: p.signed ? DataType.INT8 : DataType.UINT8, opset: 13 };
  // 2- and 3-bit codes live in 4-bit containers with their clamped range (int2 needs opset 25, which few runtimes load yet)
  return { type: p.signed ? DataType.INT4 : DataType.UINT4, opset: 21 };
}

function codesTensor(name: string, dims: readonly number[], codes: Int32Array, p: QuantParams): TensorProto {
  const { type } = storage(p);
  if (type === DataType.INT8) return int8Tensor(name, dims, Int8Array.from(codes), true);
  if (type === DataType.UINT8) return int8Tensor(name, dims, Uint8Array.from(codes), false);
  return { name, dims: [...dims], dataType: type, rawData: packSubByte(codes, 4) };
}

function zeroTensor(name: string, p: QuantParams, dims: number[]): TensorProto {
  const { type } = storage(p);
  if (type === DataType.INT8) return int8Tensor(name, dims, Int8Array.from(p.zeroPoint), true);
  if (type === DataType.UINT8) return int8Tensor(name, dims, Uint8Array.from(p.zeroPoint), false);
  return { name, dims, dataType: type, rawData: packSubByte(p.zeroPoint, 4) };
}

/**
 * Writes the QDQ form ONNX Runtime expects and fuses (shared/docs/onnx.md): constant integer weights
 * feeding a lone DequantizeLinear, per channel on the output-channel axis; activations through a
 * QuantizeLinear→DequantizeLinear pair; biases of layers with a quantized input as int32 with
 * scale = input scale × weight scale. The same graph, run without optimisation, is the studio's
 * fake-quantized model: there is one definition of "the quantized model".
 */
export function exportQdq({ model, weights, activations, external, weightFormat = 'integer' }: QdqExportInput): ModelProto {
  const src = model.graph!;
  const initializers = new Map((src.initializer ?? []).map((t) => [t.name!, t]));
  const newInits: TensorProto[] = [];
  const replacedInputs = new Map<NodeProto, string[]>();
  const preNodes = new Map<NodeProto, NodeProto[]>();
  let opset = 13;

  // Names already in the graph. Exporters share one initializer between layers (torch.onnx keeps
  // a single copy of equal constants, e.g. all-zero biases): each layer gets its own codes, and
  // for a bias its own scale, so a name prefix is taken once only.
  const taken = new Set<string>([
    ...(src.initializer ?? []).map((t) => t.name ?? ''),
    ...(src.input ?? []).map((v) => v.name ?? ''),
    ...(src.node ?? []).flatMap((n) => [n.name ?? '', ...(n.output ?? [])]),
  ]);
  const SUFFIXES = ['_quantized', '_scale', '_zero_point', '_dequantized', '_DequantizeLinear', '_scaled', '_offset', '_AddOffset'];
  const prefixes = new Set<string>();
  const prefix = (name: string): string => {
    let p = name;
    for (let k = 2; prefixes.has(p) || SUFFIXES.some((x) => taken.has(p + x)); k++) p = `${name}_${k}`;
    prefixes.add(p);
    return p;
  };

  const byNode = new Map(weights.map((w) => [w.layer.node, w]));
  for (const node of src.node ?? []) {
    const qw = byNode.get(node);
    if (!qw) continue;
    const { layer, codes, params } = qw;
    const base = prefix(layer.weight);
    if (weightFormat === 'float') {
      newInits.push(floatTensor(`${base}_dequantized`, layer.weightDims, dequantizeTensor(codes, layer.weightDims, params)));
      replacedInputs.set(node, (node.input ?? []).map((n, i) => (i === 1 ? `${base}_dequantized` : n)));
      continue;
    }
    opset = Math.max(opset, storage(params).opset);
    const channels = params.scale.length;
    newInits.push(codesTensor(`${base}_quantized`, layer.weightDims, codes, params));
    newInits.push(floatTensor(`${base}_scale`, params.axis === null ? [] : [channels], params.scale));
    newInits.push(zeroTensor(`${base}_zero_point`, params, params.axis === null ? [] : [channels]));
    const dq: NodeProto = {
      name: `${base}_DequantizeLinear`,
      opType: 'DequantizeLinear',
      input: [`${base}_quantized`, `${base}_scale`, `${base}_zero_point`],
      output: [`${base}_dequantized`],
      attribute: params.axis === null ? [] : [intAttr('axis', layer.channelAxis)],
    };
    const inputs = [...(node.input ?? [])];
    inputs[1] = `${base}_dequantized`;
    const extra = [dq];
    if (params.offset) {
      // decoupleQ's float offset, exactly: ŵ = DequantizeLinear(q, s, 0) + z (algorithms.md, Decisions)
      dq.output = [`${base}_scaled`];
      newInits.push(floatTensor(`${base}_offset`, layer.weightDims.map((d, i) => (i === params.axis ? d : 1)), params.offset));
      extra.push({ name: `${base}_AddOffset`, opType: 'Add', input: [`${base}_scaled`, `${base}_offset`], output: [`${base}_dequantized`] });
    }
    const inAct = activations.get(inputs[0] ?? '');
    // an offset between the weight's DequantizeLinear and the layer rules out integer fusion: the bias stays float
    if (layer.bias && inAct && params.axis !== null && !params.offset) {
      // int32 bias: the form QLinearConv/QGemm fusion requires
      const b = tensorToFloat32(initializers.get(layer.bias)!, external);
      const bias = prefix(layer.bias);
      const bScale = new Float32Array(channels);
      const bCodes = new Int32Array(channels);
      for (let c = 0; c < channels; c++) {
        bScale[c] = inAct.scale[0]! * params.scale[c]!;
        bCodes[c] = roundHalfEven(b[c]! / bScale[c]!);
      }
      newInits.push(int32Tensor(`${bias}_quantized`, [channels], bCodes), floatTensor(`${bias}_scale`, [channels], bScale));
      extra.push({
        name: `${bias}_DequantizeLinear`,
        opType: 'DequantizeLinear',
        input: [`${bias}_quantized`, `${bias}_scale`],
        output: [`${bias}_dequantized`],
        attribute: [intAttr('axis', 0)],
      });
      inputs[2] = `${bias}_dequantized`;
    }
    replacedInputs.set(node, inputs);
    preNodes.set(node, extra);
  }

  const actNodes = new Map<string, NodeProto[]>();
  const actRename = new Map<string, string>();
  for (const [tensor, p] of activations) {
    const s = `${tensor}_scale`;
    const z = `${tensor}_zero_point`;
    newInits.push(floatTensor(s, [], p.scale), int8Tensor(z, [], p.signed ? Int8Array.from(p.zeroPoint) : Uint8Array.from(p.zeroPoint), p.signed));
    actNodes.set(tensor, [
      { name: `${tensor}_QuantizeLinear`, opType: 'QuantizeLinear', input: [tensor, s, z], output: [`${tensor}_quantized`] },
      { name: `${tensor}_DequantizeLinear`, opType: 'DequantizeLinear', input: [`${tensor}_quantized`, s, z], output: [`${tensor}_dequantized`] },
    ]);
    actRename.set(tensor, `${tensor}_dequantized`);
  }

  const nodes: NodeProto[] = [];
  for (const node of src.node ?? []) {
    nodes.push(...(preNodes.get(node) ?? []));
    const inputs = (replacedInputs.get(node) ?? node.input ?? []).map((i) => actRename.get(i) ?? i);
    nodes.push({ ...node, input: inputs });
    for (const o of node.output ?? []) nodes.push(...(actNodes.get(o) ?? []));
  }
  // an activation that is a graph input is quantized before the first node
  for (const inp of src.input ?? []) nodes.unshift(...(actNodes.get(inp.name ?? '') ?? []));

  const usedWeights = new Set(nodes.flatMap((n) => n.input ?? []));
  const kept = (src.initializer ?? []).filter((t) => usedWeights.has(t.name!));
  const opsetImport = (model.opsetImport ?? []).map((o) => (!o.domain || o.domain === 'ai.onnx' ? { ...o, version: Math.max(o.version ?? 0, opset) } : o));
  return {
    ...model,
    irVersion: Math.max(model.irVersion ?? 0, opset >= 21 ? 10 : 7),
    producerName: 'lowbit-studio',
    opsetImport,
    graph: { ...src, node: nodes, initializer: [...kept, ...newInits], valueInfo: [] },
  };
}
