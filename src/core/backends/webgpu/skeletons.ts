import { STORAGE_USAGE, WG, type BindingDef, type KernelDef, type ParamFields, type Runtime } from './runtime';

/*
 * Three kernel shapes cover every op: a grid-stride element-wise map, a two-stage per-channel
 * reduction, and a tiled GEMM whose operand loads and epilogue are supplied per op (so matmul and
 * the three convolution passes are one kernel with different index maps: implicit GEMM).
 */

const MAX_GROUPS = 65535;

/** The skeleton's parameters, then the op's; a name in both would silently take one value for two meanings. */
function withParams(label: string, skeleton: ParamFields, op: ParamFields): ParamFields {
  for (const k of Object.keys(op)) if (k in skeleton) throw new Error(`${label}: parameter ${k} is the kernel skeleton's`);
  return { ...skeleton, ...op };
}

// ---------------------------------------------------------------------------------------------
// element-wise map

export interface MapSpec {
  readonly label: string;
  readonly params: ParamFields;
  readonly bindings: readonly BindingDef[];
  readonly prelude: string;
  /** Statements run for each `i` in [0, p.n). */
  readonly body: string;
}

export function mapKernel(s: MapSpec): KernelDef {
  return {
    label: s.label,
    params: withParams(s.label, { n: 'u32' }, s.params),
    bindings: s.bindings,
    entry: 'main',
    code: `${s.prelude}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let stride = nwg.x * ${WG}u;
  for (var i = gid.x; i < p.n; i += stride) {
${s.body}
  }
}`,
  };
}

export function runMap(rt: Runtime, k: KernelDef, n: number, values: Readonly<Record<string, number>>, buffers: readonly GPUBuffer[]): void {
  if (n === 0) return;
  rt.dispatch(k, { ...values, n }, buffers, [Math.min(Math.ceil(n / WG), MAX_GROUPS), 1, 1]);
}

// ---------------------------------------------------------------------------------------------
// per-channel reduction: out[c] = finish(c, Σ_j elem(c, j)) for c < p.channels, j < p.count

export interface ReduceSpec {
  readonly label: string;
  readonly params: ParamFields;
  /** The op's bindings; the skeleton appends `Out` and `Partial`. */
  readonly bindings: readonly BindingDef[];
  readonly prelude: string;
  /** Body of `fn elem(c: u32, j: u32) -> f32`, j < p.count. It may write side outputs: each (c, j) is visited once. */
  readonly elem: string;
  /** Body of `fn finish(c: u32, v: f32) -> f32`; default `return v;`. */
  readonly finish?: string;
}

/** @internal exported for the WGSL static checks */
export function reduceKernels(s: ReduceSpec): [KernelDef, KernelDef] {
  const bindings: BindingDef[] = [...s.bindings, { name: 'Out', access: 'read_write' }, { name: 'Partial', access: 'read_write' }];
  const params = withParams(s.label, { channels: 'u32', count: 'u32', chunks: 'u32', chunkLen: 'u32' }, s.params);
  const code = `${s.prelude}
fn elem(c: u32, j: u32) -> f32 {
${s.elem}
}
fn finish(c: u32, v: f32) -> f32 {
${s.finish ?? 'return v;'}
}
var<workgroup> red: array<f32, ${WG}>;
fn treeSum(li: u32) {
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { red[li] = red[li] + red[li + s]; }
    workgroupBarrier();
  }
}
// one workgroup per (chunk, channel); channels beyond 65535 spill into z
@compute @workgroup_size(${WG})
fn stage1(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let c = wid.y + wid.z * ${MAX_GROUPS}u;
  if (c >= p.channels) { return; }
  let j0 = wid.x * p.chunkLen;
  let j1 = min(p.count, j0 + p.chunkLen);
  var acc = 0.0;
  for (var j = j0 + li; j < j1; j += ${WG}u) { acc += elem(c, j); }
  red[li] = acc;
  workgroupBarrier();
  treeSum(li);
  if (li == 0u) {
    if (p.chunks == 1u) { Out[c] = finish(c, red[0]); } else { Partial[c * p.chunks + wid.x] = red[0]; }
  }
}
@compute @workgroup_size(${WG})
fn stage2(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let c = wid.y + wid.z * ${MAX_GROUPS}u;
  if (c >= p.channels) { return; }
  var acc = 0.0;
  for (var k = li; k < p.chunks; k += ${WG}u) { acc += Partial[c * p.chunks + k]; }
  red[li] = acc;
  workgroupBarrier();
  treeSum(li);
  if (li == 0u) { Out[c] = finish(c, red[0]); }
}`;
  return [
    { label: `${s.label} (reduce)`, params, bindings, code, entry: 'stage1' },
    { label: `${s.label} (reduce partials)`, params, bindings, code, entry: 'stage2' },
  ];
}

