import type { ModelProto } from '../onnx/schema';
import type { QuantLayer } from '../graph/layers';
import type { Block } from '../graph/partition';
import { exportQdq, type QuantizedWeight } from '../export/qdq';
import { captureRows, captureTensors, type CacheChoice } from '../quant/calibrate';
import { createRowCache, gatherBatch, type RowCache } from '../quant/row-cache';
import { dequantizeTensor, intRange, onAxis, quantizeTensor, weightParams, type Bits, type QuantParams, type StepInit } from '../quant/quantizer';
import { channelsFirst } from '../quant/weight-layout';
import { weightGrid, type GroupSize, type WeightGridKind } from '../plan';
import type { ImageBatches } from '../data/batches';
import { adaroundBackward, adaroundForward, adaroundInit, adaroundRegBackward, adaroundRegForward, rectifiedSigmoid, type Nd, type QuantGrid } from '../backends/cpu/reference';
import { BufferPool, zeros32 } from '../tensor/buffer-pool';
import { Adam } from '../optim/adam';
import { rng } from '../random';
import { cooperative, throwIfAborted, type Emit } from '../events';
import { BlockProgram } from '../engine/block-program';
import type { WasmConvPool } from '../engine/conv-engine';
import type { ActQuantizer } from '../engine/act-quant';
import { betaAt, gridOf, hardCodes } from './adaround';
import { parseCheckpoint, serializeCheckpoint, type CheckpointStore } from '../checkpoint';
import type { KernelBackend, TensorLike } from '../backends/webgpu/types';
import { BlockBackendRunner } from './reconstruct-backend';

/**
 * Block reconstruction, the family BRECQ and QDrop share (algorithms.md §3, §4): each block's
 * weights get AdaRound variables, learned jointly so that the block's output matches the float
 * model's, with inputs taken from the already-quantized prefix.
 *
 * - 'brecq' (the reference code's default): weights with activations in float, then a separate
 *   pass that learns activation step sizes (LSQ) block by block, inputs and targets from the float
 *   model, loss |Δ|^2.4.
 * - 'qdrop': activations quantized during the weight reconstruction, step sizes learned jointly,
 *   each quantized activation (and the block input) dropped back to float element-wise with
 *   probability 1 − keep.
 */
export type ReconstructionMode = 'brecq' | 'qdrop';

export interface ReconstructionOptions {
  readonly iters: number;
  readonly batch: number;
  readonly lr: number;
  readonly lambda: number;
  readonly betaStart: number;
  readonly betaEnd: number;
  readonly warmup: number;
  readonly seed: number;
  /** BRECQ's second pass: iterations, Adam lr (cosine-annealed to 0) and loss exponent. */
  readonly actIters: number;
  readonly actLr: number;
  readonly actP: number;
  /** QDrop: learning rate of the step sizes (cosine-annealed) and the probability of keeping a quantized value. */
  readonly qdropActLr: number;
  readonly keep: number;
  /**
   * Weight the block-output error by the diagonal Fisher information, as the BRECQ paper does:
   * (|g| + 1)² per element, g the gradient of KL(float logits ‖ quantized logits) at the block
   * output (§3.2). Off by default, as in the reference code's released script.
   */
  readonly fisher: boolean;
}

/** The reference defaults (§3.3, §3.4, §4). */
export const RECONSTRUCTION_DEFAULTS: ReconstructionOptions = {
  iters: 20_000,
  batch: 32,
  lr: 1e-3,
  lambda: 0.01,
  betaStart: 20,
  betaEnd: 2,
  warmup: 0.2,
  seed: 0,
  actIters: 5000,
  actLr: 4e-4,
  actP: 2.4,
  qdropActLr: 4e-5,
  keep: 0.5,
  fisher: false,
};

