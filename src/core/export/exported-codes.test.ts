import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { exportQdq } from './qdq';
import { canonicalize } from '../graph/canonicalize';
import { activationQuantPoints, findQuantLayers } from '../graph/layers';
import { roundToNearest } from '../methods/rtn';
import { intRange, minMaxPerTensor, type Bits, type QuantParams } from '../quant/quantizer';
import { collectRanges, withOutputs } from '../quant/calibrate';
import { decodeModel, encodeModel } from '../onnx/codec';
import { DataType, type TensorProto } from '../onnx/schema';
import { unpackSubByte } from '../onnx/tensor-data';
import { ModelSession } from '../eval/runtime';
import { actQuantForward } from '../engine/act-quant';
import { tinyResNet } from '../testing/tiny-resnet';
import { randn, rng } from '../random';
import { runQuantization } from '../pipeline';
import { readImageFolder } from '../../cli/files';
import { ImageBatches } from '../data/batches';
import { FASHION_MNIST } from '../data/preprocess';
import type { MethodName } from '../plan';

/**
 * The exported file is the claim: run it in ONNX Runtime with every activation's float input and
 * dequantized output as graph outputs, recover the integer codes, and check them against the
 * engine's own quantizer (the one the methods train under) on the same float input.
 */
interface Tap {
  readonly tensor: string;
  readonly p: QuantParams;
}

async function checkTaps(file: Uint8Array, taps: readonly Tap[], inputs: readonly { data: Float32Array; shape: readonly number[] }[]): Promise<{ maxCode: Map<string, number>; checked: number }> {
  const names = taps.flatMap((t) => [t.tensor, `${t.tensor}_dequantized`]);
  const session = await ModelSession.create(encodeModel(withOutputs(decodeModel(file), names)), 'none');
  const maxCode = new Map<string, number>();
  let checked = 0;
  try {
    for (const x of inputs) {
      const out = await session.run(x.data, x.shape, names);
      for (const { tensor, p } of taps) {
        const pre = out.get(tensor)!;
        const dq = out.get(`${tensor}_dequantized`)!.data;
        const { qmin, qmax } = intRange(p.bits, p.signed, p.symmetric);
        const s = p.scale[0]!;
        const z = p.zeroPoint[0]!;
        const engine = actQuantForward({ shape: pre.dims, data: pre.data }, { tensor, scale: Float32Array.of(s), zero: z, qmin, qmax }, null).y.data;
        let top = maxCode.get(tensor) ?? -Infinity;
        for (let i = 0; i < dq.length; i++) {
          const code = Math.round(dq[i]! / Math.fround(s)) + z;
          if (code < qmin || code > qmax) throw new Error(`${tensor} (${p.bits} bits): code ${code} outside [${qmin}, ${qmax}] at element ${i}`);
          if (dq[i] !== engine[i]) throw new Error(`${tensor} (${p.bits} bits): the file gives ${dq[i]} where the engine gives ${engine[i]} (input ${pre.data[i]})`);
          if (code > top) top = code;
        }
        maxCode.set(tensor, top);
        checked += dq.length;
      }
    }
  } finally {
    await session.release();
  }
  return { maxCode, checked };
}

describe('exported activation codes', () => {
  const model = canonicalize(tinyResNet(9)).model;
  const layers = findQuantLayers(model);
  const points = activationQuantPoints(model);
  const X = randn(8 * 64, rng(5));
  const SHAPE = [8, 1, 8, 8];
  const memory = { batches: 1, count: 8, batch: async () => ({ data: X, shape: SHAPE, start: 0 }) } as unknown as ImageBatches;

  for (const bits of [2, 3, 4, 5, 6, 7, 8] as Bits[]) {
    it(`A${bits}: the file's codes are the engine's, inside [0, ${2 ** bits - 1}], on calibration-range and out-of-range inputs`, async () => {
      const ranges = await collectRanges(exportQdq({ model, weights: [], activations: new Map(), weightFormat: 'float' }), points, memory);
      // half the measured range, so that calibration inputs already clip; ×8 inputs go far past any grid
      const acts = new Map([...ranges].map(([t, r]) => [t, minMaxPerTensor(r.min / 2, r.max / 2, bits, false, false)]));
      const weights = layers.map((l) => roundToNearest(l, 4));
      const file = encodeModel(exportQdq({ model, weights, activations: acts }));
      const taps = [...acts].map(([tensor, p]) => ({ tensor, p }));
      const { maxCode, checked } = await checkTaps(file, taps, [
        { data: X, shape: SHAPE },
        { data: X.map((v) => 8 * v), shape: SHAPE },
      ]);
      expect(checked).toBeGreaterThan(1000);
      // saturation is reached: the check above would have caught a wider container
      expect(Math.max(...maxCode.values())).toBe(2 ** bits - 1);
      // an 8-bit container, with the tensor clipped onto its grid before QuantizeLinear below 8 bits
      const graph = decodeModel(file).graph!;
      const zp = graph.initializer!.find((t) => t.name === `${taps[0]!.tensor}_zero_point`)!;
      expect(zp.dataType).toBe(DataType.UINT8);
      expect(graph.node!.some((n) => n.opType === 'Clip' && n.name === `${taps[0]!.tensor}_Clip`)).toBe(bits < 8);
    });
  }
});