const reduceCache = new WeakMap<ReduceSpec, [KernelDef, KernelDef]>();

/** Chunks per channel: enough workgroups to fill a large GPU, at least 1,024 elements per chunk. */
export function reduceChunks(C: number, R: number): number {
  return Math.max(1, Math.min(Math.ceil(512 / C), Math.ceil(R / 1024), 4096));
}

/** `noPartial` is bound as `Partial` when one chunk suffices: a writable buffer no other binding uses. */
export function runReduce(rt: Runtime, s: ReduceSpec, C: number, R: number, values: Readonly<Record<string, number>>, buffers: readonly GPUBuffer[], out: GPUBuffer, noPartial: GPUBuffer): void {
  if (C === 0) return;
  let ks = reduceCache.get(s);
  if (!ks) reduceCache.set(s, (ks = reduceKernels(s)));
  const chunks = reduceChunks(C, R);
  const chunkLen = Math.max(1, Math.ceil(R / chunks));
  const v = { ...values, channels: C, count: R, chunks, chunkLen };
  const cy = Math.min(C, MAX_GROUPS);
  const cz = Math.ceil(C / MAX_GROUPS);
  if (chunks === 1) {
    rt.dispatch(ks[0], v, [...buffers, out, noPartial], [1, cy, cz]);
    return;
  }
  const partial = rt.pool.acquire(C * chunks * 4, STORAGE_USAGE, 'partial sums');
  rt.dispatch(ks[0], v, [...buffers, out, partial], [chunks, cy, cz]);
  rt.dispatch(ks[1], v, [...buffers, out, partial], [1, cy, cz]);
  rt.pool.release(partial);
}

// ---------------------------------------------------------------------------------------------
// tiled GEMM: C[g][m, n] = Σ_k A(g, m, k)·B(g, k, n), then epilogue(g, m, n, acc)

export interface GemmSpec {
  readonly label: string;
  readonly params: ParamFields;
  readonly bindings: readonly BindingDef[];
  readonly prelude: string;
  /** Body of `fn loadA(g: u32, m: u32, k: u32) -> f32`, called with m < M, k < K. */
  readonly loadA: string;
  /** Body of `fn loadB(g: u32, k: u32, n: u32) -> f32`, called with k < K, n < N. */
  readonly loadB: string;
  /** Body of `fn epilogue(g: u32, m: u32, n: u32, v: f32)`, called once per output with m < M, n < N. */
  readonly epilogue: string;
  /** Which index of A (B) is contiguous in memory: consecutive threads load along it, so loads coalesce. */
  readonly aFast: 'm' | 'k';
  readonly bFast: 'k' | 'n';
}

/**
 * A workgroup of wgx×wgy threads computes a (wgy·tm)×(wgx·tn) tile of C; each thread a tm×tn block
 * held in registers, strided by the workgroup size so that shared-memory reads of B are
 * conflict-free and the stores coalesce. K advances bk at a time through workgroup memory.
 */
export interface TileConfig {
  readonly wgx: number;
  readonly wgy: number;
  readonly tm: number;
  readonly tn: number;
  readonly bk: number;
}

export const TILES = {
  /** 64×64 tiles, 256 threads: the large-problem workhorse. */
  large: { wgx: 16, wgy: 16, tm: 4, tn: 4, bk: 16 },
  /** 32×32 tiles, 64 threads: mid-sized problems, more workgroups. */
  medium: { wgx: 8, wgy: 8, tm: 4, tn: 4, bk: 16 },
  /** 16×64: few output rows (convolutions with few channels per group). */
  shortM: { wgx: 16, wgy: 8, tm: 2, tn: 4, bk: 16 },
  /** 64×16: few output columns. */
  shortN: { wgx: 8, wgy: 16, tm: 4, tn: 2, bk: 16 },
} as const satisfies Record<string, TileConfig>;

