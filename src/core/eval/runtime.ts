import * as ort from 'onnxruntime-web/wasm';

/**
 * ONNX Runtime (WASM build) is the one inference engine of the studio, in the browser worker, in
 * Node and in tests, so every number the studio reports comes from the same kernels.
 */

export interface RuntimeOptions {
  /** WASM threads. Threads need cross-origin isolation in the browser. */
  threads?: number;
}

let configured = false;
export function configureRuntime({ threads = 1 }: RuntimeOptions = {}): void {
  if (configured) return;
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = 'error';
  configured = true;
}

export type Optimization = 'none' | 'all';

export class ModelSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly inputName: string,
    readonly outputNames: readonly string[],
  ) {}

  /**
   * `optimization: 'none'` runs every node as written: a QDQ graph then computes exactly the
   * fake-quantized float model. `'all'` lets ORT fuse QDQ into integer kernels, as a deployment would.
   */
  static async create(bytes: Uint8Array, optimization: Optimization): Promise<ModelSession> {
    configureRuntime();
    const session = await ort.InferenceSession.create(bytes, {
      executionProviders: ['wasm'],
      graphOptimizationLevel: optimization === 'none' ? 'disabled' : 'all',
    });
    const inputName = session.inputNames[0];
    if (!inputName) throw new Error('the model has no inputs');
    return new ModelSession(session, inputName, session.outputNames);
  }

  /** Runs one batch; returns the named outputs (all outputs when `names` is omitted). */
  async run(input: Float32Array, shape: readonly number[], names?: readonly string[]): Promise<Map<string, { data: Float32Array; dims: readonly number[] }>> {
    const feeds = { [this.inputName]: new ort.Tensor('float32', input, shape as number[]) };
    const results = names ? await this.session.run(feeds, names as string[]) : await this.session.run(feeds);
    const out = new Map<string, { data: Float32Array; dims: readonly number[] }>();
    for (const [k, v] of Object.entries(results)) {
      if (v.type !== 'float32') throw new Error(`output "${k}" is ${v.type}; the studio expects float32 outputs`);
      out.set(k, { data: v.data as Float32Array, dims: v.dims });
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
