import { DataType, type GraphProto, type ModelProto, type NodeProto, type TensorProto, type ValueInfo } from '../onnx/schema';
import { elementCount, floatTensor, tensorBytes, tensorToFloat32, tensorToInts, type ExternalFiles } from '../onnx/tensor-data';
import { attrFloat, attrInt, attrInts } from './attributes';
import { GraphIndex } from './graph-index';
import { inferShapes, type ShapeInfo } from './shapes';
import { int64Tensor } from '../onnx/tensor-data';

export interface CanonicalizeReport {
  foldedBatchNorms: number;
  /**
   * `Constant` nodes turned into initializers of the same name. Paddle2ONNX, tf2onnx and older
   * PyTorch exports write weights this way; the quantizer only sees initializers as weights.
   */
  constantNodes: number;
  /** Identity, inference Dropout and one-input Concat nodes removed (an initializer behind an Identity is then read directly). */
  removedIdentities: number;
  /**
   * Transpose, Reshape, Cast, Squeeze and Unsqueeze nodes whose inputs are all constant, computed
   * into an initializer named like their output (a weight stored transposed, or as float16 and
   * cast): the layer then reads its weight directly.
   */
  foldedConstantOps: number;
  /**
   * N-ary Concats that repeat an earlier Concat's inputs and add some (a DenseNet block's
   * `cat(features)`), rewritten to take that Concat's output instead: the same values, and the
   * running features become one tensor, so a dense layer is a single-entry single-exit block.
   */
  nestedConcats: number;
  /** Reshape targets computed by Shape→Gather→…→Concat chains, replaced by constants. */
  foldedShapeChains: number;
  /** MatMul + Add(bias) on 2-D inputs with constant weights, rewritten as one Gemm. */
  fusedLinear: number;
  removedDeadNodes: number;
}

/**
 * Rewrites a model into the form the quantizer works on, as the references do before quantizing
 * (algorithms.md §1.3): BatchNormalization folded into the Conv/Gemm before it, Identity,
 * inference-time Dropout and one-input Concats removed, N-ary Concats that extend an earlier one
 * nested (DenseNet). Weights touched by folding are materialised inline (no external data), the
 * rest are shared with the input model.
 */
export function canonicalize(model: ModelProto, external?: ExternalFiles): { model: ModelProto; report: CanonicalizeReport } {
  const graph: GraphProto = { ...model.graph!, node: [...(model.graph!.node ?? [])], initializer: [...(model.graph!.initializer ?? [])] };
  const report: CanonicalizeReport = { foldedBatchNorms: 0, constantNodes: 0, removedIdentities: 0, foldedConstantOps: 0, nestedConcats: 0, foldedShapeChains: 0, fusedLinear: 0, removedDeadNodes: 0 };
  // constants first, so that everything after sees weights as initializers
  report.constantNodes = constantsToInitializers(graph);
  report.removedIdentities = removePassThrough(graph);
  report.foldedConstantOps = foldConstantOps(graph, external);
  report.nestedConcats = nestConcats(graph);
  const shapes = inferWithDynamicDims({ ...model, graph }, external);
  report.foldedShapeChains = foldReshapeTargets(graph, shapes);
  report.fusedLinear = fuseMatMulAdd(graph, shapes);
  report.foldedBatchNorms = foldBatchNorms(graph, external);
  report.removedDeadNodes = removeDeadNodes(graph);
  // IR < 4 lists initializers as graph inputs too: drop those whose initializer is gone
  const original = new Set((model.graph!.initializer ?? []).map((t) => t.name));
  const current = new Set(graph.initializer!.map((t) => t.name));
  graph.input = (graph.input ?? []).filter((v) => !original.has(v.name) || current.has(v.name));
  if ((model.irVersion ?? 0) < 4) listInitializersAsInputs(graph);
  return { model: { ...model, graph }, report };
}

