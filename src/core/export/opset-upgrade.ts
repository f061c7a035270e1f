import { AttributeType, DataType, type Attribute, type GraphProto, type ModelProto, type NodeProto, type TensorProto, type ValueInfo } from '../onnx/schema';
import { floatTensor, int64Tensor, tensorToFloat32, type ExternalFiles } from '../onnx/tensor-data';
import { decodeUtf8, encodeUtf8 } from '../onnx/wire';
import { attrFloat, attrInt, attrInts, attrString, intAttr, intsAttr } from '../graph/attributes';
import { inferShapes } from '../graph/shapes';

/**
 * Rewrites a model's default-domain ops into the form a newer opset defines, so that raising the
 * opset import (as the QDQ export must: Q/DQ per channel need 13, 4-bit weights 21) keeps every
 * node valid and computing the same values. Models from Paddle2ONNX, tf2onnx or older PyTorch come
 * at opsets 7 to 12, where Clip bounds, Pad widths, Squeeze axes and more are attributes that later
 * opsets read as inputs; ONNX Runtime refuses such a node outright ("Unrecognized attribute").
 *
 * Only ops whose signature or meaning changed between the two opsets are touched; each rewrite is
 * keyed on what the old form has (an attribute present), so a node already in the new form, as the
 * export's own Clip and DequantizeLinear nodes are, passes through unchanged. Subgraphs (If, Loop,
 * Scan bodies) are rewritten too: they use the model's opset. Where no equivalent exists in the
 * target opset the rewrite throws, naming the op and both opsets.
 */
export function upgradeOpset(model: ModelProto, target: number, external?: ExternalFiles): ModelProto {
  const from = defaultOpsetVersion(model);
  if (from !== undefined && target < from) throw new Error(`opset upgrade: the model is at opset ${from}, above the target ${target}; downgrading is not supported`);
  const opsetImport = (model.opsetImport ?? []).map((o) => (isDefaultDomain(o.domain) ? { ...o, version: target } : o));
  // no default-domain import means no default-domain ops to rewrite
  if (from === undefined) return { ...model, opsetImport: [...opsetImport, { domain: '', version: target }] };
  if (from === target) return model;
  const irVersion = Math.max(model.irVersion ?? 0, minIrVersion(target));
  const names = new Names(model.graph!);
  const used = usedNames(model.graph!);
  const upgrade = (graph: GraphProto, ranks: Ranks): GraphProto => new GraphUpgrade(graph, from, target, names, used, ranks, (g) => upgrade(g, declaredRanks(g)), external).run();
  let graph = upgrade(model.graph!, topLevelRanks(model, external));
  if (irVersion < 4) graph = listNewInitializersAsInputs(model.graph!, graph);
  return { ...model, irVersion, opsetImport, graph };
}

export const isDefaultDomain = (domain: string | undefined): boolean => !domain || domain === 'ai.onnx';

/** The model's default-domain (ai.onnx) opset, or undefined when it imports none (a missing version is protobuf's 0). */
export function defaultOpsetVersion(model: ModelProto): number | undefined {
  const found = model.opsetImport?.find((o) => isDefaultDomain(o.domain));
  return found ? (found.version ?? 0) : undefined;
}

/** The lowest IR version that may import `opset`: each ONNX release pairs an opset with the IR version it introduced. */
export function minIrVersion(opset: number): number {
  const table: [number, number][] = [[23, 11], [21, 10], [19, 9], [15, 8], [12, 7], [11, 6], [10, 5], [9, 4]];
  return table.find(([o]) => opset >= o)?.[1] ?? 3;
}

/** Names in use anywhere in the model, so that added tensors and nodes never collide. */
class Names {
  private readonly taken = new Set<string>();

  constructor(graph: GraphProto) {
    const visit = (g: GraphProto): void => {
      for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? []), ...(g.initializer ?? [])]) this.taken.add(v.name ?? '');
      for (const n of g.node ?? []) {
        for (const s of [n.name, ...(n.output ?? [])]) this.taken.add(s ?? '');
        for (const sub of subgraphs(n)) visit(sub);
      }
    };
    visit(graph);
  }

  fresh(base: string): string {
    let name = base;
    for (let k = 2; this.taken.has(name); k++) name = `${base}_${k}`;
    this.taken.add(name);
    return name;
  }
}

