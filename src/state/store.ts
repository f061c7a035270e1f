import { create } from 'zustand';
import * as Comlink from 'comlink';
import type { ComputeOptions, DroppedFile, ProjectInfo, RunSummary } from '../common/protocol';
import type { RunReport } from '../core/pipeline';
import type { PreprocessSpec } from '../core/data/preprocess';
import { RESUMABLE_METHODS, DEFAULT_PLAN, parsePlan, type QuantPlan } from '../core/plan';
import type { Stage } from '../core/events';
import { onWorkerLost, studioWorker, unlessWorkerLost, WorkerLostError } from './studio-worker';

/** What the page shows; the worker owns the bytes, the store only what is needed to draw. */
export type RunState =
  | { readonly kind: 'idle' }
  | { readonly kind: 'running'; readonly stage: Stage; readonly done: number; readonly total: number; readonly startedAt: number; readonly stageStartedAt: number }
  | { readonly kind: 'done'; readonly report: RunReport; readonly exportUrl: string; readonly exportName: string }
  | { readonly kind: 'cancelled' }
  | { readonly kind: 'failed'; readonly message: string }
  /** The worker died during the run; block methods resume from their last saved block. */
  | { readonly kind: 'interrupted'; readonly message: string; readonly stage: Stage; readonly resumable: boolean };

interface StudioState {
  project: ProjectInfo | null;
  loading: string | null;
  loadError: string | null;
  plan: QuantPlan;
  run: RunState;
  /** Loss curve of the layer being reconstructed (AdaRound), for the live chart. */
  losses: { readonly layer: string; readonly points: readonly { iter: number; rec: number; reg: number }[] } | null;
  /** The run's info and warning lines (block results, resumption), newest last. */
  log: readonly { readonly kind: 'info' | 'warning'; readonly text: string }[];
  /** Finished runs, from IndexedDB: the comparison table. */
  history: readonly RunSummary[];
  /** Reopens the project of the last visit and reads the run history; called once at start. */
  restore(): Promise<void>;
  clearHistory(): Promise<void>;
  setPlan(plan: Partial<QuantPlan>): void;
  planError: string | null;
  /** Loads a plan saved from an earlier run; a file that is not a valid plan leaves the current one. */
  loadPlan(file: Blob): Promise<void>;
  openDemo(): Promise<void>;
  addFiles(files: DroppedFile[]): Promise<void>;
  /** Makes `spec` the project's preprocessing; rejects with the reason when it cannot be applied. */
  setPreprocess(spec: PreprocessSpec): Promise<void>;
  startRun(): Promise<void>;
  cancelRun(): void;
  /** A pause of the running plan: asked for (a stage that is not paced finishes its step first), then holding since `since`. */
  pause: { readonly state: 'pausing' } | { readonly state: 'paused'; readonly since: number } | null;
  pauseRun(): Promise<void>;
  resumeRun(): void;
  /** Where runs compute (backend, threads): a preference of this browser, kept in localStorage. */
  compute: ComputeOptions;
  setCompute(c: Partial<ComputeOptions>): void;
}

/** Numbers the runs of this page, so that a late event of an earlier run is recognised. */
let runSeq = 0;

const COMPUTE_KEY = 'lowbit.compute';
const DEFAULT_COMPUTE: ComputeOptions = { backend: 'auto', threads: 'auto' };

/** The saved preference, or the default when there is none or it is not one we understand. */
function savedCompute(): ComputeOptions {
  try {
    const v = JSON.parse(localStorage.getItem(COMPUTE_KEY) ?? 'null') as Partial<ComputeOptions> | null;
    const backend = v?.backend === 'wasm' || v?.backend === 'webgpu' || v?.backend === 'auto' ? v.backend : DEFAULT_COMPUTE.backend;
    const threads = v?.threads === 'auto' || (Number.isInteger(v?.threads) && (v!.threads as number) >= 1) ? v!.threads! : DEFAULT_COMPUTE.threads;
    return { backend, threads };
  } catch {
    return DEFAULT_COMPUTE;
  }
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e)).replace(/^Error: /, '');