/** IR < 4 requires every initializer to be a graph input as well: list those created here. */
function listInitializersAsInputs(graph: GraphProto): void {
  const listed = new Set((graph.input ?? []).map((v) => v.name));
  const added: ValueInfo[] = (graph.initializer ?? [])
    .filter((t) => !listed.has(t.name))
    .map((t) => ({ name: t.name, type: { tensorType: { elemType: t.dataType, shape: { dim: (t.dims ?? []).map((d) => ({ dimValue: d })) } } } }));
  // after the data inputs, so that the first input is still the network's
  graph.input = [...(graph.input ?? []), ...added];
}

/**
 * A `Constant` node becomes an initializer of the same name, from whichever attribute holds its
 * value (`value`, `value_float(s)`, `value_int(s)`). String and sparse constants stay nodes, and
 * so does a Constant that is itself a graph output (an initializer cannot stand for one everywhere).
 */
function constantsToInitializers(graph: GraphProto): number {
  const outputs = new Set((graph.output ?? []).map((o) => o.name));
  const kept: NodeProto[] = [];
  let converted = 0;
  for (const n of graph.node ?? []) {
    const out = n.output?.[0];
    const t = n.opType === 'Constant' && (!n.domain || n.domain === 'ai.onnx') && out && !outputs.has(out) ? constantValue(n, out) : undefined;
    if (!t) {
      kept.push(n);
      continue;
    }
    graph.initializer!.push(t);
    converted++;
  }
  graph.node = kept;
  return converted;
}

function constantValue(n: NodeProto, name: string): TensorProto | undefined {
  const a = n.attribute?.[0];
  if (!a || n.attribute!.length !== 1) return undefined;
  switch (a.name) {
    case 'value':
      return a.t ? { ...a.t, name } : undefined;
    case 'value_float':
      return floatTensor(name, [], Float32Array.of(a.f ?? 0));
    case 'value_floats':
      return floatTensor(name, [a.floats?.length ?? 0], Float32Array.from(a.floats ?? []));
    case 'value_int':
      return int64Tensor(name, [], [a.i ?? 0]);
    case 'value_ints':
      return int64Tensor(name, [a.ints?.length ?? 0], a.ints ?? []);
    default:
      return undefined;
  }
}

/** Ops that only move, reshape or convert their input: on constants they are computed once, here. */
const FOLDABLE = new Set(['Transpose', 'Reshape', 'Cast', 'Squeeze', 'Unsqueeze']);

/**
 * Computes FOLDABLE nodes whose inputs are all initializers into an initializer named like the
 * node's output, so consumers need no rewiring; in graph (topological) order, so chains fold
 * through. A node whose output is a graph output, or whose result cannot be computed exactly
 * here (string tensors, casts to float16, an invalid shape), is left as it is.
 */
function foldConstantOps(graph: GraphProto, external?: ExternalFiles): number {
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const outputs = new Set((graph.output ?? []).map((o) => o.name));
  const kept: NodeProto[] = [];
  let folded = 0;
  for (const n of graph.node ?? []) {
    const out = n.output?.[0];
    const inputs = (n.input ?? []).filter(Boolean).map((i) => inits.get(i));
    const foldable = FOLDABLE.has(n.opType ?? '') && (!n.domain || n.domain === 'ai.onnx') && out && !outputs.has(out) && (n.output ?? []).length === 1 && inputs.length > 0 && inputs.every(Boolean);
    const t = foldable ? evaluate(n, inputs as TensorProto[], external) : undefined;
    if (!t) {
      kept.push(n);
      continue;
    }
    const result: TensorProto = { name: out!, dataType: t.dtype, dims: t.dims, rawData: t.bytes };
    inits.set(out!, result);
    graph.initializer!.push(result);
    folded++;
  }
  graph.node = kept;
  return folded;
}

/** A tensor's elements as little-endian bytes, `width` bytes each. */
interface Dense {
  readonly dtype: DataType;
  readonly dims: number[];
  readonly bytes: Uint8Array;
}

