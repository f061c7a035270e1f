import type { ModelProto, NodeProto } from '../onnx/schema';
import { attrInt, attrInts } from './attributes';
import { GraphIndex } from './graph-index';
import { findQuantLayers, layerName, type QuantLayer } from './layers';

/**
 * Block partition of a canonicalized (BN-folded) model, the unit that BRECQ, QDrop and MQBench
 * reconstruct one at a time (algorithms.md §1.7, §3.3).
 *
 * How blocks are found: the data-flow graph is cut at every tensor through which all values from
 * the input to the output pass. Such a cut is the dominance / post-dominance frontier without
 * building the trees: a liveness scan over the topologically ordered nodes finds the points
 * where exactly one tensor is live. The regions between consecutive cuts ("atoms") are single-entry
 * single-exit by construction: one op of a plain chain, or the whole region from a fan-out to the
 * node where its paths re-join (a residual Add, an Inception Concat).
 */

export type Granularity = 'layer' | 'block' | 'stage' | 'net';

/** 'branch': a region whose branches re-join at something other than an Add (a Concat), kept whole. */
export type BlockKind = 'layer' | 'residual' | 'branch' | 'plain' | 'stage' | 'net';

export interface Block {
  /** Stable: 'stem', 'head', the common prefix of the layer names ('b1'), or 'stage2', 'net'. */
  readonly id: string;
  readonly kind: BlockKind;
  /** QuantLayer names, graph order. */
  readonly layers: readonly string[];
  /** Names (or first output when unnamed) of all nodes inside, graph order, Constant nodes included. */
  readonly nodes: readonly string[];
  /** The single tensor entering the block. */
  readonly input: string;
  /** The single tensor leaving the block. */
  readonly output: string;
}

/**
 * Blocks in topological order. At 'block', 'stage' and 'net' granularity they chain (each input is
 * the previous output) and cover every node. At 'layer' granularity a layer inside a residual block
 * reads a tensor the previous layer did not write, and the nodes that only join branches (the
 * residual Add and its activation, pooling in front of a residual block) belong to no block.
 */
export interface Partition {
  readonly granularity: Granularity;
  readonly blocks: readonly Block[];
}

export class PartitionError extends Error {
  override name = 'PartitionError';
}

