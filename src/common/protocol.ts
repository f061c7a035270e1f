/**
 * Types shared by the page and the studio worker: the whole worker protocol in one place.
 * Everything here is plain data (structured-clonable), never class instances.
 */
import type { ModelSummary } from '../core/graph/summary';
import type { PreprocessSpec } from '../core/data/preprocess';
import type { QuantPlan } from '../core/plan';
import type { PipelineEvent } from '../core/events';
import type { RunReport } from '../core/pipeline';
import type { Granularity, PartitionEdit } from '../core/graph/partition';
import type { SearchWorkerApi } from './search-protocol';
import type { PreprocessWorkerApi } from './preprocess-protocol';
import type { BackendChoice } from '../core/backends/select';
import type { Threads } from '../core/engine/conv-engine';

/** A block of the partition as the page draws it. */
export interface BlockInfo {
  readonly id: string;
  readonly kind: string;
  readonly layers: readonly string[];
}

export interface ProjectInfo {
  readonly modelName: string | null;
  readonly summary: ModelSummary | null;
  readonly calibImages: number;
  readonly valImages: number;
  readonly classes: readonly string[] | null;
  readonly preprocess: PreprocessSpec | null;
  /** Problems found while reading the files; the project stays usable where possible. */
  readonly warnings: readonly string[];
}

/** A file dropped by the user, with its path inside the dropped folder. */
export interface DroppedFile {
  readonly path: string;
  readonly file: Blob;
}

export interface RunOutcome {
  readonly report: RunReport;
  readonly exported: Uint8Array;
}

/** A finished run as the history keeps it: enough to compare runs side by side. */
export interface RunSummary {
  readonly id: number;
  readonly modelName: string;
  readonly finishedAt: string;
  readonly plan: QuantPlan;
  readonly fp: number | null;
  readonly quant: number | null;
  readonly exported: number | null;
  readonly seconds: number;
}

/** Where a run computes: not part of the plan, since any choice gives the same numbers (to float rounding on WebGPU). */
export interface ComputeOptions {
  readonly backend: BackendChoice;
  readonly threads: Threads;
}

/** The mixed-precision and preprocessing calls are declared beside it, in search-protocol.ts and preprocess-protocol.ts. */
export interface StudioWorkerApi extends SearchWorkerApi, PreprocessWorkerApi {
  /** The project kept from the last visit, reopened; null when there is none. */
  restore(): Promise<ProjectInfo | null>;
  /** Finished runs of every project, oldest first. */
  history(): Promise<readonly RunSummary[]>;
  clearHistory(): Promise<void>;
  /** Opens the bundled demo project from `baseUrl` (e.g. `/demo/`). */
  openDemo(baseUrl: string): Promise<ProjectInfo>;
  /** Adds dropped files: an .onnx model (with .data), a flat image folder (calibration), class sub-folders (validation). */
  addFiles(files: readonly DroppedFile[]): Promise<ProjectInfo>;
  /** The model's partition at `granularity` with `edits` replayed; rejects with the reason when an edit does not apply. */
  partition(granularity: Granularity, edits: readonly PartitionEdit[]): Promise<readonly BlockInfo[]>;
  run(plan: QuantPlan, onEvent: (e: PipelineEvent) => void, compute: ComputeOptions): Promise<RunOutcome>;
  cancel(): void;
  /**
   * Holds the Web Lock `name` for the worker's whole life; resolves once it is held. The page then
   * asks for the same lock, which the browser grants only when this worker is gone.
   */
  holdLifeLock(name: string): Promise<void>;
  /** Pauses the run in progress; resolves once it holds (its state kept in memory), or when no run is going. */
  pause(): Promise<void>;
  /** Lets a paused run continue exactly where it was. */
  resume(): void;
}