/** Bytes per element of the types folding handles. */
const WIDTH: Partial<Record<DataType, number>> = {
  [DataType.FLOAT]: 4, [DataType.DOUBLE]: 8, [DataType.FLOAT16]: 2, [DataType.BFLOAT16]: 2,
  [DataType.INT8]: 1, [DataType.UINT8]: 1, [DataType.BOOL]: 1, [DataType.INT16]: 2, [DataType.UINT16]: 2,
  [DataType.INT32]: 4, [DataType.UINT32]: 4, [DataType.INT64]: 8, [DataType.UINT64]: 8,
};

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Reads a tensor as raw bytes, from raw_data or from whichever typed field ONNX stores it in. */
function dense(t: TensorProto, external?: ExternalFiles): Dense | undefined {
  const dtype = t.dataType ?? DataType.UNDEFINED;
  const width = WIDTH[dtype];
  if (!width) return undefined;
  const dims = [...(t.dims ?? [])];
  const n = elementCount(dims);
  const raw = tensorBytes(t, external);
  if (raw && raw.length > 0) return raw.length === n * width ? { dtype, dims, bytes: raw } : undefined;
  const bytes = typedFieldBytes(t, dtype, n);
  return bytes && bytes.length === n * width ? { dtype, dims, bytes } : undefined;
}

function typedFieldBytes(t: TensorProto, dtype: DataType, n: number): Uint8Array | undefined {
  if (n === 0) return new Uint8Array(0);
  switch (dtype) {
    case DataType.FLOAT:
      return t.floatData ? bytesOf(Float32Array.from(t.floatData)) : undefined;
    case DataType.DOUBLE:
      return t.doubleData ? bytesOf(Float64Array.from(t.doubleData)) : undefined;
    case DataType.INT64:
      return t.int64Data ? bytesOf(BigInt64Array.from(t.int64Data, BigInt)) : undefined;
    case DataType.UINT64:
      return t.uint64Data ? bytesOf(BigUint64Array.from(t.uint64Data, BigInt)) : undefined;
    case DataType.UINT32:
      return t.uint64Data ? bytesOf(Uint32Array.from(t.uint64Data)) : undefined;
    default: {
      // int32_data holds every type of 32 bits or fewer; 16-bit floats as their bit patterns
      if (!t.int32Data) return undefined;
      const ctor = { [DataType.INT32]: Int32Array, [DataType.INT16]: Int16Array, [DataType.UINT16]: Uint16Array, [DataType.FLOAT16]: Uint16Array, [DataType.BFLOAT16]: Uint16Array, [DataType.INT8]: Int8Array, [DataType.UINT8]: Uint8Array, [DataType.BOOL]: Uint8Array }[dtype as number];
      return ctor ? bytesOf(ctor.from(t.int32Data)) : undefined;
    }
  }
}

function evaluate(n: NodeProto, inputs: TensorProto[], external?: ExternalFiles): Dense | undefined {
  const x = dense(inputs[0]!, external);
  if (!x) return undefined;
  const ints = (i: number): number[] | undefined => (inputs[i] ? tensorToInts(inputs[i]!, external) : undefined);
  switch (n.opType) {
    case 'Transpose':
      return transpose(x, attrInts(n, 'perm') ?? x.dims.map((_, i) => x.dims.length - 1 - i));
    case 'Reshape': {
      const dims = reshapeDims(x.dims, attrInts(n, 'shape') ?? ints(1), attrInt(n, 'allowzero', 0) === 1);
      return dims ? { ...x, dims } : undefined;
    }
    case 'Squeeze': {
      const dims = squeezeDims(x.dims, attrInts(n, 'axes') ?? ints(1));
      return dims ? { ...x, dims } : undefined;
    }
    case 'Unsqueeze': {
      const axes = attrInts(n, 'axes') ?? ints(1);
      const dims = axes ? unsqueezeDims(x.dims, axes) : undefined;
      return dims ? { ...x, dims } : undefined;
    }
    case 'Cast':
      return cast(x, attrInt(n, 'to', 0));
    default:
      return undefined;
  }
}