export interface ReconstructionInput {
  readonly model: ModelProto;
  readonly layers: readonly QuantLayer[];
  readonly blocks: readonly Block[];
  readonly bitsFor: (layer: QuantLayer) => Bits;
  readonly scale: StepInit;
  readonly groupSize?: GroupSize;
  /** The weight grid below 8 bits. */
  readonly weightGrid: WeightGridKind;
  /** Layers kept at round-to-nearest (BRECQ leaves the first layer unreconstructed, §1.5). */
  readonly skip: (layer: QuantLayer) => boolean;
  readonly calib: ImageBatches;
  readonly convs: WasmConvPool;
  /** How the calibration caches are kept: float32 in memory unless the run chose float16 or spilling to fit its memory. */
  readonly caches?: CacheChoice;
  readonly options: Partial<ReconstructionOptions>;
  /** Saves progress after every block and resumes from it: the run's identity and its store. */
  readonly checkpoints?: { readonly key: string; readonly store: CheckpointStore };
  /** Where the weight loops run when a block compiles for it (WebGPU); the CPU engine otherwise, and after a device loss. */
  readonly backend?: KernelBackend<TensorLike> | null;
}

/** How well a finished block reproduces the float model on the calibration set. */
export interface BlockMetrics {
  readonly block: string;
  readonly layers: readonly string[];
  readonly sqnrDb: number;
  readonly cosine: number;
  /** The last reconstruction loss, or null where nothing was learned. */
  readonly loss: number | null;
  /** Share of rounding variables settled at the end (|2h(V) − 1| > 0.99), the worst layer's; null where nothing was learned. */
  readonly decided: number | null;
  readonly seconds: number;
}

interface SlotState {
  readonly weight: Nd;
  readonly grid: QuantGrid;
  readonly params: QuantParams;
  /** AdaRound's variables; null for a layer kept at round-to-nearest. */
  readonly v: Nd | null;
  readonly adam: Adam | null;
  readonly fixed: Nd | null;
}

function actQuantizer(tensor: string, p: QuantParams): ActQuantizer {
  const { qmin, qmax } = intRange(p.bits, p.signed, p.symmetric);
  return { tensor, scale: Float32Array.from(p.scale), zero: p.zeroPoint[0]!, qmin, qmax };
}


/**
 * Sum over channels (axis 1) of |Δ|^p, mean over batch and positions: the references'
 * normalisation, which λ = 0.01 is tuned for (§2.2). Returns the loss and fills its gradient.
 */
function reconstructionLoss(pred: Nd, target: Nd, p: number, grad: Float32Array, weight: Float32Array | null = null): number {
  const channels = pred.shape[1] ?? 1;
  const P = pred.data;
  const T = target.data;
  const k = channels / P.length;
  let acc = 0;
  // one loop per case: the per-element tests of a shared loop cost as much as the arithmetic
  if (p === 2 && weight) {
    for (let i = 0; i < P.length; i++) {
      const e = P[i]! - T[i]!;
      const f = weight[i]!;
      acc += f * e * e;
      grad[i] = 2 * k * f * e;
    }
  } else if (p === 2) {
    for (let i = 0; i < P.length; i++) {
      const e = P[i]! - T[i]!;
      acc += e * e;
      grad[i] = 2 * k * e;
    }
  } else {
    for (let i = 0; i < P.length; i++) {
      const e = P[i]! - T[i]!;
      const a = Math.abs(e);
      acc += a ** p;
      grad[i] = e === 0 ? 0 : k * p * a ** (p - 1) * Math.sign(e);
    }
  }
  return acc * k;
}

/** Cosine learning-rate annealing to 0 over `total` steps, as the references schedule step sizes. */
const cosineLr = (lr: number, t: number, total: number) => 0.5 * lr * (1 + Math.cos((Math.PI * t) / total));

