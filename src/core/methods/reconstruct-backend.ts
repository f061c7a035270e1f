import type { ModelProto } from '../onnx/schema';
import type { Block } from '../graph/partition';
import type { Nd, QuantGrid } from '../backends/cpu/reference';
import type { AdamState, GridOf, KernelBackend, TensorLike } from '../backends/webgpu/types';
import { BackendBlock, type BackendWeight } from '../engine/backend-block';
import type { WeightSlot } from '../engine/block-program';
import type { RowCache } from '../quant/row-cache';
import { rng } from '../random';
import { CancelledError, cooperative, type Emit } from '../events';
import { betaAt } from './adaround';
import type { ReconstructionOptions } from './reconstruct';

/*
 * Block reconstruction's weight loop on a `KernelBackend` (WebGPU): the same maths as the CPU loop
 * in reconstruct.ts (same seeded batch sequence, β schedule, λ, Adam, loss normalisation, Fisher
 * weighting), with weights, rounding variables V and Adam's moments resident on the device. Each
 * iteration uploads its gathered batch; the loss comes back only when it is reported (and a few
 * bytes every SYNC iterations, so the CPU never queues more than that ahead of the device); V
 * comes back once, at the end, for hard rounding.
 */

/** How many iterations the CPU may enqueue ahead of the device. */
const SYNC = 4;

/** A block slot as the CPU loop keeps it; `v` receives the learned variables. */
export interface SlotOnHost {
  readonly weight: Nd;
  readonly grid: QuantGrid;
  readonly v: Nd | null;
  readonly fixed: Nd | null;
}

export interface BlockJob {
  readonly model: ModelProto;
  readonly block: Block;
  /** The CPU program's weight slots: which node reads which slot, weights channels first. */
  readonly slots: readonly WeightSlot[];
  readonly state: readonly SlotOnHost[];
  /** Cached block inputs (from the quantized prefix), float targets, and (|g| + 1)² Fisher weights. */
  readonly inputs: RowCache;
  readonly targets: RowCache;
  readonly fisher: RowCache | null;
  /** QDrop's joint mode: activation quantizers and drop masks, which only the CPU engine has. */
  readonly joint: boolean;
  readonly options: Pick<ReconstructionOptions, 'iters' | 'batch' | 'lr' | 'lambda' | 'betaStart' | 'betaEnd' | 'warmup'>;
  /** The seed of the block's random stream, as the CPU loop seeds it. */
  readonly seed: number;
  /** Called where the CPU loop reports: iteration, reconstruction loss, λ-weighted regulariser, β. */
  readonly report: (t: number, rec: number, reg: number, beta: number | null) => void;
  readonly signal?: AbortSignal;
}

const displayName = (b: KernelBackend<TensorLike>) => (b.name === 'webgpu' ? 'WebGPU' : b.name);

/**
 * Runs each block's weight loop on the run's backend when it can, and says where every block ran.
 * After a failure (a lost device) the remaining blocks stay on the CPU.
 */
export class BlockBackendRunner {
  private off: string | null = null;

  constructor(
    private readonly backend: KernelBackend<TensorLike> | null | undefined,
    private readonly emit: Emit,
  ) {}

  /**
   * The last loss when the block ran on the backend (its V written into `job.state`), or null:
   * the caller runs its CPU loop, from the block's start, with the same random stream.
   */
  async reconstruct(job: BlockJob): Promise<{ last: number | null } | null> {
    const b = this.backend;
    if (!b) return null;
    const name = displayName(b);
    const lost = b.lost ? `the ${name} device was lost (${b.lost})` : null;
    const why = this.off ?? lost ?? (job.joint ? `QDrop's activation quantizers and drop masks are not on ${name}` : null) ?? (job.state.some((s) => s.grid.group !== undefined) ? `per-group weight scales are not on ${name}` : null);
    if (why) {
      if (lost) this.off = lost;
      this.emit({ type: 'info', message: `block ${job.block.id}: on the CPU: ${why}` });
      return null;
    }
    const bs = Math.min(job.options.batch, job.inputs.shape[0]!);
    const compiled = BackendBlock.compile(job.model, job.block, job.slots, b, [bs, ...job.inputs.shape.slice(1)]);
    if (!compiled.ok) {
      this.emit({ type: 'info', message: `block ${job.block.id}: on the CPU: ${compiled.reason} not on ${name}` });
      return null;
    }
    this.emit({ type: 'info', message: `block ${job.block.id}: on ${name}` });
    try {
      return { last: await train(b, compiled.program, job) };
    } catch (e) {
      if (e instanceof CancelledError || job.signal?.aborted) throw e;
      this.off = b.lost ? `the ${name} device was lost (${b.lost})` : `${name} failed (${(e as Error).message})`;
      this.emit({ type: 'warning', message: `block ${job.block.id}: ${this.off}; this block and the rest run on the CPU` });
      return null;
    } finally {
      compiled.program.dispose();
    }
  }
}