function transpose(x: Dense, perm: readonly number[]): Dense | undefined {
  const rank = x.dims.length;
  if (perm.length !== rank || new Set(perm).size !== rank || perm.some((p) => p < 0 || p >= rank)) return undefined;
  const width = WIDTH[x.dtype]!;
  const dims = perm.map((p) => x.dims[p]!);
  const inStrides = stridesOf(x.dims);
  // the input stride of each output axis, so an output position maps to its input element
  const strides = perm.map((p) => inStrides[p]!);
  const out = new Uint8Array(x.bytes.length);
  const n = elementCount(dims);
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0, src = 0; o < n; o++) {
    out.set(x.bytes.subarray(src * width, src * width + width), o * width);
    // odometer increment over the output index, updating the input offset as it goes
    for (let a = rank - 1; a >= 0; a--) {
      idx[a]!++;
      src += strides[a]!;
      if (idx[a]! < dims[a]!) break;
      src -= strides[a]! * dims[a]!;
      idx[a] = 0;
    }
  }
  return { dtype: x.dtype, dims, bytes: out };
}

function stridesOf(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1]! * dims[i + 1]!;
  return s;
}

/** ONNX Reshape: 0 copies the input's dimension (unless allowzero), one -1 takes what is left. */
function reshapeDims(dims: readonly number[], target: readonly number[] | undefined, allowZero: boolean): number[] | undefined {
  if (!target) return undefined;
  const total = elementCount(dims);
  const shape = target.map((d, i) => (d === 0 && !allowZero ? dims[i] : d));
  if (shape.some((d) => d === undefined || d < -1) || shape.filter((d) => d === -1).length > 1) return undefined;
  const known = elementCount((shape as number[]).filter((d) => d !== -1));
  const out = (shape as number[]).map((d) => (d === -1 ? (known === 0 ? -1 : total / known) : d));
  return out.every((d) => Number.isInteger(d) && d >= 0) && elementCount(out) === total ? out : undefined;
}

function squeezeDims(dims: readonly number[], axes: readonly number[] | undefined): number[] | undefined {
  if (!axes || axes.length === 0) return dims.filter((d) => d !== 1);
  const drop = new Set(axes.map((a) => (a < 0 ? a + dims.length : a)));
  if ([...drop].some((a) => dims[a] !== 1)) return undefined;
  return dims.filter((_, i) => !drop.has(i));
}

function unsqueezeDims(dims: readonly number[], axes: readonly number[]): number[] | undefined {
  const rank = dims.length + axes.length;
  const at = new Set(axes.map((a) => (a < 0 ? a + rank : a)));
  if (at.size !== axes.length || [...at].some((a) => a < 0 || a >= rank)) return undefined;
  const out: number[] = [];
  for (let i = 0, j = 0; i < rank; i++) out.push(at.has(i) ? 1 : dims[j++]!);
  return out;
}

/**
 * Cast between the numeric types, as ONNX Runtime's static_cast does: float to integer truncates
 * toward zero, anything non-zero is true. Casts to 16-bit floats, from 64-bit integers beyond
 * 2^53 (not exact in a double) and of non-finite values to integers are left to the runtime.
 */
function cast(x: Dense, to: DataType): Dense | undefined {
  if (!WIDTH[to] || to === DataType.FLOAT16 || to === DataType.BFLOAT16) return undefined;
  if (to === x.dtype) return x;
  const values = numbers(x);
  if (!values) return undefined;
  const isFloat = to === DataType.FLOAT || to === DataType.DOUBLE;
  if (!isFloat && to !== DataType.BOOL && values.some((v) => !Number.isFinite(v))) return undefined;
  const bytes = encodeNumbers(to, values);
  return bytes ? { dtype: to, dims: x.dims, bytes } : undefined;
}

