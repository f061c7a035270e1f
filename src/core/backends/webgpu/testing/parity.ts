import { conv2dAttrs, type Conv2dAttrs } from '../../cpu/reference/conv2d';
import type { Floats, Nd } from '../../cpu/reference/nd';
import type { QuantGrid } from '../../cpu/reference/quant-grid';
import { CONV_CONFIGS, type ConvConfig } from '../../cpu/reference/testing/configs';
import { rng } from '../../../random';
import { WebGpuBackend } from '../backend';
import type { WebGpuAdapterReport } from '../device';
import { ReferenceBackend } from '../reference-backend';
import { TILES, type GemmOptions } from '../skeletons';
import type { Activation, GridOf, KernelBackend, TensorLike } from '../types';

/*
 * WebGPU against the CPU reference, kernel by kernel. Each case is one body written against
 * `KernelBackend`, run on the WebGPU backend and on the float64 reference backend with the same
 * float32 inputs; every output is compared as max|gpu − ref| / max(max|ref|, 1e-3).
 *
 * Quantizer inputs are drawn away from grid boundaries (a margin of 5% of a step): next to one,
 * float32 and float64 may legitimately pick different integers, a whole step apart. Exact ties are
 * tested separately, with power-of-two scales that make x/s exact in both.
 */

export const TOLERANCE = 1e-4;

export interface ParityCase {
  readonly name: string;
  /** Output name → normalised max error. */
  readonly errors: Record<string, number>;
  readonly maxErr: number;
  readonly ok: boolean;
  readonly detail?: string;
  /** Wall time of the WebGPU run, pipeline compilation included. */
  readonly ms?: number;
}

export interface SteadyState {
  /** Pool buffers created by the first iteration, and by all later ones (must be 0). */
  readonly createdFirst: number;
  readonly createdLater: number;
  /**
   * Bind groups created by the second iteration (the free lists hand buffers back in a new order
   * once), and by the third and later (must be 0); pipelines compiled after the first (must be 0).
   */
  readonly bindGroupsSecond: number;
  readonly bindGroupsLater: number;
  readonly pipelinesLater: number;
  readonly iterations: number;
  readonly lossFirst: number;
  readonly lossLast: number;
}

export interface ParityReport {
  readonly adapter: WebGpuAdapterReport | null;
  readonly cases: ParityCase[];
  readonly steady: SteadyState;
  readonly uncaptured: string[];
  readonly ms: number;
}

type Inputs = Record<string, Nd<Float32Array>>;
type Grids = Record<string, QuantGrid<Float32Array>>;
type Body = <T extends TensorLike>(b: KernelBackend<T>, x: Record<string, T>, g: Record<string, GridOf<T>>) => Record<string, T>;

interface Case {
  readonly name: string;
  readonly inputs: Inputs;
  readonly grids?: Grids;
  readonly run: Body;
  /** Run on a backend with these GEMM options (forced tiles, forced split-K). */
  readonly gemm?: GemmOptions;
}

// ---- data ------------------------------------------------------------------------------------