function subgraphs(n: NodeProto): GraphProto[] {
  return (n.attribute ?? []).flatMap((a) => [...(a.g ? [a.g] : []), ...(a.graphs ?? [])]);
}

/** Tensors something reads: node inputs in any graph (a subgraph may read an outer name) and graph outputs. */
function usedNames(graph: GraphProto): Set<string> {
  const used = new Set<string>();
  const visit = (g: GraphProto): void => {
    for (const o of g.output ?? []) used.add(o.name ?? '');
    for (const n of g.node ?? []) {
      for (const i of n.input ?? []) if (i) used.add(i);
      for (const sub of subgraphs(n)) visit(sub);
    }
  };
  visit(graph);
  return used;
}

/** Ranks and element types of a graph's tensors, as far as they are known. */
interface Ranks {
  rank(name: string): number | undefined;
  elemType(name: string): DataType | undefined;
}

/** From what the graph declares: inputs, outputs, value_info, initializers. */
function declaredRanks(graph: GraphProto): Ranks & { ranks: Map<string, number>; types: Map<string, DataType> } {
  const ranks = new Map<string, number>();
  const types = new Map<string, DataType>();
  for (const v of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.valueInfo ?? [])]) {
    const t = v.type?.tensorType;
    if (t?.shape) ranks.set(v.name ?? '', t.shape.dim?.length ?? 0);
    if (t?.elemType) types.set(v.name ?? '', t.elemType);
  }
  for (const t of graph.initializer ?? []) {
    ranks.set(t.name ?? '', t.dims?.length ?? 0);
    if (t.dataType) types.set(t.name ?? '', t.dataType);
  }
  return { ranks, types, rank: (n) => ranks.get(n), elemType: (n) => types.get(n) };
}

/** Stands for a dimension the graph leaves symbolic: not 1, so no Squeeze mistakes it for a unit axis. */
const SYMBOLIC_DIM = 1_000_003;

/**
 * The top-level graph's ranks: declared, then the studio's shape inference, run only when a
 * rewrite asks for a rank nothing declares, and only over the nodes up to the tensor's producer
 * (inference stops at the first node it cannot follow, such as an opset-6 broadcasting Add, so a
 * later one must not hide an earlier tensor's shape).
 */
function topLevelRanks(model: ModelProto, external?: ExternalFiles): Ranks {
  const declared = declaredRanks(model.graph!);
  const nodes = model.graph!.node ?? [];
  const producer = new Map<string, number>();
  nodes.forEach((n, k) => n.output?.forEach((o) => o && producer.set(o, k)));
  const inputs = new Map<string, number[]>();
  for (const v of model.graph!.input ?? []) {
    const dims = v.type?.tensorType?.shape?.dim;
    if (dims) inputs.set(v.name ?? '', dims.map((d) => (d.dimValue && d.dimValue > 0 ? d.dimValue : SYMBOLIC_DIM)));
  }
  const inferred = new Map<number, ReadonlyMap<string, readonly number[]>>();
  const upTo = (k: number): ReadonlyMap<string, readonly number[]> => {
    let shapes = inferred.get(k);
    if (!shapes) {
      try {
        shapes = inferShapes({ ...model, graph: { ...model.graph!, node: nodes.slice(0, k + 1) } }, inputs, external).shapes;
      } catch {
        shapes = new Map();
      }
      inferred.set(k, shapes);
    }
    return shapes;
  };
  const rank = (name: string): number | undefined => {
    const known = declared.rank(name);
    if (known !== undefined) return known;
    const k = producer.get(name);
    return k === undefined ? undefined : upTo(k).get(name)?.length;
  };
  return { rank, elemType: declared.elemType };
}