function blockMetrics(program: BlockProgram, weights: readonly Nd[], inputs: RowCache, targets: RowCache, quantizers: ReadonlyMap<string, ActQuantizer> | undefined): { sqnrDb: number; cosine: number } {
  let sig = 0;
  let err = 0;
  let dot = 0;
  let pp = 0;
  const n = inputs.shape[0]!;
  for (let start = 0; start < n; start += 32) {
    const end = Math.min(n, start + 32);
    const x: Nd = { shape: [end - start, ...inputs.shape.slice(1)], data: inputs.rows(start, end) };
    const y = program.forward(x, weights, quantizers ? { quantizers } : {}).output.data;
    const t = targets.rows(start, end);
    for (let i = 0; i < y.length; i++) {
      sig += t[i]! * t[i]!;
      err += (t[i]! - y[i]!) ** 2;
      dot += t[i]! * y[i]!;
      pp += y[i]! * y[i]!;
    }
  }
  return { sqnrDb: err === 0 ? Infinity : 10 * Math.log10(sig / err), cosine: sig === 0 || pp === 0 ? (sig === pp ? 1 : 0) : dot / Math.sqrt(sig * pp) };
}

/**
 * (|g| + 1)² for every element of the block's output over the calibration set, with g the
 * gradient of KL(softmax(float logits) ‖ softmax(logits)) (batch mean over 32) at the block
 * output, the block at its soft-rounding start (≈ float weights) on the quantized prefix's inputs
 * and the rest of the network in float (§3.2).
 */
async function fisherWeights(input: ReconstructionInput, block: Block, program: BlockProgram, floatWeights: readonly Nd[], quantIn: RowCache, signal?: AbortSignal): Promise<RowCache> {
  const { model, layers, calib } = input;
  const nodes = model.graph!.node ?? [];
  const inBlock = new Set(block.nodes);
  const last = Math.max(...nodes.flatMap((n, i) => (inBlock.has(n.name || n.output?.[0] || '') ? [i] : [])));
  const after = nodes.slice(last + 1);
  const output = model.graph!.output![0]!.name!;
  const afterLayers = new Set(after.map((n) => n.name || n.output?.[0] || ''));
  // the last block ends at the logits: its gradient is the KL's own
  const suffix = block.output === output ? null : BlockProgram.compile(
    model,
    { id: `${block.id}→output`, kind: 'net', layers: layers.filter((l) => afterLayers.has(l.name)).map((l) => l.name), nodes: [...afterLayers], input: block.output, output },
    layers,
    await input.convs.factory(),
  );
  const fpLogits = (await captureTensors(model, [output], calib, signal)).get(output)!;
  const n = quantIn.shape[0]!;
  let weightsOut: RowCache | null = null;
  for (let start = 0; start < n; start += 32) {
    throwIfAborted(signal);
    const end = Math.min(n, start + 32);
    const b = end - start;
    const z = program.forward({ shape: [b, ...quantIn.shape.slice(1)], data: quantIn.rows(start, end) }, floatWeights).output;
    weightsOut ??= await createRowCache([n, ...z.shape.slice(1)], input.caches?.storage ?? 'float32', input.caches?.spill);
    const tape = suffix?.forward(z, suffix.slots.map((s) => s.weight));
    const logits = tape ? tape.output.data : z.data;
    const classes = logits.length / b;
    const dLogits = new Float32Array(logits.length);
    for (let r = 0; r < b; r++) {
      const q = softmaxRow(logits, r * classes, classes);
      const t = softmaxRow(fpLogits.data, (start + r) * classes, classes);
      for (let c = 0; c < classes; c++) dLogits[r * classes + c] = (q[c]! - t[c]!) / b;
    }
    const g = suffix && tape ? suffix.backwardToInput(tape, suffix.slots.map((s) => s.weight), { shape: tape.output.shape, data: dLogits }).data : dLogits;
    weightsOut.write(start, Float32Array.from(g, (v) => (Math.abs(v) + 1) ** 2));
  }
  return weightsOut!;
}

