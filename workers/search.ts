/**
 * The studio worker's mixed-precision calls: a search over the open project (src/core/search/run.ts),
 * kept with the project in the origin-private file system so that a reload shows it again.
 */
import { loadModel } from '../src/core/pipeline';
import { canonicalize } from '../src/core/graph/canonicalize';
import { runSearch } from '../src/core/search/run';
import type { ImageFile } from '../src/core/data/image-set';
import type { PreprocessSpec } from '../src/core/data/preprocess';
import type { SavedSearch, SearchRequest, SearchWorkerApi } from '../src/common/search-protocol';
import { searchLayersOf, type SearchLayer } from '../src/core/search/layers';
import { DIR, read, write } from './opfs-project';

/** What a search needs of the worker's project. */
export interface SearchProject {
  readonly model: Uint8Array | null;
  readonly modelName: string | null;
  readonly external: ReadonlyMap<string, Uint8Array>;
  readonly calib: readonly ImageFile[];
  readonly preprocess: PreprocessSpec | null;
}

const FILE = 'search.json';

/**
 * The search lives in the project's folder: opening or changing the project (another model, other
 * calibration images) rewrites that folder, which drops a search that no longer applies.
 */
async function saveSearch(saved: SavedSearch): Promise<void> {
  let dir: FileSystemDirectoryHandle;
  try {
    dir = await (await navigator.storage.getDirectory()).getDirectoryHandle(DIR);
  } catch {
    return; // the project itself is not kept (it could not be saved): neither is its search
  }
  await write(dir, FILE, JSON.stringify(saved));
}

async function loadSearch(): Promise<SavedSearch | null> {
  try {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle(DIR);
    const saved = JSON.parse(new TextDecoder().decode(await read(dir, FILE))) as Partial<SavedSearch>;
    // a file from another version of the studio is ignored rather than misread
    return saved.kind === 'lowbit-studio-search' && saved.version === 1 ? (saved as SavedSearch) : null;
  } catch {
    return null;
  }
}

const sameBits = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** The worker's search calls over its project; `serial` orders them with the calls that change the project and with runs. */
export function searchCalls(project: () => SearchProject, serial: <T>(work: () => Promise<T>) => Promise<T>): SearchWorkerApi {
  let controller: AbortController | null = null;
  // per model bytes: a new model is a new array
  const layersOf = new WeakMap<Uint8Array, SearchLayer[]>();

  async function layers(): Promise<SearchLayer[]> {
    const p = project();
    if (!p.model) throw new Error('drop a model first');
    let cached = layersOf.get(p.model);
    if (!cached) {
      const { proto } = await loadModel(p.model, p.external);
      cached = searchLayersOf(canonicalize(proto).model);
      layersOf.set(p.model, cached);
    }
    return cached;
  }

  /** The saved search if it was made on the open model (same name, same layers). */
  async function current(): Promise<SavedSearch | null> {
    const p = project();
    const saved = await loadSearch();
    if (!saved || !p.model || saved.report.model.name !== p.modelName) return null;
    const names = (await layers()).map((l) => l.name);
    return saved.report.layers.length === names.length && saved.report.layers.every((l, i) => l.name === names[i]) ? saved : null;
  }

  return {
    searchLayers: () => serial(layers),

    lastSearch: () => serial(current),

    search: (request: SearchRequest, onEvent) =>
      serial(async () => {
        const p = project();
        if (!p.model || !p.modelName || !p.preprocess) throw new Error('drop a model first');
        const previous = await current();
        // the sensitivity table depends on the images, their preprocessing, the candidates, the mode and the seed,
        // not on the budget: a new budget on the same settings only re-runs the (sub-second) genetic search
        const prev = previous?.request;
        const sensitivity =
          prev && JSON.stringify(previous.preprocess) === JSON.stringify(p.preprocess) && prev.mode === request.mode && sameBits(prev.bits, request.bits) && prev.seed === request.seed && (request.mode === 'cheap' || prev.iters === request.iters)
            ? previous.report.sensitivity
            : undefined;
        // an imported table wins; else the last search's, when it timed the same widths and activation bits
        const latency = request.latencyTable ?? (prev && previous.report.latency && prev.latencyTable === undefined && prev.abits === request.abits && sameBits(prev.bits, request.bits) ? previous.report.latency : undefined);
        controller = new AbortController();
        try {
          const report = await runSearch(
            {
              model: p.model,
              modelName: p.modelName,
              external: p.external,
              calib: p.calib,
              preprocess: p.preprocess,
              budget: request.budget,
              bits: request.bits,
              abits: request.abits,
              mode: request.mode,
              method: request.method,
              seed: request.seed,
              headStem8bit: request.headStem8bit,
              ...(request.iters !== undefined ? { iters: request.iters } : {}),
              ...(sensitivity ? { sensitivity } : {}),
              ...(latency ? { latencyTable: latency } : {}),
            },
            onEvent,
            controller.signal,
          );
          const saved: SavedSearch = {
            kind: 'lowbit-studio-search',
            version: 1,
            request,
            report,
            preprocess: p.preprocess,
            reusedSensitivity: sensitivity !== undefined,
            reusedLatency: latency !== undefined && request.latencyTable === undefined && request.budget.metric === 'latency',
            finishedAt: new Date().toISOString(),
          };
          await saveSearch(saved);
          return saved;
        } finally {
          controller = null;
        }
      }),

    cancelSearch() {
      controller?.abort();
    },
  };
}