function numbers(x: Dense): Float64Array | undefined {
  const b = x.bytes.slice();
  const n = elementCount(x.dims);
  switch (x.dtype) {
    case DataType.INT64:
    case DataType.UINT64: {
      const big = x.dtype === DataType.INT64 ? new BigInt64Array(b.buffer, 0, n) : new BigUint64Array(b.buffer, 0, n);
      const out = Float64Array.from(big, Number);
      return out.every(Number.isSafeInteger) ? out : undefined;
    }
    case DataType.FLOAT16:
      // every float16 is exactly a float32
      return Float64Array.from(tensorToFloat32({ dataType: DataType.FLOAT16, dims: x.dims, rawData: b }));
    case DataType.BFLOAT16:
      return Float64Array.from(new Float32Array(Uint32Array.from(new Uint16Array(b.buffer, 0, n), (h) => h << 16).buffer));
    default: {
      const ctor = { [DataType.FLOAT]: Float32Array, [DataType.DOUBLE]: Float64Array, [DataType.INT8]: Int8Array, [DataType.UINT8]: Uint8Array, [DataType.BOOL]: Uint8Array, [DataType.INT16]: Int16Array, [DataType.UINT16]: Uint16Array, [DataType.INT32]: Int32Array, [DataType.UINT32]: Uint32Array }[x.dtype as number];
      return ctor ? Float64Array.from(new ctor(b.buffer, 0, n)) : undefined;
    }
  }
}

function encodeNumbers(to: DataType, values: Float64Array): Uint8Array | undefined {
  switch (to) {
    case DataType.BOOL:
      return Uint8Array.from(values, (v) => (v !== 0 ? 1 : 0));
    case DataType.INT64:
      return bytesOf(BigInt64Array.from(values, (v) => BigInt(Math.trunc(v))));
    case DataType.UINT64:
      return bytesOf(BigUint64Array.from(values, (v) => BigInt.asUintN(64, BigInt(Math.trunc(v)))));
    default: {
      // typed-array stores truncate toward zero and wrap, like a C cast of an in-range value
      const ctor = { [DataType.FLOAT]: Float32Array, [DataType.DOUBLE]: Float64Array, [DataType.INT8]: Int8Array, [DataType.UINT8]: Uint8Array, [DataType.INT16]: Int16Array, [DataType.UINT16]: Uint16Array, [DataType.INT32]: Int32Array, [DataType.UINT32]: Uint32Array }[to as number];
      return ctor ? bytesOf(ctor.from(values)) : undefined;
    }
  }
}

/** Identity, Dropout (inference) and a one-input Concat forward their input: rewire consumers, drop the node. */
function removePassThrough(graph: GraphProto): number {
  const outputs = new Set((graph.output ?? []).map((o) => o.name));
  const rename = new Map<string, string>();
  const kept: NodeProto[] = [];
  let removed = 0;
  for (const n of graph.node ?? []) {
    // a Dropout whose mask output is used is not a pass-through
    const isPass = n.opType === 'Identity' || (n.opType === 'Dropout' && !n.output?.[1]) || (n.opType === 'Concat' && n.input?.length === 1);
    const out = n.output?.[0];
    const inp = n.input?.[0];
    if (isPass && out && inp && !outputs.has(out) && (!n.domain || n.domain === 'ai.onnx')) {
      rename.set(out, rename.get(inp) ?? inp);
      removed++;
      continue;
    }
    kept.push(n);
  }
  if (removed === 0) return 0;
  graph.node = kept.map((n) => ({ ...n, input: (n.input ?? []).map((i) => rename.get(i) ?? i) }));
  return removed;
}

/**
 * Concat(a, b, c, d) where an earlier node computes Concat(a, b, c) on the same axis becomes
 * Concat(that, d): concatenation is associative, so the values are the same bit for bit.
 * The longest such earlier Concat is used; nodes keep their order.
 */
function nestConcats(graph: GraphProto): number {
  const nodes = graph.node ?? [];
  const key = (n: NodeProto, inputs: readonly string[]): string => `${n.domain ?? ''}|${attrInt(n, 'axis', 0)}|${inputs.join('\u0000')}`;
  const earlier = new Map<string, string>();
  let nested = 0;
  graph.node = nodes.map((n) => {
    if (n.opType !== 'Concat' || !n.output?.[0]) return n;
    const inputs = n.input ?? [];
    let out = n;
    for (let k = inputs.length - 1; k >= 2; k--) {
      const prev = earlier.get(key(n, inputs.slice(0, k)));
      if (prev) {
        out = { ...n, input: [prev, ...inputs.slice(k)] };
        nested++;
        break;
      }
    }
    earlier.set(key(n, inputs), n.output[0]);
    return out;
  });
  return nested;
}

