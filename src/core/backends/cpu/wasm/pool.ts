/*
 * A fixed pool of threads that run the kernel module's exported functions over one shared
 * WebAssembly.Memory: worker_threads in Node, Web Workers in a browser (which needs
 * crossOriginIsolated for SharedArrayBuffer).
 *
 * `run(fn, args)` is synchronous: the calling thread publishes the call in a small shared control
 * block, wakes the workers, runs its own share (tid 0), then blocks until every worker is done.
 * Each exported function takes (…args, tid, nthreads) and computes its own disjoint share of the
 * output, so the pool does no scheduling. Workers spin briefly before sleeping in Atomics.wait, so
 * back-to-back calls (a forward then two backward passes) do not pay a full wake-up each.
 *
 * The worker code is a plain-JavaScript string, started with `eval` in Node and from a blob: URL in
 * a browser: no bundler or TypeScript loader has to find a worker file.
 */

/** Int32 slots of the control block; call arguments follow as Float64 at byte ARGS_OFFSET. */
const GEN = 0; // bumped once per call (and once to stop)
const DONE = 1; // workers finished with the current call
const FN = 2; // index into the function names
const NARGS = 3;
const ERROR = 4; // 1 when a worker threw
const STOP = 5;
const ARGS_OFFSET = 64;
const MAX_ARGS = 24;
const CONTROL_BYTES = ARGS_OFFSET + MAX_ARGS * 8;

/** Iterations of Atomics.load before a thread sleeps in Atomics.wait: a few tens of microseconds
 * (one iteration took ~25 ns in Node 20 on the project machine), about what a futex wake-up costs.
 * Longer spins cost more than they save: with several instances in use one after another (one per
 * convolution of a block), a spinning idle pool takes a core from the one that is working. */
const SPIN = 2000;

/** The worker body, shared by both hosts. `init` carries the module, memory, control block and tid. */
const WORKER_BODY = `
function lowbitPoolWorker(init, post) {
  const { module, memory, control, tid, size, names } = init;
  let fns;
  try {
    const ex = new WebAssembly.Instance(module, { env: { memory } }).exports;
    fns = names.map((n) => ex[n]);
  } catch (e) {
    post({ error: String(e && e.message || e) });
    return;
  }
  const ctrl = new Int32Array(control, 0, 16);
  const args = new Float64Array(control, ${ARGS_OFFSET}, ${MAX_ARGS});
  post({ ready: true });
  let gen = 0;
  for (;;) {
    let spins = 0;
    while (Atomics.load(ctrl, ${GEN}) === gen) {
      if (++spins > ${SPIN}) Atomics.wait(ctrl, ${GEN}, gen);
    }
    gen = Atomics.load(ctrl, ${GEN});
    if (Atomics.load(ctrl, ${STOP}) !== 0) return;
    const n = ctrl[${NARGS}];
    const a = new Array(n + 2);
    for (let i = 0; i < n; i++) a[i] = args[i];
    a[n] = tid;
    a[n + 1] = size;
    try {
      fns[ctrl[${FN}]](...a);
    } catch (e) {
      Atomics.store(ctrl, ${ERROR}, 1);
    }
    if (Atomics.add(ctrl, ${DONE}, 1) + 1 === size - 1) Atomics.notify(ctrl, ${DONE});
  }
}
`;

const NODE_WORKER = `${WORKER_BODY}
const { parentPort } = require('node:worker_threads');
parentPort.once('message', (init) => lowbitPoolWorker(init, (m) => parentPort.postMessage(m)));
`;

const BROWSER_WORKER = `${WORKER_BODY}
self.onmessage = (e) => { self.onmessage = null; lowbitPoolWorker(e.data, (m) => self.postMessage(m)); };
`;

interface PoolWorker {
  post(message: unknown): void;
  terminate(): void;
}

type NodeWorkerCtor = new (code: string, options: { eval: true }) => {
  postMessage(m: unknown): void;
  once(ev: 'message', cb: (m: unknown) => void): void;
  once(ev: 'error', cb: (e: Error) => void): void;
  unref(): void;
  terminate(): Promise<number>;
};

export const isNode = typeof process === 'object' && process !== null && typeof process.versions?.node === 'string';

/** Threads this runtime can run the kernels on: shared memory, a worker API, and a way to block. */
export function threadsSupported(): boolean {
  if (typeof SharedArrayBuffer !== 'function' || typeof Atomics !== 'object') return false;
  if (isNode) return true;
  return typeof Worker === 'function' && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
}

