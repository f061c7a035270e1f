import type { ModelProto } from '../onnx/schema';
import type { QuantLayer } from '../graph/layers';
import { layerName } from '../graph/layers';
import type { Block } from '../graph/partition';
import type { QuantizedWeight } from '../export/qdq';
import { captureTensors, concatBatches, gatherRows, type Captured } from '../quant/calibrate';
import { dequantizeTensor, intRange, onAxis, weightParams, type Bits, type QuantParams, type StepInit } from '../quant/quantizer';
import { weightGrid, type GroupSize, type WeightGridKind } from '../plan';
import type { ImageBatches } from '../data/batches';
import { gridRuns, type Nd } from '../backends/cpu/reference';
import { Adam } from '../optim/adam';
import { BufferPool, scratch32 } from '../tensor/buffer-pool';
import { rng } from '../random';
import { cooperative, throwIfAborted, type Emit } from '../events';
import { BlockProgram } from '../engine/block-program';
import type { WasmConvPool } from '../engine/conv-engine';
import type { ActQuantizer } from '../engine/act-quant';
import { gridOf } from './adaround';

/**
 * NWQ, network-wise reconstruction (algorithms.md §5.2, the studio's reference design; NWQ has no
 * public code): every weight's rounding and every activation step are learned jointly over the
 * whole network.
 *
 * - Rounding by annealed softmax over the candidates {floor, floor + 1}: with two candidates the
 *   softmax of logits (0, d) at temperature τ is sigmoid(d/τ), so one logit per weight. It starts
 *   at d = logit(r) (r the fractional part of w/s), which makes the soft weight equal the float
 *   weight at τ = 1; τ decays linearly from 1 to 0.01; the final choice is argmax (d ≥ 0). No
 *   regulariser competes with the reconstruction.
 * - Activation regularisation: the loss is the squared error between quantized and float
 *   activations at taps (block outputs, or layer outputs), summed over channels and averaged.
 * - Annealed mixup: each quantized activation falls back to its float value with probability
 *   decaying linearly from 0.5 to 0, so training ends on the fully quantized network.
 *
 * Assumptions (marked [unverified] in §5): K = 2 candidates, τ linear 1 → 0.01, Adam lr 1e-3 on the
 * logits and 4e-5 (cosine) on the steps as QDrop, weight steps fixed from the Lp search.
 */
export type TapGranularity = 'block' | 'layer';

export interface NwqOptions {
  readonly iters: number;
  readonly batch: number;
  readonly lr: number;
  readonly actLr: number;
  readonly tauStart: number;
  readonly tauEnd: number;
  readonly mixStart: number;
  readonly mixEnd: number;
  readonly taps: TapGranularity;
  readonly seed: number;
}

export const NWQ_DEFAULTS: NwqOptions = { iters: 20_000, batch: 32, lr: 1e-3, actLr: 4e-5, tauStart: 1, tauEnd: 0.01, mixStart: 0.5, mixEnd: 0, taps: 'block', seed: 0 };

export interface NwqInput {
  readonly model: ModelProto;
  readonly layers: readonly QuantLayer[];
  /** The partition whose block outputs are the taps at 'block' granularity. */
  readonly blocks: readonly Block[];
  readonly bitsFor: (layer: QuantLayer) => Bits;
  readonly scale: StepInit;
  readonly groupSize?: GroupSize;
  /** The weight grid below 8 bits. */
  readonly weightGrid: WeightGridKind;
  readonly calib: ImageBatches;
  readonly convs: WasmConvPool;
  readonly options: Partial<NwqOptions>;
}

export const tauAt = (t: number, o: Pick<NwqOptions, 'iters' | 'tauStart' | 'tauEnd'>): number => o.tauStart + ((o.tauEnd - o.tauStart) * t) / Math.max(1, o.iters - 1);
export const mixAt = (t: number, o: Pick<NwqOptions, 'iters' | 'mixStart' | 'mixEnd'>): number => o.mixStart + ((o.mixEnd - o.mixStart) * t) / Math.max(1, o.iters - 1);

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

interface Rounding {
  readonly weight: Nd;
  readonly params: QuantParams;
  /** Each weight's step and zero point (its channel's or group's). */
  readonly step: Float32Array;
  readonly zero: Float32Array;
  readonly floor: Float32Array;
  readonly d: Float32Array;
  readonly adam: Adam;
  readonly qmin: number;
  readonly qmax: number;
}

