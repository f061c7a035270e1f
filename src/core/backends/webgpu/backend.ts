import type { Conv2dAttrs } from '../cpu/reference/conv2d';
import type { Floats, Nd } from '../cpu/reference/nd';
import type { QuantGrid } from '../cpu/reference/quant-grid';
import { acquireWebGpu, type AcquireOptions, type NoWebGpuReason, type WebGpuAdapterReport } from './device';
import { CHANNEL_SUM, DEPTHWISE_INPUT_GRAD, convForwardSpec, convGeometry, convInputGradSpec, convValues, convWeightGradSpec, depthwiseForwardSpec, depthwiseWeightGradSpec, isDepthwise, type ConvGeometry } from './kernels/conv2d';
import {
  ADAM_STEP,
  ADAROUND_BACKWARD,
  ADAROUND_FORWARD,
  ADAROUND_HARD,
  ADAROUND_REG_BACKWARD,
  ADAROUND_REG_FORWARD,
  FAKE_QUANT_BACKWARD,
  FAKE_QUANT_FORWARD,
  GAP_BACKWARD,
  GAP_FORWARD,
  MUL_BACKWARD,
  MUL_FORWARD,
  activationBackwardSpec,
  activationForwardSpec,
  addBackwardSpec,
  addForwardSpec,
  lossGradSpec,
  lossSpec,
} from './kernels/elementwise';
import { matmulSpec } from './kernels/linear';
import type { PoolStats } from './pool';
import { Runtime, STORAGE_USAGE } from './runtime';
import { mapKernel, runGemm, runMap, runReduce, type GemmOptions, type GemmPlan, type MapSpec } from './skeletons';
import { IDENTITY, type Activation, type AdamHyper, type AdamState, type ConvGrads, type ConvOptions, type GridOf, type KernelBackend, type LinearGrads, type MatmulOptions, type SoftRounding, type TensorLike } from './types';
import { activationParams } from './wgsl';

/** A tensor in a pooled GPU buffer (float32, row-major). Release it to hand the buffer back. */
export class GpuTensor implements TensorLike {
  /** @internal */
  released = false;
  constructor(
    readonly shape: readonly number[],
    readonly size: number,
    /** @internal */
    readonly buffer: GPUBuffer,
  ) {}
}

const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
const fmt = (s: readonly number[]): string => `[${s.join(', ')}]`;

function sameShape(a: TensorLike, b: TensorLike, op: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) throw new Error(`${op}: shapes ${fmt(a.shape)} and ${fmt(b.shape)} differ`);
}

export interface WebGpuBackendOptions {
  /** Passed to the GEMM planner: how many workgroups to aim for before splitting K. */
  readonly gemm?: GemmOptions;
}

/**
 * The WebGPU implementation of `KernelBackend`. Ops enqueue work into one command encoder and
 * return at once; `read`/`readScalar` (and `flush`) submit it. Create it with `createWebGpuBackend`.
 */
export class WebGpuBackend implements KernelBackend<GpuTensor> {
  readonly name = 'webgpu';
  private readonly rt: Runtime;
  /**
   * Bound where a kernel's optional input (bias, addend) or output (a loss's gradient) is absent,
   * and as a one-chunk reduction's unused partials. Three buffers: WebGPU rejects a dispatch that
   * binds one buffer writable twice, or writable and read-only.
   */
  private readonly dummy: GPUBuffer;
  private readonly absentOut: GPUBuffer;
  private readonly noPartial: GPUBuffer;
  /** The plan of the last GEMM run (tests and benchmarks read it). */
  lastGemmPlan: GemmPlan | null = null;

  constructor(
    readonly device: GPUDevice,
    readonly adapter: WebGpuAdapterReport | null = null,
    private readonly options: WebGpuBackendOptions = {},
  ) {
    this.rt = new Runtime(device);
    this.dummy = device.createBuffer({ size: 16, usage: STORAGE_USAGE, label: 'absent input' });
    this.absentOut = device.createBuffer({ size: 16, usage: STORAGE_USAGE, label: 'absent output' });
    this.noPartial = device.createBuffer({ size: 16, usage: STORAGE_USAGE, label: 'no partial sums' });
  }

