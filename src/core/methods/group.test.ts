import { afterAll, describe, expect, it } from 'vitest';
import { canonicalize } from '../graph/canonicalize';
import { activationQuantPoints, findQuantLayers, type QuantLayer } from '../graph/layers';
import { partitionModel } from '../graph/partition';
import { tinyResNet } from '../testing/tiny-resnet';
import { randn, rng } from '../random';
import type { ImageBatches } from '../data/batches';
import { collectRanges } from '../quant/calibrate';
import { dequantizeTensor, intRange, minMaxPerTensor, type QuantParams } from '../quant/quantizer';
import { tensorToFloat32 } from '../onnx/tensor-data';
import { encodeModel } from '../onnx/codec';
import { exportQdq, type QuantizedWeight } from '../export/qdq';
import { ModelSession } from '../eval/runtime';
import { WasmConvPool } from '../engine/conv-engine';
import { createGemm } from '../backends/cpu/wasm/gemm';
import type { MethodName } from '../plan';
import { roundToNearest } from './rtn';
import { adaroundModel } from './adaround-model';
import { reconstructWeights } from './reconstruct';
import { nwqModel } from './nwq';
import { decoupleqModel } from './decoupleq';

// channels 8: rows of 9 (stem), 72 and 144 (3×3 convs), 8 (1×1 projection) and 16 (the classifier)
const { model } = canonicalize(tinyResNet(3, { channels: 8, size: 8 }));
const layers = findQuantLayers(model);
const images = randn(32 * 64, rng(5));
const calib = { batches: 2, count: 32, batch: async (b: number) => ({ data: images.slice(b * 16 * 64, (b + 1) * 16 * 64), shape: [16, 1, 8, 8], start: b * 16 }) } as unknown as ImageBatches;
const blocks = partitionModel(model, 'block').blocks;
const convs = new WasmConvPool(1);
afterAll(() => convs.dispose());
const bitsFor = () => 3 as const;
const GROUP = 32;

async function actParams(): Promise<Map<string, QuantParams>> {
  const ranges = await collectRanges(model, activationQuantPoints(model), calib);
  return new Map([...ranges].map(([t, r]) => [t, minMaxPerTensor(r.min, r.max, 4, false, false)]));
}

const run: Record<MethodName, () => Promise<QuantizedWeight[]>> = {
  rtn: async () => layers.map((l) => roundToNearest(l, 3, 'lp', GROUP)),
  adaround: async () => adaroundModel({ model, layers, bitsFor, scale: 'lp', groupSize: GROUP, weightGrid: 'asymmetric', calib, gemm: await createGemm({ threads: 1 }), options: { iters: 20 } }, () => {}),
  brecq: async () => (await reconstructWeights({ model, layers, blocks, bitsFor, scale: 'lp', groupSize: GROUP, weightGrid: 'asymmetric', skip: () => false, calib, convs, options: { iters: 20 } }, 'brecq', null, () => {})).weights,
  qdrop: async () => (await reconstructWeights({ model, layers, blocks, bitsFor, scale: 'mse', groupSize: GROUP, weightGrid: 'asymmetric', skip: () => false, calib, convs, options: { iters: 20 } }, 'qdrop', await actParams(), () => {})).weights,
  nwq: async () => (await nwqModel({ model, layers, blocks, bitsFor, scale: 'lp', groupSize: GROUP, weightGrid: 'asymmetric', calib, convs, options: { iters: 20 } }, await actParams(), () => {})).weights,
  decoupleq: async () => decoupleqModel({ model, layers, blocks, bitsFor, calib, convs, groupSize: GROUP, options: { rounds: 2, blockIters: 20 } }, () => {}),
};

function weightError(w: QuantizedWeight): number {
  const f = tensorToFloat32(w.layer.weightTensor);
  const d = dequantizeTensor(w.codes, w.layer.weightDims, w.params);
  return f.reduce((a, v, i) => a + (v - d[i]!) ** 2, 0);
}

async function logits(weights: readonly QuantizedWeight[], format: 'integer' | 'float'): Promise<Float32Array> {
  const s = await ModelSession.create(encodeModel(exportQdq({ model, weights, activations: new Map(), weightFormat: format })), 'none');
  try {
    return [...(await s.run(images.subarray(0, 8 * 64), [8, 1, 8, 8])).values()][0]!.data;
  } finally {
    await s.release();
  }
}

describe('every method with weights in groups of 32 inputs', () => {
  for (const method of Object.keys(run) as MethodName[]) {
    it(`${method}: one grid per group of each channel (a shorter last group), codes on it, and the integer export computes the simulated weights`, async () => {
      const weights = await run[method]();
      expect(weights.map((w) => w.layer.name)).toEqual(layers.map((l: QuantLayer) => l.name));
      for (const w of weights) {
        const channels = w.layer.weightDims[w.layer.channelAxis]!;
        const row = w.layer.weightDims.reduce((a, b) => a * b, 1) / channels;
        expect(w.params.granularity).toEqual({ kind: 'group', axis: w.layer.channelAxis, size: GROUP });
        expect(w.params.scale.length).toBe(channels * Math.ceil(row / GROUP));
        const { qmin, qmax } = intRange(w.params.bits, w.params.signed, w.params.symmetric);
        for (const c of w.codes) expect(c >= qmin && c <= qmax).toBe(true);
      }
      const a = await logits(weights, 'integer');
      const b = await logits(weights, 'float');
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(b[i]!)));
      if (method === 'rtn') {
        // the same search per channel: every layer with more than one group has a lower weight error per group
        const perChannel = layers.map((l) => roundToNearest(l, 3, 'lp'));
        weights.forEach((w, k) => {
          if (w.params.scale.length > perChannel[k]!.params.scale.length) expect(weightError(w)).toBeLessThan(weightError(perChannel[k]!));
        });
      }
    }, 120_000);
  }
});
