import { BufferPool } from './pool';

/*
 * The part of the backend that talks to the device: pipelines compiled once per WGSL source,
 * kernel parameters in one uniform arena per submission, bind groups cached by the buffers they
 * bind, and one command encoder that collects work until `flush`. Nothing here is allocated per
 * dispatch once an iteration's shapes and buffers repeat.
 */

export type ParamType = 'u32' | 'i32' | 'f32';
export type ParamFields = Readonly<Record<string, ParamType>>;

export interface BindingDef {
  readonly name: string;
  readonly access: 'read' | 'read_write';
}

/** One compute entry point; the runtime prepends the `Params` struct (as `p`) and the storage bindings. */
export interface KernelDef {
  readonly label: string;
  readonly params: ParamFields;
  readonly bindings: readonly BindingDef[];
  /** WGSL functions and entry points; `p` and the bindings are in scope. */
  readonly code: string;
  readonly entry: string;
}

/** Workgroup size of the 1-D kernels (element-wise, reductions). */
export const WG = 256;
/** Bytes per dispatch in the uniform arena: WebGPU's minUniformBufferOffsetAlignment upper bound. */
const SLOT = 256;
const ARENA_SLOTS = 2048;

export const STORAGE_USAGE = usageFlags('storage');

/** GPUBufferUsage is a global only where WebGPU exists; the numeric flags are fixed by the spec. */
function usageFlags(kind: 'storage' | 'staging' | 'uniform'): number {
  const MAP_READ = 0x0001;
  const COPY_SRC = 0x0004;
  const COPY_DST = 0x0008;
  const UNIFORM = 0x0040;
  const STORAGE = 0x0080;
  if (kind === 'storage') return STORAGE | COPY_SRC | COPY_DST;
  if (kind === 'staging') return MAP_READ | COPY_DST;
  return UNIFORM | COPY_DST;
}

export function wgslSource(k: KernelDef): string {
  const fields = Object.entries(k.params);
  const struct = fields.length ? fields.map(([n, t]) => `  ${n}: ${t},`).join('\n') : '  _unused: u32,';
  const binds = k.bindings.map((b, i) => `@group(0) @binding(${i + 1}) var<storage, ${b.access}> ${b.name}: array<f32>;`).join('\n');
  return `struct Params {\n${struct}\n}\n@group(0) @binding(0) var<uniform> p: Params;\n${binds}\n${k.code}`;
}

interface Compiled {
  readonly id: number;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  readonly layoutKey: string;
  readonly offsets: readonly [string, ParamType, number][];
}

export class Runtime {
  readonly pool: BufferPool;
  private readonly pipelines = new Map<string, Compiled>();
  private readonly layouts = new Map<string, GPUBindGroupLayout>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private readonly arena: GPUBuffer;
  private readonly arenaData = new ArrayBuffer(SLOT * ARENA_SLOTS);
  private readonly arenaView = new DataView(this.arenaData);
  private slot = 0;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private lostReason: string | null = null;
  /** Counters for tests and benchmarks. */
  readonly counters = { dispatches: 0, submits: 0, pipelines: 0, bindGroups: 0 };

  constructor(readonly device: GPUDevice) {
    this.pool = new BufferPool(device);
    this.arena = device.createBuffer({ size: SLOT * ARENA_SLOTS, usage: usageFlags('uniform'), label: 'kernel params' });
    void device.lost.then((info) => {
      this.lostReason = `${info.reason}: ${info.message}`;
    });
  }