  /** Buffers created and reused, dispatches, submits, pipelines and bind groups so far. */
  stats(): PoolStats & Runtime['counters'] {
    return { ...this.rt.pool.stats, ...this.rt.counters };
  }

  get lost(): string | null {
    return this.rt.lost;
  }

  /** Everything enqueued has run (benchmarks). */
  idle(): Promise<void> {
    return this.rt.idle();
  }

  dispose(): void {
    this.rt.destroy();
    for (const b of [this.dummy, this.absentOut, this.noPartial]) b.destroy();
  }

  // ---- memory ------------------------------------------------------------------------------

  private alloc(shape: readonly number[]): GpuTensor {
    const size = sizeOf(shape);
    return new GpuTensor([...shape], size, this.rt.pool.acquire(Math.max(size, 1) * 4, STORAGE_USAGE, `tensor ${fmt(shape)}`));
  }

  upload(x: Nd<Floats>): GpuTensor {
    const t = this.alloc(x.shape);
    if (t.size !== x.data.length) throw new Error(`upload: shape ${fmt(x.shape)} does not match ${x.data.length} values`);
    this.rt.write(t.buffer, x.data instanceof Float32Array ? x.data : Float32Array.from(x.data));
    return t;
  }

  write(t: GpuTensor, data: Float32Array): void {
    this.live(t);
    if (data.length !== t.size) throw new Error(`write: ${data.length} values into a tensor of ${t.size}`);
    this.rt.write(t.buffer, data);
  }

  async read(t: GpuTensor): Promise<Nd> {
    this.live(t);
    return { shape: [...t.shape], data: await this.rt.read(t.buffer, t.size) };
  }

  async readScalar(t: GpuTensor): Promise<number> {
    this.live(t);
    return (await this.rt.read(t.buffer, 1))[0]!;
  }

  release(...ts: readonly (GpuTensor | null | undefined)[]): void {
    for (const t of ts) {
      if (!t) continue;
      this.live(t);
      t.released = true;
      this.rt.pool.release(t.buffer);
    }
  }

  grid(g: QuantGrid<Floats>): GridOf<GpuTensor> {
    if (g.zero.length !== g.scale.length) throw new Error(`grid: ${g.scale.length} scales but ${g.zero.length} zero points`);
    if (g.group !== undefined) throw new Error('grid: per-group scales are not implemented in the WebGPU kernels');
    return {
      scale: this.upload({ shape: [g.scale.length], data: g.scale }),
      zero: this.upload({ shape: [g.zero.length], data: Float32Array.from(g.zero) }),
      qmin: g.qmin,
      qmax: g.qmax,
    };
  }

  releaseGrid(g: GridOf<GpuTensor>): void {
    this.release(g.scale, g.zero);
  }

  flush(): void {
    this.rt.flush();
  }

  private live(t: GpuTensor): void {
    if (t.released) throw new Error(`webgpu: tensor ${fmt(t.shape)} used after release`);
  }

  private map(spec: MapSpec, n: number, values: Readonly<Record<string, number>>, buffers: readonly GPUBuffer[]): void {
    let k = this.mapKernels.get(spec);
    if (!k) this.mapKernels.set(spec, (k = mapKernel(spec)));
    runMap(this.rt, k, n, values, buffers);
  }
  private readonly mapKernels = new WeakMap<MapSpec, ReturnType<typeof mapKernel>>();

  private copyOf(t: GpuTensor): GpuTensor {
    const out = this.alloc(t.shape);
    this.rt.copy(t.buffer, out.buffer, t.size * 4);
    return out;
  }

