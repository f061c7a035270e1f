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
 * The pacing of a long synchronous loop: call the returned function once per iteration. It
 * yields to the event loop every ~100 ms, so that a cancel (or a worker message) gets through,
 * and throws CancelledError once the signal is aborted.
 */
export function cooperative(signal?: AbortSignal): () => Promise<void> {
  let last = performance.now();
  return async () => {
    if (performance.now() - last > 100) {
      await yieldToEventLoop();
      last = performance.now();
    }
    throwIfAborted(signal);
  };
}