/** Mean, largest and 99th percentile of a weight cache, so a log shows how far from 1 the weighting is. */
function describeSpread(c: RowCache): string {
  const n = c.shape[0]!;
  let sum = 0;
  let max = -Infinity;
  let count = 0;
  const sample: number[] = [];
  for (let start = 0; start < n; start += 32) {
    const rows = c.rows(start, Math.min(n, start + 32));
    for (let i = 0; i < rows.length; i++) {
      const v = rows[i]!;
      sum += v;
      if (v > max) max = v;
      // every 97th value: enough for a percentile, a bounded array for any model
      if ((count + i) % 97 === 0) sample.push(v);
    }
    count += rows.length;
  }
  sample.sort((a, b) => a - b);
  const p99 = sample[Math.min(sample.length - 1, Math.floor(0.99 * sample.length))] ?? 1;
  return `mean ${(sum / count).toFixed(6)}, 99th percentile ${p99.toFixed(6)}, largest ${max.toFixed(6)}`;
}

function softmaxRow(x: Float32Array, at: number, n: number): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < n; i++) m = Math.max(m, x[at + i]!);
  const out = new Float64Array(n);
  let s = 0;
  for (let i = 0; i < n; i++) s += out[i] = Math.exp(x[at + i]! - m);
  for (let i = 0; i < n; i++) out[i]! /= s;
  return out;
}

export interface ReconstructionResult {
  readonly weights: QuantizedWeight[];
  /** Activation parameters after learning (QDrop), or those given. */
  readonly activations: Map<string, QuantParams>;
  readonly blocks: BlockMetrics[];
}

/**
 * The weight pass: blocks in order, each reconstructed from inputs of the prefix as quantized so
 * far (weights, and for QDrop activations too) against float targets at the block output.
 * `activations` are the initial activation parameters for QDrop, null for BRECQ's float pass.
 */