/** ŵ = s·(clamp(floor(w/s) + sigmoid(d/τ) + z, qmin, qmax) − z), channels on axis 0. */
function softWeight(r: Rounding, tau: number): Nd {
  const out = new Float32Array(r.weight.data.length);
  for (let i = 0; i < out.length; i++) {
    const q = r.floor[i]! + sigmoid(r.d[i]! / tau) + r.zero[i]!;
    out[i] = r.step[i]! * ((q < r.qmin ? r.qmin : q > r.qmax ? r.qmax : q) - r.zero[i]!);
  }
  return { shape: r.weight.shape, data: out };
}

function softWeightGrad(r: Rounding, tau: number, dW: Nd): Float32Array {
  const g = new Float32Array(r.d.length);
  for (let i = 0; i < g.length; i++) {
    const p = sigmoid(r.d[i]! / tau);
    const q = r.floor[i]! + p + r.zero[i]!;
    if (q < r.qmin || q > r.qmax) continue;
    g[i] = (dW.data[i]! * r.step[i]! * p * (1 - p)) / tau;
  }
  return g;
}

function hardCodes(r: Rounding): Int32Array {
  return Int32Array.from(r.floor, (f, i) => {
    const q = f + (r.d[i]! >= 0 ? 1 : 0) + r.zero[i]!;
    return q < r.qmin ? r.qmin : q > r.qmax ? r.qmax : q;
  });
}

/** Where the activation-regularisation loss looks: block outputs, or each layer's output after its activation. */
function tapsOf(model: ModelProto, input: NwqInput, o: NwqOptions): string[] {
  if (o.taps === 'block') return input.blocks.map((b) => b.output);
  const nodes = model.graph!.node ?? [];
  return input.layers.map((l) => {
    const out = l.node.output![0]!;
    const next = nodes.filter((n) => n.input?.includes(out));
    const act = next.length === 1 && ['Relu', 'Clip', 'LeakyRelu', 'HardSwish', 'Sigmoid'].includes(next[0]!.opType ?? '') ? next[0]! : null;
    return act ? act.output![0]! : out;
  });
}

export interface NwqResult {
  readonly weights: QuantizedWeight[];
  readonly activations: Map<string, QuantParams>;
}