const rand = rng(20261114);
const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
function randn(shape: readonly number[], scale = 1): Nd<Float32Array> {
  const d = new Float32Array(size(shape));
  for (let i = 0; i < d.length; i++) d[i] = scale * Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  return { shape: [...shape], data: d };
}
function uniform(shape: readonly number[], lo: number, hi: number): Nd<Float32Array> {
  const d = new Float32Array(size(shape));
  for (let i = 0; i < d.length; i++) d[i] = lo + (hi - lo) * rand();
  return { shape: [...shape], data: d };
}
/** A fraction of a step at least 5% away from an integer and from a half (round and floor both safe). */
function safeFraction(): number {
  const r = 0.05 + 0.4 * rand();
  return rand() < 0.5 ? r : r + 0.5;
}
/** Values s·(k + r) with integer k in [kLo, kHi] around the grid, r a safe fraction; `run` values per scale. */
function onGrid(shape: readonly number[], scales: ArrayLike<number>, kLo: number, kHi: number): Nd<Float32Array> {
  const d = new Float32Array(size(shape));
  const run = d.length / scales.length;
  for (let i = 0; i < d.length; i++) {
    const k = kLo + Math.floor(rand() * (kHi - kLo + 1));
    d[i] = scales[Math.floor(i / run)]! * (k + safeFraction());
  }
  return { shape: [...shape], data: d };
}
/** Rounding variables in [−4, 4], away from where h(V) meets 0 or 1 (V = ±ln 11). */
function roundingV(shape: readonly number[]): Nd<Float32Array> {
  const d = new Float32Array(size(shape));
  const edge = Math.log(11);
  for (let i = 0; i < d.length; i++) {
    let v = 0;
    do v = -4 + 8 * rand();
    while (Math.abs(Math.abs(v) - edge) < 0.02);
    d[i] = v;
  }
  return { shape: [...shape], data: d };
}
function grid(scales: number[], zeros: number[], qmin: number, qmax: number): QuantGrid<Float32Array> {
  return { scale: Float32Array.from(scales), zero: zeros, qmin, qmax };
}

// ---- cases -----------------------------------------------------------------------------------

const ACTIVATIONS: Activation[] = [
  { kind: 'relu' },
  { kind: 'clip', min: 0, max: 6 },
  { kind: 'leakyRelu', alpha: 0.1 },
  { kind: 'sigmoid' },
  { kind: 'hardSigmoid', alpha: 0.2, beta: 0.5 },
  { kind: 'hardSwish' },
];

function linearCases(): Case[] {
  const cases: Case[] = [];
  const [M, N, K] = [37, 45, 29];
  // every tile shape with both load orders of A and B (coalesced along k or along m/n); all four
  // transpose combinations on one tile. Each (op, tile) pair is a pipeline: SwiftShader compiles
  // one in about a second, so the matrix is not the full product.
  for (const [tileName, tile] of Object.entries(TILES)) {
    const combos: [boolean, boolean][] = tileName === 'medium' ? [[false, false], [false, true], [true, false], [true, true]] : [[false, false], [true, true]];
    for (const [transA, transB] of combos) {
      const bias = transA === transB;
      cases.push({
        name: `matmul ${M}×${N}×${K}${transA ? ' Aᵀ' : ''}${transB ? ' Bᵀ' : ''}${bias ? ' +bias' : ''}, ${tileName} tile`,
        inputs: { a: randn(transA ? [K, M] : [M, K]), b: randn(transB ? [N, K] : [K, N]), bias: randn([N]) },
        run: (b, x) => ({ c: b.matmul(x.a!, x.b!, { transA, transB, bias: bias ? x.bias! : null }) }),
        gemm: { tile },
      });
    }
  }
  cases.push({
    name: 'matmul 24×40×700 Aᵀ, split-K (3 forced)',
    inputs: { a: randn([700, 24]), b: randn([700, 40]) },
    run: (b, x) => ({ c: b.matmul(x.a!, x.b!, { transA: true }) }),
    gemm: { splits: 3 },
  });
  cases.push({
    name: 'matmul 8×8×5000, split-K (planned)',
    inputs: { a: randn([8, 5000]), b: randn([5000, 8]) },
    run: (b, x) => ({ c: b.matmul(x.a!, x.b!) }),
  });
  cases.push({
    name: 'gemm 33×70 → 21, forward and backward',
    inputs: { x: randn([33, 70]), w: randn([21, 70], 0.2), b: randn([21]), dy: randn([33, 21]) },
    run: (b, x) => {
      const g = b.gemmBackward(x.x!, x.w!, x.dy!);
      return { y: b.gemmForward(x.x!, x.w!, x.b!), yNoBias: b.gemmForward(x.x!, x.w!, null), dx: g.dx, dw: g.dw, db: g.db };
    },
  });
  cases.push({
    name: 'matmul [2, 9, 30] · [30, 17], forward and backward',
    inputs: { x: randn([2, 9, 30]), w: randn([30, 17], 0.2), dy: randn([2, 9, 17]) },
    run: (b, x) => {
      const g = b.matmulBackward(x.x!, x.w!, x.dy!);
      return { y: b.matmulForward(x.x!, x.w!), dx: g.dx, dw: g.dw };
    },
  });
  return cases;
}