export function pickTile(M: number, N: number): TileConfig {
  if (M <= 16 && N > 16) return TILES.shortM;
  if (N <= 16 && M > 16) return TILES.shortN;
  if (M >= 64 && N >= 64) return TILES.large;
  return TILES.medium;
}

export interface GemmOptions {
  /**
   * Workgroups to aim for before splitting K: a problem with few output tiles and a long K (the
   * weight gradient: M×N is the weight, K the batch's positions) is split over K into partial
   * sums, reduced by a second kernel. Default 256, which fills a large desktop GPU.
   */
  readonly targetWorkgroups?: number;
  /** Force a tile configuration (tests cover each). */
  readonly tile?: TileConfig;
  /** Force a split count (tests). */
  readonly splits?: number;
}

const REDUCE_SPLITS = /* wgsl */ `
// split-K: sum the partial products of every split, then the op's epilogue
@compute @workgroup_size(${WG})
fn reduceSplits(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let total = p.G * p.M * p.N;
  for (var e = gid.x; e < total; e += nwg.x * ${WG}u) {
    var acc = 0.0;
    for (var sp = 0u; sp < p.splits; sp++) { acc += Partial[sp * total + e]; }
    let g = e / (p.M * p.N);
    let r = e - g * p.M * p.N;
    epilogue(g, r / p.N, r % p.N, acc);
  }
}`;

/** @internal exported for the WGSL static checks */
export function gemmKernels(s: GemmSpec, t: TileConfig): { direct: KernelDef; split: KernelDef; reduce: KernelDef } {
  const BM = t.wgy * t.tm;
  const BN = t.wgx * t.tn;
  const threads = t.wgx * t.wgy;
  if ((BM * t.bk) % threads || (BN * t.bk) % threads) throw new Error(`gemm tile ${JSON.stringify(t)}: tiles do not divide among threads`);
  // pad the k-major rows by one float when consecutive threads store along k: no bank conflicts
  const SA = BM + (s.aFast === 'k' ? 1 : 0);
  const SB = BN + (s.bFast === 'k' ? 1 : 0);
  const loadTile = (which: 'A' | 'B'): string => {
    const [rows, fastK, stride, count] = which === 'A' ? ['BM', s.aFast === 'k', 'SA', (BM * t.bk) / threads] : ['BN', s.bFast === 'k', 'SB', (BN * t.bk) / threads];
    const idx = fastK ? `let kk = e % BK; let rr = e / BK;` : `let rr = e % ${rows}; let kk = e / ${rows};`;
    const call = which === 'A' ? `if (m0 + rr < p.M && k0 + kk < kEnd) { v = loadA(g, m0 + rr, k0 + kk); }` : `if (n0 + rr < p.N && k0 + kk < kEnd) { v = loadB(g, k0 + kk, n0 + rr); }`;
    return `    for (var t = 0u; t < ${count}u; t++) {
      let e = li + t * THREADS;
      ${idx}
      var v = 0.0;
      ${call}
      ${which}s[kk * ${stride} + rr] = v;
    }`;
  };
  const body = (store: string, withReduce: boolean): string => `${s.prelude}
const WGX = ${t.wgx}u;
const WGY = ${t.wgy}u;
const TM = ${t.tm}u;
const TN = ${t.tn}u;
const BK = ${t.bk}u;
const BM = ${BM}u;
const BN = ${BN}u;
const SA = ${SA}u;
const SB = ${SB}u;
const THREADS = ${threads}u;
var<workgroup> As: array<f32, ${SA * t.bk}>;
var<workgroup> Bs: array<f32, ${SB * t.bk}>;
fn loadA(g: u32, m: u32, k: u32) -> f32 {
${s.loadA}
}
fn loadB(g: u32, k: u32, n: u32) -> f32 {
${s.loadB}
}
fn epilogue(g: u32, m: u32, n: u32, v: f32) {
${s.epilogue}
}
@compute @workgroup_size(${t.wgx}, ${t.wgy}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = wid.z / p.splits;
  let sp = wid.z % p.splits;
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  let kBegin = sp * p.kChunk;
  let kEnd = min(p.K, kBegin + p.kChunk);
  var acc: array<f32, ${t.tm * t.tn}>;
  for (var k0 = kBegin; k0 < kEnd; k0 += BK) {
${loadTile('A')}
${loadTile('B')}
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var a: array<f32, ${t.tm}>;
      var b: array<f32, ${t.tn}>;
      for (var i = 0u; i < TM; i++) { a[i] = As[kk * SA + lid.y + i * WGY]; }
      for (var j = 0u; j < TN; j++) { b[j] = Bs[kk * SB + lid.x + j * WGX]; }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) { acc[i * TN + j] = fma(a[i], b[j], acc[i * TN + j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) {
    let m = m0 + lid.y + i * WGY;
    for (var j = 0u; j < TN; j++) {
      let n = n0 + lid.x + j * WGX;
      if (m < p.M && n < p.N) { ${store} }
    }
  }
}
${withReduce ? REDUCE_SPLITS : ''}`;
  const params = withParams(s.label, { M: 'u32', N: 'u32', K: 'u32', G: 'u32', kChunk: 'u32', splits: 'u32' }, s.params);
  const label = `${s.label} ${BM}×${BN}`;
  const directCode = body('epilogue(g, m, n, acc[i * TN + j]);', false);
  const splitBindings: BindingDef[] = [...s.bindings, { name: 'Partial', access: 'read_write' }];
  const splitCode = body('Partial[((sp * p.G + g) * p.M + m) * p.N + n] = acc[i * TN + j];', true);
  return {
    direct: { label, params, bindings: s.bindings, code: directCode, entry: 'main' },
    split: { label: `${label} split-K`, params, bindings: splitBindings, code: splitCode, entry: 'main' },
    reduce: { label: `${label} split-K reduce`, params, bindings: splitBindings, code: splitCode, entry: 'reduceSplits' },
  };
}

