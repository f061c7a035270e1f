/**
 * Float32 buffers recycled between the iterations of a training loop. Reconstruction runs the same
 * forward and backward thousands of times with the same shapes; allocating every activation and
 * gradient afresh (tens of MB per iteration at batch 32) costs page faults, zeroing and garbage
 * collection for nothing. Kernels ask for their outputs through `alloc`/`scratch` below; inside
 * `pool.run(...)` those come from the pool, outside they are plain new arrays, so a kernel has one
 * code path and tests that never open a pool see ordinary arrays.
 *
 * The contract, as in tfjs's `tidy`: everything allocated inside `run` is lent for that call and
 * returned by the next `reclaim()`. A caller reclaims only once nothing it allocated is still
 * read (the loop's tape, gradients and loss are consumed within the iteration).
 */
export class BufferPool {
  private readonly free = new Map<number, Float32Array[]>();
  private readonly lent: Float32Array[] = [];

  /** Runs `f` with this pool serving the kernels' allocations; synchronous, so the scope cannot leak. */
  run<T>(f: () => T): T {
    const outer = active;
    active = this;
    try {
      return f();
    } finally {
      active = outer;
    }
  }

  /** Returns every buffer lent since the last reclaim; those arrays must not be read again. */
  reclaim(): void {
    for (const a of this.lent) {
      const list = this.free.get(a.length);
      if (list) list.push(a);
      else this.free.set(a.length, [a]);
    }
    this.lent.length = 0;
  }

  /** Bytes held by the pool, lent or free. */
  get bytes(): number {
    let n = 0;
    for (const a of this.lent) n += a.byteLength;
    for (const list of this.free.values()) for (const a of list) n += a.byteLength;
    return n;
  }

  take(n: number, zeroed: boolean): Float32Array {
    const a = this.free.get(n)?.pop() ?? null;
    const out = a ? (zeroed ? a.fill(0) : a) : new Float32Array(n);
    this.lent.push(out);
    return out;
  }
}

let active: BufferPool | null = null;

/** A zeroed float32 buffer: from the active pool when there is one. */
export function zeros32(n: number): Float32Array {
  return active ? active.take(n, true) : new Float32Array(n);
}

/**
 * A float32 buffer whose contents are undefined: for outputs that the caller writes in full.
 * Cheaper than `zeros32` inside a pool (no fill); a fresh array outside one.
 */
export function scratch32(n: number): Float32Array {
  return active ? active.take(n, false) : new Float32Array(n);
}

/** A copy of `a` in a buffer from the active pool (or a new one). */
export function copy32(a: Float32Array): Float32Array {
  const out = scratch32(a.length);
  out.set(a);
  return out;
}