export async function nwqModel(input: NwqInput, activations: ReadonlyMap<string, QuantParams> | null, emit: Emit, signal?: AbortSignal): Promise<NwqResult> {
  const o = { ...NWQ_DEFAULTS, ...input.options };
  const { model, layers, calib } = input;
  const graph = model.graph!;
  const whole: Block = {
    id: 'network',
    kind: 'net',
    layers: layers.map((l) => l.name),
    nodes: (graph.node ?? []).map(layerName),
    input: graph.input![0]!.name!,
    output: graph.output![0]!.name!,
  };
  const program = BlockProgram.compile(model, whole, layers, await input.convs.factory());
  const roundings: Rounding[] = program.slots.map((slot) => {
    const bits = input.bitsFor(slot.layer);
    const params = weightParams(slot.weight.data, slot.weight.shape, weightGrid(bits, input.weightGrid, input.groupSize, 0), input.scale);
    const { qmin, qmax } = intRange(bits, params.signed, params.symmetric);
    const step = new Float32Array(slot.weight.data.length);
    const zero = new Float32Array(slot.weight.data.length);
    gridRuns(slot.weight, gridOf(params), 'nwq', (p, start, end) => {
      step.fill(params.scale[p]!, start, end);
      zero.fill(params.zeroPoint[p]!, start, end);
    });
    const floor = new Float32Array(slot.weight.data.length);
    const d = new Float32Array(slot.weight.data.length);
    for (let i = 0; i < d.length; i++) {
      const u = slot.weight.data[i]! / step[i]!;
      floor[i] = Math.floor(u);
      // logit of the fractional part, clamped away from ±∞ for weights on the grid
      const r = Math.min(1 - 1e-4, Math.max(1e-4, u - floor[i]!));
      d[i] = Math.log(r / (1 - r));
    }
    return { weight: slot.weight, params, step, zero, floor, d, adam: new Adam(d, { lr: o.lr }), qmin, qmax };
  });
  const quantizers = new Map<string, ActQuantizer>(
    [...(activations ?? [])]
      .filter(([t]) => program.produced.has(t) && t !== whole.input)
      .map(([t, p]) => {
        const { qmin, qmax } = intRange(p.bits, p.signed, p.symmetric);
        return [t, { tensor: t, scale: Float32Array.from(p.scale), zero: p.zeroPoint[0]!, qmin, qmax }];
      }),
  );
  const stepAdams = new Map([...quantizers].map(([t, q]) => [t, new Adam(q.scale, { lr: o.actLr })]));
  const taps = [...new Set(tapsOf(model, input, o))];
  emit({ type: 'info', message: `NWQ: ${roundings.length} layers and ${quantizers.size} activation steps learned jointly; activation regularisation at ${taps.length} ${o.taps} outputs` });

  const cache = await captureTensors(model, taps, calib, signal);
  const xs = await inputsOf(calib, signal);
  const n = xs.shape[0]!;
  const bs = Math.min(o.batch, n);
  const rand = rng(o.seed * 7919 + 17);
  const every = Math.max(1, Math.floor(o.iters / 100));
  const pace = cooperative(signal);
  const pool = new BufferPool();
  for (let t = 0; t < o.iters; t++) {
    await pace();
    // one iteration's activations and gradients come from the pool and go back to it
    const rec = pool.run(() => iteration(t));
    pool.reclaim();
    if (t % every === 0 || t === o.iters - 1) {
      emit({ type: 'progress', stage: 'quantize', done: t + 1, total: o.iters });
      emit({ type: 'loss', layer: 'network', iter: t, rec, reg: 0, beta: tauAt(t, o) });
    }
  }
  function iteration(t: number): number {
    const tau = tauAt(t, o);
    const idx = Array.from({ length: bs }, () => Math.floor(rand() * n));
    const x = gatherRows(xs, idx);
    const weights = roundings.map((r) => softWeight(r, tau));
    const drop = { keep: 1 - mixAt(t, o), rand };
    const tape = program.forward(x, weights, { quantizers, drop });
    const seeds = new Map<string, Float32Array>();
    let rec = 0;
    for (const tap of taps) {
      const pred = tape.values.get(tap)!;
      const target = gatherRows(cache.get(tap)!, idx);
      const channels = pred.shape[1] ?? 1;
      const k = channels / pred.data.length;
      const g = scratch32(pred.data.length);
      for (let i = 0; i < g.length; i++) {
        const e = pred.data[i]! - target.data[i]!;
        rec += k * e * e;
        g[i] = 2 * k * e;
      }
      seeds.set(tap, g);
    }
    const grads = program.backward(tape, weights, null, { quantizers, drop, seeds, gradScale: (q, count) => 1 / Math.sqrt(count * q.qmax) });
    roundings.forEach((r, k) => {
      const dW = grads.weights[k];
      if (dW) r.adam.step(softWeightGrad(r, tau, dW));
    });
    for (const [tensor, adam] of stepAdams) {
      adam.lr = 0.5 * o.actLr * (1 + Math.cos((Math.PI * t) / o.iters));
      adam.step([grads.steps.get(tensor) ?? 0]);
      quantizers.get(tensor)!.scale[0] = Math.max(quantizers.get(tensor)!.scale[0]!, 1e-8);
    }
    return rec;
  }
  const weights = program.slots.map((slot, k): QuantizedWeight => {
    const r = roundings[k]!;
    return { layer: slot.layer, codes: slot.back(hardCodes(r)), params: onAxis(r.params, slot.layer.channelAxis) };
  });
  const acts = new Map(activations ?? []);
  for (const [tensor, q] of quantizers) acts.set(tensor, { ...acts.get(tensor)!, scale: Float32Array.from(q.scale) });
  // a sanity line for the log: how far the hard weights ended from the float ones
  const drift = weights.map((w, k) => {
    const deq = dequantizeTensor(hardCodes(roundings[k]!), roundings[k]!.weight.shape, roundings[k]!.params);
    let e = 0;
    for (let i = 0; i < deq.length; i++) e += (deq[i]! - roundings[k]!.weight.data[i]!) ** 2;
    return { name: w.layer.name, rms: Math.sqrt(e / deq.length) };
  });
  emit({ type: 'info', message: `NWQ done: weight RMS error per layer ${drift.map((d) => d.rms.toExponential(2)).join(', ')}` });
  return { weights, activations: acts };
}

/** The calibration images themselves, as one tensor (the network's input). */
async function inputsOf(calib: ImageBatches, signal?: AbortSignal): Promise<Captured> {
  const parts: { data: Float32Array; shape: readonly number[] }[] = [];
  for (let b = 0; b < calib.batches; b++) {
    throwIfAborted(signal);
    parts.push(await calib.batch(b));
  }
  return concatBatches(parts);
}

