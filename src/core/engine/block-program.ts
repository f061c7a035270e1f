import type { ModelProto, NodeProto } from '../onnx/schema';
import { tensorToFloat32 } from '../onnx/tensor-data';
import { GraphIndex } from '../graph/graph-index';
import type { QuantLayer } from '../graph/layers';
import type { Block } from '../graph/partition';
import { channelsFirst } from '../quant/weight-layout';
import { clipBackward, clampForward, type Clamp, type Nd } from '../backends/cpu/reference';
import { convKernel, fusableClamp, kernelFor, UnsupportedOpError, type ConvKernel, type Kernel } from './kernels';
import type { ConvFactory } from './conv-engine';
import { copy32 } from '../tensor/buffer-pool';
import { actQuantBackward, actQuantForward, type ActQuantizer, type DropMask } from './act-quant';

/** A quantizable layer's weight inside a block: the parameter the methods round. */
export interface WeightSlot {
  readonly layer: QuantLayer;
  /** The float weight, output channels on axis 0 (the quantizer's layout). */
  readonly weight: Nd;
  /** Returns codes in the channels-first layout to the stored layout. */
  readonly back: (codes: Int32Array) => Int32Array;
}

interface Step {
  readonly node: NodeProto;
  readonly kernel: Kernel;
  /** Per input: a tensor name computed in the block, a slot index, a constant, or nothing. */
  readonly inputs: readonly ({ kind: 'value'; name: string } | { kind: 'slot'; slot: number } | { kind: 'const'; value: Nd } | null)[];
  readonly output: string;
  /**
   * A convolution and the ReLU/Clip that alone reads its output, run as one step: `output` is the
   * activation's, `inner` the convolution's, which exists only when the step runs unfused (an
   * activation quantizer on `inner` asks for it).
   */
  readonly fused?: { readonly conv: ConvKernel; readonly clamp: Clamp; readonly inner: string };
}

/** What one forward pass recorded, for the backward pass. */
export interface Tape {
  readonly values: Map<string, Nd>;
  /** Float values of quantized tensors, before their quantizer, and the drop masks. */
  readonly preQuant: Map<string, { x: Nd; mask: Uint8Array | null }>;
  readonly output: Nd;
}

export interface ForwardOptions {
  /** Activation quantizers in use, by tensor produced inside the block; absent tensors stay float. */
  readonly quantizers?: ReadonlyMap<string, ActQuantizer>;
  readonly drop?: DropMask | null;
}

export interface BackwardOptions extends ForwardOptions {
  /** LSQ's gradient scale for a quantizer over `n` elements; 1 (none) by default. */
  readonly gradScale?: (q: ActQuantizer, n: number) => number;
  /** Gradients of the loss with respect to inner tensors (as the forward left them: after their quantizer). */
  readonly seeds?: ReadonlyMap<string, Float32Array>;
  /** Propagate to the block input only, skipping weight gradients. */
  readonly inputOnly?: boolean;
}

export interface Gradients {
  /** Per slot, d loss / d weight (channels-first layout). */
  readonly weights: (Nd | null)[];
  /** Per quantized tensor, d loss / d step. */
  readonly steps: Map<string, number>;
  /** d loss / d block input, when asked for (`inputOnly`). */
  readonly input: Float32Array | null;
}

/**
 * A block of the canonical graph compiled for training: its nodes in order with their kernels,
 * the quantizable layers' weights as slots the caller supplies each iteration (soft-rounded, for
 * AdaRound and its descendants), and optional activation quantizers on named tensors.
 * Nodes outside the block never run here: ONNX Runtime computes them, so an op the engine lacks
 * only matters when it sits inside a block being reconstructed, and then the error names it.
 */
export class BlockProgram {
  private constructor(
    readonly block: Block,
    readonly slots: readonly WeightSlot[],
    /** Tensors produced inside the block (candidates for activation quantizers). */
    readonly produced: ReadonlySet<string>,
    private readonly steps: readonly Step[],
  ) {}

