import { DataType, type ModelProto, type NodeProto, type TensorProto } from '../onnx/schema';
import { floatTensor, int32Tensor, int64Tensor, int8Tensor, packSubByte, tensorToFloat32, type ExternalFiles } from '../onnx/tensor-data';
import { intAttr } from '../graph/attributes';
import { defaultOpsetVersion, upgradeOpset } from './opset-upgrade';
import type { QuantLayer } from '../graph/layers';
import { dequantizeTensor, intRange, roundHalfEven, rowGroups, type QuantParams } from '../quant/quantizer';

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

/** An ONNX integer container, the opset whose Q/DQ first take it, and its IR version. */
interface Storage {
  readonly type: DataType;
  readonly opset: number;
  readonly container: 8 | 4;
}

const STORAGE = {
  int8: { type: DataType.INT8, opset: 13, container: 8 },
  uint8: { type: DataType.UINT8, opset: 13, container: 8 },
  int4: { type: DataType.INT4, opset: 21, container: 4 },
  uint4: { type: DataType.UINT4, opset: 21, container: 4 },
} as const satisfies Record<string, Storage>;

/**
 * Where a weight's codes are stored: 2- to 4-bit codes in 4-bit containers (a DequantizeLinear
 * does not saturate, so the narrower grid is kept exactly, and int4 runs on more runtimes than
 * int2), wider ones in 8 bits.
 */
function weightStorage(p: QuantParams): Storage {
  if (p.bits > 4) return p.signed ? STORAGE.int8 : STORAGE.uint8;
  return p.signed ? STORAGE.int4 : STORAGE.uint4;
}

/**
 * Where an activation's codes are stored. QuantizeLinear saturates at the container's ends, so a
 * container wider than the grid would let codes past 2^b − 1: below 8 bits the tensor is first
 * clipped onto its grid (`clip`), then quantized into an 8-bit container. Not int4/uint2 output
 * types, though ONNX has them: ONNX Runtime Web 1.30 runs a lone 4- or 2-bit QuantizeLinear
 * correctly, but a whole network whose activations mix 8- and 4-bit QuantizeLinear outputs hung
 * in session.run or failed with "memory access out of bounds" on release (docs/architecture.md).
 * Every runtime that runs QDQ int8 runs this form, and it stays fusable into integer kernels.
 */
function activationStorage(p: QuantParams): { storage: Storage; clip: boolean } {
  return { storage: p.signed ? STORAGE.int8 : STORAGE.uint8, clip: p.bits < 8 };
}

/** Integer values in a container: whole bytes, or packed two to a byte (low nibble first). */
function intTensor(name: string, dims: readonly number[], values: ArrayLike<number>, s: Storage): TensorProto {
  if (s.type === DataType.INT8) return int8Tensor(name, [...dims], Int8Array.from(values), true);
  if (s.type === DataType.UINT8) return int8Tensor(name, [...dims], Uint8Array.from(values), false);
  return { name, dims: [...dims], dataType: s.type, rawData: packSubByte(values, 4) };
}

function codesTensor(name: string, dims: readonly number[], codes: Int32Array, p: QuantParams): TensorProto {
  return intTensor(name, dims, codes, weightStorage(p));
}

function zeroTensor(name: string, p: QuantParams, dims: number[]): TensorProto {
  return intTensor(name, dims, p.zeroPoint, weightStorage(p));
}

/** Names `blockedWeight` adds after a weight's prefix. */
const BLOCKED_SUFFIXES = ['_blocked', '_offset_added', '_shape', '_Reshape', '_offset_shape', '_offset_Expand', '_offset_expanded', '_offset_rows', '_offset_Reshape', '_offset_padded', '_offset_starts', '_offset_ends', '_offset_axes', '_offset_Slice', '_offset_full'];

/**
 * A per-group weight as ONNX blocked quantization (opset 21 `block_size`), on the weight viewed
 * as 2-D with each output channel's row along the block axis: [C, K] for channels on axis 0
 * (a Conv's K = C_in/g·kh·kw, then Reshape back to OIHW), [K, C] for a MatMul-style weight. ONNX
 * Runtime 1.30 (web and node) runs blocked DequantizeLinear on Conv and Gemm weights, shorter last
 * block included (qdq.test.ts); the view keeps GPTQ's grouping of the GEMM's reduction dimension,
 * where blocking OIHW on its input-channel axis would give every kernel position its own scale.
 * decoupleQ's float offsets are expanded to the block layout (Expand, Reshape, Slice) and added.
 */
