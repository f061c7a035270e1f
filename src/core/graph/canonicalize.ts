import type { GraphProto, ModelProto, NodeProto, TensorProto } from '../onnx/schema';
import { floatTensor, tensorToFloat32, type ExternalFiles } from '../onnx/tensor-data';
import { attrFloat, attrInt } from './attributes';
import { GraphIndex } from './graph-index';
import { inferShapes, type ShapeInfo } from './shapes';
import { int64Tensor } from '../onnx/tensor-data';

export interface CanonicalizeReport {
  foldedBatchNorms: number;
  removedIdentities: number;
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
  const report: CanonicalizeReport = { foldedBatchNorms: 0, removedIdentities: 0, nestedConcats: 0, foldedShapeChains: 0, fusedLinear: 0, removedDeadNodes: 0 };
  report.removedIdentities = removePassThrough(graph);
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
  return { model: { ...model, graph }, report };
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