  static compile(model: ModelProto, block: Block, layers: readonly QuantLayer[], conv: ConvFactory): BlockProgram {
    const index = new GraphIndex(model.graph!);
    const inBlock = new Set(block.nodes);
    const nodes = (model.graph!.node ?? []).filter((n) => inBlock.has(n.name || n.output?.[0] || ''));
    const byWeight = new Map(layers.filter((l) => block.layers.includes(l.name)).map((l) => [l.weight, l]));
    const slots: WeightSlot[] = [];
    const slotOf = new Map<string, number>();
    for (const l of block.layers) {
      const layer = layers.find((q) => q.name === l);
      if (!layer) throw new Error(`block "${block.id}": layer "${l}" is not a quantizable layer of this model`);
      const w = channelsFirst(tensorToFloat32(layer.weightTensor), layer.weightDims, layer.channelAxis);
      slotOf.set(layer.weight, slots.length);
      slots.push({ layer, weight: { shape: w.dims, data: w.data }, back: w.back });
    }
    const produced = new Set<string>([block.input]);
    const steps: Step[] = [];
    const readers = new Map<string, NodeProto[]>();
    for (const n of model.graph!.node ?? []) for (const i of n.input ?? []) if (i) readers.set(i, [...(readers.get(i) ?? []), n]);
    const graphOutputs = new Set((model.graph!.output ?? []).map((o) => o.name));
    const absorbed = new Set<NodeProto>();
    for (const node of nodes) {
      if (node.opType === 'Constant' || absorbed.has(node)) continue;
      const inputs = (node.input ?? []).map((name, i) => {
        if (!name) return null;
        const slot = slotOf.get(name);
        if (slot !== undefined && byWeight.get(name)?.node === node) return { kind: 'slot' as const, slot };
        if (produced.has(name)) return { kind: 'value' as const, name };
        const c = index.constant(name);
        if (c) return { kind: 'const' as const, value: constantNd(c, node, i) };
        throw new UnsupportedOpError(`block "${block.id}": node "${node.name || node.output?.[0]}" (${node.opType}) reads "${name}", which is computed outside the block; the block is not single-entry`);
      });
      const ctx = {
        constant: (i: number) => {
          const s = inputs[i];
          return s?.kind === 'const' ? s.value : null;
        },
        conv,
      };
      const output = node.output?.[0];
      if (!output) throw new Error(`node "${node.name}" has no output`);
      for (const o of node.output ?? []) if (o) produced.add(o);
      const act = node.opType === 'Conv' && output !== block.output && !graphOutputs.has(output) ? fusableActivation(readers.get(output) ?? [], inBlock, index) : null;
      if (act) {
        absorbed.add(act.node);
        for (const o of act.node.output ?? []) if (o) produced.add(o);
        const kernel = convKernel(node, ctx);
        steps.push({ node, kernel, inputs, output: act.node.output![0]!, fused: { conv: kernel, clamp: act.clamp, inner: output } });
      } else steps.push({ node, kernel: kernelFor(node, ctx), inputs, output });
    }
    if (!produced.has(block.output)) throw new Error(`block "${block.id}": its output "${block.output}" is not computed by its nodes`);
    return new BlockProgram(block, slots, produced, steps);
  }

  forward(x: Nd, weights: readonly Nd[], options: ForwardOptions = {}): Tape {
    const values = new Map<string, Nd>([[this.block.input, x]]);
    const preQuant = new Map<string, { x: Nd; mask: Uint8Array | null }>();
    const quantize = (name: string, v: Nd): Nd => {
      const q = options.quantizers?.get(name);
      if (!q) return v;
      const r = actQuantForward(v, q, options.drop ?? null);
      preQuant.set(name, { x: v, mask: r.mask });
      return r.y;
    };
    for (const step of this.steps) {
      const inputs = step.inputs.map((s) => this.resolve(s, values, weights));
      if (step.fused && options.quantizers?.has(step.fused.inner)) {
        // the convolution's own output is quantized: it has to exist, so the pair runs as two ops
        const z = quantize(step.fused.inner, step.kernel.forward(inputs));
        values.set(step.fused.inner, z);
        values.set(step.output, quantize(step.output, clampForward(z, step.fused.clamp)));
      } else if (step.fused) values.set(step.output, quantize(step.output, step.fused.conv.forwardFused(inputs, step.fused.clamp)));
      else values.set(step.output, quantize(step.output, step.kernel.forward(inputs)));
    }
    return { values, preQuant, output: values.get(this.block.output)! };
  }