const EXTRA_CONV: ConvConfig[] = [
  { name: '64→72 channels, 3×3 pad 1 (64×64 tiles)', x: [2, 64, 10, 10], w: [72, 64, 3, 3], attrs: conv2dAttrs({ pads: [1, 1, 1, 1] }), bias: true },
  { name: 'long K: weight gradient split over K', x: [4, 8, 16, 16], w: [8, 8, 3, 3], attrs: conv2dAttrs({ pads: [1, 1, 1, 1] }), bias: true },
  { name: 'group 4, strides [2, 1], pads [1, 0, 0, 1], dilations [1, 2]', x: [1, 8, 9, 7], w: [12, 2, 3, 2], attrs: conv2dAttrs({ strides: [2, 1], pads: [1, 0, 0, 1], dilations: [1, 2], group: 4 }), bias: true },
  { name: 'depthwise, stride 2, dilation 2, pads [2, 1, 0, 2]', x: [2, 6, 9, 9], w: [6, 1, 3, 3], attrs: conv2dAttrs({ strides: [2, 2], pads: [2, 1, 0, 2], dilations: [2, 2], group: 6 }), bias: true },
  { name: '5×5 stride 2, asymmetric pads [2, 1, 1, 2]', x: [2, 3, 11, 10], w: [6, 3, 5, 5], attrs: conv2dAttrs({ strides: [2, 2], pads: [2, 1, 1, 2] }), bias: false },
];

function outShape(c: ConvConfig): number[] {
  const [n, , h, w] = c.x;
  const [m, , kh, kw] = c.w;
  const { strides: [sh, sw], pads: [pt, pl, pb, pr], dilations: [dh, dw] } = c.attrs;
  return [n, m, Math.floor((h + pt + pb - dh * (kh - 1) - 1) / sh) + 1, Math.floor((w + pl + pr - dw * (kw - 1) - 1) / sw) + 1];
}

function convCases(): Case[] {
  const cases: Case[] = [];
  for (const c of [...CONV_CONFIGS, ...EXTRA_CONV]) {
    const depthwise = c.w[1] === 1 && c.attrs.group === c.x[1] && c.attrs.group > 1;
    const inputs = { x: randn(c.x), w: randn(c.w, 0.3), b: randn([c.w[0]]), dy: randn(outShape(c)) };
    for (const algorithm of depthwise ? (['depthwise', 'gemm'] as const) : (['gemm'] as const)) {
      const attrs: Conv2dAttrs = c.attrs;
      cases.push({
        name: `conv2d ${c.name}${depthwise ? ` (${algorithm} kernel)` : ''}`,
        inputs,
        run: (b, x) => {
          const g = b.conv2dBackward(x.x!, x.w!, x.dy!, attrs, { algorithm });
          return { y: b.conv2dForward(x.x!, x.w!, c.bias ? x.b! : null, attrs, { algorithm }), dx: g.dx, dw: g.dw, db: g.db };
        },
      });
    }
  }
  // AdaRound's soft weight read inside the kernels: forward, input gradient, and dV out of the weight gradient
  const soft: [string, ConvConfig][] = [
    ['3×3 pad 1', CONV_CONFIGS[0]!],
    ['group 2', CONV_CONFIGS.find((c) => c.name === 'group 2')!],
    ['depthwise, stride 2', CONV_CONFIGS.find((c) => c.name === 'depthwise, stride 2')!],
    ['long K (split-K epilogue)', EXTRA_CONV[1]!],
  ];
  for (const [name, c] of soft) {
    const m = c.w[0];
    const scales = Array.from({ length: m }, () => 0.05 + 0.1 * rand());
    const qmin = -4;
    const qmax = 3;
    const cases2: [string, QuantGrid<Float32Array>, Nd<Float32Array>][] = [
      ['per channel', grid(scales, scales.map(() => 0), qmin, qmax), onGrid(c.w, scales, qmin - 1, qmax)],
      ['per tensor, zero point 1', grid([scales[0]!], [1], 0, 15), onGrid(c.w, [scales[0]!], -3, 13)],
    ];
    for (const [gname, g, w] of cases2) {
      const attrs = c.attrs;
      cases.push({
        name: `conv2d + AdaRound soft weights (${gname}), ${name}`,
        inputs: { x: randn(c.x), w, v: roundingV(c.w), b: randn([m]), dy: randn(outShape(c)) },
        grids: { g },
        run: (b, x, gr) => {
          const o = { adaround: { v: x.v!, grid: gr.g! } };
          return {
            y: b.conv2dForward(x.x!, x.w!, x.b!, attrs, o),
            dx: b.conv2dInputGrad(x.w!, x.dy!, x.x!.shape, attrs, o),
            dv: b.conv2dWeightGrad(x.x!, x.w!, x.dy!, attrs, o),
          };
        },
      });
    }
  }
  return cases;
}