  /** Elements per scale: the whole tensor, or a slice along axis 0 (reference/quant-grid.ts). */
  private gridRun(x: GpuTensor, g: GridOf<GpuTensor>, op: string): number {
    const channels = g.scale.size;
    if (g.zero.size !== channels) throw new Error(`${op}: ${channels} scales but ${g.zero.size} zero points`);
    if (channels === 1) return Math.max(x.size, 1);
    if (x.shape[0] !== channels) throw new Error(`${op}: ${channels} scales do not match axis 0 of ${fmt(x.shape)}`);
    return x.size / channels;
  }

  // ---- linear ------------------------------------------------------------------------------

  private gemm(a: GpuTensor, b: GpuTensor, bias: GpuTensor | null, M: number, N: number, K: number, transA: boolean, transB: boolean, outShape: readonly number[]): GpuTensor {
    if (bias && bias.size !== N) throw new Error(`matmul: bias has ${bias.size} values for ${N} columns`);
    const out = this.alloc(outShape);
    this.lastGemmPlan = runGemm(this.rt, matmulSpec(transA, transB, bias !== null), { M, N, K, G: 1 }, {}, [a.buffer, b.buffer, bias?.buffer ?? this.dummy, out.buffer], this.options.gemm);
    return out;
  }

  matmul(a: GpuTensor, b: GpuTensor, o: MatmulOptions<GpuTensor> = {}): GpuTensor {
    const [ar, ac] = a.shape;
    const [br, bc] = b.shape;
    if (a.shape.length !== 2 || b.shape.length !== 2 || ar === undefined || ac === undefined || br === undefined || bc === undefined) throw new Error(`matmul: expected matrices, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
    const [M, K] = o.transA ? [ac, ar] : [ar, ac];
    const [K2, N] = o.transB ? [bc, br] : [br, bc];
    if (K !== K2) throw new Error(`matmul: inner dimensions ${K} and ${K2} differ`);
    return this.gemm(a, b, o.bias ?? null, M, N, K, !!o.transA, !!o.transB, [M, N]);
  }

  gemmForward(x: GpuTensor, w: GpuTensor, b: GpuTensor | null): GpuTensor {
    const [rows, inF] = x.shape;
    const [outF, wIn] = w.shape;
    if (x.shape.length !== 2 || w.shape.length !== 2 || rows === undefined || inF === undefined || outF === undefined) throw new Error(`gemm: expected matrices, got ${fmt(x.shape)} and ${fmt(w.shape)}`);
    if (wIn !== inF) throw new Error(`gemm: x has ${inF} features, W ${fmt(w.shape)} expects ${wIn}`);
    return this.gemm(x, w, b, rows, outF, inF, false, true, [rows, outF]);
  }

  gemmBackward(x: GpuTensor, w: GpuTensor, dy: GpuTensor): LinearGrads<GpuTensor> {
    const [rows, inF] = x.shape as [number, number];
    const [outF] = w.shape as [number];
    if (dy.size !== rows * outF) throw new Error(`gemm backward: dy is ${fmt(dy.shape)}, expected [${rows}, ${outF}]`);
    return {
      dx: this.gemm(dy, w, null, rows, inF, outF, false, false, x.shape),
      dw: this.gemm(dy, x, null, outF, inF, rows, true, false, w.shape),
      db: this.channelSum(dy, outF, rows, 1),
    };
  }

  private matmulDims(x: GpuTensor, w: GpuTensor): [number, number, number] {
    const [K, N] = w.shape;
    if (w.shape.length !== 2 || K === undefined || N === undefined) throw new Error(`matmul weight: expected a matrix, got ${fmt(w.shape)}`);
    if (x.shape[x.shape.length - 1] !== K) throw new Error(`matmul: x ${fmt(x.shape)} does not end in K = ${K}`);
    return [x.size / K, N, K];
  }

  matmulForward(x: GpuTensor, w: GpuTensor): GpuTensor {
    const [M, N, K] = this.matmulDims(x, w);
    return this.gemm(x, w, null, M, N, K, false, false, [...x.shape.slice(0, -1), N]);
  }

  matmulBackward(x: GpuTensor, w: GpuTensor, dy: GpuTensor): { dx: GpuTensor; dw: GpuTensor } {
    const [M, N, K] = this.matmulDims(x, w);
    if (dy.size !== M * N) throw new Error(`matmul backward: dy is ${fmt(dy.shape)}, expected ${M}×${N} values`);
    return { dx: this.gemm(dy, w, null, M, K, N, false, true, x.shape), dw: this.gemm(x, dy, null, K, N, M, true, false, w.shape) };
  }

  // ---- convolution -------------------------------------------------------------------------

  private convPath(g: ConvGeometry, o: ConvOptions<GpuTensor>): 'gemm' | 'depthwise' {
    const algo = o.algorithm ?? 'auto';
    if (algo === 'depthwise' && g.cg !== 1) throw new Error(`conv2d: the depthwise kernel needs one input channel per group, got ${g.cg}`);
    return algo === 'gemm' ? 'gemm' : algo === 'depthwise' || isDepthwise(g) ? 'depthwise' : 'gemm';
  }

  /** The conv parameters, with the grid's when the weight is read through soft rounding. */
  private convValues(g: ConvGeometry, a: Conv2dAttrs, w: TensorLike & { size: number }, soft?: SoftRounding<GpuTensor>): Record<string, number> {
    const v = convValues(g, a);
    if (soft) {
      if (soft.v.size !== w.size) throw new Error(`adaround: V ${fmt(soft.v.shape)} does not match the weight ${fmt(w.shape)}`);
      const channels = soft.grid.scale.size;
      if (channels !== 1 && channels !== g.m) throw new Error(`adaround: ${channels} scales do not match axis 0 of ${fmt(w.shape)}`);
      Object.assign(v, { qrun: w.size / channels, qmin: soft.grid.qmin, qmax: soft.grid.qmax });
    }
    return v;
  }

  private softBuffers(soft: SoftRounding<GpuTensor> | undefined): GPUBuffer[] {
    return soft ? [soft.v.buffer, soft.grid.scale.buffer, soft.grid.zero.buffer] : [];
  }

  conv2dForward(x: GpuTensor, w: GpuTensor, b: GpuTensor | null, a: Conv2dAttrs, o: ConvOptions<GpuTensor> = {}): GpuTensor {
    const g = convGeometry(x.shape, w.shape, a);
    if (b && b.size !== g.m) throw new Error(`conv2d: bias has ${b.size} values for ${g.m} output channels`);
    const y = this.alloc([g.n, g.m, g.oh, g.ow]);
    const soft = o.adaround;
    const values = this.convValues(g, a, w, soft);
    if (this.convPath(g, o) === 'depthwise') {
      // a depthwise weight is tiny: soft-round it once rather than once per multiply-add
      const ws = soft ? this.adaroundForward(w, soft.v, soft.grid) : w;
      this.map(depthwiseForwardSpec(b !== null), y.size, values, [x.buffer, ws.buffer, b?.buffer ?? this.dummy, y.buffer]);
      if (ws !== w) this.release(ws);
      return y;
    }
    const dims = { M: g.mg, N: g.n * g.oh * g.ow, K: g.cg * g.kh * g.kw, G: g.group };
    this.lastGemmPlan = runGemm(this.rt, convForwardSpec(b !== null, !!soft), dims, values, [x.buffer, w.buffer, b?.buffer ?? this.dummy, y.buffer, ...this.softBuffers(soft)], this.options.gemm);
    return y;
  }

  conv2dInputGrad(w: GpuTensor, dy: GpuTensor, xShape: readonly number[], a: Conv2dAttrs, o: ConvOptions<GpuTensor> = {}): GpuTensor {
    const g = convGeometry(xShape, w.shape, a);
    this.checkDy(g, dy);
    const dx = this.alloc(xShape);
    const soft = o.adaround;
    const values = this.convValues(g, a, w, soft);
    if (this.convPath(g, o) === 'depthwise') {
      const ws = soft ? this.adaroundForward(w, soft.v, soft.grid) : w;
      this.map(DEPTHWISE_INPUT_GRAD, dx.size, values, [dy.buffer, ws.buffer, dx.buffer]);
      if (ws !== w) this.release(ws);
      return dx;
    }
    const dims = { M: g.cg, N: g.n * g.h * g.w, K: g.mg * g.kh * g.kw, G: g.group };
    this.lastGemmPlan = runGemm(this.rt, convInputGradSpec(!!soft), dims, values, [dy.buffer, w.buffer, dx.buffer, ...this.softBuffers(soft)], this.options.gemm);
    return dx;
  }

  conv2dWeightGrad(x: GpuTensor, w: GpuTensor, dy: GpuTensor, a: Conv2dAttrs, o: ConvOptions<GpuTensor> = {}): GpuTensor {
    const g = convGeometry(x.shape, w.shape, a);
    this.checkDy(g, dy);
    const dw = this.alloc(w.shape);
    const soft = o.adaround;
    const values = this.convValues(g, a, w, soft);
    const softIn = soft ? [w.buffer, ...this.softBuffers(soft)] : [];
    if (this.convPath(g, o) === 'depthwise') {
      runReduce(this.rt, depthwiseWeightGradSpec(!!soft), g.m * g.kh * g.kw, g.n * g.oh * g.ow, values, [x.buffer, dy.buffer, ...softIn], dw.buffer, this.noPartial);
      return dw;
    }
    const dims = { M: g.mg, N: g.cg * g.kh * g.kw, K: g.n * g.oh * g.ow, G: g.group };
    this.lastGemmPlan = runGemm(this.rt, convWeightGradSpec(!!soft), dims, values, [x.buffer, dy.buffer, dw.buffer, ...softIn], this.options.gemm);
    return dw;
  }

  conv2dBiasGrad(dy: GpuTensor): GpuTensor {
    const [n, m] = dy.shape;
    if (n === undefined || m === undefined) throw new Error(`conv2d bias gradient: dy ${fmt(dy.shape)} has no channel axis`);
    return this.channelSum(dy, m, n, dy.size / (n * m));
  }

  conv2dBackward(x: GpuTensor, w: GpuTensor, dy: GpuTensor, a: Conv2dAttrs, o: ConvOptions<GpuTensor> = {}): ConvGrads<GpuTensor> {
    return { dx: this.conv2dInputGrad(w, dy, x.shape, a, o), dw: this.conv2dWeightGrad(x, w, dy, a, o), db: this.conv2dBiasGrad(dy) };
  }

  private checkDy(g: ConvGeometry, dy: GpuTensor): void {
    const [dn, dm, doh, dow] = dy.shape;
    if (dy.shape.length !== 4 || dn !== g.n || dm !== g.m || doh !== g.oh || dow !== g.ow) {
      throw new Error(`conv2d backward: dy is ${fmt(dy.shape)}, expected [${[g.n, g.m, g.oh, g.ow].join(', ')}]`);
    }
  }

  /** out[c] = Σ_{b, i} t[b, c, i] for t viewed as [outer, C, inner]. */
  private channelSum(t: GpuTensor, C: number, outer: number, inner: number): GpuTensor {
    const out = this.alloc([C]);
    runReduce(this.rt, CHANNEL_SUM, C, outer * inner, { inner }, [t.buffer], out.buffer, this.noPartial);
    return out;
  }

  // ---- element-wise ------------------------------------------------------------------------

  activationForward(x: GpuTensor, act: Activation): GpuTensor {
    const y = this.alloc(x.shape);
    this.map(activationForwardSpec(act), x.size, activationParams(act), [x.buffer, y.buffer]);
    return y;
  }

  activationBackward(x: GpuTensor, dy: GpuTensor, act: Activation): GpuTensor {
    sameShape(x, dy, act.kind);
    const dx = this.alloc(x.shape);
    this.map(activationBackwardSpec(act), x.size, activationParams(act), [x.buffer, dy.buffer, dx.buffer]);
    return dx;
  }

  addForward(a: GpuTensor, b: GpuTensor, act: Activation = IDENTITY): GpuTensor {
    sameShape(a, b, 'add');
    const y = this.alloc(a.shape);
    this.map(addForwardSpec(act), a.size, activationParams(act), [a.buffer, b.buffer, y.buffer]);
    return y;
  }

  addBackward(dy: GpuTensor, fused?: { a: GpuTensor; b: GpuTensor; act: Activation }): { da: GpuTensor; db: GpuTensor } {
    if (!fused || fused.act.kind === 'identity') return { da: this.copyOf(dy), db: this.copyOf(dy) };
    sameShape(fused.a, fused.b, 'add');
    sameShape(fused.a, dy, 'add');
    const da = this.alloc(dy.shape);
    this.map(addBackwardSpec(fused.act), dy.size, activationParams(fused.act), [fused.a.buffer, fused.b.buffer, dy.buffer, da.buffer]);
    return { da, db: this.copyOf(da) };
  }

  /** reference/elementwise.ts `broadcastRun`: b equals a on leading axes and is 1 on the rest. */
  private broadcastRun(a: GpuTensor, b: GpuTensor): number {
    const bad = () => new Error(`mul: cannot broadcast ${fmt(b.shape)} over ${fmt(a.shape)}; only trailing 1s are supported`);
    if (a.shape.length !== b.shape.length) throw bad();
    let k = 0;
    while (k < a.shape.length && b.shape[k] === a.shape[k]) k++;
    for (let i = k; i < b.shape.length; i++) if (b.shape[i] !== 1) throw bad();
    return b.size === 0 ? 1 : a.size / b.size;
  }

  mulForward(a: GpuTensor, b: GpuTensor): GpuTensor {
    const run = this.broadcastRun(a, b);
    const y = this.alloc(a.shape);
    this.map(MUL_FORWARD, a.size, { run }, [a.buffer, b.buffer, y.buffer]);
    return y;
  }

  mulBackward(a: GpuTensor, b: GpuTensor, dy: GpuTensor): { da: GpuTensor; db: GpuTensor } {
    const run = this.broadcastRun(a, b);
    sameShape(a, dy, 'mul');
    const da = this.alloc(a.shape);
    const db = this.alloc(b.shape);
    runReduce(this.rt, MUL_BACKWARD, b.size, run, {}, [a.buffer, b.buffer, dy.buffer, da.buffer], db.buffer, this.noPartial);
    return { da, db };
  }

  // ---- pooling -----------------------------------------------------------------------------

  private planes(x: GpuTensor, op: string): [number, number, number, number] {
    const [n, c, h, w] = x.shape;
    if (x.shape.length !== 4 || n === undefined || c === undefined || h === undefined || w === undefined) throw new Error(`${op}: expected an NCHW tensor, got shape ${fmt(x.shape)}`);
    return [n, c, h, w];
  }

  globalAveragePoolForward(x: GpuTensor): GpuTensor {
    const [n, c, h, w] = this.planes(x, 'globalAveragePool');
    const y = this.alloc([n, c, 1, 1]);
    runReduce(this.rt, GAP_FORWARD, n * c, h * w, {}, [x.buffer], y.buffer, this.noPartial);
    return y;
  }

  globalAveragePoolBackward(x: GpuTensor, dy: GpuTensor): GpuTensor {
    const [n, c, h, w] = this.planes(x, 'globalAveragePool');
    if (dy.size !== n * c) throw new Error(`globalAveragePool backward: dy is ${fmt(dy.shape)}, expected [${n}, ${c}, 1, 1]`);
    const dx = this.alloc(x.shape);
    this.map(GAP_BACKWARD, dx.size, { plane: h * w }, [dy.buffer, dx.buffer]);
    return dx;
  }

  // ---- quantization ------------------------------------------------------------------------

  private gridValues(x: GpuTensor, g: GridOf<GpuTensor>, op: string) {
    return { qrun: this.gridRun(x, g, op), qmin: g.qmin, qmax: g.qmax };
  }

  fakeQuantForward(x: GpuTensor, g: GridOf<GpuTensor>): GpuTensor {
    const y = this.alloc(x.shape);
    this.map(FAKE_QUANT_FORWARD, x.size, this.gridValues(x, g, 'fakeQuant'), [x.buffer, g.scale.buffer, g.zero.buffer, y.buffer]);
    return y;
  }

  fakeQuantBackward(x: GpuTensor, g: GridOf<GpuTensor>, dy: GpuTensor, gradScale = 1): { dx: GpuTensor; dscale: GpuTensor } {
    sameShape(x, dy, 'fakeQuant');
    const run = this.gridRun(x, g, 'fakeQuant');
    const dx = this.alloc(x.shape);
    const dscale = this.alloc([g.scale.size]);
    runReduce(this.rt, FAKE_QUANT_BACKWARD, g.scale.size, x.size === 0 ? 0 : run, { qmin: g.qmin, qmax: g.qmax, gradScale }, [x.buffer, g.scale.buffer, g.zero.buffer, dy.buffer, dx.buffer], dscale.buffer, this.noPartial);
    return { dx, dscale };
  }

  adaroundForward(w: GpuTensor, v: GpuTensor, g: GridOf<GpuTensor>): GpuTensor {
    sameShape(w, v, 'adaround');
    const y = this.alloc(w.shape);
    this.map(ADAROUND_FORWARD, w.size, this.gridValues(w, g, 'adaround'), [w.buffer, v.buffer, g.scale.buffer, g.zero.buffer, y.buffer]);
    return y;
  }

  adaroundHard(w: GpuTensor, v: GpuTensor, g: GridOf<GpuTensor>): GpuTensor {
    sameShape(w, v, 'adaround');
    const y = this.alloc(w.shape);
    this.map(ADAROUND_HARD, w.size, this.gridValues(w, g, 'adaround'), [w.buffer, v.buffer, g.scale.buffer, g.zero.buffer, y.buffer]);
    return y;
  }

  adaroundBackward(w: GpuTensor, v: GpuTensor, g: GridOf<GpuTensor>, dy: GpuTensor): GpuTensor {
    sameShape(w, v, 'adaround');
    sameShape(w, dy, 'adaround');
    const dv = this.alloc(w.shape);
    this.map(ADAROUND_BACKWARD, w.size, this.gridValues(w, g, 'adaround'), [w.buffer, v.buffer, g.scale.buffer, g.zero.buffer, dy.buffer, dv.buffer]);
    return dv;
  }

  adaroundRegForward(v: GpuTensor, beta: number): GpuTensor {
    const out = this.alloc([1]);
    runReduce(this.rt, ADAROUND_REG_FORWARD, 1, v.size, { beta, qmin: 0, qmax: 0 }, [v.buffer], out.buffer, this.noPartial);
    return out;
  }

  adaroundRegBackward(v: GpuTensor, beta: number, dLoss = 1, addTo: GpuTensor | null = null): GpuTensor {
    if (addTo) sameShape(v, addTo, 'adaround regulariser');
    const dv = this.alloc(v.shape);
    this.map(ADAROUND_REG_BACKWARD, v.size, { beta, dLoss, hasAdd: addTo ? 1 : 0, qmin: 0, qmax: 0 }, [v.buffer, addTo?.buffer ?? this.dummy, dv.buffer]);
    return dv;
  }

  // ---- losses ------------------------------------------------------------------------------

  private loss(kind: 'mse' | 'lp', pred: GpuTensor, target: GpuTensor, pw: number, act: Activation, grad: { dLoss: number } | null): { loss: GpuTensor; grad: GpuTensor | null } {
    sameShape(pred, target, kind === 'mse' ? 'mse' : 'lpLoss');
    const n = pred.size;
    const loss = this.alloc([1]);
    const g = grad ? this.alloc(pred.shape) : null;
    const values = { ...activationParams(act), pw, gscale: grad ? (pw * grad.dLoss) / n : 0, invN: 1 / n, writeGrad: g ? 1 : 0 };
    runReduce(this.rt, lossSpec(kind, act), 1, n, values, [pred.buffer, target.buffer, g?.buffer ?? this.absentOut], loss.buffer, this.noPartial);
    return { loss, grad: g };
  }

  private lossGrad(kind: 'mse' | 'lp', pred: GpuTensor, target: GpuTensor, pw: number, act: Activation, dLoss: number): GpuTensor {
    sameShape(pred, target, kind === 'mse' ? 'mse' : 'lpLoss');
    const g = this.alloc(pred.shape);
    const values = { ...activationParams(act), pw, gscale: (pw * dLoss) / pred.size, invN: 1 / pred.size, writeGrad: 1 };
    this.map(lossGradSpec(kind, act), pred.size, values, [pred.buffer, target.buffer, g.buffer]);
    return g;
  }

  mseForward(pred: GpuTensor, target: GpuTensor, act: Activation = IDENTITY): GpuTensor {
    return this.loss('mse', pred, target, 2, act, null).loss;
  }

  mseBackward(pred: GpuTensor, target: GpuTensor, dLoss = 1, act: Activation = IDENTITY): GpuTensor {
    return this.lossGrad('mse', pred, target, 2, act, dLoss);
  }

  mseLossAndGrad(pred: GpuTensor, target: GpuTensor, o: { act?: Activation; dLoss?: number } = {}): { loss: GpuTensor; grad: GpuTensor } {
    const r = this.loss('mse', pred, target, 2, o.act ?? IDENTITY, { dLoss: o.dLoss ?? 1 });
    return { loss: r.loss, grad: r.grad! };
  }

  lpLossForward(pred: GpuTensor, target: GpuTensor, p = 2.4): GpuTensor {
    return this.loss('lp', pred, target, p, IDENTITY, null).loss;
  }

  lpLossBackward(pred: GpuTensor, target: GpuTensor, p = 2.4, dLoss = 1): GpuTensor {
    return this.lossGrad('lp', pred, target, p, IDENTITY, dLoss);
  }

  // ---- optimiser ---------------------------------------------------------------------------

  adamStep(s: AdamState<GpuTensor>, grad: GpuTensor, h: AdamHyper): void {
    sameShape(s.param, grad, 'adam');
    sameShape(s.param, s.m, 'adam');
    sameShape(s.param, s.v, 'adam');
    const b1 = h.beta1 ?? 0.9;
    const b2 = h.beta2 ?? 0.999;
    this.map(ADAM_STEP, grad.size, { lr: h.lr, b1, b2, eps: h.eps ?? 1e-8, c1: 1 - b1 ** h.t, c2: 1 - b2 ** h.t }, [grad.buffer, s.param.buffer, s.m.buffer, s.v.buffer]);
  }
}

export type WebGpuBackendResult =
  | { readonly ok: true; readonly backend: WebGpuBackend; readonly adapter: WebGpuAdapterReport }
  | { readonly ok: false; readonly reason: NoWebGpuReason; readonly message: string; readonly adapter?: WebGpuAdapterReport };

/**
 * The WebGPU backend, or why there is none: callers keep the CPU backend on `ok: false`. By
 * default a software adapter counts as none (see `AcquireOptions.allowSoftwareAdapter`).
 */
export async function createWebGpuBackend(o: AcquireOptions & WebGpuBackendOptions = {}): Promise<WebGpuBackendResult> {
  const acq = await acquireWebGpu(o);
  if (!acq.ok) return acq;
  return { ok: true, backend: new WebGpuBackend(acq.device, acq.adapter, o), adapter: acq.adapter };
}
