/*
 * Loader and TypeScript face of the WebAssembly SGEMM kernel (assembly/gemm.ts).
 *
 * Runs in Node and in a browser worker (no DOM). Each Gemm instance owns one growable
 * WebAssembly.Memory laid out as
 *
 *   [ module statics | packing workspace (fixed) | arena: caller buffers and copy scratch → ]
 *
 * The arena is a bump allocator: `alloc` hands out 64-byte-aligned float buffers for the
 * zero-copy `sgemmPtr` path, `reset` frees all of them at once. The copying `sgemm` keeps its own
 * A/B/C scratch in the arena and reuses it, so once shapes are stable a call allocates nothing in
 * wasm memory and creates no JS objects beyond what the caller's arrays force (see copyIn).
 *
 * Two builds of the same kernel exist: plain SIMD128 and relaxed SIMD (fused multiply-add).
 * createGemm() takes the relaxed one when the engine validates a relaxed-SIMD instruction
 * (Chromium: yes; Node 20: only with --experimental-wasm-relaxed-simd).
 *
 * Threads: with `threads` > 1 the instance uses the shared-memory build of the same kernel, over a
 * shared WebAssembly.Memory that threads − 1 workers instantiate too (pool.ts). Large GEMMs and
 * every convolution pass are then split across the threads by output tile, each thread running
 * the same code on a disjoint part of the output: results are bitwise identical for any thread
 * count. The default is min(hardware threads, 4) where shared memory and workers exist (Node; a
 * cross-origin-isolated page or worker), else 1. Four because two cores already scale by ~1.8×
 * and the GEMM's per-thread packing buffers (3.2 MiB each) and the workers' start-up are not free.
 * Pass `threads: 1` for no workers at all. Call `dispose()` when done with an instance that has
 * threads (an instance that is garbage-collected stops its workers too, eventually).
 */

import { ThreadPool, hardwareThreads, threadsSupported } from './pool';

export type GemmVariant = 'simd' | 'relaxed';

/** Compile-time blocking of the loaded kernel, for reports and tests. */
export interface GemmBlocking {
  /** micro-tile rows × columns */
  mr: number;
  nr: number;
  /** packed block sizes: MC rows of A, KC depth, NC columns of B */
  mc: number;
  kc: number;
  nc: number;
}

/** The passes of a convolution that `conv2dPtr` runs. */
export type ConvPass = 'forward' | 'inputGrad' | 'weightGrad';

/** Shapes and attributes of one 2-D NCHW convolution (ONNX Conv). */
export interface ConvShape {
  /** x: [B, C, H, W] */
  readonly input: readonly [number, number, number, number];
  /** w: [K, C / group, kh, kw] */
  readonly weight: readonly [number, number, number, number];
  readonly strides: readonly [number, number];
  /** [top, left, bottom, right] */
  readonly pads: readonly [number, number, number, number];
  readonly dilations: readonly [number, number];
  readonly group: number;
}

/**
 * Byte offsets (from `alloc`) of a convolution's tensors, NCHW and dense. Which are read depends
 * on the pass: forward reads x, w and bias (0 or absent: none) and writes out = y [B, K, Ho, Wo];
 * inputGrad reads w and dy and writes out = dx [B, C, H, W]; weightGrad reads x and dy and writes
 * out = dw [K, C / group, kh, kw]. `out` is only written (its old contents are ignored) and must
 * not overlap the inputs.
 */
export interface ConvPointers {
  readonly x?: number;
  readonly w?: number;
  readonly bias?: number;
  readonly dy?: number;
  readonly out: number;
}