/** IR < 4 requires every initializer to be a graph input too. */
function listNewInitializersAsInputs(before: GraphProto, after: GraphProto): GraphProto {
  const old = new Set((before.initializer ?? []).map((t) => t.name));
  const added: ValueInfo[] = (after.initializer ?? [])
    .filter((t) => !old.has(t.name))
    .map((t) => ({ name: t.name, type: { tensorType: { elemType: t.dataType, shape: { dim: (t.dims ?? []).map((d) => ({ dimValue: d })) } } } }));
  return { ...after, input: [...(after.input ?? []), ...added] };
}

type Rewrite = (n: NodeProto, g: GraphUpgrade) => NodeProto[];

/** One graph's rewrite: the new node list, and the initializers the rewrites add. */
class GraphUpgrade {
  private readonly added: TensorProto[] = [];
  private readonly initializers: Map<string, TensorProto>;

  constructor(
    private readonly graph: GraphProto,
    readonly from: number,
    readonly target: number,
    private readonly names: Names,
    private readonly used: ReadonlySet<string>,
    readonly ranks: Ranks,
    private readonly subgraph: (g: GraphProto) => GraphProto,
    private readonly external?: ExternalFiles,
  ) {
    this.initializers = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  }

  run(): GraphProto {
    const node = (this.graph.node ?? []).flatMap((n) => this.rewrite(n));
    return { ...this.graph, node, initializer: [...(this.graph.initializer ?? []), ...this.added] };
  }

  private rewrite(original: NodeProto): NodeProto[] {
    const n = this.withSubgraphs(original);
    if (!isDefaultDomain(n.domain)) return [n];
    const rewrite = REWRITES[n.opType ?? ''];
    return rewrite ? rewrite(dropConsumedInputs(n), this) : [dropConsumedInputs(n)];
  }

  private withSubgraphs(n: NodeProto): NodeProto {
    if (!subgraphs(n).length) return n;
    const attribute = n.attribute!.map((a) => (a.g || a.graphs ? { ...a, ...(a.g ? { g: this.subgraph(a.g) } : {}), ...(a.graphs ? { graphs: a.graphs.map(this.subgraph) } : {}) } : a));
    return { ...n, attribute };
  }

  /** True when the model is below `version` and the target at or above it: the change at `version` applies. */
  crosses(version: number): boolean {
    return this.from < version && this.target >= version;
  }

  error(n: NodeProto, why: string): Error {
    return new Error(`opset upgrade ${this.from} → ${this.target}: ${n.opType} "${n.name || n.output?.[0] || '?'}" ${why}`);
  }

  fresh(n: NodeProto, suffix: string): string {
    return this.names.fresh(`${n.name || n.output?.[0] || n.opType}_${suffix}`);
  }

  isUsed(tensor: string): boolean {
    return this.used.has(tensor);
  }

  /** An int64 initializer for an attribute that became an input. */
  int64(n: NodeProto, suffix: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    const name = this.fresh(n, suffix);
    this.added.push(int64Tensor(name, dims, values));
    return name;
  }

  /** A float32 initializer. */
  floats(n: NodeProto, suffix: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    const name = this.fresh(n, suffix);
    this.added.push(floatTensor(name, dims, Float32Array.from(values)));
    return name;
  }

  /**
   * A scalar of the element type of `like`, for an attribute (always float) that became an input
   * which must match the data's type (Clip's bounds, Pad's value): float32 directly, another type
   * (double, float16) through a Cast node, so the runtime does the conversion.
   */
  scalarLike(n: NodeProto, suffix: string, value: number, like: string, pre: NodeProto[]): string {
    const f = this.floats(n, suffix, [value], []);
    const type = this.ranks.elemType(like) ?? DataType.FLOAT;
    if (type === DataType.FLOAT) return f;
    const cast = this.fresh(n, `${suffix}_cast`);
    pre.push({ name: cast, opType: 'Cast', input: [f], output: [cast], attribute: [intAttr('to', type)] });
    return cast;
  }