  get lost(): string | null {
    return this.lostReason;
  }

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) this.bufferIds.set(b, (id = this.nextBufferId++));
    return id;
  }

  private layoutFor(bindings: readonly BindingDef[]): [GPUBindGroupLayout, string] {
    const key = bindings.map((b) => (b.access === 'read' ? 'r' : 'w')).join('');
    let layout = this.layouts.get(key);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = [
        { binding: 0, visibility: 4 /* COMPUTE */, buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: SLOT } },
        ...bindings.map((b, i): GPUBindGroupLayoutEntry => ({ binding: i + 1, visibility: 4, buffer: { type: b.access === 'read' ? 'read-only-storage' : 'storage' } })),
      ];
      layout = this.device.createBindGroupLayout({ entries, label: `layout ${key}` });
      this.layouts.set(key, layout);
    }
    return [layout, key];
  }

  compile(k: KernelDef): Compiled {
    const source = wgslSource(k);
    const cacheKey = `${k.entry}\n${source}`;
    let c = this.pipelines.get(cacheKey);
    if (!c) {
      const [layout, layoutKey] = this.layoutFor(k.bindings);
      const module = this.device.createShaderModule({ code: source, label: k.label });
      const pipeline = this.device.createComputePipeline({
        label: k.label,
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: k.entry },
      });
      const offsets: [string, ParamType, number][] = Object.entries(k.params).map(([n, t], i) => [n, t, i * 4]);
      if (offsets.length * 4 > SLOT) throw new Error(`${k.label}: ${offsets.length} parameters do not fit ${SLOT} bytes`);
      c = { id: this.pipelines.size + 1, pipeline, layout, layoutKey, offsets };
      this.pipelines.set(cacheKey, c);
      this.counters.pipelines++;
    }
    return c;
  }

  private bindGroup(c: Compiled, buffers: readonly GPUBuffer[]): GPUBindGroup {
    let key = c.layoutKey;
    for (const b of buffers) key += `,${this.bufferId(b)}`;
    let bg = this.bindGroups.get(key);
    if (!bg) {
      // a bounded cache: steady-state iterations bind the same pooled buffers over and over
      if (this.bindGroups.size >= 4096) this.bindGroups.clear();
      bg = this.device.createBindGroup({
        layout: c.layout,
        entries: [{ binding: 0, resource: { buffer: this.arena, offset: 0, size: SLOT } }, ...buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } }))],
      });
      this.bindGroups.set(key, bg);
      this.counters.bindGroups++;
    }
    return bg;
  }

  private ensurePass(): GPUComputePassEncoder {
    if (this.lostReason) throw new Error(`webgpu: the device was lost (${this.lostReason})`);
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    return this.pass;
  }

  private endPass(): GPUCommandEncoder {
    if (this.lostReason) throw new Error(`webgpu: the device was lost (${this.lostReason})`);
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  dispatch(k: KernelDef, values: Readonly<Record<string, number>>, buffers: readonly GPUBuffer[], groups: readonly [number, number, number]): void {
    if (groups[0] === 0 || groups[1] === 0 || groups[2] === 0) return;
    if (buffers.length !== k.bindings.length) throw new Error(`${k.label}: ${k.bindings.length} bindings, ${buffers.length} buffers`);
    const max = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (groups.some((g) => g > max)) throw new Error(`${k.label}: grid [${groups.join(', ')}] exceeds ${max} workgroups per dimension`);
    const c = this.compile(k);
    if (this.slot === ARENA_SLOTS) this.flush();
    const base = this.slot * SLOT;
    const view = this.arenaView;
    for (const [name, type, off] of c.offsets) {
      const v = values[name];
      if (v === undefined || Number.isNaN(v)) throw new Error(`${k.label}: parameter ${name} is ${v}`);
      if (type === 'f32') view.setFloat32(base + off, v, true);
      else if (type === 'i32') view.setInt32(base + off, v, true);
      else {
        if (v < 0 || !Number.isInteger(v) || v > 0xffffffff) throw new Error(`${k.label}: parameter ${name} = ${v} is not a u32`);
        view.setUint32(base + off, v, true);
      }
    }
    const pass = this.ensurePass();
    pass.setPipeline(c.pipeline);
    pass.setBindGroup(0, this.bindGroup(c, buffers), [base]);
    pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
    this.slot++;
    this.counters.dispatches++;
  }

  copy(src: GPUBuffer, dst: GPUBuffer, bytes: number): void {
    if (bytes > 0) this.endPass().copyBufferToBuffer(src, 0, dst, 0, bytes);
  }

  /** Submits everything enqueued so far, with the parameters it uses. */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    if (this.slot > 0) this.device.queue.writeBuffer(this.arena, 0, this.arenaData, 0, this.slot * SLOT);
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.slot = 0;
    this.counters.submits++;
  }

  /** queue.writeBuffer runs at submission order, not encoder order: flush first so earlier readers see the old data. */
  write(dst: GPUBuffer, data: Float32Array): void {
    this.flush();
    if (data.length) this.device.queue.writeBuffer(dst, 0, data.buffer, data.byteOffset, data.byteLength);
  }

  async read(src: GPUBuffer, floats: number): Promise<Float32Array> {
    const bytes = floats * 4;
    if (bytes === 0) return new Float32Array(0);
    const staging = this.pool.acquire(bytes, usageFlags('staging'), 'staging');
    this.copy(src, staging, bytes);
    this.flush();
    try {
      await staging.mapAsync(1 /* GPUMapMode.READ */, 0, bytes);
      const out = new Float32Array(floats);
      out.set(new Float32Array(staging.getMappedRange(0, bytes)));
      staging.unmap();
      return out;
    } finally {
      this.pool.release(staging);
    }
  }

  /** Resolves when everything submitted so far has run (benchmarks). */
  async idle(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
  }

  destroy(): void {
    this.flush();
    this.pool.destroyAll();
    this.arena.destroy();
    this.bindGroups.clear();
  }
}