function foldBatchNorms(graph: GraphProto, external?: ExternalFiles): number {
  let folded = 0;
  for (;;) {
    const index = new GraphIndex(graph);
    const target = (graph.node ?? []).find((bn) => bn.opType === 'BatchNormalization' && foldable(bn, index));
    if (!target) return folded;
    foldOne(graph, index, target, external);
    folded++;
  }
}

function foldable(bn: NodeProto, index: GraphIndex): boolean {
  if ((bn.output ?? []).filter(Boolean).length !== 1 || attrInt(bn, 'training_mode', 0) !== 0) return false;
  const x = bn.input?.[0];
  if (!x) return false;
  const prev = index.producer.get(x);
  if (!prev || (prev.opType !== 'Conv' && prev.opType !== 'Gemm') || index.soleUse(x) !== bn) return false;
  if (!index.initializers.has(prev.input?.[1] ?? '')) return false;
  if (prev.input?.[2] && !index.initializers.has(prev.input[2])) return false;
  if (prev.opType === 'Gemm' && attrInt(prev, 'transB', 0) !== 1) return false;
  return [1, 2, 3, 4].every((i) => index.initializers.has(bn.input?.[i] ?? ''));
}

function foldOne(graph: GraphProto, index: GraphIndex, bn: NodeProto, external?: ExternalFiles): void {
  const prev = index.producer.get(bn.input![0]!)!;
  const read = (name: string): Float32Array => tensorToFloat32(index.initializers.get(name)!, external);
  const [gamma, beta, mean, variance] = [1, 2, 3, 4].map((i) => read(bn.input![i]!)) as [Float32Array, Float32Array, Float32Array, Float32Array];
  const eps = attrFloat(bn, 'epsilon', 1e-5);
  const wT = index.initializers.get(prev.input![1]!)!;
  const w = read(wT.name!);
  const cout = gamma.length;
  const per = w.length / cout;
  const newW = new Float32Array(w.length);
  const bias = prev.input?.[2] ? read(prev.input[2]) : new Float32Array(cout);
  const newB = new Float32Array(cout);
  for (let c = 0; c < cout; c++) {
    // computed in float64 to avoid compounding rounding in the folded weights
    const k = gamma[c]! / Math.sqrt(variance[c]! + eps);
    for (let j = 0; j < per; j++) newW[c * per + j] = w[c * per + j]! * k;
    newB[c] = beta[c]! + k * (bias[c]! - mean[c]!);
  }
  const wName = unique(index, `${wT.name}_bnfolded`);
  const bName = unique(index, `${prev.name || wT.name}_bias_bnfolded`);
  const replaced = new Set<string | undefined>([wT.name, prev.input?.[2]]);
  const stillUsed = (name: string): boolean => (graph.node ?? []).some((n) => n !== prev && n !== bn && n.input?.includes(name));
  const initializers: TensorProto[] = (graph.initializer ?? []).filter((t) => !(replaced.has(t.name) && !stillUsed(t.name!)));
  const bnParams = new Set<string | undefined>(bn.input!.slice(1));
  graph.initializer = [
    ...initializers.filter((t) => !(bnParams.has(t.name) && !stillUsed(t.name!))),
    floatTensor(wName, wT.dims ?? [], newW),
    floatTensor(bName, [cout], newB),
  ];
  const newPrev: NodeProto = { ...prev, input: [prev.input![0]!, wName, bName], output: [bn.output![0]!] };
  graph.node = (graph.node ?? []).filter((n) => n !== bn).map((n) => (n === prev ? newPrev : n));
  // drop stale value_info for the removed intermediate tensor
  graph.valueInfo = graph.valueInfo?.filter((v) => v.name !== prev.output![0]);
}

function unique(index: GraphIndex, base: string): string {
  let name = base;
  for (let i = 1; index.initializers.has(name) || index.producer.has(name); i++) name = `${base}_${i}`;
  return name;
}

/** Stands for a dynamic dimension during folding; an exact match means "copy this dimension". */
const DYNAMIC = -1000003;

/**
 * Replaces computed Reshape targets with constants. A target entry that is exactly the dynamic
 * batch dimension of the Reshape's input becomes 0 (ONNX: copy the input's dimension), so the
 * folded graph still takes any batch size.
 */