export interface Gemm {
  readonly variant: GemmVariant;
  readonly blocking: GemmBlocking;
  /** Threads the GEMMs and convolutions run on (1: the calling thread only). */
  readonly threads: number;
  /** Incremented by every `reset`: buffers allocated under an older value are gone. */
  readonly epoch: number;
  /** The instance's memory. Its `buffer` is replaced when it grows: take views after alloc. */
  readonly memory: WebAssembly.Memory;
  /**
   * C = alpha·op(A)·op(B) + beta·C on dense row-major arrays, copied in and out of wasm memory.
   * op(A) is M×K (A stored K×M when transA), op(B) is K×N (B stored N×K when transB), C is M×N.
   * With beta = 0, C is only written (its old contents, NaN included, are ignored).
   */
  sgemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: Float32Array, B: Float32Array, beta: number, C: Float32Array,
  ): void;
  /**
   * Zero-copy form for hot loops: A, B, C are byte offsets returned by `alloc` (or inside such a
   * buffer), lda/ldb/ldc row strides in elements of the matrices as stored, so sub-matrices work.
   */
  sgemmPtr(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: number, lda: number, B: number, ldb: number, beta: number, C: number, ldc: number,
  ): void;
  /**
   * im2col of an NCHW tensor at byte offset `x` ([B, C, H, W]) into `col` ([C·kh·kw, B·Ho·Wo]),
   * both in this instance's memory: the layout a convolution's GEMM reads.
   */
  im2colPtr(
    x: number, shape: readonly [number, number, number, number], kernel: readonly [number, number],
    strides: readonly [number, number], padsTopLeft: readonly [number, number], dilations: readonly [number, number],
    out: readonly [number, number], col: number,
  ): void;
  /**
   * One pass of a 2-D convolution on tensors in this instance's memory, split across the
   * instance's threads. Dense and grouped convolutions run as im2col + GEMM per chunk of output
   * pixels (col2im for the input gradient); depthwise ones (group = C = K) run a direct kernel.
   * Scratch comes from the arena (allocated on first use after a `reset`).
   */
  conv2dPtr(pass: ConvPass, shape: ConvShape, ptrs: ConvPointers): void;
  /** Output height and width of a convolution. */
  convOutputSize(shape: ConvShape): [number, number];
  /** y = min(max(y, lo), hi) in place on `n` floats at byte offset `ptr` (ReLU: 0, +∞), on the threads. */
  clampPtr(ptr: number, n: number, lo: number, hi: number): void;
  /** dy = 0 wherever the clamp's output y is not strictly inside (lo, hi), in place: its gradient. */
  clampGradPtr(dy: number, y: number, n: number, lo: number, hi: number): void;
  /** Stops the worker threads (if any). The instance must not be used afterwards. */
  dispose(): void;
  /** Reserves `length` floats in wasm memory; returns the byte offset (64-byte aligned). */
  alloc(length: number): number;
  /** A Float32Array view of `length` floats at byte offset `ptr` (invalid after the memory grows). */
  f32(ptr: number, length: number): Float32Array;
  /** Frees every `alloc` buffer and the copy scratch; previously returned offsets become invalid. */
  reset(): void;
}

interface KernelExports {
  sgemmPart(
    transA: number, transB: number, m: number, n: number, k: number,
    alpha: number, a: number, lda: number, b: number, ldb: number,
    beta: number, c: number, ldc: number, work: number, workStride: number, tid: number, nthreads: number,
  ): void;
  convScratchBytes(params: number): number;
  dwScratchBytes(params: number): number;
  convForward(params: number, tid: number, nthreads: number): void;
  convInputGrad(params: number, tid: number, nthreads: number): void;
  convWeightGrad(params: number, tid: number, nthreads: number): void;
  dwForward(params: number, tid: number, nthreads: number): void;
  dwInputGrad(params: number, tid: number, nthreads: number): void;
  dwWeightGrad(params: number, tid: number, nthreads: number): void;
  clampInPlace(p: number, n: number, lo: number, hi: number, tid: number, nthreads: number): void;
  clampGradInPlace(dy: number, y: number, n: number, lo: number, hi: number, tid: number, nthreads: number): void;
  sgemm(
    transA: number, transB: number, m: number, n: number, k: number,
    alpha: number, a: number, lda: number, b: number, ldb: number,
    beta: number, c: number, ldc: number, work: number,
  ): void;
  im2col(
    x: number, b: number, c: number, h: number, w: number, kh: number, kw: number,
    sh: number, sw: number, pt: number, pl: number, dh: number, dw: number, ho: number, wo: number, col: number,
  ): void;
  heapBase(): number;
  WORKSPACE_BYTES: WebAssembly.Global;
  MR: WebAssembly.Global;
  NR: WebAssembly.Global;
  MC: WebAssembly.Global;
  KC: WebAssembly.Global;
  NC: WebAssembly.Global;
}