export const useStudio = create<StudioState>((set, get) => ({
  project: null,
  loading: null,
  loadError: null,
  plan: DEFAULT_PLAN,
  run: { kind: 'idle' },
  compute: savedCompute(),
  setCompute(c) {
    const compute = { ...get().compute, ...c };
    localStorage.setItem(COMPUTE_KEY, JSON.stringify(compute));
    set({ compute });
  },
  losses: null,
  log: [],
  history: [],
  pause: null,

  async restore() {
    try {
      set({ loading: 'Reopening your last project…' });
      set({ history: await studioWorker().history() });
      const project = await studioWorker().restore();
      set({ loading: null, ...(project && !get().project ? { project } : {}) });
    } catch (e) {
      set({ loading: null, loadError: `Your last project could not be reopened: ${message(e)}` });
    }
  },

  async clearHistory() {
    await studioWorker().clearHistory();
    set({ history: [] });
  },

  setPlan(plan) {
    set({ plan: { ...get().plan, ...plan } });
  },

  planError: null,
  async loadPlan(file) {
    try {
      set({ plan: parsePlan(JSON.parse(await file.text())), planError: null });
    } catch (e) {
      set({ planError: `This file is not a plan: ${message(e)}` });
    }
  },

  async openDemo() {
    set({ loading: 'Opening the demo project…', loadError: null, run: { kind: 'idle' } });
    try {
      const project = await studioWorker().openDemo(new URL('demo/', document.baseURI).href);
      set({ project, loading: null });
    } catch (e) {
      set({ loading: null, loadError: message(e) });
    }
  },

  async addFiles(files) {
    set({ loading: `Reading ${files.length} file${files.length === 1 ? '' : 's'}…`, loadError: null, run: { kind: 'idle' } });
    try {
      const project = await studioWorker().addFiles(files);
      set({ project, loading: null });
    } catch (e) {
      set({ loading: null, loadError: message(e) });
    }
  },

  async setPreprocess(spec) {
    set({ project: await studioWorker().setPreprocess(spec) });
  },

  async startRun() {
    const { plan, project, run } = get();
    if (!project?.summary || run.kind === 'running') return;
    if (run.kind === 'done') URL.revokeObjectURL(run.exportUrl);
    const startedAt = performance.now();
    const mine = ++runSeq;
    set({ run: { kind: 'running', stage: 'load', done: 0, total: 1, startedAt, stageStartedAt: startedAt }, losses: null, log: [], pause: null });
    try {
      const outcome = await unlessWorkerLost(studioWorker().run(
        plan,
        Comlink.proxy((e) => {
          // events travel on their own channel and can land after the result: a finished (or newer) run ignores them
          if (mine !== runSeq || get().run.kind !== 'running') return;
          const now = get().run;
          const stageStartedAt = now.kind === 'running' ? now.stageStartedAt : startedAt;
          if (e.type === 'stage') set({ run: { kind: 'running', stage: e.stage, done: 0, total: 1, startedAt, stageStartedAt: performance.now() } });
          else if (e.type === 'progress') set({ run: { kind: 'running', stage: e.stage, done: e.done, total: e.total, startedAt, stageStartedAt } });
          else if (e.type === 'info' || e.type === 'warning') set({ log: [...get().log, { kind: e.type, text: e.message }] });
          else if (e.type === 'loss') {
            const prev = get().losses;
            const point = { iter: e.iter, rec: e.rec, reg: e.reg };
            set({ losses: prev?.layer === e.layer ? { layer: e.layer, points: [...prev.points, point] } : { layer: e.layer, points: [point] } });
          }
        }),
        get().compute,
      ));
      const base = (project.modelName ?? 'model').replace(/\.onnx$/i, '');
      const exportName = `${base}-w${plan.wbits}a${plan.abits ?? 32}-${plan.method}.onnx`;
      const exportUrl = URL.createObjectURL(new Blob([outcome.exported as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }));
      set({ run: { kind: 'done', report: outcome.report, exportUrl, exportName }, history: await studioWorker().history() });
    } catch (e) {
      const msg = message(e);
      if (e instanceof WorkerLostError) {
        const now = get().run;
        set({ run: { kind: 'interrupted', message: msg, stage: now.kind === 'running' ? now.stage : 'load', resumable: RESUMABLE_METHODS.includes(plan.method) }, pause: null });
        return;
      }
      set({ run: /cancelled/.test(msg) ? { kind: 'cancelled' } : { kind: 'failed', message: msg } });
    }
  },

  cancelRun() {
    void studioWorker().cancel();
    set({ pause: null });
  },

  async pauseRun() {
    if (get().run.kind !== 'running' || get().pause) return;
    set({ pause: { state: 'pausing' } });
    await studioWorker().pause();
    // the run may have ended, been cancelled or resumed while the pause was on its way
    if (get().run.kind === 'running' && get().pause?.state === 'pausing') set({ pause: { state: 'paused', since: performance.now() } });
  },

  resumeRun() {
    const { pause, run } = get();
    if (!pause) return;
    void studioWorker().resume();
    // the time spent paused is not the stage's: the time-left estimate skips it
    const held = pause.state === 'paused' ? performance.now() - pause.since : 0;
    set({ pause: null, ...(run.kind === 'running' ? { run: { ...run, stageStartedAt: run.stageStartedAt + held } } : {}) });
  },
}));

// The dead worker took the project's bytes with it: a fresh one reopens the project from where the
// worker kept it (OPFS), so that the page goes on showing, and running, the same project.
onWorkerLost((reason) => {
  const running = useStudio.getState().run.kind === 'running';
  useStudio.setState({ loading: 'Restarting the studio’s worker and reopening the project…', ...(running ? {} : { loadError: `${reason}; it has been restarted` }) });
  studioWorker()
    .restore()
    .then(
      (project) => useStudio.setState({ loading: null, project, ...(project ? {} : { loadError: `${reason}, and the project could not be reopened: open or drop it again` }) }),
      (e: unknown) => useStudio.setState({ loading: null, project: null, loadError: `${reason}, and the project could not be reopened: ${message(e)}` }),
    );
});