const gemmCache = new WeakMap<GemmSpec, Map<TileConfig, ReturnType<typeof gemmKernels>>>();

export interface GemmPlan {
  readonly tile: TileConfig;
  readonly splits: number;
  readonly kChunk: number;
  readonly grid: [number, number, number];
}

export function planGemm(M: number, N: number, K: number, G: number, o: GemmOptions = {}): GemmPlan {
  const tile = o.tile ?? pickTile(M, N);
  const BM = tile.wgy * tile.tm;
  const BN = tile.wgx * tile.tn;
  const tiles = Math.ceil(M / BM) * Math.ceil(N / BN) * G;
  const target = o.targetWorkgroups ?? 256;
  let splits = o.splits ?? (tiles < target && K >= 512 ? Math.min(Math.ceil(target / tiles), Math.floor(K / 256), 64) : 1);
  splits = Math.max(1, Math.min(splits, Math.ceil(K / tile.bk)));
  const kChunk = Math.ceil(Math.ceil(K / splits) / tile.bk) * tile.bk;
  splits = Math.max(1, Math.ceil(K / kChunk));
  const grid: [number, number, number] = [Math.ceil(N / BN), Math.ceil(M / BM), G * splits];
  if (grid.some((d) => d > MAX_GROUPS)) throw new Error(`gemm ${M}×${N}×${K} (×${G}): grid [${grid.join(', ')}] exceeds ${MAX_GROUPS}`);
  return { tile, splits, kChunk, grid };
}

/** Runs C = A·B (G independent problems) with the spec's loads and epilogue. */
export function runGemm(rt: Runtime, s: GemmSpec, dims: { M: number; N: number; K: number; G: number }, values: Readonly<Record<string, number>>, buffers: readonly GPUBuffer[], o: GemmOptions = {}): GemmPlan {
  const { M, N, K, G } = dims;
  const plan = planGemm(M, N, K, G, o);
  if (M === 0 || N === 0 || G === 0) return plan;
  let byTile = gemmCache.get(s);
  if (!byTile) gemmCache.set(s, (byTile = new Map()));
  let ks = byTile.get(plan.tile);
  if (!ks) byTile.set(plan.tile, (ks = gemmKernels(s, plan.tile)));
  const v = { ...values, M, N, K, G, kChunk: plan.kChunk, splits: plan.splits };
  if (plan.splits === 1) {
    rt.dispatch(ks.direct, v, buffers, plan.grid);
    return plan;
  }
  const total = G * M * N;
  const partial = rt.pool.acquire(plan.splits * total * 4, STORAGE_USAGE, 'split-K partials');
  rt.dispatch(ks.split, v, [...buffers, partial], plan.grid);
  rt.dispatch(ks.reduce, v, [...buffers, partial], [Math.min(Math.ceil(total / WG), MAX_GROUPS), 1, 1]);
  rt.pool.release(partial);
  return plan;
}