async function train<T extends TensorLike>(b: KernelBackend<T>, program: BackendBlock<T>, job: BlockJob): Promise<number | null> {
  const o = job.options;
  const { inputs, targets } = job;
  const rand = rng(job.seed);
  const n = inputs.shape[0]!;
  const bs = Math.min(o.batch, n);
  const xHost = new Float32Array(bs * inputs.rowSize);
  const yHost = new Float32Array(bs * targets.rowSize);
  const fHost = job.fisher ? new Float32Array(yHost.length) : null;
  const channels = targets.shape[1] ?? 1;
  const owned: T[] = [];
  const keep = (t: T): T => {
    owned.push(t);
    return t;
  };
  const grids: GridOf<T>[] = [];
  try {
    const x = keep(b.upload({ shape: [bs, ...inputs.shape.slice(1)], data: xHost }));
    const y = keep(b.upload({ shape: [bs, ...targets.shape.slice(1)], data: yHost }));
    const f = fHost ? keep(b.upload({ shape: [bs, ...targets.shape.slice(1)], data: fHost })) : null;
    const adams: (AdamState<T> | null)[] = [];
    const weights: BackendWeight<T>[] = job.state.map((s) => {
      if (!s.v) {
        adams.push(null);
        return { w: keep(b.upload(s.fixed!)), soft: null };
      }
      const v = keep(b.upload(s.v));
      const grid = b.grid(s.grid);
      grids.push(grid);
      adams.push({ param: v, m: keep(b.upload({ shape: s.v.shape, data: new Float32Array(s.v.data.length) })), v: keep(b.upload({ shape: s.v.shape, data: new Float32Array(s.v.data.length) })) });
      return { w: keep(b.upload(s.weight)), soft: { v, grid } };
    });
    const pace = cooperative(job.signal);
    const every = Math.max(1, Math.floor(o.iters / 100));
    let inFlight: Promise<number> | null = null;
    let last: number | null = null;
    for (let t = 0; t < o.iters; t++) {
      await pace();
      const idx = Array.from({ length: bs }, () => Math.floor(rand() * n));
      b.write(x, inputs.gather(idx, xHost));
      targets.gather(idx, yHost);
      if (job.fisher && fHost) {
        // Fisher-weighted MSE as a plain MSE of √f·pred against √f·target: the targets are scaled
        // here, the prediction and its gradient by one element-wise multiply each on the device
        job.fisher.gather(idx, fHost);
        for (let i = 0; i < yHost.length; i++) {
          fHost[i] = Math.sqrt(fHost[i]!);
          yHost[i]! *= fHost[i]!;
        }
        b.write(f!, fHost);
      }
      b.write(y, yHost);

      const tape = program.forward(x, weights);
      const pred = f ? b.mulForward(tape.output, f) : tape.output;
      // the references' normalisation: a sum over channels, a mean over batch and positions (reconstruct.ts)
      const { loss, grad } = b.mseLossAndGrad(pred, y, { dLoss: channels });
      const dOut = f ? b.mulForward(grad, f) : grad;
      if (f) b.release(pred, grad);
      const dV = program.backward(tape, weights, dOut);
      program.releaseTape(tape);
      b.release(dOut);

      const beta = betaAt(t, o);
      const reported = t % every === 0 || t === o.iters - 1;
      const regs: T[] = [];
      weights.forEach((w, k) => {
        if (!w.soft) return;
        let g = dV[k] ?? b.upload({ shape: w.w.shape, data: new Float32Array(job.state[k]!.weight.data.length) });
        if (beta !== null) {
          // the regulariser is read at the V this step starts from, as the CPU loop reads it
          if (reported) regs.push(b.adaroundRegForward(w.soft.v, beta));
          const sum = b.adaroundRegBackward(w.soft.v, beta, o.lambda, g);
          b.release(g);
          g = sum;
        }
        b.adamStep(adams[k]!, g, { lr: o.lr, t: t + 1 });
        b.release(g);
      });
      b.flush();

      if (reported) {
        const rec = channels * (await b.readScalar(loss));
        let reg = 0;
        for (const r of regs) reg += o.lambda * (await b.readScalar(r));
        b.release(loss, ...regs);
        if (!Number.isFinite(rec)) throw new Error(`the loss is ${rec} at iteration ${t}`);
        last = rec;
        job.report(t, rec, reg, beta);
      } else if ((t + 1) % SYNC === 0) {
        const p = b.readScalar(loss);
        // awaited at the next sync point; until then a rejection must not count as unhandled
        p.catch(() => {});
        b.release(loss);
        if (inFlight) await inFlight;
        inFlight = p;
      } else b.release(loss);
    }
    if (inFlight) await inFlight;
    const learned = await Promise.all(weights.map((w) => (w.soft ? b.read(w.soft.v) : null)));
    learned.forEach((v, k) => v && job.state[k]!.v!.data.set(v.data));
    return last;
  } finally {
    b.release(...owned);
    for (const g of grids) b.releaseGrid(g);
  }
}