  /** The values of a constant input of this graph, if it is an initializer. */
  constantFloats(name: string | undefined): Float32Array | undefined {
    const t = name ? this.initializers.get(name) : undefined;
    return t ? tensorToFloat32(t, this.external) : undefined;
  }

  /** An initializer's data under its shape with `count` unit dimensions appended, as a new initializer. */
  withTrailingOnes(n: NodeProto, source: string, count: number): string | undefined {
    const t = this.initializers.get(source);
    if (!t) return undefined;
    const name = this.fresh(n, 'aligned');
    this.added.push({ ...t, name, dims: [...(t.dims ?? []), ...Array<number>(count).fill(1)] });
    return name;
  }
}

// ---- attribute helpers ----

const attr = (n: NodeProto, name: string): Attribute | undefined => n.attribute?.find((a) => a.name === name);
const without = (n: NodeProto, ...names: string[]): NodeProto => ({ ...n, attribute: (n.attribute ?? []).filter((a) => !names.includes(a.name ?? '')) });
const withAttr = (n: NodeProto, a: Attribute): NodeProto => ({ ...without(n, a.name!), attribute: [...without(n, a.name!).attribute!, a] });
const stringAttr = (name: string, value: string): Attribute => ({ name, type: AttributeType.STRING, s: encodeUtf8(value) });
/** Inputs with trailing empty (absent optional) entries dropped. */
const trimInputs = (inputs: string[]): string[] => {
  const out = [...inputs];
  while (out.length && !out[out.length - 1]) out.pop();
  return out;
};

/** Opset-1 ops took `consumed_inputs` (an in-place hint for Caffe2); opset 6 removed it everywhere. */
function dropConsumedInputs(n: NodeProto): NodeProto {
  return attr(n, 'consumed_inputs') ? without(n, 'consumed_inputs') : n;
}

// ---- the rewrites, one per changed op ----

/** Clip-11: min and max became optional inputs; an absent bound stays an empty input. */
const clip: Rewrite = (n, g) => {
  if (!g.crosses(11) || (!attr(n, 'min') && !attr(n, 'max'))) return [n];
  const x = n.input![0]!;
  const pre: NodeProto[] = [];
  const bound = (name: string): string => (attr(n, name) ? g.scalarLike(n, name, attrFloat(n, name, 0), x, pre) : '');
  const inputs = trimInputs([x, bound('min'), bound('max')]);
  return [...pre, { ...without(n, 'min', 'max'), input: inputs }];
};

/** Pad-11: `pads` (opset 1: `paddings`) and `value` became inputs; `mode` stays an attribute. */
const pad: Rewrite = (n, g) => {
  const pads = attrInts(n, 'pads') ?? attrInts(n, 'paddings');
  if (!g.crosses(11) || !pads) return [n];
  const x = n.input![0]!;
  const pre: NodeProto[] = [];
  const value = attr(n, 'value') ? g.scalarLike(n, 'value', attrFloat(n, 'value', 0), x, pre) : '';
  return [...pre, { ...without(n, 'pads', 'paddings', 'value'), input: trimInputs([x, g.int64(n, 'pads', pads), value]) }];
};

/** Squeeze, Unsqueeze and ReduceSum at 13, the other reductions at 18: `axes` became an input. */
const axesInput =
  (version: number): Rewrite =>
  (n, g) => {
    const axes = attrInts(n, 'axes');
    if (!g.crosses(version) || !axes) return [n];
    return [{ ...without(n, 'axes'), input: [n.input![0]!, g.int64(n, 'axes', axes)] }];
  };

/**
 * Split-13: `split` became an input. Split-18 requires either that input or `num_outputs`; an
 * equal split written without either gets `num_outputs` (the old opsets required the axis to
 * divide evenly, where both forms agree).
 */
const split: Rewrite = (n, g) => {
  let out = n;
  const sizes = attrInts(n, 'split');
  if (g.crosses(13) && sizes) out = { ...without(n, 'split'), input: [n.input![0]!, g.int64(n, 'split', sizes)] };
  const hasSizes = !!attrInts(out, 'split') || !!out.input?.[1];
  if (g.crosses(18) && !hasSizes && !attr(out, 'num_outputs')) out = withAttr(out, intAttr('num_outputs', (out.output ?? []).length));
  return [out];
};

