import { describe, expect, it } from 'vitest';
import { randn, rng } from '../../random';
import * as R from '../cpu/reference';
import { CONV_CONFIGS } from '../cpu/reference/testing/configs';
import { acquireWebGpu } from './device';
import { convForwardSpec, convGeometry, convInputGradSpec, convWeightGradSpec, CHANNEL_SUM, DEPTHWISE_INPUT_GRAD, depthwiseForwardSpec, depthwiseWeightGradSpec } from './kernels/conv2d';
import * as E from './kernels/elementwise';
import { matmulSpec } from './kernels/linear';
import { sizeClass } from './pool';
import { ReferenceBackend } from './reference-backend';
import { wgslSource, type KernelDef } from './runtime';
import { gemmKernels, mapKernel, planGemm, reduceKernels, TILES, type GemmSpec, type MapSpec, type ReduceSpec } from './skeletons';
import type { Activation } from './types';

/*
 * What can be checked without a GPU (WGSL runs in Chromium: e2e/webgpu.spec.ts): the fallback
 * results of device acquisition, buffer size classes, the GEMM planner, shape rules against the
 * reference, static checks of every generated WGSL module, and the reference adapter.
 */

describe('acquireWebGpu', () => {
  const limits = { maxComputeWorkgroupStorageSize: 32768, maxStorageBufferBindingSize: 2 ** 30, maxBufferSize: 2 ** 30, maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupSizeX: 256, maxComputeWorkgroupSizeY: 256, maxStorageBuffersPerShaderStage: 10, maxComputeWorkgroupsPerDimension: 65535 };
  const fakeGpu = (isFallbackAdapter: boolean, requestDevice: (d: GPUDeviceDescriptor) => Promise<unknown>) =>
    ({
      requestAdapter: () => Promise.resolve({ info: { vendor: 'v', architecture: 'a', device: '', description: '', isFallbackAdapter }, features: new Set(['subgroups']), limits, requestDevice }),
    }) as unknown as GPU;

  it('says why there is no WebGPU', async () => {
    expect(await acquireWebGpu({ gpu: null })).toMatchObject({ ok: false, reason: 'no-navigator-gpu' });
    expect(await acquireWebGpu({ gpu: { requestAdapter: () => Promise.resolve(null) } as unknown as GPU })).toMatchObject({ ok: false, reason: 'no-adapter' });
    expect(await acquireWebGpu({ gpu: { requestAdapter: () => Promise.reject(new Error('boom')) } as unknown as GPU })).toMatchObject({ ok: false, reason: 'no-adapter' });
    expect(await acquireWebGpu({ gpu: fakeGpu(false, () => Promise.reject(new Error('limits'))) })).toMatchObject({ ok: false, reason: 'device-request-failed' });
  });

  it('refuses a software adapter unless asked, and requests limits up to the adapter’s', async () => {
    const asked: GPUDeviceDescriptor[] = [];
    const device = { limits };
    const gpu = fakeGpu(true, (d) => (asked.push(d), Promise.resolve(device)));
    const refused = await acquireWebGpu({ gpu });
    expect(refused).toMatchObject({ ok: false, reason: 'software-adapter', adapter: { isFallbackAdapter: true } });
    const r = await acquireWebGpu({ gpu, allowSoftwareAdapter: true, maxStorageBufferBindingSize: 2 ** 28 });
    expect(r.ok).toBe(true);
    expect(asked[0]!.requiredLimits).toMatchObject({ maxComputeWorkgroupStorageSize: 32768, maxStorageBufferBindingSize: 2 ** 28, maxBufferSize: 2 ** 30 });
    if (r.ok) expect(r.adapter).toMatchObject({ vendor: 'v', features: ['subgroups'] });
  });
});

describe('buffer pool size classes', () => {
  it('round up by at most 12.5% above 2 KiB and stay 256-byte multiples below', () => {
    for (let b = 1; b < 3_000_000; b = Math.ceil(b * 1.37) + 3) {
      const c = sizeClass(b);
      expect(c).toBeGreaterThanOrEqual(b);
      expect(c % 16).toBe(0);
      if (b > 2048) expect(c / b).toBeLessThanOrEqual(1.125 + 1e-9);
      expect(sizeClass(c)).toBe(c);
    }
  });
});