function blockedWeight(base: string, dims: readonly number[], codes: Int32Array, p: QuantParams, g: { axis: number; size: number }, inits: TensorProto[]): NodeProto[] {
  const { channels, row, groups } = rowGroups(dims, { kind: 'group', ...g });
  if (g.axis !== 0 && !(g.axis === 1 && dims.length === 2)) throw new Error(`per-group export: channels on axis ${g.axis} of a ${dims.length}-D weight are not supported`);
  const rowsFirst = g.axis === 0;
  const view = rowsFirst ? [channels, row] : [row, channels];
  const blockDims = rowsFirst ? [channels, groups] : [groups, channels];
  // parameters are channel-major; a [K, C] view wants them group-major
  const order = <T extends Float32Array | Int32Array>(a: T): T => {
    if (rowsFirst) return a;
    const t = a.slice() as T;
    for (let c = 0; c < channels; c++) for (let k = 0; k < groups; k++) t[k * channels + c] = a[c * groups + k]!;
    return t;
  };
  inits.push(codesTensor(`${base}_quantized`, view, codes, p), floatTensor(`${base}_scale`, blockDims, order(p.scale)), zeroTensor(`${base}_zero_point`, { ...p, zeroPoint: order(p.zeroPoint) }, blockDims));
  const steps: { node: Omit<NodeProto, 'output'>; out: string }[] = [];
  steps.push({
    node: { name: `${base}_DequantizeLinear`, opType: 'DequantizeLinear', input: [`${base}_quantized`, `${base}_scale`, `${base}_zero_point`], attribute: [intAttr('axis', rowsFirst ? 1 : 0), intAttr('block_size', g.size)] },
    out: `${base}_blocked`,
  });
  if (p.offset) {
    // one offset per block, repeated over its block and cut to the row length: the same layout as the codes
    const axis = rowsFirst ? 1 : 0;
    inits.push(
      floatTensor(`${base}_offset`, rowsFirst ? [channels, groups, 1] : [groups, 1, channels], order(p.offset)),
      int64Tensor(`${base}_offset_shape`, [3], rowsFirst ? [channels, groups, g.size] : [groups, g.size, channels]),
      int64Tensor(`${base}_offset_rows`, [2], rowsFirst ? [channels, groups * g.size] : [groups * g.size, channels]),
    );
    steps.push({ node: { name: `${base}_offset_Expand`, opType: 'Expand', input: [`${base}_offset`, `${base}_offset_shape`] }, out: `${base}_offset_expanded` });
    const padded = groups * g.size !== row;
    steps.push({ node: { name: `${base}_offset_Reshape`, opType: 'Reshape', input: [`${base}_offset_expanded`, `${base}_offset_rows`] }, out: padded ? `${base}_offset_padded` : `${base}_offset_full` });
    if (padded) {
      inits.push(int64Tensor(`${base}_offset_starts`, [1], [0]), int64Tensor(`${base}_offset_ends`, [1], [row]), int64Tensor(`${base}_offset_axes`, [1], [axis]));
      steps.push({ node: { name: `${base}_offset_Slice`, opType: 'Slice', input: [`${base}_offset_padded`, `${base}_offset_starts`, `${base}_offset_ends`, `${base}_offset_axes`] }, out: `${base}_offset_full` });
    }
    steps.push({ node: { name: `${base}_AddOffset`, opType: 'Add', input: [`${base}_blocked`, `${base}_offset_full`] }, out: `${base}_offset_added` });
  }
  if (dims.length !== 2) {
    inits.push(int64Tensor(`${base}_shape`, [dims.length], [...dims]));
    steps.push({ node: { name: `${base}_Reshape`, opType: 'Reshape', input: [steps.at(-1)!.out, `${base}_shape`] }, out: `${base}_dequantized` });
  }
  // the last step writes the name the layer reads
  const last = steps.at(-1)!;
  const rename = new Map([[last.out, `${base}_dequantized`]]);
  return steps.map(({ node, out }) => ({ ...node, input: (node.input ?? []).map((i) => rename.get(i) ?? i), output: [rename.get(out) ?? out] }));
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
  const SUFFIXES = ['_quantized', '_scale', '_zero_point', '_dequantized', '_DequantizeLinear', '_scaled', '_offset', '_AddOffset', ...BLOCKED_SUFFIXES];
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
    opset = Math.max(opset, weightStorage(params).opset);
    const g = params.granularity;
    const inputs = [...(node.input ?? [])];
    inputs[1] = `${base}_dequantized`;
    const extra: NodeProto[] = [];
    if (g.kind === 'group') {
      opset = Math.max(opset, 21);
      extra.push(...blockedWeight(base, layer.weightDims, codes, params, g, newInits));
    } else {
      const channels = params.scale.length;
      newInits.push(codesTensor(`${base}_quantized`, layer.weightDims, codes, params));
      newInits.push(floatTensor(`${base}_scale`, g.kind === 'tensor' ? [] : [channels], params.scale));
      newInits.push(zeroTensor(`${base}_zero_point`, params, g.kind === 'tensor' ? [] : [channels]));
      extra.push({
        name: `${base}_DequantizeLinear`,
        opType: 'DequantizeLinear',
        input: [`${base}_quantized`, `${base}_scale`, `${base}_zero_point`],
        output: [params.offset ? `${base}_scaled` : `${base}_dequantized`],
        attribute: g.kind === 'tensor' ? [] : [intAttr('axis', g.axis)],
      });
      if (params.offset) {
        // decoupleQ's float offset, exactly: ŵ = DequantizeLinear(q, s, 0) + z (algorithms.md, Decisions)
        newInits.push(floatTensor(`${base}_offset`, layer.weightDims.map((d, i) => (g.kind === 'channel' && i === g.axis ? d : 1)), params.offset));
        extra.push({ name: `${base}_AddOffset`, opType: 'Add', input: [`${base}_scaled`, `${base}_offset`], output: [`${base}_dequantized`] });
      }
    }
    const inAct = activations.get(inputs[0] ?? '');
    // an offset between the weight's DequantizeLinear and the layer rules out integer fusion, and
    // so do group scales (no single weight scale per output channel): the bias stays float
    if (layer.bias && inAct && g.kind === 'channel' && !params.offset) {
      // int32 bias: the form QLinearConv/QGemm fusion requires
      const b = tensorToFloat32(initializers.get(layer.bias)!, external);
      const bias = prefix(layer.bias);
      const channels = params.scale.length;
      const bScale = new Float32Array(channels);
      const bCodes = new Int32Array(channels);
      let fits = true;
      for (let c = 0; c < channels; c++) {
        bScale[c] = inAct.scale[0]! * params.scale[c]!;
        const q = roundHalfEven(b[c]! / bScale[c]!);
        fits &&= Number.isFinite(q) && q >= -(2 ** 31) && q < 2 ** 31;
        bCodes[c] = q;
      }
      // a bias far larger than its channel's step product (a near-constant filter) has no int32 form: it stays float
      if (!fits) {
        replacedInputs.set(node, inputs);
        preNodes.set(node, extra);
        continue;
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
    const { storage, clip } = activationStorage(p);
    opset = Math.max(opset, storage.opset);
    newInits.push(floatTensor(s, [], p.scale), intTensor(z, [], p.zeroPoint, storage));
    const steps: NodeProto[] = [];
    let quantizeInput = tensor;
    if (clip) {
      // Clip to s·(qmin − z) … s·(qmax − z): round(x/s) of a bound is exactly qmin − z or qmax − z,
      // so QuantizeLinear then gives clamp(round(x/s) + z, qmin, qmax), the engine's code, bit for bit
      const { qmin, qmax } = intRange(p.bits, p.signed, p.symmetric);
      const scale = Math.fround(p.scale[0]!);
      const zero = p.zeroPoint[0]!;
      newInits.push(floatTensor(`${tensor}_clip_min`, [], Float32Array.of(scale * (qmin - zero))), floatTensor(`${tensor}_clip_max`, [], Float32Array.of(scale * (qmax - zero))));
      steps.push({ name: `${tensor}_Clip`, opType: 'Clip', input: [tensor, `${tensor}_clip_min`, `${tensor}_clip_max`], output: [`${tensor}_clipped`] });
      quantizeInput = `${tensor}_clipped`;
    }
    steps.push(
      { name: `${tensor}_QuantizeLinear`, opType: 'QuantizeLinear', input: [quantizeInput, s, z], output: [`${tensor}_quantized`] },
      { name: `${tensor}_DequantizeLinear`, opType: 'DequantizeLinear', input: [`${tensor}_quantized`, s, z], output: [`${tensor}_dequantized`] },
    );
    actNodes.set(tensor, steps);
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
  const exported: ModelProto = {
    ...model,
    irVersion: Math.max(model.irVersion ?? 0, opset >= 21 ? 10 : 7),
    producerName: 'lowbit-studio',
    graph: { ...src, node: nodes, initializer: [...kept, ...newInits], valueInfo: [] },
  };
  // raising the default-domain opset rewrites the model's own ops whose signature changed on the
  // way (a Clip with min/max attributes from an opset-9 export would not load otherwise)
  const current = defaultOpsetVersion(model);
  return current !== undefined && current < opset ? upgradeOpset(exported, opset, external) : exported;
}
