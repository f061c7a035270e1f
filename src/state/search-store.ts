import { create } from 'zustand';
import * as Comlink from 'comlink';
import type { Bits } from '../core/quant/quantizer';
import type { SearchPhase } from '../core/search/events';
import type { SavedSearch, SearchRequest } from '../common/search-protocol';
import type { SearchLayer } from '../core/search/layers';
import { studioWorker } from './studio-worker';
import { useStudio } from './store';
import { planWithBits } from './mixed-precision';

/** The mixed-precision search as the page draws it; the worker measures, searches and keeps the result. */
export type SearchStatus =
  | { readonly kind: 'idle' }
  | { readonly kind: 'running'; readonly phase: SearchPhase | null; readonly done: number; readonly total: number }
  | { readonly kind: 'cancelled' }
  | { readonly kind: 'failed'; readonly message: string };

interface SearchState {
  /** The open model's layers with their cost facts; null without a model. */
  layers: readonly SearchLayer[] | null;
  /** The last search of the open project (kept with it, so a reload shows it again). */
  saved: SavedSearch | null;
  status: SearchStatus;
  /** Reads the open project's layers and its saved search; called whenever the project changes. */
  refresh(): Promise<void>;
  startSearch(request: SearchRequest): Promise<void>;
  cancelSearch(): void;
  /** Puts a configuration's per-layer widths into the plan that Run runs. */
  loadBits(layerBits: Readonly<Record<string, Bits>>): void;
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e)).replace(/^Error: /, '');

// a refresh started before another one finished must not overwrite the newer answer
let refreshes = 0;
/**
 * The search whose events are drawn. Events come through their own message channel, so one can
 * arrive after the search's result: it must not turn a finished search back into a running one.
 */
let searches = 0;

export const useSearch = create<SearchState>((set, get) => ({
  layers: null,
  saved: null,
  status: { kind: 'idle' },

  async refresh() {
    const ticket = ++refreshes;
    if (!useStudio.getState().project?.summary) {
      set({ layers: null, saved: null, status: { kind: 'idle' } });
      return;
    }
    try {
      const [layers, saved] = await Promise.all([studioWorker().searchLayers(), studioWorker().lastSearch()]);
      if (ticket === refreshes) set({ layers, saved });
    } catch (e) {
      if (ticket === refreshes) set({ layers: null, saved: null, status: { kind: 'failed', message: message(e) } });
    }
  },

  async startSearch(request) {
    if (get().status.kind === 'running') return;
    const ticket = ++searches;
    set({ status: { kind: 'running', phase: null, done: 0, total: 1 } });
    try {
      const saved = await studioWorker().search(
        request,
        Comlink.proxy((e) => {
          if (ticket !== searches) return;
          if (e.type === 'phase') set({ status: { kind: 'running', phase: e.phase, done: 0, total: 1 } });
          else if (e.type === 'progress') set({ status: { kind: 'running', phase: e.phase, done: e.done, total: e.total } });
        }),
      );
      searches++;
      set({ saved, status: { kind: 'idle' } });
    } catch (e) {
      searches++;
      const msg = message(e);
      set({ status: /cancelled/.test(msg) ? { kind: 'cancelled' } : { kind: 'failed', message: msg } });
    }
  },

  cancelSearch() {
    void studioWorker().cancelSearch();
  },

  loadBits(layerBits) {
    const { plan, setPlan } = useStudio.getState();
    const layers = get().layers;
    if (layers) setPlan(planWithBits(plan, layerBits, layers));
  },
}));