describe('GEMM planner', () => {
  it('splits K only when the output has few tiles and K is long', () => {
    expect(planGemm(64, 25088, 576, 1).splits).toBe(1);
    const wgrad = planGemm(64, 576, 25088, 1);
    expect(wgrad.splits).toBeGreaterThan(8);
    expect(wgrad.kChunk % wgrad.tile.bk).toBe(0);
    expect(wgrad.kChunk * wgrad.splits).toBeGreaterThanOrEqual(25088);
    expect(wgrad.kChunk * (wgrad.splits - 1)).toBeLessThan(25088);
    expect(planGemm(8, 8, 100, 1).splits).toBe(1);
    expect(planGemm(24, 40, 700, 1, { splits: 3 }).splits).toBe(3);
    expect(() => planGemm(64, 64 * 70000, 9, 1)).toThrow(/exceeds/);
  });

  it('picks tiles by shape', () => {
    expect(planGemm(8, 1000, 9, 1).tile).toBe(TILES.shortM);
    expect(planGemm(1000, 8, 9, 1).tile).toBe(TILES.shortN);
    expect(planGemm(128, 128, 9, 1).tile).toBe(TILES.large);
    expect(planGemm(40, 40, 9, 1).tile).toBe(TILES.medium);
  });
});

describe('conv geometry', () => {
  it('gives the reference’s output shapes and errors', () => {
    for (const c of CONV_CONFIGS) {
      const y = R.conv2dForward(R.zeros(new Float64Array(0), c.x), R.zeros(new Float64Array(0), c.w), null, c.attrs);
      const g = convGeometry(c.x, c.w, c.attrs);
      expect([g.n, g.m, g.oh, g.ow]).toEqual(y.shape);
    }
    const bad = (x: number[], w: number[], a: Partial<R.Conv2dAttrs>) => {
      let ref = '';
      try {
        R.conv2dForward(R.zeros(new Float32Array(0), x), R.zeros(new Float32Array(0), w), null, R.conv2dAttrs(a));
      } catch (e) {
        ref = (e as Error).message;
      }
      expect(ref).not.toBe('');
      expect(() => convGeometry(x, w, R.conv2dAttrs(a))).toThrow(ref);
    };
    bad([1, 4, 5, 5], [4, 3, 3, 3], {});
    bad([1, 4, 5, 5], [4, 2, 3, 3], { group: 3 });
    bad([1, 2, 2, 2], [4, 2, 3, 3], {});
    bad([1, 2, 5, 5], [4, 2, 3, 3], { strides: [0, 1] });
  });
});