/* ---------------------------------------------------------------- feature probes */

/** A module with one function `() -> v128` whose body is three v128.const then `op`. */
function probeModule(op: number[]): Uint8Array<ArrayBuffer> {
  const v128Const = [0xfd, 0x0c, ...new Array<number>(16).fill(0)];
  const body = [0x00 /* no locals */, ...v128Const, ...v128Const, ...v128Const, ...op, 0x0b /* end */];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type section: () -> v128
    0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
    0x0a, body.length + 2, 0x01, body.length, ...body, // code section
  ]);
}

// f32x4.relaxed_madd is 0xfd 0x105 (LEB128 0x85 0x02); the plain probe uses f32x4.add (0xfd 0xe4 0x01)
// after dropping one operand, so both probes share the same three-constant body.
const RELAXED_PROBE = probeModule([0xfd, 0x85, 0x02]);
const SIMD_PROBE = probeModule([0x1a /* drop */, 0xfd, 0xe4, 0x01]);

export function simdSupported(): boolean {
  return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
}

export function relaxedSimdSupported(): boolean {
  return typeof WebAssembly === 'object' && WebAssembly.validate(RELAXED_PROBE);
}

/* ---------------------------------------------------------------- loading */

// Literal `new URL('./…', import.meta.url)` expressions: Vite recognises exactly this form, emits
// the .wasm files as assets and rewrites the URLs; in Node they are file: URLs next to this module.
function wasmUrl(variant: GemmVariant, shared: boolean): URL {
  if (shared) {
    return variant === 'relaxed'
      ? new URL('./build/gemm-relaxed-mt.wasm', import.meta.url)
      : new URL('./build/gemm-simd-mt.wasm', import.meta.url);
  }
  return variant === 'relaxed'
    ? new URL('./build/gemm-relaxed.wasm', import.meta.url)
    : new URL('./build/gemm-simd.wasm', import.meta.url);
}

async function readFileUrl(url: URL): Promise<Uint8Array<ArrayBuffer>> {
  // A non-literal specifier keeps bundlers from trying to resolve node:fs for the browser build.
  const fsModule = 'node:fs/promises';
  const fs = (await import(/* @vite-ignore */ fsModule)) as typeof import('node:fs/promises');
  try {
    return await fs.readFile(url);
  } catch (err) {
    throw new Error(`gemm: cannot read ${url.href} (run \`npm run build:wasm\`): ${(err as Error).message}`);
  }
}

async function compileFromUrl(url: URL): Promise<WebAssembly.Module> {
  if (url.protocol === 'file:') return WebAssembly.compile(await readFileUrl(url));
  if (typeof WebAssembly.compileStreaming === 'function') {
    try {
      return await WebAssembly.compileStreaming(fetch(url));
    } catch {
      // Typically a server that does not send `application/wasm`: fall back to a buffered compile.
    }
  }
  const response = await fetch(url);
  if (!response.ok) throw new Error(`gemm: fetching ${url.href} failed: ${response.status} ${response.statusText}`);
  return WebAssembly.compile(await response.arrayBuffer());
}

/** Compiled modules are shared by every instance in this realm (a worker compiles once). */
const modules = new Map<string, Promise<WebAssembly.Module>>();

function compiledModule(variant: GemmVariant, shared: boolean): Promise<WebAssembly.Module> {
  const key = `${variant}${shared ? '-mt' : ''}`;
  let module = modules.get(key);
  if (!module) {
    module = compileFromUrl(wasmUrl(variant, shared));
    module.catch(() => modules.delete(key)); // let a later call retry
    modules.set(key, module);
  }
  return module;
}

/* ---------------------------------------------------------------- instance */