function elementwiseCases(): Case[] {
  const cases: Case[] = [];
  const shape = [2, 3, 5, 7];
  for (const a of ACTIVATIONS) {
    cases.push({
      name: `${a.kind} forward and backward`,
      inputs: { x: randn(shape, 4), dy: randn(shape) },
      run: (b, x) => ({ y: b.activationForward(x.x!, a), dx: b.activationBackward(x.x!, x.dy!, a) }),
    });
  }
  for (const a of [{ kind: 'identity' }, { kind: 'relu' }, { kind: 'hardSwish' }] as Activation[]) {
    cases.push({
      name: `add${a.kind === 'identity' ? '' : ` → ${a.kind} (fused)`} forward and backward`,
      inputs: { a: randn(shape, 3), b: randn(shape, 3), dy: randn(shape) },
      run: (b, x) => {
        const g = b.addBackward(x.dy!, a.kind === 'identity' ? undefined : { a: x.a!, b: x.b!, act: a });
        return { y: b.addForward(x.a!, x.b!, a), da: g.da, db: g.db };
      },
    });
  }
  for (const gate of [shape, [2, 3, 1, 1], [2, 1, 1, 1]]) {
    cases.push({
      name: `mul by [${gate.join(', ')}] forward and backward`,
      inputs: { a: randn(shape), b: randn(gate), dy: randn(shape) },
      run: (b, x) => {
        const g = b.mulBackward(x.a!, x.b!, x.dy!);
        return { y: b.mulForward(x.a!, x.b!), da: g.da, db: g.db };
      },
    });
  }
  for (const s of [shape, [2, 4, 40, 40]]) {
    cases.push({
      name: `global average pool [${s.join(', ')}] forward and backward`,
      inputs: { x: randn(s), dy: randn([s[0]!, s[1]!, 1, 1]) },
      run: (b, x) => ({ y: b.globalAveragePoolForward(x.x!), dx: b.globalAveragePoolBackward(x.x!, x.dy!) }),
    });
  }
  return cases;
}