/**
 * Dropout-12 reads its ratio as an input. At inference Dropout is the identity, so a Dropout whose
 * mask nothing reads becomes an Identity (same output name: nothing to rewire, canonicalisation
 * removes it). A read mask has no faithful equivalent: before 12 the inference mask is left to the
 * runtime (ONNX Runtime writes all false there, and all true from 12; below 10 it even has the
 * data's type), so a graph that reads it would silently change.
 */
const dropout: Rewrite = (n, g) => {
  if (!g.crosses(12)) return [without(n, 'is_test')];
  const mask = n.output?.[1];
  if (mask && g.isUsed(mask)) throw g.error(n, 'has its mask output read; the inference mask of Dropout before opset 12 differs from the new one');
  return [{ name: n.name, opType: 'Identity', input: [n.input![0]!], output: [n.output![0]!] }];
};

/**
 * Softmax, LogSoftmax, Hardmax at 13: the old ops flatten the input to 2-D at `axis` (default 1)
 * and normalise each row; the new ones normalise along `axis` (default -1). The same when `axis` is
 * the last dimension; otherwise Flatten → op(axis=1) → Reshape to the input's shape computes the
 * old function exactly.
 */
const softmax: Rewrite = (n, g) => {
  if (!g.crosses(13)) return [n];
  const x = n.input![0]!;
  const y = n.output![0]!;
  const axis = attrInt(n, 'axis', 1);
  const rank = g.ranks.rank(x) ?? g.ranks.rank(y);
  if (rank !== undefined && (axis < 0 ? axis + rank : axis) === rank - 1) return [withAttr(n, intAttr('axis', -1))];
  const [shape, flat, normed] = ['shape', 'flat', 'rows'].map((s) => g.fresh(n, s)) as [string, string, string];
  return [
    { name: shape, opType: 'Shape', input: [x], output: [shape] },
    { name: flat, opType: 'Flatten', input: [x], output: [flat], attribute: [intAttr('axis', axis)] },
    { ...withAttr(n, intAttr('axis', 1)), input: [flat], output: [normed] },
    { name: g.fresh(n, 'unflatten'), opType: 'Reshape', input: [normed, shape], output: [y] },
  ];
};

/** The Resize inputs and attributes that compute what Upsample and Resize-10 compute, at the target opset. */
function resizeNode(n: NodeProto, g: GraphUpgrade, scales: string, mode: string, nearestMode: 'floor' | 'ceil'): NodeProto {
  const base = { name: n.name, opType: 'Resize', output: n.output, ...(n.docString ? { docString: n.docString } : {}) };
  if (g.target < 11) return { ...base, input: [n.input![0]!, scales], attribute: [stringAttr('mode', mode)] };
  // Resize-11/12 require an roi input even when unused; from 13 it may be left empty
  const roi = g.target < 13 ? g.floats(n, 'roi', [], [0]) : '';
  const attribute = [stringAttr('mode', mode), stringAttr('coordinate_transformation_mode', 'asymmetric'), ...(mode === 'nearest' ? [stringAttr('nearest_mode', nearestMode)] : [])];
  return { ...base, input: [n.input![0]!, roi, scales], attribute };
}

/**
 * Upsample (removed at 10) → Resize. Upsample maps output index i to input i / scale
 * ("asymmetric") and, for nearest, takes the floor (scales are ≥ 1): Resize with those modes.
 * Opset 7 kept the scales in an attribute, opset 1 as height_scale/width_scale.
 */