/** Hardware threads: os.availableParallelism() in Node, navigator.hardwareConcurrency in a browser. */
export async function hardwareThreads(): Promise<number> {
  if (isNode) {
    const osModule = 'node:os';
    const os = (await import(/* @vite-ignore */ osModule)) as typeof import('node:os');
    return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  }
  return (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
}

/** Whether this thread may block in Atomics.wait (a browser's main thread may not). */
function canBlock(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

async function startWorker(init: Record<string, unknown>): Promise<PoolWorker> {
  if (isNode) {
    const wtModule = 'node:worker_threads';
    const { Worker } = (await import(/* @vite-ignore */ wtModule)) as { Worker: NodeWorkerCtor };
    const w = new Worker(NODE_WORKER, { eval: true });
    w.unref(); // an idle pool must not keep the process alive
    await new Promise<void>((resolve, reject) => {
      w.once('message', (m) => ((m as { error?: string }).error ? reject(new Error(`gemm pool: ${(m as { error: string }).error}`)) : resolve()));
      w.once('error', reject);
      w.postMessage(init);
    });
    return { post: (m) => w.postMessage(m), terminate: () => void w.terminate() };
  }
  const url = URL.createObjectURL(new Blob([BROWSER_WORKER], { type: 'text/javascript' }));
  try {
    const w = new Worker(url);
    await new Promise<void>((resolve, reject) => {
      w.onmessage = (e: MessageEvent) => ((e.data as { error?: string }).error ? reject(new Error(`gemm pool: ${(e.data as { error: string }).error}`)) : resolve());
      w.onerror = (e) => reject(new Error(`gemm pool: worker failed to start: ${e.message}`));
      w.postMessage(init);
    });
    w.onmessage = null;
    return { post: (m) => w.postMessage(m), terminate: () => w.terminate() };
  } finally {
    URL.revokeObjectURL(url);
  }
}

export class ThreadPool {
  private readonly ctrl: Int32Array;
  private readonly args: Float64Array;
  private readonly blocking = canBlock();
  private disposed = false;

  private constructor(
    readonly size: number,
    private readonly names: readonly string[],
    private readonly own: readonly ((...a: number[]) => void)[],
    control: SharedArrayBuffer,
    private readonly workers: PoolWorker[],
  ) {
    this.ctrl = new Int32Array(control, 0, 16);
    this.args = new Float64Array(control, ARGS_OFFSET, MAX_ARGS);
  }

  /**
   * Starts size − 1 workers, each instantiating `module` over `memory` (shared). `exports` is the
   * calling thread's own instance; `names` are the functions `run` may call.
   */
  static async create(
    module: WebAssembly.Module, memory: WebAssembly.Memory, exports: Record<string, unknown>,
    size: number, names: readonly string[],
  ): Promise<ThreadPool> {
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    const own = names.map((n) => {
      const f = exports[n];
      if (typeof f !== 'function') throw new Error(`gemm pool: the module has no function ${n}`);
      return f as (...a: number[]) => void;
    });
    const started = await Promise.allSettled(
      Array.from({ length: size - 1 }, (_, i) => startWorker({ module, memory, control, tid: i + 1, size, names: [...names] })),
    );
    const workers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    const pool = new ThreadPool(size, names, own, control, workers);
    if (failed) {
      pool.dispose();
      throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
    }
    return pool;
  }

  /** Runs names[fn](…args, tid, size) on every thread, this one as tid 0; returns when all are done. */
  run(fn: number, args: readonly number[]): void {
    if (this.disposed) throw new Error('gemm pool: used after dispose()');
    if (args.length > MAX_ARGS) throw new RangeError(`gemm pool: at most ${MAX_ARGS} arguments`);
    const ctrl = this.ctrl;
    Atomics.store(ctrl, DONE, 0);
    Atomics.store(ctrl, ERROR, 0);
    ctrl[FN] = fn;
    ctrl[NARGS] = args.length;
    for (let i = 0; i < args.length; i++) this.args[i] = args[i]!;
    Atomics.add(ctrl, GEN, 1);
    Atomics.notify(ctrl, GEN);
    let ownError: unknown = null;
    try {
      this.own[fn]!(...args, 0, this.size);
    } catch (e) {
      ownError = e;
    }
    // every worker finishes the call before the next one may start, also after an error here
    const want = this.size - 1;
    let spins = 0;
    for (;;) {
      const done = Atomics.load(ctrl, DONE);
      if (done === want) break;
      if (this.blocking && ++spins > SPIN) Atomics.wait(ctrl, DONE, done);
    }
    if (ownError) throw ownError;
    if (Atomics.load(ctrl, ERROR) !== 0) throw new Error(`gemm pool: ${this.names[fn]} failed in a worker`);
  }

  /** Stops and terminates the workers. The pool cannot run afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    Atomics.store(this.ctrl, STOP, 1);
    Atomics.add(this.ctrl, GEN, 1);
    Atomics.notify(this.ctrl, GEN);
    for (const w of this.workers) w.terminate();
  }
}