function codesOf(t: TensorProto): Int32Array {
  const n = (t.dims ?? []).reduce((a, b) => a * Number(b), 1);
  const raw = t.rawData!;
  switch (t.dataType) {
    case DataType.INT8:
      return Int32Array.from(new Int8Array(raw.buffer, raw.byteOffset, n));
    case DataType.UINT8:
      return Int32Array.from(raw.subarray(0, n));
    case DataType.INT4:
    case DataType.UINT4:
      return unpackSubByte(raw, n, 4, t.dataType === DataType.INT4);
    default:
      throw new Error(`unexpected weight container ${t.dataType}`);
  }
}

describe('exported weight codes', () => {
  // wider channels than the tiny ResNet's so that every level of a grid is reached
  const model = canonicalize(tinyResNet(3, { channels: 16 })).model;
  const layers = findQuantLayers(model);
  for (const grid of ['asymmetric', 'symmetric'] as const) {
    for (const bits of [2, 3, 4, 5, 6, 7, 8] as Bits[]) {
      it(`W${bits} ${grid}: stored codes use exactly the grid's levels`, () => {
        const weights = layers.map((l) => roundToNearest(l, bits, 'minmax', undefined, grid));
        const graph = exportQdq({ model, weights, activations: new Map() }).graph!;
        const { qmin, qmax } = intRange(bits, bits === 8 || grid === 'symmetric', bits === 8 || grid === 'symmetric');
        const seen = new Set<number>();
        for (const w of weights) {
          const stored = graph.initializer!.find((t) => t.name === `${w.layer.weight}_quantized`)!;
          const signed = bits === 8 || grid === 'symmetric';
          expect(stored.dataType).toBe(bits <= 4 ? (signed ? DataType.INT4 : DataType.UINT4) : signed ? DataType.INT8 : DataType.UINT8);
          const codes = codesOf(stored);
          expect(Array.from(codes)).toEqual(Array.from(w.codes));
          for (const c of codes) seen.add(c);
        }
        expect(Math.min(...seen)).toBeGreaterThanOrEqual(qmin);
        expect(Math.max(...seen)).toBeLessThanOrEqual(qmax);
        // 2^b levels below 8 bits (a 2-bit grid is four levels, not ternary); 255 at 8 bits
        expect(qmax - qmin + 1).toBe(bits === 8 ? 255 : 2 ** bits);
        if (bits <= 4) expect(seen.size).toBe(2 ** bits);
      });
    }
  }
});

describe('exported activation codes after learned steps', () => {
  const DEMO = 'public/demo';
  // every method that learns activation steps: BRECQ's second pass, QDrop, NWQ
  const methods: readonly MethodName[] = ['brecq', 'qdrop', 'nwq'];
  for (const method of methods) {
    it(`${method}: at every activation width the exported file computes the engine's codes on real and out-of-range images`, async () => {
      const model = new Uint8Array(await readFile(`${DEMO}/model.onnx`));
      const calib = (await readImageFolder(`${DEMO}/calib`)).slice(0, 32);
      const val = (await readImageFolder(`${DEMO}/val`)).filter((_, i) => i % 25 === 0);
      const batches = new ImageBatches(val, FASHION_MNIST, 40, () => {});
      const { data, shape } = await batches.batch(0);
      for (const abits of [2, 3, 4, 5, 6, 7, 8] as Bits[]) {
        const { report, exported } = await runQuantization(
          { model, modelName: 'model.onnx', calib, val: [], preprocess: FASHION_MNIST, plan: { method, wbits: 4, abits, headStem8bit: true, seed: 0, iters: 4, ...(method === 'brecq' ? { actIters: 4 } : {}) }, threads: 1 },
          () => {},
        );
        const taps = report.activations.map((a) => ({ tensor: a.tensor, p: { bits: a.bits as Bits, signed: false, symmetric: false, granularity: { kind: 'tensor' as const }, scale: Float32Array.of(a.scale), zeroPoint: Int32Array.of(a.zeroPoint) } }));
        expect(taps.some((t) => t.p.bits === abits)).toBe(true);
        const { maxCode } = await checkTaps(exported, taps, [
          { data, shape },
          // far outside the calibration range: every container wider than the grid would show
          { data: data.map((v) => 6 * v), shape },
        ]);
        for (const t of taps) expect(maxCode.get(t.tensor)!).toBeLessThanOrEqual(2 ** t.p.bits - 1);
        expect(taps.filter((t) => t.p.bits === abits).some((t) => maxCode.get(t.tensor) === 2 ** abits - 1)).toBe(true);
      }
    }, 240_000);
  }
});