const upsample: Rewrite = (n, g) => {
  const scalesAttr = attr(n, 'scales')?.floats;
  const h = attr(n, 'height_scale');
  const scalesValues = scalesAttr ?? (h ? [1, 1, attrFloat(n, 'height_scale', 1), attrFloat(n, 'width_scale', 1)] : undefined);
  const mode = attrString(n, 'mode', 'nearest') === 'bilinear' ? 'linear' : attrString(n, 'mode', 'nearest');
  if (g.target < 10) {
    // still Upsample: Upsample-9 reads the scales as an input
    if (!g.crosses(9) || !scalesValues) return [n];
    return [{ ...without(n, 'scales', 'height_scale', 'width_scale'), input: [n.input![0]!, g.floats(n, 'scales', scalesValues)] }];
  }
  const scales = scalesValues ? g.floats(n, 'scales', scalesValues) : n.input?.[1];
  if (!scales) throw g.error(n, 'has no scales');
  return [resizeNode(n, g, scales, mode, 'floor')];
};

/**
 * Resize-10 → 11: the new Resize defaults to half-pixel coordinates; Resize-10 used asymmetric
 * ones and ONNX Runtime's "simple" nearest rounding (floor when upsampling, ceil when
 * downsampling), which a single nearest_mode matches only when every scale goes the same way.
 * Resize-13 dropped the tf_half_pixel_for_nn coordinate mode.
 */
const resize: Rewrite = (n, g) => {
  if (g.crosses(13) && attrString(n, 'coordinate_transformation_mode', '') === 'tf_half_pixel_for_nn') throw g.error(n, 'uses tf_half_pixel_for_nn coordinates, which opset 13 removed');
  if (!g.crosses(11)) return [n];
  const mode = attrString(n, 'mode', 'nearest');
  const scales = n.input?.[1];
  if (!scales) throw g.error(n, 'has no scales');
  let nearest: 'floor' | 'ceil' = 'floor';
  if (mode === 'nearest') {
    const s = g.constantFloats(scales);
    if (!s) throw g.error(n, 'has computed scales: the nearest rounding of Resize-10 depends on their values');
    if (s.every((v) => v >= 1)) nearest = 'floor';
    else if (s.every((v) => v <= 1)) nearest = 'ceil';
    else throw g.error(n, 'up- and downsamples at once: no single nearest_mode rounds like Resize-10');
  }
  return [resizeNode(n, g, scales, mode, nearest)];
};

/**
 * BatchNormalization: `is_test` went at 7, `spatial` at 9 (spatial=0, per-position statistics,
 * has no equivalent), and at 14 the mode became an attribute instead of the number of outputs.
 */
const batchNorm: Rewrite = (n, g) => {
  let out = n;
  if (g.crosses(7)) out = without(out, 'is_test');
  if (g.crosses(9) && attr(out, 'spatial')) {
    if (attrInt(out, 'spatial', 1) !== 1) throw g.error(n, 'has spatial=0 (per-position statistics), which opset 9 removed');
    out = without(out, 'spatial');
  }
  if (g.crosses(14) && (out.output ?? []).filter(Boolean).length > 1) {
    // before 14 the number of outputs chose the mode: with the statistics outputs it is training
    // mode (batch statistics), which 14 spells training_mode=1 with running mean and variance only
    if (out.output!.slice(3).some((o) => o && g.isUsed(o))) throw g.error(n, 'has its saved mean or variance read; opset 14 has no such outputs');
    out = withAttr({ ...out, output: trimInputs(out.output!.slice(0, 3)) }, intAttr('training_mode', 1));
  }
  return [out];
};

/**
 * Before opset 7 the binary ops broadcast only with broadcast=1, matching B against A's dimensions
 * from `axis` on (or from the end without `axis`, which is what numpy-style broadcasting does).
 * With `axis`, B gets trailing unit dimensions so that numpy-style broadcasting aligns it the same.
 */