const PAGE = 65536;
const ALIGN = 64; // a cache line: buffers never share one, and v128 loads never straddle two needlessly
/** Arena bytes reserved up front, so small problems never grow the memory. */
const INITIAL_ARENA_BYTES = 4 << 20;
const INITIAL_PAGES = 64;

const alignUp = (x: number, a: number): number => Math.ceil(x / a) * a;

/** The most threads `threads: 'auto'` picks. */
export const AUTO_THREADS_MAX = 4;

export interface CreateGemmOptions {
  /** Force a build; default: 'relaxed' when the engine supports relaxed SIMD, else 'simd'. */
  variant?: GemmVariant;
  /**
   * Threads for GEMMs and convolutions: a number (1 = no workers), or 'auto' (the default):
   * min(hardware threads, AUTO_THREADS_MAX) where threads are supported (Node; a browser page or
   * worker with crossOriginIsolated), else 1. Asking for more than one thread where they are not
   * supported gives one. Results do not depend on the thread count.
   */
  threads?: number | 'auto';
  /** Output pixels (GEMM columns) per convolution chunk; a tuning knob, default CONV_CHUNK_COLUMNS. */
  convChunkColumns?: number;
  /** GEMMs and convolutions of fewer flops run on the calling thread alone (waking the workers
   * costs more); default PARALLEL_MIN_FLOPS. Tests set 0 to send everything through the pool. */
  parallelMinFlops?: number;
}

/** Default GEMM columns per convolution chunk (see assembly/conv.ts; measured in bench/conv.ts). */
export const CONV_CHUNK_COLUMNS = 512;

/** Shared memories must declare a maximum; the -mt builds declare 65536 pages (4 GiB). */
const SHARED_MAX_PAGES = [65536, 32768, 16384];

function sharedMemory(): WebAssembly.Memory {
  let last: unknown;
  for (const maximum of SHARED_MAX_PAGES) {
    try {
      return new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum, shared: true });
    } catch (e) {
      last = e; // 32-bit hosts may refuse to reserve 4 GiB
    }
  }
  throw last;
}

/** Stops an instance's workers when the instance is garbage-collected without dispose(). */
const poolFinalizer = typeof FinalizationRegistry === 'function' ? new FinalizationRegistry<ThreadPool>((pool) => pool.dispose()) : null;

export async function createGemm(options: CreateGemmOptions = {}): Promise<Gemm> {
  if (!simdSupported()) throw new Error('gemm: this WebAssembly engine has no SIMD128 support');
  const relaxed = relaxedSimdSupported();
  const variant = options.variant ?? (relaxed ? 'relaxed' : 'simd');
  if (variant === 'relaxed' && !relaxed) {
    throw new Error('gemm: relaxed SIMD is not available (Node 20 needs --experimental-wasm-relaxed-simd)');
  }
  const requested = options.threads ?? 'auto';
  if (requested !== 'auto' && !(Number.isInteger(requested) && requested >= 1)) throw new RangeError(`gemm: threads must be 'auto' or an integer ≥ 1, got ${requested}`);
  const chunk = options.convChunkColumns ?? CONV_CHUNK_COLUMNS;
  if (!(Number.isInteger(chunk) && chunk >= 1)) throw new RangeError(`gemm: convChunkColumns must be an integer ≥ 1, got ${chunk}`);
  const supported = threadsSupported();
  const threads = !supported ? 1 : requested === 'auto' ? Math.max(1, Math.min(await hardwareThreads(), AUTO_THREADS_MAX)) : requested;
  const shared = threads > 1;
  const module = await compiledModule(variant, shared);
  // The imported memory must be at least as large as the module's declared minimum (its statics:
  // a few bytes with the stub runtime). Start above that with room for the ~3.2 MiB packing
  // workspace; the constructor grows it to workspace + first arena once the exact sizes are known.
  const memory = shared ? sharedMemory() : new WebAssembly.Memory({ initial: INITIAL_PAGES });
  // Asynchronous instantiation: browsers refuse synchronous instantiation of larger modules on
  // the main thread, and this keeps the door open for that even though the module is small.
  const instance = await WebAssembly.instantiate(module, { env: { memory } });
  const exports = instance.exports as unknown as KernelExports;
  const pool = shared ? await ThreadPool.create(module, memory, instance.exports as Record<string, unknown>, threads, POOL_FUNCTIONS) : null;
  const gemm = new WasmGemm(variant, memory, exports, pool, chunk, options.parallelMinFlops ?? PARALLEL_MIN_FLOPS);
  if (pool) poolFinalizer?.register(gemm, pool, gemm);
  return gemm;
}