function quantCases(): Case[] {
  const cases: Case[] = [];
  const fq = (name: string, shape: number[], g: QuantGrid<Float32Array>, x: Nd<Float32Array>, gradScale = 1): Case => ({
    name: `fake quant ${name}: forward, STE and LSQ step gradient`,
    inputs: { x, dy: randn(shape) },
    grids: { g },
    run: (b, t, gr) => {
      const r = b.fakeQuantBackward(t.x!, gr.g!, t.dy!, gradScale);
      return { y: b.fakeQuantForward(t.x!, gr.g!), dx: r.dx, dscale: r.dscale };
    },
  });
  // activations: uint8 per tensor, zero point 128, some values clamped at both ends
  const s1 = [0.043];
  cases.push(fq('uint8 per tensor', [2, 3, 6, 6], grid(s1, [128], 0, 255), onGrid([2, 3, 6, 6], s1, -140, 140)));
  // weights: int4 symmetric per channel
  const s2 = [0.11, 0.031, 0.07];
  cases.push(fq('int4 per channel', [3, 4, 3, 3], grid(s2, [0, 0, 0], -8, 7), onGrid([3, 4, 3, 3], s2, -10, 9)));
  cases.push(fq('int8 per tensor, 20,000 values (multi-chunk reduction), LSQ scale 1/√(N·qmax)', [20000], grid([0.02], [0], -128, 127), onGrid([20000], [0.02], -135, 135), 1 / Math.sqrt(20000 * 127)));
  // exact ties with a power-of-two step: round half to even on both backends
  const ties = new Float32Array(64);
  for (let i = 0; i < ties.length; i++) ties[i] = 0.25 * (i - 32 + 0.5);
  cases.push(fq('exact ties (x/s = k + ½)', [64], grid([0.25], [0], -16, 15), { shape: [64], data: ties }));

  const ws = [0.05, 0.08, 0.021, 0.04];
  for (const [name, g, w] of [
    ['per channel, int4', grid(ws, [0, 0, 0, 0], -8, 7), onGrid([4, 3, 3, 3], ws, -9, 8)],
    ['per tensor, uint3 with zero point 3', grid([0.06], [3], 0, 7), onGrid([4, 3, 3, 3], [0.06], -5, 5)],
  ] as const) {
    cases.push({
      name: `adaround ${name}: soft, hard and backward`,
      inputs: { w, v: roundingV([4, 3, 3, 3]), dy: randn([4, 3, 3, 3]) },
      grids: { g },
      run: (b, x, gr) => ({ soft: b.adaroundForward(x.w!, x.v!, gr.g!), hard: b.adaroundHard(x.w!, x.v!, gr.g!), dv: b.adaroundBackward(x.w!, x.v!, gr.g!, x.dy!) }),
    });
  }
  for (const beta of [20, 2]) {
    cases.push({
      name: `adaround regulariser β = ${beta}: value and gradient (+ a gradient added in the same pass)`,
      inputs: { v: roundingV([3000]), add: randn([3000], 0.01) },
      run: (b, x) => ({ reg: b.adaroundRegForward(x.v!, beta), dv: b.adaroundRegBackward(x.v!, beta, 0.01), dvPlus: b.adaroundRegBackward(x.v!, beta, 0.01, x.add!) }),
    });
  }
  return cases;
}

function lossCases(): Case[] {
  const cases: Case[] = [];
  for (const [n, act] of [
    [300, { kind: 'identity' }],
    [300, { kind: 'relu' }],
    [300, { kind: 'clip', min: 0, max: 6 }],
    [50000, { kind: 'identity' }],
  ] as [number, Activation][]) {
    cases.push({
      name: `mse over ${n}${act.kind === 'identity' ? '' : ` after ${act.kind} (fused)`}: loss, gradient, both in one pass`,
      inputs: { p: randn([n], 4), t: uniform([n], 0, 5) },
      run: (b, x) => {
        const both = b.mseLossAndGrad(x.p!, x.t!, { act, dLoss: 0.5 });
        return { loss: b.mseForward(x.p!, x.t!, act), grad: b.mseBackward(x.p!, x.t!, 0.5, act), fusedLoss: both.loss, fusedGrad: both.grad };
      },
    });
  }
  cases.push({
    name: 'lp loss p = 2.4: loss and gradient',
    inputs: { p: randn([500]), t: randn([500]) },
    run: (b, x) => ({ loss: b.lpLossForward(x.p!, x.t!, 2.4), grad: b.lpLossBackward(x.p!, x.t!, 2.4, 2) }),
  });
  return cases;
}

// ---- running ---------------------------------------------------------------------------------

function maxErr(gpu: Float32Array, ref: Float32Array): number {
  if (gpu.length !== ref.length) return Infinity;
  let diff = 0;
  let mag = 1e-3;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(gpu[i]! - ref[i]!);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
    mag = Math.max(mag, Math.abs(ref[i]!));
  }
  return diff / mag;
}