function inferWithDynamicDims(model: ModelProto, external?: ExternalFiles): ShapeInfo {
  const index = new GraphIndex(model.graph!);
  const inputs = new Map<string, number[]>();
  for (const v of index.dataInputs()) {
    const dims = v.type?.tensorType?.shape?.dim;
    if (dims) inputs.set(v.name!, dims.map((d) => (d.dimValue && d.dimValue > 0 ? d.dimValue : DYNAMIC)));
  }
  return inferShapes(model, inputs, external);
}

function foldReshapeTargets(graph: GraphProto, { shapes, values }: ShapeInfo): number {
  const index = new GraphIndex(graph);
  let folded = 0;
  graph.node = (graph.node ?? []).map((n) => {
    const target = n.input?.[1];
    if (n.opType !== 'Reshape' || !target || index.initializers.has(target)) return n;
    const value = values.get(target);
    const inShape = shapes.get(n.input![0]!);
    if (!value || !inShape) return n;
    const fixed = value.map((d, i) => (d === DYNAMIC && inShape[i] === DYNAMIC ? 0 : d));
    if (fixed.some((d) => d < -1) || (fixed.includes(0) && attrInt(n, 'allowzero', 0) === 1)) return n;
    const name = `${target}_folded`;
    graph.initializer!.push(int64Tensor(name, [fixed.length], fixed));
    folded++;
    return { ...n, input: [n.input![0]!, name] };
  });
  return folded;
}

/** Drops nodes none of whose outputs is used, repeatedly, and the initializers they alone used. */
function removeDeadNodes(graph: GraphProto): number {
  let removed = 0;
  for (;;) {
    const index = new GraphIndex(graph);
    const live = (graph.node ?? []).filter((n) => (n.output ?? []).some((o) => o && (index.consumersOf(o).length > 0 || index.graphOutputs.has(o))));
    if (live.length === (graph.node ?? []).length) break;
    removed += (graph.node ?? []).length - live.length;
    graph.node = live;
  }
  const used = new Set((graph.node ?? []).flatMap((n) => n.input ?? []));
  const outputs = new Set((graph.output ?? []).map((o) => o.name));
  graph.initializer = (graph.initializer ?? []).filter((t) => used.has(t.name!) || outputs.has(t.name));
  return removed;
}

/**
 * tf2onnx and Keras exports write a dense layer as MatMul followed by Add(bias). On 2-D inputs
 * that is exactly Gemm(transB=0), which makes it one quantizable layer with its bias.
 */
function fuseMatMulAdd(graph: GraphProto, { shapes }: ShapeInfo): number {
  const index = new GraphIndex(graph);
  let fused = 0;
  const drop = new Set<NodeProto>();
  const replace = new Map<NodeProto, NodeProto>();
  for (const mm of graph.node ?? []) {
    if (mm.opType !== 'MatMul') continue;
    const [x, w] = mm.input ?? [];
    const out = mm.output?.[0];
    const wt = index.initializers.get(w ?? '');
    if (!x || !out || !wt || wt.dims?.length !== 2 || shapes.get(x)?.length !== 2) continue;
    const add = index.soleUse(out);
    if (add?.opType !== 'Add') continue;
    const biasName = add.input?.find((i) => i !== out);
    const bias = index.initializers.get(biasName ?? '');
    const n = wt.dims[1]!;
    if (!bias || (bias.dims ?? []).reduce((a, b) => a * b, 1) !== n || (bias.dims ?? []).length > 2) continue;
    const flatBias = bias.dims?.length === 1 ? biasName! : `${biasName}_flat`;
    if (flatBias !== biasName) graph.initializer!.push({ ...bias, name: flatBias, dims: [n] });
    replace.set(mm, { name: mm.name || add.name, opType: 'Gemm', input: [x, w!, flatBias], output: [add.output![0]!] });
    drop.add(add);
    fused++;
  }
  graph.node = (graph.node ?? []).filter((n) => !drop.has(n)).map((n) => replace.get(n) ?? n);
  return fused;
}
