/** What a run tells its observer (the worker's UI bridge, the CLI's terminal). Plain, serialisable data. */

export type Stage = 'load' | 'fp-eval' | 'calibrate' | 'quantize' | 'act-steps' | 'export' | 'quant-eval' | 'exported-eval';

export const STAGE_LABELS: Record<Stage, string> = {
  load: 'Loading model',
  'fp-eval': 'Evaluating the float model',
  calibrate: 'Calibrating activation ranges',
  quantize: 'Quantizing weights',
  'act-steps': 'Learning activation step sizes',
  export: 'Writing the QDQ model',
  'quant-eval': 'Evaluating the fake-quantized model',
  'exported-eval': 'Evaluating the exported model',
};

export type PipelineEvent =
  | { readonly type: 'stage'; readonly stage: Stage }
  | { readonly type: 'progress'; readonly stage: Stage; readonly done: number; readonly total: number }
  | { readonly type: 'loss'; readonly layer: string; readonly iter: number; readonly rec: number; readonly reg: number; readonly beta: number | null }
  | { readonly type: 'info'; readonly message: string }
  | { readonly type: 'warning'; readonly message: string };

export type Emit = (event: PipelineEvent) => void;
export type Progress = (done: number, total: number) => void;

export class CancelledError extends Error {
  override name = 'CancelledError';
  constructor() {
    super('the run was cancelled');
  }
}

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new CancelledError();
}

/** Lets pending messages (cancel, progress reads) run during long synchronous work. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Pause and resume of a run, as opposed to cancel: every loop paced by `cooperative` on the run's
 * signal holds at its next iteration while the gate is paused, with all its state (rounding
 * variables, Adam moments, random streams) left in memory, so a resumed run continues exactly
 * where it was and ends with the bytes an uninterrupted one would. The gate is attached to the
 * run's AbortSignal, which every stage and method already receives: nothing else is threaded
 * through. Aborting the signal releases a held loop, which then throws CancelledError.
 */
export class PauseGate {
  #paused = false;
  #holding = 0;
  /** Resolves the loops held at the gate. */
  #release: (() => void)[] = [];
  /** Resolves the callers of `pause()` waiting for a loop to hold. */
  #held: (() => void)[] = [];

  constructor(private readonly signal: AbortSignal) {
    gates.set(signal, this);
    signal.addEventListener('abort', () => this.#open());
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Whether a loop is holding at the gate right now (a pause has taken effect). */
  get holding(): boolean {
    return this.#holding > 0;
  }

  /**
   * Asks the run to pause; resolves once a loop holds at the gate (a stage that is not paced, such
   * as one ONNX Runtime call, finishes first), or once `close()` says no loop ever will.
   */
  pause(): Promise<void> {
    this.#paused = true;
    if (this.#holding > 0 || this.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => this.#held.push(resolve));
  }

  resume(): void {
    this.#open();
  }

  /** The run is over: nothing will hold any more, so pending `pause()` calls resolve. */
  close(): void {
    this.#open();
    gates.delete(this.signal);
  }

  /** Waits while paused; called by the paced loops, never by the run's owner. */
  async wait(): Promise<void> {
    if (!this.#paused || this.signal.aborted) return;
    this.#holding++;
    for (const r of this.#held.splice(0)) r();
    try {
      await new Promise<void>((resolve) => this.#release.push(resolve));
    } finally {
      this.#holding--;
    }
  }

  #open(): void {
    this.#paused = false;
    for (const r of [...this.#release.splice(0), ...this.#held.splice(0)]) r();
  }
}

const gates = new WeakMap<AbortSignal, PauseGate>();

/**
 * The pacing of a long loop: call the returned function once per iteration. It yields to the
 * event loop every ~100 ms, so that a cancel (or a worker message) gets through, holds while the
 * signal's PauseGate is paused, and throws CancelledError once the signal is aborted.
 */
export function cooperative(signal?: AbortSignal): () => Promise<void> {
  let last = performance.now();
  return async () => {
    const gate = signal && gates.get(signal);
    if (gate?.paused) {
      await gate.wait();
      last = performance.now();
    } else if (performance.now() - last > 100) {
      await yieldToEventLoop();
      last = performance.now();
    }
    throwIfAborted(signal);
  };
}