async function runOn<T extends TensorLike>(b: KernelBackend<T>, c: Case): Promise<Record<string, Nd>> {
  const x: Record<string, T> = {};
  for (const [k, v] of Object.entries(c.inputs)) x[k] = b.upload(v);
  const g: Record<string, GridOf<T>> = {};
  for (const [k, v] of Object.entries(c.grids ?? {})) g[k] = b.grid(v);
  const outs = c.run(b, x, g);
  const res: Record<string, Nd> = {};
  for (const [k, v] of Object.entries(outs)) res[k] = await b.read(v);
  b.release(...Object.values(outs), ...Object.values(x));
  for (const gr of Object.values(g)) b.releaseGrid(gr);
  return res;
}

/** The float64 reference of float32 data: exact inputs, float64 arithmetic. */
function refRun(c: Case): Record<string, Nd> {
  const ref = new ReferenceBackend(new Float64Array(0));
  const x: Record<string, Nd<Float64Array>> = {};
  for (const [k, v] of Object.entries(c.inputs)) x[k] = ref.upload(v);
  const g: Record<string, GridOf<Nd<Float64Array>>> = {};
  for (const [k, v] of Object.entries(c.grids ?? {})) g[k] = ref.grid(v);
  const outs = c.run(ref, x, g);
  const res: Record<string, Nd> = {};
  for (const [k, v] of Object.entries(outs)) res[k] = { shape: [...v.shape], data: Float32Array.from(v.data as Floats) };
  return res;
}

/**
 * A reconstruction step on the GPU (soft-rounded conv, fused loss, dV out of the weight gradient,
 * regulariser, Adam), repeated: after the first iteration nothing new may be created.
 */
async function steadyState(gpu: WebGpuBackend): Promise<SteadyState> {
  const attrs = conv2dAttrs({ pads: [1, 1, 1, 1] });
  const scales = [0.05, 0.07, 0.03, 0.06, 0.04, 0.05];
  const w = gpu.upload(onGrid([6, 4, 3, 3], scales, -4, 3));
  const grid = gpu.grid({ scale: Float32Array.from(scales), zero: [0, 0, 0, 0, 0, 0], qmin: -4, qmax: 3 });
  const v = gpu.upload(roundingV([6, 4, 3, 3]));
  const m = gpu.upload({ shape: v.shape, data: new Float32Array(v.size) });
  const vv = gpu.upload({ shape: v.shape, data: new Float32Array(v.size) });
  const bias = gpu.upload(randn([6]));
  const batch = randn([8, 4, 8, 8]);
  const x = gpu.upload(batch);
  const target = gpu.upload(uniform([8, 6, 8, 8], 0, 1));
  const iterations = 6;
  const before = gpu.stats();
  let after1 = before;
  let after2 = before;
  let lossFirst = NaN;
  let lossLast = NaN;
  for (let t = 1; t <= iterations; t++) {
    // the same batch every time, written anew as a reconstruction loop writes each batch
    gpu.write(x, batch.data);
    const o = { adaround: { v, grid } };
    const y = gpu.conv2dForward(x, w, bias, attrs, o);
    const { loss, grad } = gpu.mseLossAndGrad(y, target, { act: { kind: 'relu' } });
    const dv = gpu.conv2dWeightGrad(x, w, grad, attrs, o);
    const total = gpu.adaroundRegBackward(v, 10, 0.01, dv);
    const reg = gpu.adaroundRegForward(v, 10);
    gpu.adamStep({ param: v, m, v: vv }, total, { lr: 1e-2, t });
    const l = await gpu.readScalar(loss);
    await gpu.readScalar(reg);
    if (t === 1) lossFirst = l;
    lossLast = l;
    gpu.release(y, loss, grad, dv, total, reg);
    if (t === 1) after1 = gpu.stats();
    if (t === 2) after2 = gpu.stats();
  }
  const end = gpu.stats();
  gpu.release(w, v, m, vv, bias, x, target);
  gpu.releaseGrid(grid);
  return {
    createdFirst: after1.created - before.created,
    createdLater: end.created - after1.created,
    bindGroupsSecond: after2.bindGroups - after1.bindGroups,
    bindGroupsLater: end.bindGroups - after2.bindGroups,
    pipelinesLater: end.pipelines - after1.pipelines,
    iterations,
    lossFirst,
    lossLast,
  };
}