  /**
   * Gradients of a loss whose gradient with respect to the block output is `dOut` (plus `seeds` on
   * inner tensors). Every tensor's
   * gradient is accumulated over all its consumers before its producer runs backward (reverse
   * topological order guarantees it).
   */
  backward(tape: Tape, weights: readonly Nd[], dOut: Nd | null, options: BackwardOptions = {}): Gradients {
    const grads = new Map<string, Float32Array>();
    if (dOut) grads.set(this.block.output, copy32(dOut.data));
    // losses on inner tensors (NWQ's activation regularisation) enter where those tensors are made
    for (const [name, g] of options.seeds ?? []) {
      if (!this.produced.has(name) || name === this.block.input) throw new Error(`a loss on "${name}", which block "${this.block.id}" does not compute`);
      if (!tape.values.has(name)) throw new Error(`a loss on "${name}", a convolution's output that block "${this.block.id}" fuses with its activation; put the loss on the activation's output`);
      const prev = grads.get(name);
      if (prev) for (let i = 0; i < g.length; i++) prev[i]! += g[i]!;
      else grads.set(name, copy32(g));
    }
    const dW: (Nd | null)[] = weights.map(() => null);
    const steps = new Map<string, number>();
    const add = (name: string, g: Float32Array) => {
      const prev = grads.get(name);
      if (!prev) grads.set(name, g);
      else for (let i = 0; i < g.length; i++) prev[i]! += g[i]!;
    };
    const throughQuantizer = (name: string, dy: Float32Array): Float32Array => {
      const q = options.quantizers?.get(name);
      const pre = tape.preQuant.get(name);
      if (!q || !pre) return dy;
      const r = actQuantBackward(pre.x, q, { shape: pre.x.shape, data: dy }, pre.mask, options.gradScale?.(q, pre.x.data.length) ?? 1);
      steps.set(name, (steps.get(name) ?? 0) + r.dscale);
      return r.dx.data;
    };
    for (let k = this.steps.length - 1; k >= 0; k--) {
      const step = this.steps[k]!;
      const g = grads.get(step.output);
      if (!g) continue;
      const dy = throughQuantizer(step.output, g);
      const inputs = step.inputs.map((s) => this.resolve(s, tape.values, weights));
      // the block input is data, not a parameter: no gradient flows out of the block
      const need = step.inputs.map((s) => (s?.kind === 'slot' && !options.inputOnly) || (s?.kind === 'value' && (s.name !== this.block.input || options.inputOnly === true)));
      const out = tape.values.get(step.output)!;
      const pre = tape.preQuant.get(step.output)?.x ?? out;
      let d: (Nd | null)[];
      if (step.fused && !tape.values.has(step.fused.inner)) d = step.fused.conv.backwardFused(inputs, pre, { shape: out.shape, data: dy }, need, step.fused.clamp);
      else if (step.fused) {
        // the unfused pair of forward(): through the activation, then the quantizer on the conv's output
        const z = tape.values.get(step.fused.inner)!;
        const dz = throughQuantizer(step.fused.inner, clipBackward(pre, { shape: out.shape, data: dy }, step.fused.clamp.lo, step.fused.clamp.hi).data);
        d = step.kernel.backward(inputs, tape.preQuant.get(step.fused.inner)?.x ?? z, { shape: z.shape, data: dz }, need);
      } else d = step.kernel.backward(inputs, pre, { shape: out.shape, data: dy }, need);
      // this step's output gradient is complete and read by no one after it, so the first input a
      // kernel hands it back to (Add, Identity, Reshape return dy itself) may keep it; later ones copy
      let handedOn = false;
      step.inputs.forEach((s, i) => {
        const gi = d[i];
        if (!s || !gi || !need[i]) return;
        if (s.kind === 'slot') dW[s.slot] = gi;
        else if (s.kind === 'value') {
          const shared = gi.data === dy || gi.data === g;
          add(s.name, shared && handedOn ? copy32(gi.data) : gi.data);
          handedOn ||= shared;
        }
      });
    }
    return { weights: dW, steps, input: grads.get(this.block.input) ?? null };
  }

  /** d loss / d block input, with the weights held constant: how a loss downstream reaches this block's start. */
  backwardToInput(tape: Tape, weights: readonly Nd[], dOut: Nd): Nd {
    const g = this.backward(tape, weights, dOut, { inputOnly: true }).input;
    const x = tape.values.get(this.block.input)!;
    return { shape: x.shape, data: g ?? new Float32Array(x.data.length) };
  }

  private resolve(s: Step['inputs'][number], values: Map<string, Nd>, weights: readonly Nd[]): Nd | null {
    if (!s) return null;
    if (s.kind === 'const') return s.value;
    if (s.kind === 'slot') return weights[s.slot]!;
    const v = values.get(s.name);
    if (!v) throw new Error(`tensor "${s.name}" is read before it is computed`);
    return v;
  }
}

/** A constant input as a float tensor; integer constants (shapes, axes, pads) convert exactly. */
function constantNd(t: NonNullable<ReturnType<GraphIndex['constant']>>, node: NodeProto, i: number): Nd {
  try {
    return { shape: (t.dims ?? []).map(Number), data: tensorToFloat32(t) };
  } catch (e) {
    throw new UnsupportedOpError(`node "${node.name}" (${node.opType}): constant input ${i} cannot be read: ${(e as Error).message}`);
  }
}

/**
 * The activation a convolution's output may be fused with: the output's only reader, inside the
 * block, a ReLU or a Clip with constant bounds.
 */
function fusableActivation(readers: readonly NodeProto[], inBlock: ReadonlySet<string>, index: GraphIndex): { node: NodeProto; clamp: Clamp } | null {
  if (readers.length !== 1) return null;
  const node = readers[0]!;
  if (!inBlock.has(node.name || node.output?.[0] || '')) return null;
  const clamp = fusableClamp(node, (i) => {
    const name = node.input?.[i];
    const c = name ? index.constant(name) : null;
    return c ? { shape: (c.dims ?? []).map(Number), data: tensorToFloat32(c) } : null;
  });
  return clamp ? { node, clamp } : null;
}