export async function reconstructWeights(
  input: ReconstructionInput,
  mode: ReconstructionMode,
  activations: ReadonlyMap<string, QuantParams> | null,
  emit: Emit,
  signal?: AbortSignal,
): Promise<ReconstructionResult> {
  const o = { ...RECONSTRUCTION_DEFAULTS, ...input.options };
  const { model, layers, blocks, calib } = input;
  const acts = new Map(activations ?? []);
  const done: QuantizedWeight[] = [];
  const metrics: BlockMetrics[] = [];
  const work = blocks.filter((b) => b.layers.length > 0);
  const joint = mode === 'qdrop' && activations !== null;
  const saved = input.checkpoints ? await input.checkpoints.store.load() : null;
  const resumed = saved ? parseCheckpoint(saved, layers) : null;
  let from = 0;
  if (resumed && resumed.key === input.checkpoints!.key && resumed.blocksDone <= work.length) {
    from = resumed.blocksDone;
    done.push(...resumed.weights);
    metrics.push(...resumed.metrics);
    for (const [t, p] of resumed.activations) acts.set(t, p);
    emit({ type: 'info', message: `resuming from the checkpoint: ${from} of ${work.length} blocks already done` });
  } else if (resumed) emit({ type: 'warning', message: 'the checkpoint found belongs to another model or plan: starting afresh' });
  const onBackend = new BlockBackendRunner(input.backend, emit);
  for (const [bi, block] of work.entries()) {
    if (bi < from) continue;
    throwIfAborted(signal);
    const t0 = performance.now();
    const program = BlockProgram.compile(model, block, layers, await input.convs.factory());
    const slots = program.slots.map((slot): SlotState => {
      const bits = input.bitsFor(slot.layer);
      const params = weightParams(slot.weight.data, slot.weight.shape, weightGrid(bits, input.weightGrid, input.groupSize, 0), input.scale);
      const grid = gridOf(params);
      if (input.skip(slot.layer)) {
        const fixed = dequantizeTensor(quantizeTensor(slot.weight.data, slot.weight.shape, params), slot.weight.shape, params);
        return { weight: slot.weight, grid, params, v: null, adam: null, fixed: { shape: slot.weight.shape, data: fixed } };
      }
      const v = adaroundInit(slot.weight, grid);
      return { weight: slot.weight, grid, params, v, adam: new Adam(v.data, { lr: o.lr }), fixed: null };
    });
    const learned = slots.some((s) => s.v);
    const quantizers = joint ? new Map([...acts].filter(([t]) => program.produced.has(t) && t !== block.input).map(([t, p]) => [t, actQuantizer(t, p)])) : undefined;

    // caches: the prefix's quantized input (and the float input for QDrop), float targets
    const inName = joint && acts.has(block.input) ? `${block.input}_dequantized` : block.input;
    const prefix = exportQdq({ model, weights: done, activations: joint ? new Map([...acts].filter(([t]) => !program.produced.has(t) || t === block.input)) : new Map(), weightFormat: 'float' });
    const caches = input.caches ?? { storage: 'float32' };
    const quantIn = (await captureRows(prefix, [inName], calib, caches, signal)).get(inName)!;
    const fp = await captureRows(model, joint ? [block.input, block.output] : [block.output], calib, caches, signal);
    const target = fp.get(block.output)!;
    const floatIn = joint ? fp.get(block.input)! : null;

    const fisher = o.fisher && learned ? await fisherWeights(input, block, program, slots.map((sl) => sl.weight), quantIn, signal) : null;
    if (fisher) emit({ type: 'info', message: `BRECQ ${block.id}: Fisher weights (|g| + 1)² ${describeSpread(fisher)}` });
    const report = (t: number, rec: number, reg: number, beta: number | null) => {
      emit({ type: 'progress', stage: 'quantize', done: bi * o.iters + t + 1, total: work.length * o.iters });
      emit({ type: 'loss', layer: block.id, iter: t, rec, reg, beta });
    };
    const elsewhere = learned ? await onBackend.reconstruct({ model, block, slots: program.slots, state: slots, inputs: quantIn, targets: target, fisher, joint, options: o, seed: o.seed * 7919 + bi + 1, report, signal }) : null;
    let last: number | null = elsewhere?.last ?? null;
    if (learned && !elsewhere) {
      const rand = rng(o.seed * 7919 + bi + 1);
      const n = quantIn.shape[0]!;
      const bs = Math.min(o.batch, n);
      const xBuf = new Float32Array(bs * quantIn.rowSize);
      const xfBuf = new Float32Array(bs * quantIn.rowSize);
      const tBuf = new Float32Array(bs * target.rowSize);
      const fBuf = fisher ? new Float32Array(tBuf.length) : null;
      const grad = new Float32Array(tBuf.length);
      const stepAdams = quantizers ? new Map([...quantizers].map(([t, q]) => [t, new Adam(q.scale, { lr: o.qdropActLr })])) : new Map<string, Adam>();
      const drop = joint ? { keep: o.keep, rand } : null;
      const pace = cooperative(signal);
      const every = Math.max(1, Math.floor(o.iters / 100));
      const pool = new BufferPool();
      for (let t = 0; t < o.iters; t++) {
        await pace();
        // one iteration's activations and gradients come from the pool and go back to it
        const { rec, reg, beta } = pool.run(() => iteration(t));
        pool.reclaim();
        last = rec;
        if (t % every === 0 || t === o.iters - 1) report(t, rec, reg, beta);
      }
      function iteration(t: number): { rec: number; reg: number; beta: number | null } {
        const idx = Array.from({ length: bs }, () => Math.floor(rand() * n));
        const x = gatherBatch(quantIn, idx, xBuf);
        if (floatIn) {
          // QDrop: the block input is quantized element-wise with probability `keep`
          const xf = gatherBatch(floatIn, idx, xfBuf);
          for (let i = 0; i < x.data.length; i++) if (rand() >= o.keep) x.data[i] = xf.data[i]!;
        }
        const y = gatherBatch(target, idx, tBuf);
        const weights = slots.map((s) => s.fixed ?? adaroundForward(s.weight, s.v!, s.grid));
        const tape = program.forward(x, weights, { quantizers, drop });
        const rec = reconstructionLoss(tape.output, y, 2, grad, fisher && fBuf ? fisher.gather(idx, fBuf) : null);
        const g = program.backward(tape, weights, { shape: tape.output.shape, data: grad }, { quantizers, gradScale: (q, count) => 1 / Math.sqrt(count * q.qmax) });
        const beta = betaAt(t, o);
        let reg = 0;
        slots.forEach((s, k) => {
          if (!s.v) return;
          const dW = g.weights[k];
          const dV = dW ? adaroundBackward(s.weight, s.v, s.grid, dW).data : zeros32(s.v.data.length);
          if (beta !== null) {
            const dR = adaroundRegBackward(s.v, beta, o.lambda).data;
            for (let i = 0; i < dV.length; i++) dV[i]! += dR[i]!;
            reg += o.lambda * adaroundRegForward(s.v, beta);
          }
          s.adam!.step(dV);
        });
        for (const [tensor, adam] of stepAdams) {
          adam.lr = cosineLr(o.qdropActLr, t, o.iters);
          adam.step([g.steps.get(tensor) ?? 0]);
          quantizers!.get(tensor)!.scale[0] = Math.max(quantizers!.get(tensor)!.scale[0]!, 1e-8);
        }
        return { rec, reg, beta };
      }
    }

    // hard rounding: floor(w/s) + 1[V ≥ 0]; learned steps written back
    const hard = slots.map((s) => {
      if (s.fixed) return { codes: quantizeTensor(s.weight.data, s.weight.shape, s.params), data: s.fixed.data };
      const codes = hardCodes(s.weight, s.v!, s.grid);
      return { codes, data: dequantizeTensor(codes, s.weight.shape, s.params) };
    });
    program.slots.forEach((slot, k) => done.push({ layer: slot.layer, codes: slot.back(hard[k]!.codes), params: onAxis(slots[k]!.params, slot.layer.channelAxis) }));
    for (const [tensor, q] of quantizers ?? []) acts.set(tensor, { ...acts.get(tensor)!, scale: Float32Array.from(q.scale) });
    const m = blockMetrics(program, hard.map((h, k) => ({ shape: slots[k]!.weight.shape, data: h.data })), quantIn, target, quantizers);
    for (const c of [quantIn, target, floatIn, fisher]) c?.close();
    const seconds = (performance.now() - t0) / 1000;
    const binary = slots.filter((s) => s.v).map((s) => fractionBinary(s.v!));
    const decided = binary.length ? Math.min(...binary) : null;
    metrics.push({ block: block.id, layers: block.layers, ...m, loss: last, decided, seconds });
    if (input.checkpoints) await input.checkpoints.store.save(serializeCheckpoint({ version: 1, key: input.checkpoints.key, blocksDone: bi + 1, weights: done, activations: acts, metrics }));
    emit({ type: 'info', message: `${mode === 'qdrop' ? 'QDrop' : 'BRECQ'} ${block.id}: output SQNR ${m.sqnrDb.toFixed(1)} dB, cosine ${m.cosine.toFixed(4)}${decided !== null ? `, rounding decided for ${(100 * decided).toFixed(1)}% of weights` : ''} (${seconds.toFixed(1)} s)` });
  }
  return { weights: done, activations: acts, blocks: metrics };
}