const legacyBroadcast: Rewrite = (n, g) => {
  if (!g.crosses(7) || (!attr(n, 'broadcast') && !attr(n, 'axis'))) return [n];
  const plain = without(n, 'broadcast', 'axis');
  if (attrInt(n, 'broadcast', 0) !== 1 || !attr(n, 'axis')) return [plain];
  const [a, b] = [n.input![0]!, n.input![1]!];
  const [ra, rb] = [g.ranks.rank(a), g.ranks.rank(b)];
  if (ra === undefined || rb === undefined) throw g.error(n, 'broadcasts along an axis between tensors of unknown rank');
  const axis = attrInt(n, 'axis', 0) < 0 ? attrInt(n, 'axis', 0) + ra : attrInt(n, 'axis', 0);
  const trailing = ra - axis - rb;
  if (trailing < 0) throw g.error(n, `broadcasts a rank-${rb} B at axis ${axis} of a rank-${ra} A`);
  if (trailing === 0) return [plain];
  const reshaped = g.withTrailingOnes(n, b, trailing);
  if (reshaped) return [{ ...plain, input: [a, reshaped] }];
  const aligned = g.fresh(n, 'aligned');
  const axes = Array.from({ length: trailing }, (_, i) => rb + i);
  const unsqueeze: NodeProto =
    g.target >= 13
      ? { name: aligned, opType: 'Unsqueeze', input: [b, g.int64(n, 'aligned_axes', axes)], output: [aligned] }
      : { name: aligned, opType: 'Unsqueeze', input: [b], output: [aligned], attribute: [intsAttr('axes', axes)] };
  return [unsqueeze, { ...plain, input: [a, aligned] }];
};

/** Gemm-7 broadcasts C unidirectionally by default: the `broadcast` flag went. */
const gemm: Rewrite = (n, g) => [g.crosses(7) ? without(n, 'broadcast') : n];

/** Concat-4 made `axis` required; opset 1 defaulted it to 1. */
const concat: Rewrite = (n, g) => [g.crosses(4) && !attr(n, 'axis') ? withAttr(n, intAttr('axis', 1)) : n];

/** Slice-10: starts, ends and axes became inputs. */
const slice: Rewrite = (n, g) => {
  const [starts, ends, axes] = [attrInts(n, 'starts'), attrInts(n, 'ends'), attrInts(n, 'axes')];
  if (!g.crosses(10) || !starts || !ends) return [n];
  const inputs = [n.input![0]!, g.int64(n, 'starts', starts), g.int64(n, 'ends', ends), ...(axes ? [g.int64(n, 'axes', axes)] : [])];
  return [{ ...without(n, 'starts', 'ends', 'axes'), input: inputs }];
};

/** TopK-10: k became a one-element int64 input. */
const topK: Rewrite = (n, g) => {
  if (!g.crosses(10) || !attr(n, 'k')) return [n];
  return [{ ...without(n, 'k'), input: [n.input![0]!, g.int64(n, 'k', [attrInt(n, 'k', 1)])] }];
};

/** Reshape-5: the target shape became an input. */
const reshape: Rewrite = (n, g) => {
  const shape = attrInts(n, 'shape');
  if (!g.crosses(5) || !shape) return [n];
  return [{ ...without(n, 'shape'), input: [n.input![0]!, g.int64(n, 'shape', shape)] }];
};

/** Cast-6: `to` became the DataType number instead of its name. */
const castOp: Rewrite = (n, g) => {
  const to = attr(n, 'to');
  if (!g.crosses(6) || to?.type !== AttributeType.STRING || !to.s) return [n];
  const type = DataType[decodeUtf8(to.s).toUpperCase() as keyof typeof DataType];
  if (type === undefined) throw g.error(n, `casts to "${decodeUtf8(to.s)}", not an ONNX type`);
  return [withAttr(n, intAttr('to', type))];
};

/** Scatter was renamed ScatterElements at 11, same signature and meaning. */
const scatter: Rewrite = (n, g) => [g.crosses(11) ? { ...n, opType: 'ScatterElements' } : n];

/** GridSample-20 renamed its modes: bilinear → linear, bicubic → cubic. */
const gridSample: Rewrite = (n, g) => {
  const mode = attrString(n, 'mode', 'bilinear');
  if (!g.crosses(20)) return [n];
  return [withAttr(n, stringAttr('mode', mode === 'bilinear' ? 'linear' : mode === 'bicubic' ? 'cubic' : mode))];
};