/** The exports the pool runs, each taking (…, tid, nthreads). */
const POOL_FUNCTIONS = ['sgemmPart', 'convForward', 'convInputGrad', 'convWeightGrad', 'dwForward', 'dwInputGrad', 'dwWeightGrad', 'clampInPlace', 'clampGradInPlace'] as const;
type PoolFunction = (typeof POOL_FUNCTIONS)[number];
const fnIndex = (name: PoolFunction): number => POOL_FUNCTIONS.indexOf(name);

/** A GEMM or convolution pass of fewer flops (2·M·N·K) runs on the calling thread by default:
 * waking the workers costs tens of microseconds, a 4-Mflop GEMM ~0.1 ms. */
export const PARALLEL_MIN_FLOPS = 1 << 22;

/** u32 words of the convolution parameter block (assembly/params.ts, ConvParams); the last is the
 * work-unit counter the threads share, zeroed before every call. */
const CONV_PARAM_WORDS = 25;

interface Scratch {
  ptr: number; // start of the block (A | B | C)
  bytes: number;
  a: number;
  b: number;
  c: number;
  aLen: number;
  bLen: number;
  cLen: number;
  // views over the current memory.buffer, rebuilt when it grows or the layout changes
  viewA: Float32Array | null;
  viewB: Float32Array | null;
  viewC: Float32Array | null;
}

class WasmGemm implements Gemm {
  readonly blocking: GemmBlocking;
  readonly threads: number;
  epoch = 0;
  /** thread t's packing workspace: work + t·workBytes */
  private readonly work: number;
  private readonly workBytes: number;
  /** the convolution parameter block */
  private readonly params: number;
  private readonly arenaBase: number;
  private top: number;
  private scratch: Scratch | null = null;
  private viewsOf: ArrayBufferLike | null = null;
  /** per-thread convolution scratch in the arena: [ptr, ptr + threads·stride) */
  private convScratch: { ptr: number; stride: number } | null = null;

  constructor(
    readonly variant: GemmVariant,
    readonly memory: WebAssembly.Memory,
    private readonly exports: KernelExports,
    private readonly pool: ThreadPool | null,
    private readonly chunkColumns: number,
    private readonly minParallelFlops: number,
  ) {
    const g = (x: WebAssembly.Global): number => x.value as number;
    this.threads = pool?.size ?? 1;
    this.blocking = { mr: g(this.exports.MR), nr: g(this.exports.NR), mc: g(this.exports.MC), kc: g(this.exports.KC), nc: g(this.exports.NC) };
    this.params = alignUp(this.exports.heapBase(), ALIGN);
    this.work = alignUp(this.params + CONV_PARAM_WORDS * 4, ALIGN);
    this.workBytes = alignUp(g(this.exports.WORKSPACE_BYTES), ALIGN);
    this.arenaBase = alignUp(this.work + this.threads * this.workBytes, ALIGN);
    this.top = this.arenaBase;
    this.ensure(this.arenaBase + INITIAL_ARENA_BYTES);
  }

  dispose(): void {
    if (this.pool) {
      poolFinalizer?.unregister(this);
      this.pool.dispose();
    }
  }