/**
 * BRECQ's second pass (§3.4): with weights hard-rounded and frozen, learn each block's activation
 * step sizes (zero points fixed) so that its quantized output matches the float model's.
 */
export async function learnActivationSteps(
  input: ReconstructionInput,
  weights: readonly QuantizedWeight[],
  activations: ReadonlyMap<string, QuantParams>,
  emit: Emit,
  signal?: AbortSignal,
): Promise<Map<string, QuantParams>> {
  const o = { ...RECONSTRUCTION_DEFAULTS, ...input.options };
  const { model, layers, blocks, calib } = input;
  const acts = new Map(activations);
  const byLayer = new Map(weights.map((w) => [w.layer.name, w]));
  const work = blocks.filter((b) => b.nodes.length > 0);
  const outputsOf = (b: Block) => new Set((model.graph!.node ?? []).filter((n) => b.nodes.includes(n.name || n.output?.[0] || '')).flatMap((n) => n.output ?? []));
  const active = work.map((block) => ({ block, outputs: outputsOf(block) })).filter(({ outputs }) => [...acts.keys()].some((t) => outputs.has(t)));
  for (const [bi, { block }] of active.entries()) {
    throwIfAborted(signal);
    const program = BlockProgram.compile(model, block, layers, await input.convs.factory());
    const quantizers = new Map([...acts].filter(([t]) => program.produced.has(t) && t !== block.input).map(([t, p]) => [t, actQuantizer(t, p)]));
    const hard = program.slots.map((s) => {
      const w = byLayer.get(s.layer.name);
      if (!w) return s.weight;
      return { shape: s.weight.shape, data: channelsFirst(dequantizeTensor(w.codes, w.layer.weightDims, w.params), w.layer.weightDims, w.layer.channelAxis).data };
    });
    const fp = await captureRows(model, [block.input, block.output], calib, input.caches ?? { storage: 'float32' }, signal);
    const inputs = fp.get(block.input)!;
    const target = fp.get(block.output)!;
    const rand = rng(o.seed * 7919 + 1_000_003 + bi);
    const n = inputs.shape[0]!;
    const bs = Math.min(o.batch, n);
    const xBuf = new Float32Array(bs * inputs.rowSize);
    const tBuf = new Float32Array(bs * target.rowSize);
    const grad = new Float32Array(tBuf.length);
    const adams = new Map([...quantizers].map(([t, q]) => [t, new Adam(q.scale, { lr: o.actLr })]));
    const pace = cooperative(signal);
    const every = Math.max(1, Math.floor(o.actIters / 100));
    const pool = new BufferPool();
    for (let t = 0; t < o.actIters; t++) {
      await pace();
      const idx = Array.from({ length: bs }, () => Math.floor(rand() * n));
      const x = gatherBatch(inputs, idx, xBuf);
      const y = gatherBatch(target, idx, tBuf);
      const { rec, steps } = pool.run(() => {
        const tape = program.forward(x, hard, { quantizers });
        const loss = reconstructionLoss(tape.output, y, o.actP, grad);
        return { rec: loss, steps: program.backward(tape, hard, { shape: tape.output.shape, data: grad }, { quantizers }).steps };
      });
      pool.reclaim();
      for (const [tensor, adam] of adams) {
        adam.lr = cosineLr(o.actLr, t, o.actIters);
        adam.step([steps.get(tensor) ?? 0]);
        quantizers.get(tensor)!.scale[0] = Math.max(quantizers.get(tensor)!.scale[0]!, 1e-8);
      }
      if (t % every === 0 || t === o.actIters - 1) {
        emit({ type: 'progress', stage: 'act-steps', done: bi * o.actIters + t + 1, total: active.length * o.actIters });
        emit({ type: 'loss', layer: `${block.id} (steps)`, iter: t, rec, reg: 0, beta: null });
      }
    }
    for (const [tensor, q] of quantizers) acts.set(tensor, { ...acts.get(tensor)!, scale: Float32Array.from(q.scale) });
    inputs.close();
    target.close();
  }
  return acts;
}

/** The share of rounding variables that have settled: |2h(V) − 1| > 0.99. */
export function fractionBinary(v: Nd): number {
  let k = 0;
  for (const x of v.data) if (Math.abs(2 * rectifiedSigmoid(x) - 1) > 0.99) k++;
  return v.data.length ? k / v.data.length : 1;
}