/** RNN, GRU, LSTM at 7: `output_sequence` went (the Y output is simply optional). */
const recurrent: Rewrite = (n, g) => [g.crosses(7) ? without(n, 'output_sequence') : n];

/**
 * MeanVarianceNormalization-9 takes `axes`; opset 1's `across_channels` picked [0,2,3] or
 * [0,1,2,3], and normalize_variance=0 (subtract the mean only) has no equivalent.
 */
const meanVarianceNorm: Rewrite = (n, g) => {
  if (!g.crosses(9) || (!attr(n, 'across_channels') && !attr(n, 'normalize_variance'))) return [n];
  if (attrInt(n, 'normalize_variance', 1) !== 1) throw g.error(n, 'has normalize_variance=0, which opset 9 removed');
  const axes = attrInt(n, 'across_channels', 0) === 1 ? [0, 1, 2, 3] : [0, 2, 3];
  return [withAttr(without(n, 'across_channels', 'normalize_variance'), intsAttr('axes', axes))];
};

/**
 * ImageScaler (an experimental op, gone at 10): y = scale·x + bias[c] on NCHW input, written as
 * Mul then Add, the two float operations it performs.
 */
const imageScaler: Rewrite = (n, g) => {
  if (!g.crosses(10)) return [n];
  const bias = attr(n, 'bias')?.floats ?? [];
  const scale = g.floats(n, 'scale', [attrFloat(n, 'scale', 1)], []);
  if (!bias.length) return [{ name: n.name, opType: 'Mul', input: [n.input![0]!, scale], output: [n.output![0]!] }];
  const scaled = g.fresh(n, 'scaled');
  // [C, 1, 1]: one value per channel of an NCHW tensor
  const biasName = g.floats(n, 'bias', bias, [bias.length, 1, 1]);
  return [
    { name: scaled, opType: 'Mul', input: [n.input![0]!, scale], output: [scaled] },
    { name: n.name, opType: 'Add', input: [scaled, biasName], output: [n.output![0]!] },
  ];
};

/** An op with no equivalent at or after `version`. */
const removed =
  (version: number, why: string): Rewrite =>
  (n, g) => {
    if (g.crosses(version)) throw g.error(n, why);
    return [n];
  };

const REWRITES: Record<string, Rewrite> = {
  Clip: clip,
  Pad: pad,
  Squeeze: axesInput(13),
  Unsqueeze: axesInput(13),
  ReduceSum: axesInput(13),
  ...Object.fromEntries(['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare'].map((op) => [op, axesInput(18)])),
  Split: split,
  Dropout: dropout,
  Softmax: softmax,
  LogSoftmax: softmax,
  Hardmax: softmax,
  Upsample: upsample,
  Resize: resize,
  BatchNormalization: batchNorm,
  ...Object.fromEntries(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'And', 'Or', 'Xor', 'Equal', 'Greater', 'Less'].map((op) => [op, legacyBroadcast])),
  Gemm: gemm,
  Concat: concat,
  Slice: slice,
  TopK: topK,
  Reshape: reshape,
  Cast: castOp,
  Scatter: scatter,
  GridSample: gridSample,
  RNN: recurrent,
  GRU: recurrent,
  LSTM: recurrent,
  MeanVarianceNormalization: meanVarianceNorm,
  ImageScaler: imageScaler,
  // experimental opset-1 ops ONNX dropped at 10 without a replacement the studio could write
  ...Object.fromEntries(['Crop', 'ScaledTanh', 'ParametricSoftplus', 'GRUUnit', 'GivenTensorFill', 'Affine', 'ConstantFill', 'DynamicSlice'].map((op) => [op, removed(10, 'is an experimental op that opset 10 removed')])),
  Scan: removed(9, 'is Scan-8 (batched, with sequence_lens); Scan-9 changed its inputs and is not rewritten here'),
  Tile: removed(6, 'is Tile-1 (tiles and axis inputs); Tile-6 takes repeats per axis and is not rewritten here'),
};