  /* -------------------------------------------------- memory */

  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
  }

  alloc(length: number): number {
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`gemm.alloc: bad length ${length}`);
    const ptr = alignUp(this.top, ALIGN);
    this.ensure(ptr + length * 4);
    this.top = ptr + length * 4;
    return ptr;
  }

  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, length);
  }

  reset(): void {
    this.top = this.arenaBase;
    this.scratch = null;
    this.convScratch = null;
    this.epoch++;
  }

  /** Scratch for the copying API, reused while it is large enough; grown in place when it is the
   * newest arena block, otherwise re-allocated at the top (the old block stays until reset). */
  private scratchFor(aLen: number, bLen: number, cLen: number): Scratch {
    const s = this.scratch;
    if (s && s.aLen === aLen && s.bLen === bLen && s.cLen === cLen) return s;
    const a = 0;
    const b = alignUp(a + aLen * 4, ALIGN);
    const c = alignUp(b + bLen * 4, ALIGN);
    const bytes = c + cLen * 4;
    let ptr: number;
    if (s && bytes <= s.bytes) ptr = s.ptr;
    else if (s && s.ptr + s.bytes === this.top) {
      ptr = s.ptr;
      this.ensure(ptr + bytes);
      this.top = ptr + bytes;
    } else {
      ptr = this.alloc(Math.ceil(bytes / 4));
    }
    const next: Scratch = {
      ptr, bytes: Math.max(bytes, s && s.ptr === ptr ? s.bytes : 0),
      a: ptr + a, b: ptr + b, c: ptr + c, aLen, bLen, cLen,
      viewA: null, viewB: null, viewC: null,
    };
    this.scratch = next;
    return next;
  }

  private views(s: Scratch): { A: Float32Array; B: Float32Array; C: Float32Array } {
    const buffer = this.memory.buffer;
    if (this.viewsOf !== buffer || !s.viewA || !s.viewB || !s.viewC) {
      s.viewA = new Float32Array(buffer, s.a, s.aLen);
      s.viewB = new Float32Array(buffer, s.b, s.bLen);
      s.viewC = new Float32Array(buffer, s.c, s.cLen);
      this.viewsOf = buffer;
    }
    return { A: s.viewA, B: s.viewB, C: s.viewC };
  }

  /* -------------------------------------------------- gemm */

  sgemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: Float32Array, B: Float32Array, beta: number, C: Float32Array,
  ): void {
    checkDims(M, N, K);
    const aLen = M * K, bLen = K * N, cLen = M * N;
    if (A.length < aLen) throw new RangeError(`gemm: A has ${A.length} elements, needs ${aLen} (${M}×${K})`);
    if (B.length < bLen) throw new RangeError(`gemm: B has ${B.length} elements, needs ${bLen} (${K}×${N})`);
    if (C.length < cLen) throw new RangeError(`gemm: C has ${C.length} elements, needs ${cLen} (${M}×${N})`);
    if (cLen === 0) return;
    const s = this.scratchFor(aLen, bLen, cLen);
    const v = this.views(s);
    copyIn(v.A, A, aLen);
    copyIn(v.B, B, bLen);
    if (beta !== 0) copyIn(v.C, C, cLen);
    this.run(transA, transB, M, N, K, alpha, s.a, transA ? M : K, s.b, transB ? K : N, beta, s.c, N);
    // The kernel never grows memory, so v.C is still a live view here.
    C.set(v.C);
  }

  sgemmPtr(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: number, lda: number, B: number, ldb: number, beta: number, C: number, ldc: number,
  ): void {
    checkDims(M, N, K);
    if (M === 0 || N === 0) return;
    // O(1) bounds checks: a bad pointer would otherwise silently overwrite the packing workspace
    // or another buffer rather than trap.
    const end = this.memory.buffer.byteLength;
    if (K > 0) {
      this.checkMatrix('A', A, transA ? K : M, transA ? M : K, lda, end);
      this.checkMatrix('B', B, transB ? N : K, transB ? K : N, ldb, end);
    }
    this.checkMatrix('C', C, M, N, ldc, end);
    this.run(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }

  /** One GEMM, across the pool when it is large enough to pay for waking the workers. */
  private run(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: number, lda: number, B: number, ldb: number, beta: number, C: number, ldc: number,
  ): void {
    const ta = transA ? 1 : 0, tb = transB ? 1 : 0;
    const wide = Math.max(M, N) >= 2 * this.blocking.nr * this.threads;
    if (this.pool && wide && 2 * M * N * K >= this.minParallelFlops) {
      this.pool.run(fnIndex('sgemmPart'), [ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, this.work, this.workBytes]);
    } else {
      this.exports.sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, this.work);
    }
  }

  /* -------------------------------------------------- activations fused into convolutions */

  clampPtr(ptr: number, n: number, lo: number, hi: number): void {
    this.checkMatrix('clamp', ptr, 1, n, n, this.memory.buffer.byteLength);
    this.elementwise('clampInPlace', n, [ptr, n, lo, hi]);
  }

  clampGradPtr(dy: number, y: number, n: number, lo: number, hi: number): void {
    const end = this.memory.buffer.byteLength;
    this.checkMatrix('dy', dy, 1, n, n, end);
    this.checkMatrix('y', y, 1, n, n, end);
    this.elementwise('clampGradInPlace', n, [dy, y, n, lo, hi]);
  }

  /** A sweep over n floats: on the threads when it is long enough to pay for waking them (~1 flop per float). */
  private elementwise(fn: 'clampInPlace' | 'clampGradInPlace', n: number, args: number[]): void {
    if (this.pool && n >= this.minParallelFlops / 8) this.pool.run(fnIndex(fn), args);
    else (this.exports[fn] as (...a: number[]) => void)(...args, 0, 1);
  }

  /* -------------------------------------------------- convolution */

  convOutputSize(shape: ConvShape): [number, number] {
    const [, , H, W] = shape.input;
    const [, , kh, kw] = shape.weight;
    const [sh, sw] = shape.strides;
    const [pt, pl, pb, pr] = shape.pads;
    const [dh, dw] = shape.dilations;
    return [Math.floor((H + pt + pb - ((kh - 1) * dh + 1)) / sh) + 1, Math.floor((W + pl + pr - ((kw - 1) * dw + 1)) / sw) + 1];
  }

  conv2dPtr(pass: ConvPass, shape: ConvShape, ptrs: ConvPointers): void {
    const [B, C, H, W] = shape.input;
    const [K, Cg, kh, kw] = shape.weight;
    const [sh, sw] = shape.strides;
    const [pt, pl, pb, pr] = shape.pads;
    const [dh, dw] = shape.dilations;
    const group = shape.group;
    const dims = [B, C, H, W, K, Cg, kh, kw, sh, sw, dh, dw, group];
    if (!dims.every((d) => Number.isInteger(d) && d >= 1) || ![pt, pl, pb, pr].every((p) => Number.isInteger(p) && p >= 0)) {
      throw new RangeError(`gemm.conv2dPtr: invalid shape ${JSON.stringify(shape)}`);
    }
    if (C % group !== 0 || K % group !== 0 || Cg * group !== C) {
      throw new RangeError(`gemm.conv2dPtr: ${C} input and ${K} output channels do not split into ${group} groups of weight [${shape.weight.join(', ')}]`);
    }
    const [Ho, Wo] = this.convOutputSize(shape);
    if (Ho < 1 || Wo < 1) throw new RangeError(`gemm.conv2dPtr: the ${kh}×${kw} kernel does not fit the ${H}×${W} input`);
    const end = this.memory.buffer.byteLength;
    const need = (name: string, ptr: number | undefined, length: number): number => {
      if (ptr === undefined || ptr === 0) throw new RangeError(`gemm.conv2dPtr(${pass}): ${name} is required`);
      this.checkMatrix(name, ptr, 1, length, length, end);
      return ptr;
    };
    const xLen = B * C * H * W, wLen = K * Cg * kh * kw, yLen = B * K * Ho * Wo;
    let x = 0, w = 0, bias = 0, dy = 0;
    let out: number;
    if (pass === 'forward') {
      x = need('x', ptrs.x, xLen);
      w = need('w', ptrs.w, wLen);
      if (ptrs.bias) bias = need('bias', ptrs.bias, K);
      out = need('out', ptrs.out, yLen);
    } else if (pass === 'inputGrad') {
      w = need('w', ptrs.w, wLen);
      dy = need('dy', ptrs.dy, yLen);
      out = need('out', ptrs.out, xLen);
    } else if (pass === 'weightGrad') {
      x = need('x', ptrs.x, xLen);
      dy = need('dy', ptrs.dy, yLen);
      out = need('out', ptrs.out, wLen);
    } else {
      throw new RangeError(`gemm.conv2dPtr: unknown pass ${String(pass)}`);
    }
    const depthwise = group > 1 && group === C && K === C;
    const words = new Uint32Array(this.memory.buffer, this.params, CONV_PARAM_WORDS);
    words.set([B, C, H, W, K, kh, kw, group, sh, sw, pt, pl, dh, dw, Ho, Wo, x, w, bias, out, dy, 0, 0, this.chunkColumns, 0]);
    const perThread = alignUp(depthwise ? this.exports.dwScratchBytes(this.params) : this.exports.convScratchBytes(this.params), ALIGN);
    const scratch = this.convScratchFor(perThread);
    // the scratch may have grown the memory: take a fresh view
    const p = new Uint32Array(this.memory.buffer, this.params, CONV_PARAM_WORDS);
    p[21] = scratch.ptr;
    p[22] = scratch.stride;
    const fn: PoolFunction = depthwise
      ? pass === 'forward' ? 'dwForward' : pass === 'inputGrad' ? 'dwInputGrad' : 'dwWeightGrad'
      : pass === 'forward' ? 'convForward' : pass === 'inputGrad' ? 'convInputGrad' : 'convWeightGrad';
    const flops = 2 * B * K * Ho * Wo * Cg * kh * kw;
    if (this.pool && flops >= this.minParallelFlops) this.pool.run(fnIndex(fn), [this.params]);
    else this.exports[fn](this.params, 0, 1);
  }

  /** Per-thread convolution scratch of at least `stride` bytes, reused while large enough. */
  private convScratchFor(stride: number): { ptr: number; stride: number } {
    const s = this.convScratch;
    if (s && s.stride >= stride) return s;
    const next = { ptr: this.alloc(Math.ceil((stride * this.threads) / 4)), stride };
    this.convScratch = next;
    return next;
  }

  im2colPtr(
    x: number, [b, c, h, w]: readonly [number, number, number, number], [kh, kw]: readonly [number, number],
    [sh, sw]: readonly [number, number], [pt, pl]: readonly [number, number], [dh, dw]: readonly [number, number],
    [ho, wo]: readonly [number, number], col: number,
  ): void {
    const end = this.memory.buffer.byteLength;
    this.checkMatrix('x', x, b * c, h * w, h * w, end);
    this.checkMatrix('col', col, c * kh * kw, b * ho * wo, b * ho * wo, end);
    this.exports.im2col(x, b, c, h, w, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, col);
  }

  private checkMatrix(name: string, ptr: number, rows: number, cols: number, ld: number, end: number): void {
    if (!Number.isInteger(ptr) || !Number.isInteger(ld) || ld < cols) {
      throw new RangeError(`gemm: ${name} pointer ${ptr} / stride ${ld} invalid for ${rows}×${cols}`);
    }
    const last = ptr + ((rows - 1) * ld + cols) * 4;
    if (ptr < this.arenaBase || last > end) {
      throw new RangeError(`gemm: ${name} (${rows}×${cols}, stride ${ld}) at ${ptr} lies outside the arena [${this.arenaBase}, ${end})`);
    }
  }
}

const isDim = (v: number): boolean => Number.isInteger(v) && v >= 0 && v <= 0x7fffffff;

function checkDims(M: number, N: number, K: number): void {
  if (!isDim(M) || !isDim(N) || !isDim(K)) throw new RangeError(`gemm: invalid dimensions M=${M} N=${N} K=${K}`);
}

/** Copies the first `length` elements of src; an exact-length source needs no subarray view. */
function copyIn(dst: Float32Array, src: Float32Array, length: number): void {
  dst.set(src.length === length ? src : src.subarray(0, length));
}
