/** What a mixed-precision search tells its observer (the CLI's terminal, the studio). Plain, serialisable data. */

export type SearchPhase = 'sensitivity' | 'latency' | 'genetic' | 'front';

export const SEARCH_PHASE_LABELS: Record<SearchPhase, string> = {
  sensitivity: 'Measuring layer sensitivities',
  latency: 'Timing layers for the latency table',
  genetic: 'Searching bit widths (genetic algorithm)',
  front: 'Sweeping budgets for the Pareto front',
};

export type SearchEvent =
  | { readonly type: 'phase'; readonly phase: SearchPhase }
  | { readonly type: 'progress'; readonly phase: SearchPhase; readonly done: number; readonly total: number }
  | { readonly type: 'info'; readonly message: string };

export type SearchEmit = (event: SearchEvent) => void;
