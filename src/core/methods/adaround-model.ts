import type { ModelProto } from '../onnx/schema';
import { tensorToFloat32 } from '../onnx/tensor-data';
import { GraphIndex } from '../graph/graph-index';
import { activationKind, type QuantLayer } from '../graph/layers';
import { attrInt, attrInts, attrString } from '../graph/attributes';
import { exportQdq, type QuantizedWeight } from '../export/qdq';
import { captureTensors } from '../quant/calibrate';
import { onAxis, weightParams, type Bits, type StepInit } from '../quant/quantizer';
import { channelsFirst } from '../quant/weight-layout';
import { ADAROUND_ITERS, weightGrid, type GroupSize, type WeightGridKind } from '../plan';
import type { ImageBatches } from '../data/batches';
import { conv2dAttrs, type Nd } from '../backends/cpu/reference';
import { GemmConv } from '../backends/cpu/conv-gemm';
import type { Gemm } from '../backends/cpu/wasm/gemm';
import { throwIfAborted, type Emit } from '../events';
import { adaroundLayer, gemmLayer, type AdaRoundOptions, type FollowingActivation, type LinearLayer } from './adaround';

export class UnsupportedLayerError extends Error {
  override name = 'UnsupportedLayerError';
}

/** What a layer's loss looks at: its output after the activation that directly follows it, if any. */
function lossPoint(index: GraphIndex, layer: QuantLayer): { tensor: string; activation: FollowingActivation } {
  const out = layer.node.output![0]!;
  const next = index.soleUse(out);
  const kind = next ? activationKind(next, index) : null;
  if (next && kind === 'relu') return { tensor: next.output![0]!, activation: { kind: 'relu' } };
  if (next && kind === 'relu6') return { tensor: next.output![0]!, activation: { kind: 'clip', min: 0, max: 6 } };
  return { tensor: out, activation: null };
}

function linearLayerOf(index: GraphIndex, layer: QuantLayer, gemm: Gemm): LinearLayer {
  const biasT = layer.bias ? index.initializers.get(layer.bias) : undefined;
  const bias: Nd | null = biasT ? { shape: [biasT.dims!.reduce((a, b) => a * b, 1)], data: tensorToFloat32(biasT) } : null;
  const n = layer.node;
  if (layer.kind !== 'conv') return gemmLayer(bias);
  if (attrString(n, 'auto_pad', 'NOTSET') !== 'NOTSET') throw new UnsupportedLayerError(`layer "${layer.name}": Conv with auto_pad is not supported by AdaRound yet`);
  if ((layer.weightDims.length ?? 0) !== 4) throw new UnsupportedLayerError(`layer "${layer.name}": only 2-D convolutions can be reconstructed`);
  const pads = attrInts(n, 'pads') ?? [0, 0, 0, 0];
  return new GemmConv(
    gemm,
    conv2dAttrs({
      strides: (attrInts(n, 'strides') ?? [1, 1]) as [number, number],
      pads: [pads[0]!, pads[1]!, pads[2]!, pads[3]!],
      dilations: (attrInts(n, 'dilations') ?? [1, 1]) as [number, number],
      group: attrInt(n, 'group', 1),
    }),
    bias,
  );
}

export interface AdaRoundModelInput {
  readonly model: ModelProto;
  readonly layers: readonly QuantLayer[];
  readonly bitsFor: (layer: QuantLayer) => Bits;
  readonly scale: StepInit;
  readonly groupSize?: GroupSize;
  /** The weight grid below 8 bits. */
  readonly weightGrid: WeightGridKind;
  readonly calib: ImageBatches;
  readonly gemm: Gemm;
  readonly options: Partial<AdaRoundOptions>;
}

/**
 * AdaRound over the whole model, layer by layer in graph order (algorithms.md §2.5): each layer
 * sees inputs from the prefix already quantized (weights only; activations stay float), and
 * targets from the float model. Step sizes from the plan's search (BRECQ's Lp search by default).
 */
export async function adaroundModel(input: AdaRoundModelInput, emit: Emit, signal?: AbortSignal): Promise<QuantizedWeight[]> {
  const { model, layers, calib, gemm } = input;
  const index = new GraphIndex(model.graph!);
  const points = layers.map((l) => lossPoint(index, l));
  const targets = await captureTensors(model, [...new Set(points.map((p) => p.tensor))], calib, signal);
  const iters = input.options.iters ?? ADAROUND_ITERS;
  const done: QuantizedWeight[] = [];
  for (const [i, layer] of layers.entries()) {
    throwIfAborted(signal);
    const prefix = exportQdq({ model, weights: done, activations: new Map(), weightFormat: 'float' });
    const inputName = layer.node.input![0]!;
    const inputs = (await captureTensors(prefix, [inputName], calib, signal)).get(inputName)!;
    const w = channelsFirst(tensorToFloat32(layer.weightTensor), layer.weightDims, layer.channelAxis);
    const params = weightParams(w.data, w.dims, weightGrid(input.bitsFor(layer), input.weightGrid, input.groupSize, 0), input.scale);
    const target = targets.get(points[i]!.tensor)!;
    let last = 0;
    const result = await adaroundLayer(
      {
        layer: linearLayerOf(index, layer, gemm),
        weight: { shape: w.dims, data: w.data },
        params,
        inputs: { shape: inputs.shape, data: inputs.data },
        targets: { shape: target.shape, data: target.data },
        activation: points[i]!.activation,
      },
      input.options,
      (t) => {
        last = t.rec;
        emit({ type: 'progress', stage: 'quantize', done: i * iters + t.iter + 1, total: layers.length * iters });
        emit({ type: 'loss', layer: layer.name, iter: t.iter, rec: t.rec, reg: t.reg, beta: t.beta });
      },
      signal,
    );
    // the same measure BRECQ logs per block: rounding variables settled at |2h − 1| > 0.99
    let settled = 0;
    for (const h of result.h) if (Math.abs(2 * h - 1) > 0.99) settled++;
    const decided = result.h.length ? (100 * settled) / result.h.length : 100;
    emit({ type: 'info', message: `AdaRound ${layer.name}: ${params.bits}-bit, final reconstruction loss ${last.toPrecision(3)}, rounding decided for ${decided.toFixed(1)}% of weights` });
    done.push({ layer, codes: w.back(result.codes), params: onAxis(params, layer.channelAxis) });
  }
  return done;
}
