/**
 * GPU buffers reused across iterations. Sizes are rounded up to size classes with at most 12.5%
 * slack, so a tensor that comes back with the same (or a slightly smaller) size takes a free
 * buffer instead of a new one: once an iteration's shapes are stable and it releases what it
 * allocates, nothing is created any more (the parity page checks this through `stats`).
 *
 * A buffer released while enqueued work still reads it may be handed out again at once: every
 * later use is enqueued after that work, and WebGPU orders dispatches and copies on one queue.
 * Only `queue.writeBuffer` bypasses the encoder, which is why the runtime flushes before writing.
 */
export interface PoolStats {
  /** Buffers created over the pool's life (storage + staging). */
  created: number;
  /** Acquisitions served from the free lists. */
  reused: number;
  bytesAllocated: number;
  inUse: number;
  free: number;
}

/** Rounds up to a size class: multiples of 256 B up to 2 KiB, then 8 classes per power of two. */
export function sizeClass(bytes: number): number {
  const b = Math.max(16, bytes);
  if (b <= 2048) return Math.ceil(b / 256) * 256;
  const shift = Math.floor(Math.log2(b)) - 3;
  const step = 2 ** shift;
  return Math.ceil(b / step) * step;
}

export class BufferPool {
  private readonly freeLists = new Map<string, GPUBuffer[]>();
  private readonly live = new Set<GPUBuffer>();
  readonly stats: PoolStats = { created: 0, reused: 0, bytesAllocated: 0, inUse: 0, free: 0 };

  constructor(private readonly device: GPUDevice) {}

  acquire(bytes: number, usage: GPUBufferUsageFlags, label: string): GPUBuffer {
    const size = sizeClass(bytes);
    const key = `${usage}:${size}`;
    const list = this.freeLists.get(key);
    let buf = list?.pop();
    if (buf) {
      this.stats.reused++;
      this.stats.free--;
    } else {
      buf = this.device.createBuffer({ size, usage, label });
      this.stats.created++;
      this.stats.bytesAllocated += size;
    }
    this.live.add(buf);
    this.stats.inUse++;
    return buf;
  }

  release(buf: GPUBuffer): void {
    if (!this.live.delete(buf)) throw new Error(`webgpu pool: buffer ${buf.label} released twice or not from this pool`);
    const key = `${buf.usage}:${buf.size}`;
    let list = this.freeLists.get(key);
    if (!list) this.freeLists.set(key, (list = []));
    list.push(buf);
    this.stats.inUse--;
    this.stats.free++;
  }

  /** Destroys the free buffers (live ones stay with their owners). */
  trim(): void {
    for (const list of this.freeLists.values()) {
      for (const b of list) {
        this.stats.bytesAllocated -= b.size;
        b.destroy();
      }
    }
    this.stats.free = 0;
    this.freeLists.clear();
  }

  destroyAll(): void {
    this.trim();
    for (const b of this.live) b.destroy();
    this.live.clear();
    this.stats.inUse = 0;
    this.stats.bytesAllocated = 0;
  }
}
