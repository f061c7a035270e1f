/**
 * The mixed-precision part of the worker protocol (see protocol.ts): plain, structured-clonable data.
 */
import type { Bits } from '../core/quant/quantizer';
import type { Budget } from '../core/search/cost';
import type { SearchLayer } from '../core/search/layers';
import type { SearchEvent } from '../core/search/events';
import type { SearchReport } from '../core/search/run';
import type { SensitivityMode } from '../core/search/sensitivity';
import type { MethodName } from '../core/plan';
import type { PreprocessSpec } from '../core/data/preprocess';

/** What the studio asks of one search; the model and calibration images are the open project's. */
export interface SearchRequest {
  readonly budget: Budget;
  /** Candidate weight bits, at least two. */
  readonly bits: readonly Bits[];
  readonly mode: SensitivityMode;
  /** Reconstructed mode: BRECQ iterations per block and table entry. */
  readonly iters?: number;
  /** From the plan: BitOPs and latency count the activation bits; the head/stem rule pins layers. */
  readonly abits: Bits | null;
  readonly headStem8bit: boolean;
  readonly method: MethodName;
  readonly seed: number;
  /** A latency table brought as JSON (measured on the target device); without it, layers are timed in this tab. */
  readonly latencyTable?: unknown;
}

/** A finished search as the studio keeps it with the project, with what was reused from the last one. */
export interface SavedSearch {
  readonly kind: 'lowbit-studio-search';
  readonly version: 1;
  readonly request: SearchRequest;
  readonly report: SearchReport;
  /** The preprocessing the sensitivities were measured with: it can change without the project being replaced. */
  readonly preprocess: PreprocessSpec;
  /** The sensitivity table (or latency table) came from the previous search of the same project and settings, not a new measurement. */
  readonly reusedSensitivity: boolean;
  readonly reusedLatency: boolean;
  readonly finishedAt: string;
}

export interface SearchWorkerApi {
  /** The open model's quantizable layers with their cost facts (for the budget's reference costs). */
  searchLayers(): Promise<readonly SearchLayer[]>;
  /** Runs a search over the open project, after any pending change of it; saved with the project. */
  search(request: SearchRequest, onEvent: (e: SearchEvent) => void): Promise<SavedSearch>;
  /** The search saved with the open project, or null when there is none (or it belongs to another model). */
  lastSearch(): Promise<SavedSearch | null>;
  cancelSearch(): void;
}