/** Adam on the GPU against optim/adam.ts (float32 on both sides), three steps. */
async function adamCase(gpu: WebGpuBackend): Promise<ParityCase> {
  const p0 = randn([500]);
  const grads = [randn([500]), randn([500], 0.1), randn([500], 3)];
  const cpu = new ReferenceBackend(new Float32Array(0));
  const cp = cpu.upload(p0);
  const gp = gpu.upload(p0);
  const state = { param: gp, m: gpu.upload({ shape: [500], data: new Float32Array(500) }), v: gpu.upload({ shape: [500], data: new Float32Array(500) }) };
  for (let t = 1; t <= grads.length; t++) {
    const g = gpu.upload(grads[t - 1]!);
    gpu.adamStep(state, g, { lr: 0.01, t });
    cpu.adamStep({ param: cp, m: cp, v: cp }, cpu.upload(grads[t - 1]!), { lr: 0.01, t });
    gpu.release(g);
  }
  const got = await gpu.read(gp);
  gpu.release(state.param, state.m, state.v);
  const err = maxErr(got.data, cp.data);
  return { name: 'adam, 3 steps (against optim/adam.ts in float32)', errors: { param: err }, maxErr: err, ok: err <= TOLERANCE };
}

export function allCases(): Case[] {
  return [...linearCases(), ...convCases(), ...elementwiseCases(), ...quantCases(), ...lossCases()];
}

export async function runParity(device: GPUDevice, adapter: WebGpuAdapterReport | null, only?: string): Promise<ParityReport> {
  const t0 = performance.now();
  const uncaptured: string[] = [];
  device.addEventListener('uncapturederror', (e) => uncaptured.push((e as GPUUncapturedErrorEvent).error.message));
  const backends = new Map<string, WebGpuBackend>();
  const backendFor = (o?: GemmOptions): WebGpuBackend => {
    const key = JSON.stringify(o ?? {});
    let b = backends.get(key);
    if (!b) backends.set(key, (b = new WebGpuBackend(device, adapter, { gemm: o })));
    return b;
  };
  const cases: ParityCase[] = [];
  for (const c of allCases()) {
    if (only && !c.name.includes(only)) continue;
    device.pushErrorScope('validation');
    device.pushErrorScope('out-of-memory');
    let gpu: Record<string, Nd> = {};
    let thrown: string | undefined;
    const c0 = performance.now();
    try {
      gpu = await runOn(backendFor(c.gemm), c);
    } catch (e) {
      thrown = (e as Error).message;
    }
    const oom = await device.popErrorScope();
    const validation = await device.popErrorScope();
    const ref = refRun(c);
    const errors: Record<string, number> = {};
    for (const [k, r] of Object.entries(ref)) errors[k] = gpu[k] ? maxErr(gpu[k]!.data, r.data) : Infinity;
    const worst = Math.max(...Object.values(errors));
    const detail = [thrown, validation?.message, oom?.message].filter(Boolean).join('; ') || undefined;
    cases.push({ name: c.name, errors, maxErr: worst, ok: worst <= TOLERANCE && !detail, detail, ms: Math.round(performance.now() - c0) });
  }
  const main = backendFor();
  if (!only || 'adam'.includes(only)) cases.push(await adamCase(main));
  device.pushErrorScope('validation');
  // a fresh backend, so that the first iteration's allocations are its own
  const fresh = new WebGpuBackend(device, adapter);
  const steady = await steadyState(fresh);
  fresh.dispose();
  const steadyErr = await device.popErrorScope();
  if (steadyErr) uncaptured.push(`steady-state loop: ${steadyErr.message}`);
  for (const b of backends.values()) b.dispose();
  return { adapter, cases, steady, uncaptured, ms: performance.now() - t0 };
}