const ACTIVATIONS = new Set(['Relu', 'Clip', 'LeakyRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'PRelu', 'Elu', 'Selu', 'Softplus', 'Gelu', 'Softmax']);
/** Element-wise ops: after a layer they are part of it (its activation, a scale); they never start a block. */
const POINTWISE = new Set([...ACTIVATIONS, 'BatchNormalization', 'Add', 'Sub', 'Mul', 'Div', 'Dropout', 'Identity', 'Cast']);

/**
 * A region between two consecutive cuts: one node ('chain'), or a region that fans out and
 * re-joins: at an Add ('residual'), at a product of its input with something computed from it
 * ('gate': SiLU and hard-swish written as x·σ(x), a squeeze-excitation's x·s(x)), or elsewhere
 * ('branch': a Concat).
 */
interface Atom {
  readonly nodes: readonly NodeProto[];
  readonly layers: readonly QuantLayer[];
  readonly kind: 'chain' | 'residual' | 'gate' | 'branch';
}

/** An atom holding layers, with the layer-less atoms before it (pooling) and after it (activations). */
interface Piece {
  readonly lead: Atom[];
  readonly core: Atom;
  readonly trail: Atom[];
}

/** What partitioning needs to know about one model: data nodes, cuts, atoms and pieces. */
class Analysis {
  readonly index: GraphIndex;
  readonly input: string;
  /** Tensors computed from the input: constants and initializers never cross a block boundary. */
  readonly data = new Set<string>();
  readonly dataNodes: NodeProto[] = [];
  readonly byName = new Map<string, NodeProto>();
  readonly layerOf = new Map<NodeProto, QuantLayer>();
  /** Constant-only nodes → the data node they (transitively) feed first; they travel with it. */
  private readonly owner = new Map<NodeProto, NodeProto>();
  private readonly order = new Map<NodeProto, number>();
  readonly pieces: Piece[] = [];

  constructor(model: ModelProto) {
    const graph = model.graph!;
    this.index = new GraphIndex(graph);
    const inputs = this.index.dataInputs();
    if (inputs.length !== 1) throw new PartitionError(`a partition needs exactly one data input; the model has ${inputs.length}`);
    this.input = inputs[0]!.name ?? '';
    this.data.add(this.input);
    const nodes = graph.node ?? [];
    nodes.forEach((n, i) => {
      this.order.set(n, i);
      this.byName.set(layerName(n), n);
      if (!(n.input ?? []).some((t) => this.data.has(t))) return;
      this.dataNodes.push(n);
      for (const o of n.output ?? []) if (o) this.data.add(o);
    });
    for (const l of findQuantLayers(model)) this.layerOf.set(l.node, l);
    for (const n of [...nodes].reverse()) {
      if (this.isData(n)) continue;
      const users = (n.output ?? []).flatMap((o) => this.index.consumersOf(o)).map((c) => (this.isData(c) ? c : this.owner.get(c)));
      const first = users.filter((u): u is NodeProto => !!u).sort((a, b) => this.order.get(a)! - this.order.get(b)!)[0];
      if (first) this.owner.set(n, first);
    }
    this.buildPieces(this.atoms());
  }

  isData(n: NodeProto): boolean {
    return (n.input ?? []).some((t) => this.data.has(t));
  }

  dataInputs(n: NodeProto): string[] {
    return (n.input ?? []).filter((t) => this.data.has(t));
  }

  /** Liveness scan: a cut is a point of the node order where exactly one data tensor is live. */
  private atoms(): Atom[] {
    const lastUse = new Map<string, number>();
    this.dataNodes.forEach((n, k) => this.dataInputs(n).forEach((t) => lastUse.set(t, k)));
    for (const o of this.index.graphOutputs) lastUse.set(o, Infinity);
    const atoms: Atom[] = [];
    const live = new Set([this.input]);
    let entry = this.input;
    let current: NodeProto[] = [];
    const close = (): void => {
      const last = current.at(-1)!;
      const end = last.opType;
      const kind = current.length === 1 ? 'chain' : end === 'Add' || end === 'Sum' ? 'residual' : end === 'Mul' && last.input?.includes(entry) ? 'gate' : 'branch';
      atoms.push({ nodes: current, layers: current.flatMap((n) => this.layerOf.get(n) ?? []), kind });
      current = [];
    };
    this.dataNodes.forEach((n, k) => {
      current.push(n);
      for (const t of n.input ?? []) if (lastUse.get(t) === k) live.delete(t);
      for (const o of n.output ?? []) if (o && (lastUse.get(o) ?? -1) > k) live.add(o);
      const [only] = live;
      if (live.size === 1 && only !== entry) {
        close();
        entry = only!;
      }
    });
    if (current.length) close();
    return atoms;
  }

  /**
   * Layer-less atoms join a neighbour: element-wise ones right after a layer are its activation
   * (or the residual block's ReLU after the Add); the rest (pooling, flatten) go with the layer
   * that follows them, so the head gets its pooling and flatten. A BatchNormalization left after
   * canonicalisation follows no layer (it could not be folded): it is a pre-activation layer's
   * own normalisation (DenseNet's BN → ReLU → conv), so it and what follows it go forward too.
   */
  private buildPieces(atoms: Atom[]): void {
    let pending: Atom[] = [];
    for (const a of atoms) {
      const prev = this.pieces.at(-1);
      if (a.layers.length) {
        this.pieces.push({ lead: pending, core: a, trail: [] });
        pending = [];
      } else if (prev && !pending.length && a.nodes.every((n) => POINTWISE.has(n.opType ?? '') && n.opType !== 'BatchNormalization')) {
        prev.trail.push(a);
      } else {
        pending.push(a);
      }
    }
    const last = this.pieces.at(-1);
    if (!last) throw new PartitionError('the model has no quantizable layers');
    last.trail.push(...pending);
  }

  /** Data tensors read from outside `set`, and those leaving it (used outside, or a final graph output). */
  boundary(set: ReadonlySet<NodeProto>): { inputs: string[]; outputs: string[] } {
    const inputs = new Set<string>();
    const outputs = new Set<string>();
    for (const n of set) {
      for (const t of this.dataInputs(n)) {
        const p = this.index.producer.get(t);
        if (!p || !set.has(p)) inputs.add(t);
      }
      for (const o of n.output ?? []) {
        const users = o ? this.index.consumersOf(o) : [];
        // a graph output that is also used inside (logits before a Softmax) does not make a second exit
        if (users.some((c) => !set.has(c)) || (o && this.index.graphOutputs.has(o) && !users.length)) outputs.add(o!);
      }
    }
    return { inputs: [...inputs], outputs: [...outputs] };
  }

  /**
   * A whole residual/branch region alone keeps its kind; several of them make a stage. A gate
   * (squeeze-excitation) is part of the layers around it, as an activation is; alone it is a branch.
   */
  private kindOf(set: ReadonlySet<NodeProto>, layers: number): BlockKind {
    const cores = this.pieces.map((p) => p.core).filter((c) => c.nodes.some((n) => set.has(n)));
    const whole = cores.filter((c) => c.kind !== 'chain' && c.kind !== 'gate' && c.nodes.every((n) => set.has(n)));
    if (cores.length === 1 && cores[0]!.kind === 'gate') return 'branch';
    if (cores.length === 1 && whole.length === 1) return whole[0]!.kind as BlockKind;
    if (whole.length) return 'stage';
    return layers === 1 ? 'layer' : 'plain';
  }

  /** A block from its data nodes; throws unless they form a single-entry single-exit region. */
  block(id: string, members: Iterable<NodeProto>, kind?: BlockKind): Block {
    const set = new Set(members);
    const { inputs, outputs } = this.boundary(set);
    if (inputs.length !== 1 || outputs.length !== 1) {
      throw new PartitionError(`block '${id}' would not be single-entry single-exit: it reads ${inputs.join(', ') || 'nothing'} and writes ${outputs.join(', ') || 'nothing'}`);
    }
    const nodes = [...this.order.keys()].filter((n) => set.has(n) || set.has(this.owner.get(n)!));
    const layers = nodes.flatMap((n) => this.layerOf.get(n)?.name ?? []);
    return { id, kind: kind ?? this.kindOf(set, layers.length), layers, nodes: nodes.map(layerName), input: inputs[0]!, output: outputs[0]! };
  }

  /** The data nodes of a block of a partition made for this model. */
  nodesOf(b: Block): NodeProto[] {
    return b.nodes.flatMap((name) => {
      const n = this.byName.get(name);
      if (!n) throw new PartitionError(`block '${b.id}' names node '${name}', which the model does not have`);
      return this.isData(n) ? [n] : [];
    });
  }

  position(n: NodeProto): number {
    return this.order.get(n)!;
  }
}

const piecesNodes = (pieces: readonly Piece[]): NodeProto[] => pieces.flatMap((p) => [...p.lead, p.core, ...p.trail].flatMap((a) => a.nodes));
const piecesLayers = (pieces: readonly Piece[]): QuantLayer[] => pieces.flatMap((p) => p.core.layers);
const isLayerPiece = (p: Piece | undefined): boolean => p?.core.kind === 'chain';
const isGatePiece = (p: Piece | undefined): boolean => p?.core.kind === 'gate';
/** A layer with no activation after it ends a linear bottleneck (MobileNetV2's projection): a block ends there. */
const hasActivation = (p: Piece): boolean => p.trail.some((a) => a.nodes.some((n) => ACTIVATIONS.has(n.opType ?? '')));

/**
 * The longest common prefix of layer names that ends at a '.' or '/' boundary ('b1.conv1',
 * 'b1.conv2' → 'b1'), at a '/' only when all are paths ('/layer1/layer1.0/conv1/Conv' →
 * 'layer1/layer1.0'); a single layer's own name. Empty when the names share no such prefix.
 */
function commonPrefix(names: readonly string[]): string {
  let p = names[0] ?? '';
  for (const n of names) while (!n.startsWith(p)) p = p.slice(0, -1);
  // path-style names (torch.onnx: '/layer1/layer1.0/conv1/Conv') break at '/' only: 'layer1.0' is one module
  const paths = names.every((n) => n.includes('/'));
  const atBoundary = (n: string): boolean => n.length === p.length || (!paths && n[p.length] === '.') || n[p.length] === '/';
  while (p && !names.every(atBoundary)) p = p.slice(0, -1);
  return p.replace(/^[./]+|[./]+$/g, '');
}

function uniqueId(layers: readonly string[], used: Set<string>, fallback: string): string {
  const derived = commonPrefix(layers);
  const id = derived && !used.has(derived) ? derived : fallback;
  used.add(id);
  return id;
}

/** Input channels of a layer, and whether it downsamples, to see where a stage starts. */
function inChannels(l: QuantLayer): number {
  return l.kind === 'conv' ? (l.weightDims[1] ?? 0) * attrInt(l.node, 'group', 1) : (l.weightDims[1 - l.channelAxis] ?? 0);
}

/** A unit starts a new stage when it changes resolution (a stride) or width (which a projection shortcut serves). */
function changesShape(pieces: readonly Piece[]): boolean {
  const layers = piecesLayers(pieces);
  const strided = layers.some((l) => (attrInts(l.node, 'strides') ?? []).some((s) => s > 1));
  const [first, last] = [layers[0]!, layers.at(-1)!];
  return strided || inChannels(first) !== last.weightDims[last.channelAxis];
}

export function partitionModel(model: ModelProto, granularity: Granularity = 'block'): Partition {
  const g = new Analysis(model);
  return { granularity, blocks: granularity === 'layer' ? layerBlocks(g) : groupedBlocks(g, granularity) };
}

function groupedBlocks(g: Analysis, granularity: Exclude<Granularity, 'layer'>): Block[] {
  const { pieces } = g;
  // stem and FC are handled on their own, as in BRECQ and QDrop (algorithms.md §1.7)
  const stem = isLayerPiece(pieces[0]) ? pieces[0] : undefined;
  const head = pieces.length > 1 && isLayerPiece(pieces.at(-1)) ? pieces.at(-1) : undefined;
  const middle = pieces.slice(stem ? 1 : 0, head ? -1 : pieces.length);
  // MQBench: a residual/branch region is one block; plain layers are grouped up to 3
  const units: Piece[][] = [];
  let run: Piece[] = [];
  const layersIn = (u: readonly Piece[]): number => u.filter(isLayerPiece).length;
  const opened = new Set<Piece[]>();
  for (const p of middle) {
    if (isLayerPiece(p)) {
      run.push(p);
      if (layersIn(run) < 3 && hasActivation(p)) continue;
    } else if (isGatePiece(p) && !p.lead.length && (run.length || isLayerPiece(units.at(-1)?.at(-1)))) {
      // a squeeze-excitation gates the layer before it: it stays in that layer's group, uncounted
      if (run.length) run.push(p);
      else units.at(-1)!.push(p);
      continue;
    } else if (p.core.kind === 'branch' && !p.lead.length && (run.length || isLayerPiece(units.at(-1)?.at(-1)))) {
      // the layer whose output the branches share (a Fire module's squeeze) opens the branch block
      const from = run.length ? run : units.pop()!;
      const opener = from.pop()!;
      if (from.length) units.push(from);
      run = [opener, p];
      opened.add(run);
    } else {
      if (run.length) units.push(run);
      run = [p];
    }
    units.push(run);
    run = [];
  }
  if (run.length) units.push(run);

  const blocks: Block[] = [];
  if (stem) blocks.push(g.block('stem', piecesNodes([stem])));
  if (granularity === 'block') {
    const used = new Set(['stem', 'head']);
    units.forEach((u, i) => blocks.push(g.block(uniqueId(piecesLayers(u).map((l) => l.name), used, `block${i + 1}`), piecesNodes(u), opened.has(u) ? 'branch' : undefined)));
  } else if (granularity === 'stage') {
    const stages: Piece[][] = [];
    for (const u of units) {
      if (!stages.length || changesShape(u)) stages.push([]);
      stages.at(-1)!.push(...u);
    }
    stages.forEach((s, i) => blocks.push(g.block(`stage${i + 1}`, piecesNodes(s), 'stage')));
  } else if (middle.length) {
    blocks.push(g.block('net', piecesNodes(middle), 'net'));
  }
  if (head) blocks.push(g.block('head', piecesNodes([head])));
  return blocks;
}

/**
 * Each layer alone, with its activation; never across an Add. Inside a residual or branch region
 * a layer also takes the pooling that feeds only it (an Inception pool branch).
 */
function layerBlocks(g: Analysis): Block[] {
  const blocks: Block[] = [];
  for (const p of g.pieces) {
    if (p.core.kind === 'chain') {
      blocks.push(g.block(p.core.layers[0]!.name, piecesNodes([p]), 'layer'));
      continue;
    }
    const inside = new Set(p.core.nodes);
    const taken = new Set<NodeProto>();
    const own = p.core.layers.map((l) => {
      const nodes = [l.node];
      for (;;) {
        const next = g.index.soleUse(nodes.at(-1)!.output?.[0] ?? '');
        if (!next || !inside.has(next) || !POINTWISE.has(next.opType ?? '') || g.dataInputs(next).length !== 1) break;
        nodes.push(next);
      }
      nodes.forEach((n) => taken.add(n));
      return nodes;
    });
    for (const nodes of own) {
      for (;;) {
        const [t, ...more] = g.dataInputs(nodes[0]!);
        const prev = g.index.producer.get(t ?? '');
        if (more.length || !prev || !inside.has(prev) || taken.has(prev) || g.layerOf.has(prev) || g.dataInputs(prev).length !== 1 || g.index.soleUse(t!) !== nodes[0]) break;
        nodes.unshift(prev);
        taken.add(prev);
      }
    }
    own.forEach((nodes, i) => blocks.push(g.block(p.core.layers[i]!.name, nodes, 'layer')));
  }
  return blocks;
}

/**
 * Merges blocks that are next to each other in `p` into one. At 'layer' granularity the join
 * nodes that no block owns, after the first merged block and before the next unmerged one, come
 * along: merging a residual block's layers gives back the residual block.
 */
export function mergeBlocks(p: Partition, model: ModelProto, ids: readonly string[]): Partition {
  const g = new Analysis(model);
  const at = ids.map((id) => {
    const i = p.blocks.findIndex((b) => b.id === id);
    if (i < 0) throw new PartitionError(`no block '${id}'`);
    return i;
  });
  at.sort((a, b) => a - b);
  if (at.length < 2) throw new PartitionError('merging needs at least two blocks');
  if (at.some((i, k) => k > 0 && i !== at[k - 1]! + 1)) throw new PartitionError(`blocks ${ids.join(', ')} are not adjacent`);
  const [from, to] = [at[0]!, at.at(-1)!];
  const chosen = p.blocks.slice(from, to + 1);
  const members = new Set(chosen.flatMap((b) => g.nodesOf(b)));
  const owned = new Set(p.blocks.flatMap((b) => g.nodesOf(b)));
  const start = Math.min(...[...members].map((n) => g.position(n)));
  const nextBlock = p.blocks[to + 1];
  const end = nextBlock ? Math.min(...g.nodesOf(nextBlock).map((n) => g.position(n))) : Infinity;
  for (const n of g.dataNodes) if (!owned.has(n) && g.position(n) > start && g.position(n) < end) members.add(n);
  const used = new Set(p.blocks.filter((b) => !chosen.includes(b)).map((b) => b.id));
  const merged = g.block(uniqueId(chosen.flatMap((b) => b.layers), used, chosen.map((b) => b.id).join('+')), members);
  return { granularity: p.granularity, blocks: [...p.blocks.slice(0, from), merged, ...p.blocks.slice(to + 1)] };
}

/**
 * Splits block `id` into two after layer `afterLayer`: at the first tensor after it that alone
 * carries everything onward, taking its activation along. Throws where no such tensor exists
 * before the next layer, e.g. between the convolutions of a residual block (the skip crosses).
 */
export function splitBlock(p: Partition, model: ModelProto, id: string, afterLayer: string): Partition {
  const g = new Analysis(model);
  const i = p.blocks.findIndex((b) => b.id === id);
  const b = p.blocks[i];
  if (!b) throw new PartitionError(`no block '${id}'`);
  const nodes = g.nodesOf(b);
  const at = nodes.findIndex((n) => g.layerOf.get(n)?.name === afterLayer);
  if (at < 0) throw new PartitionError(`layer '${afterLayer}' is not in block '${id}'`);
  const next = nodes.findIndex((n, k) => k > at && g.layerOf.has(n));
  if (next < 0) throw new PartitionError(`'${afterLayer}' is the last layer of '${id}': nothing to split off`);
  const cutAfter = (k: number): boolean => {
    const [a, z] = [g.boundary(new Set(nodes.slice(0, k + 1))), g.boundary(new Set(nodes.slice(k + 1)))];
    return a.outputs.length === 1 && z.inputs.length === 1 && z.inputs[0] === a.outputs[0];
  };
  let cut = at;
  while (cut < next && !cutAfter(cut)) cut++;
  if (cut === next) throw new PartitionError(`block '${id}' cannot be cut after '${afterLayer}': no single tensor carries everything on (a skip connection crosses)`);
  while (cut + 1 < next && POINTWISE.has(nodes[cut + 1]!.opType ?? '') && cutAfter(cut + 1)) cut++;
  const used = new Set(p.blocks.filter((o) => o !== b).map((o) => o.id));
  const first = nodes.slice(0, cut + 1);
  const second = nodes.slice(cut + 1);
  const name = (part: NodeProto[], n: number): string => uniqueId(part.flatMap((x) => g.layerOf.get(x)?.name ?? []), used, `${id}.${n}`);
  const parts = [g.block(name(first, 1), first), g.block(name(second, 2), second)];
  return { granularity: p.granularity, blocks: [...p.blocks.slice(0, i), ...parts, ...p.blocks.slice(i + 1)] };
}

/** An edit of the automatic partition, as a saved plan keeps it: merge adjacent blocks, or split one after a layer. */
export type PartitionEdit = { readonly merge: readonly string[] } | { readonly split: string; readonly after: string };

/** The automatic partition with the user's edits replayed in order; an edit that no longer applies says which. */
export function editedPartition(model: ModelProto, granularity: Granularity, edits: readonly PartitionEdit[] = []): Partition {
  let p = partitionModel(model, granularity);
  for (const [i, e] of edits.entries()) {
    try {
      p = 'merge' in e ? mergeBlocks(p, model, e.merge) : splitBlock(p, model, e.split, e.after);
    } catch (err) {
      throw new PartitionError(`partition edit ${i + 1} (${JSON.stringify(e)}) does not apply to this model: ${(err as Error).message}`);
    }
  }
  return p;
}
