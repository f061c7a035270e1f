import { DataType, type ModelProto, type TensorProto } from '../onnx/schema';
import { encodeModel } from '../onnx/codec';
import { GraphIndex } from '../graph/graph-index';
import { findQuantLayers, type QuantLayer } from '../graph/layers';
import { inferShapes } from '../graph/shapes';
import { exportQdq } from '../export/qdq';
import { roundToNearest } from '../methods/rtn';
import { minMaxPerTensor, type Bits, type QuantParams } from '../quant/quantizer';
import { ModelSession } from '../eval/runtime';
import { randn, rng } from '../random';
import { throwIfAborted } from '../events';
import { CostError, type LatencyTable } from './cost';

/**
 * A latency lookup table measured with ONNX Runtime (the studio's WASM build, one thread, full
 * optimisation, as a deployment runs the export): each layer alone, as a one-layer QDQ model at
 * each bit width, timed on random inputs. ORT's WASM kernels dequantize 2- to 4-bit weights
 * (and fold them to float at load), so on this target the bit width barely moves the time: bring
 * a table measured on the real device as JSON when it matters.
 */

export interface LatencyOptions {
  /** Images per timed run (default 1). */
  readonly batch?: number;
  /** Activation bits of the one-layer models (quantized input and output); null keeps them float. */
  readonly abits: Bits | null;
  /** Timed groups per layer and bit width; the table keeps the fastest group, the least disturbed by other work on the machine (default 5). */
  readonly groups?: number;
  /** Minimum milliseconds per group: small layers are run many times per group (default 20). */
  readonly groupMs?: number;
  readonly device?: string;
  readonly onProgress?: (done: number, total: number) => void;
}

/**
 * The model holding only `layer`'s node: its input and output as graph inputs and outputs, with
 * the shapes they have in `model` at batch `batch`. Returns the model and its layer.
 */
export function oneLayerModel(model: ModelProto, layer: QuantLayer, batch: number): { model: ModelProto; layer: QuantLayer; inputShape: number[] } {
  const graph = model.graph!;
  const index = new GraphIndex(graph);
  const input = index.dataInputs()[0];
  if (!input) throw new CostError('the model has no data input');
  const dims = (input.type?.tensorType?.shape?.dim ?? []).map((d, k) => (k === 0 ? batch : d.dimValue));
  if (dims.some((d) => typeof d !== 'number')) throw new CostError(`the model's input "${input.name}" has a dynamic dimension besides the batch, so its layers cannot be timed alone`);
  const shapes = inferShapes(model, new Map([[input.name ?? '', dims as number[]]])).shapes;
  const x = layer.node.input![0]!;
  const y = layer.node.output![0]!;
  const xShape = shapes.get(x);
  const yShape = shapes.get(y);
  if (!xShape || !yShape) throw new CostError(`the shapes around layer "${layer.name}" could not be inferred`);
  const inits: TensorProto[] = [layer.weightTensor];
  if (layer.bias) {
    const b = index.initializers.get(layer.bias);
    if (!b) throw new CostError(`the bias of layer "${layer.name}" is not a constant`);
    inits.push(b);
  }
  const value = (name: string, shape: readonly number[]) => ({ name, type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: shape.map((d) => ({ dimValue: d })) } } } });
  const node = { ...layer.node };
  const sub: ModelProto = {
    irVersion: model.irVersion ?? 7,
    opsetImport: model.opsetImport ?? [{ domain: '', version: 13 }],
    graph: { name: 'layer', node: [node], initializer: inits, input: [value(x, xShape)], output: [value(y, yShape)] },
  };
  const subLayer = findQuantLayers(sub)[0];
  if (!subLayer) throw new CostError(`layer "${layer.name}" could not be isolated`);
  return { model: sub, layer: subLayer, inputShape: [...xShape] };
}

/** The QDQ one-layer model at `bits` (round-to-nearest weights; activations on a [0, 1] grid when quantized). */
export function oneLayerQdq(model: ModelProto, layer: QuantLayer, bits: Bits, abits: Bits | null, batch = 1): { bytes: Uint8Array; inputShape: number[] } {
  const one = oneLayerModel(model, layer, batch);
  const acts = new Map<string, QuantParams>();
  if (abits !== null) {
    acts.set(one.layer.node.input![0]!, minMaxPerTensor(0, 1, abits, false, false));
    acts.set(one.layer.node.output![0]!, minMaxPerTensor(-1, 1, abits, false, false));
  }
  const qdq = exportQdq({ model: one.model, weights: [roundToNearest(one.layer, bits)], activations: acts });
  // a quantized graph output must stay a graph output under its own name: read the dequantized copy
  const y = one.layer.node.output![0]!;
  if (abits !== null) qdq.graph!.output = [{ ...qdq.graph!.output![0]!, name: `${y}_dequantized` }];
  return { bytes: encodeModel(qdq), inputShape: one.inputShape };
}

async function timeSession(session: ModelSession, input: Float32Array, shape: readonly number[], groups: number, groupMs: number): Promise<number> {
  for (let i = 0; i < 3; i++) await session.run(input, shape);
  // runs per group so that one group takes at least groupMs
  let reps = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) await session.run(input, shape);
    const ms = performance.now() - t0;
    if (ms >= groupMs || reps >= 4096) break;
    reps = Math.min(4096, Math.max(reps * 2, Math.ceil((reps * groupMs) / Math.max(ms, 1e-3))));
  }
  const times: number[] = [];
  for (let g = 0; g < groups; g++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) await session.run(input, shape);
    times.push((performance.now() - t0) / reps);
  }
  return Math.min(...times);
}

/** Times every layer of a canonical model at every bit width; returns the lookup table. */
export async function measureLatencyTable(model: ModelProto, layers: readonly QuantLayer[], bits: readonly Bits[], options: LatencyOptions, signal?: AbortSignal): Promise<LatencyTable> {
  const batch = options.batch ?? 1;
  const out: Record<string, Record<string, number>> = {};
  const total = layers.length * bits.length;
  let done = 0;
  const time = async (layer: QuantLayer, b: Bits): Promise<number> => {
    const { bytes, inputShape } = oneLayerQdq(model, layer, b, options.abits, batch);
    const session = await ModelSession.create(bytes, 'all');
    try {
      const n = inputShape.reduce((a, c) => a * c, 1);
      const x = randn(n, rng(17));
      if (options.abits !== null) for (let i = 0; i < n; i++) x[i] = Math.abs(x[i]!) % 1;
      return await timeSession(session, x, inputShape, options.groups ?? 5, options.groupMs ?? 20);
    } finally {
      await session.release();
    }
  };
  // the first session of a process pays for compiling ORT's kernels: a throw-away run
  if (layers[0] && bits[0]) await time(layers[0], bits[0]);
  for (const layer of layers) {
    const row: Record<string, number> = {};
    for (const b of bits) {
      throwIfAborted(signal);
      row[String(b)] = await time(layer, b);
      options.onProgress?.(++done, total);
    }
    out[layer.name] = row;
  }
  return { kind: 'lowbit-latency-table', version: 1, unit: 'ms', device: options.device ?? 'onnxruntime-web wasm, 1 thread', batch, abits: options.abits, layers: out };
}