/** Every function defined once, every `p.x` a field of Params, every binding used declared once. */
function checkWgsl(k: KernelDef): void {
  const src = wgslSource(k);
  const fns = [...src.matchAll(/\bfn\s+(\w+)\s*\(/g)].map((m) => m[1]!);
  expect(fns.length, `${k.label}: duplicate functions in ${fns.join(', ')}`).toBe(new Set(fns).size);
  expect(fns, k.label).toContain(k.entry);
  const fields = new Set(Object.keys(k.params));
  for (const m of src.matchAll(/\bp\.(\w+)/g)) expect(fields.has(m[1]!), `${k.label}: p.${m[1]} is not a parameter`).toBe(true);
  const names = k.bindings.map((b) => b.name);
  expect(names.length, k.label).toBe(new Set(names).size);
  expect(Object.keys(k.params).length * 4, k.label).toBeLessThanOrEqual(256);
  // WebGPU's default maxStorageBuffersPerShaderStage
  expect(k.bindings.length, `${k.label}: storage bindings`).toBeLessThanOrEqual(8);
}

describe('generated WGSL', () => {
  const acts: Activation[] = [{ kind: 'identity' }, { kind: 'relu' }, { kind: 'clip', min: 0, max: 6 }, { kind: 'leakyRelu', alpha: 0.1 }, { kind: 'sigmoid' }, { kind: 'hardSigmoid', alpha: 0.2, beta: 0.5 }, { kind: 'hardSwish' }];
  const gemms: GemmSpec[] = [
    ...[false, true].flatMap((a) => [false, true].flatMap((b) => [false, true].map((bias) => matmulSpec(a, b, bias)))),
    ...[false, true].flatMap((bias) => [false, true].map((soft) => convForwardSpec(bias, soft))),
    convInputGradSpec(false), convInputGradSpec(true), convWeightGradSpec(false), convWeightGradSpec(true),
  ];
  const maps: MapSpec[] = [
    depthwiseForwardSpec(false), depthwiseForwardSpec(true), DEPTHWISE_INPUT_GRAD, E.MUL_FORWARD, E.FAKE_QUANT_FORWARD, E.ADAROUND_FORWARD, E.ADAROUND_HARD, E.ADAROUND_BACKWARD,
    E.ADAROUND_REG_BACKWARD, E.GAP_BACKWARD, E.ADAM_STEP,
    ...acts.flatMap((a) => [E.activationForwardSpec(a), E.activationBackwardSpec(a), E.addForwardSpec(a), E.addBackwardSpec(a), E.lossGradSpec('mse', a), E.lossGradSpec('lp', a)]),
  ];
  const reduces: ReduceSpec[] = [CHANNEL_SUM, depthwiseWeightGradSpec(false), depthwiseWeightGradSpec(true), E.MUL_BACKWARD, E.FAKE_QUANT_BACKWARD, E.ADAROUND_REG_FORWARD, E.GAP_FORWARD, ...acts.flatMap((a) => [E.lossSpec('mse', a), E.lossSpec('lp', a)])];

  it('composes every kernel cleanly', () => {
    for (const s of gemms) for (const t of Object.values(TILES)) Object.values(gemmKernels(s, t)).forEach(checkWgsl);
    maps.forEach((s) => checkWgsl(mapKernel(s)));
    reduces.forEach((s) => reduceKernels(s).forEach(checkWgsl));
  });

  it('rejects an op parameter that shadows a skeleton one', () => {
    expect(() => mapKernel({ ...E.GAP_BACKWARD, params: { n: 'u32' } })).toThrow(/skeleton/);
  });
});

describe('the reference adapter', () => {
  const rand = rng(3);
  const nd = (shape: number[]) => R.nd(shape, Float64Array.from(randn(shape.reduce((a, b) => a * b, 1), rand)));
  const b = new ReferenceBackend(new Float64Array(0));

  it('matmul with transposes and bias is A·B + bias', () => {
    const a = nd([3, 4]);
    const w = nd([4, 5]);
    const bias = nd([5]);
    const want = R.matmulForward(a, w).data.map((v, i) => v + bias.data[i % 5]!);
    const tr = (t: R.Nd<Float64Array>) => {
      const [r, c] = t.shape as [number, number];
      return R.nd([c, r], Float64Array.from({ length: r * c }, (_, i) => t.data[(i % r) * c + Math.floor(i / r)]!));
    };
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const got = b.matmul(ta ? tr(a) : a, tb ? tr(w) : w, { transA: ta, transB: tb, bias });
      got.data.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 12));
    }
  });

  it('the AdaRound weight gradient is dV = adaroundBackward(dW of the soft weight)', () => {
    const c = CONV_CONFIGS[0]!;
    const s = Float64Array.of(0.1, 0.2, 0.15, 0.05);
    const g = b.grid({ scale: s, zero: [0, 0, 0, 0], qmin: -4, qmax: 3 });
    const x = nd(c.x);
    const w = nd(c.w);
    const v = nd(c.w);
    const dy = nd(R.conv2dForward(x, w, null, c.attrs).shape as number[]);
    const host = { scale: s, zero: [0, 0, 0, 0], qmin: -4, qmax: 3 };
    const soft = R.adaroundForward(w, v, host);
    const want = R.adaroundBackward(w, v, host, R.conv2dBackward(x, soft, dy, c.attrs).dw);
    expect(b.conv2dWeightGrad(x, w, dy, c.attrs, { adaround: { v, grid: g } }).data).toEqual(want.data);
  });
});
