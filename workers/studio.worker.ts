/// <reference lib="webworker" />
/**
 * The studio's worker: holds the project's bytes and runs the pipeline off the main thread.
 * Thin by design: everything it does is a call into src/core.
 */
import * as Comlink from 'comlink';
import { opfsSpillStore } from './opfs-spill';
import { batchSizeFor, checkClassCount, loadModel, runQuantization, type RunInput } from '../src/core/pipeline';
import { labelImages, isImagePath, type ImageFile } from '../src/core/data/image-set';
import { checkPreprocess, openInputDims, proposePreprocess, type PreprocessSpec } from '../src/core/data/preprocess';
import type { ModelSummary } from '../src/core/graph/summary';
import type { ComputeOptions, DroppedFile, ProjectInfo, RunOutcome, RunSummary, StudioWorkerApi } from '../src/common/protocol';
import { idbRequest } from './idb';
import { loadProject, savePreprocess, saveProject, type SavedProject } from './opfs-project';
import { RESUMABLE_METHODS, type QuantPlan } from '../src/core/plan';
import { indexedDbCheckpoints } from './idb-checkpoints';
import { npySamples, parseNpy } from '../src/core/data/npy';
import { readZip } from '../src/core/data/zip';
import { editedPartition } from '../src/core/graph/partition';
import { canonicalize } from '../src/core/graph/canonicalize';
import { searchCalls } from './search';
import { previewPreprocess } from './preprocess';
import { PauseGate, type PipelineEvent } from '../src/core/events';

interface Project {
  model: Uint8Array | null;
  modelName: string | null;
  external: Map<string, Uint8Array>;
  summary: ModelSummary | null;
  calib: ImageFile[];
  val: ImageFile[];
  classNames: string[] | null;
  preprocess: PreprocessSpec | null;
  warnings: string[];
}

const empty = (): Project => ({ model: null, modelName: null, external: new Map(), summary: null, calib: [], val: [], classNames: null, preprocess: null, warnings: [] });
let project = empty();
let controller: AbortController | null = null;
/** The running plan's pause gate: every paced loop of the run holds at it while paused. */
let gate: PauseGate | null = null;
const BROWSER_MEMORY_BUDGET = 3 * 2 ** 30;

function info(): ProjectInfo {
  let classes: readonly string[] | null = project.classNames;
  if (!classes && project.val.length) {
    try {
      classes = labelImages(project.val.map((f) => f.path)).classes;
    } catch {
      classes = null;
    }
  }
  return {
    modelName: project.modelName,
    summary: project.summary,
    calibImages: project.calib.length,
    valImages: project.val.length,
    classes,
    preprocess: project.preprocess,
    warnings: [...project.warnings, ...problems(classes)],
  };
}

/** What would stop a run, said as soon as the project shows it rather than when Run is pressed. */
function problems(classes: readonly string[] | null): string[] {
  if (!project.summary || !project.preprocess) return [];
  const out: string[] = [];
  for (const check of [() => batchSizeFor(project.summary!, project.preprocess!), () => classes && checkClassCount(project.summary!, classes)]) {
    try {
      check();
    } catch (e) {
      out.push((e as Error).message);
    }
  }
  return out;
}

async function setModel(bytes: Uint8Array, name: string): Promise<void> {
  const { summary } = await loadModel(bytes);
  project.model = bytes;
  project.modelName = name;
  project.summary = summary;
  project.preprocess = proposePreprocess(summary.inputs[0]?.shape ?? []);
  // a dynamic or unrecorded input is never filled in silently: the user is told what was assumed
  const input = summary.inputs[0];
  const open = openInputDims(input?.shape ?? []);
  if (open.size || open.channels) {
    const { size, channels } = project.preprocess;
    const what = [open.channels ? `${channels} channel${channels > 1 ? 's' : ''}` : '', open.size ? `${size[0]}×${size[1]} pixels` : ''].filter(Boolean).join(' and ');
    project.warnings.push(`the model's input "${input?.name ?? ''}" ${input?.shape.length ? `has a dynamic shape [${input.shape.join(', ')}]` : 'has no shape in the file'}: the studio assumed ${what}; set the right values under Preprocessing`);
  }
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`could not load ${url} (HTTP ${res.status})`);
  return new Uint8Array(await res.arrayBuffer());
}

interface DemoManifest {
  model: string;
  preprocess: PreprocessSpec;
  classes: string[];
  calib: string[];
  val: { path: string; label: number }[];
}

/**
 * A flat folder (or archive) named like a validation set is one without labels: the run then
 * reports fidelity to the float model (top-1 agreement, output cosine) instead of accuracy.
 */
const UNLABELLED_VALIDATION = /^(val|valid|validation|test|eval)(\.zip)?$/i;

/** Splits dropped paths by their top folder: each folder is calibration (flat) or validation (class sub-folders). */
function groupByTopFolder(images: DroppedFile[]): Map<string, DroppedFile[]> {
  const groups = new Map<string, DroppedFile[]>();
  for (const f of images) {
    const parts = f.path.split('/');
    const key = parts.length > 1 ? parts[0]! : '';
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(f);
  }
  return groups;
}

/**
 * A dropped .zip becomes its images, inside a folder named after the archive, so that it is taken
 * as a dropped folder is: flat inside, calibration; class folders inside, validation. An archive
 * that cannot be read is a warning, like a folder that cannot be labelled.
 */
async function expandZips(files: readonly DroppedFile[], warnings: string[]): Promise<DroppedFile[]> {
  const out: DroppedFile[] = [];
  for (const f of files) {
    if (!/\.zip$/i.test(f.path)) {
      out.push(f);
      continue;
    }
    try {
      for (const e of await readZip(new Uint8Array(await f.file.arrayBuffer()), f.path, isImagePath)) out.push({ path: `${f.path}/${e.path}`, file: new Blob([e.bytes as Uint8Array<ArrayBuffer>]) });
    } catch (e) {
      warnings.push((e as Error).message);
    }
  }
  return out;
}

/** Keeps the project for the next visit; a failure to persist never fails the action that changed it. */
async function persist(saved: SavedProject): Promise<void> {
  try {
    await saveProject(saved);
  } catch (e) {
    project.warnings.push(`the project could not be saved for your next visit: ${(e as Error).message}`);
  }
}

const persistFiles = () =>
  persist({ kind: 'files', modelName: project.modelName, model: project.model, external: project.external, calib: project.calib, val: project.val, preprocess: project.preprocess, classNames: project.classNames });

async function openDemoProject(baseUrl: string): Promise<ProjectInfo> {
  const manifest = JSON.parse(new TextDecoder().decode(await fetchBytes(`${baseUrl}manifest.json`))) as DemoManifest;
  project = empty();
  await setModel(await fetchBytes(`${baseUrl}${manifest.model}`), manifest.model);
  project.preprocess = manifest.preprocess;
  project.classNames = null;
  const load = (path: string): Promise<ImageFile> => fetchBytes(`${baseUrl}${path}`).then((bytes) => ({ path, bytes }));
  project.calib = await Promise.all(manifest.calib.map(load));
  project.val = await Promise.all(manifest.val.map((v) => load(v.path)));
  return info();
}

/**
 * Calls that change the project run one at a time: a reload's restore and a click on "Open demo"
 * (or a drop) arriving together must not interleave their writes into the project.
 */
let queue: Promise<unknown> = Promise.resolve();
function serial<T>(work: () => Promise<T>): Promise<T> {
  const next = queue.then(work, work);
  queue = next.catch(() => undefined);
  return next;
}

const api: StudioWorkerApi = {
  ...searchCalls(() => project, serial),

  setPreprocess: (spec) =>
    serial(async () => {
      checkPreprocess(spec);
      project.preprocess = spec;
      try {
        await savePreprocess(spec);
      } catch (e) {
        project.warnings.push(`the preprocessing could not be saved for your next visit: ${(e as Error).message}`);
      }
      return info();
    }),

  previewPreprocess: (spec, count) => serial(() => previewPreprocess(project, spec, count)),

  restore: () => serial(async () => {
    const saved = await loadProject();
    if (!saved) return null;
    if (saved.kind === 'demo') {
      const demo = await openDemoProject(saved.baseUrl);
      if (!saved.preprocess) return demo;
      project.preprocess = saved.preprocess;
      return info();
    }
    project = { ...empty(), external: new Map(saved.external), calib: [...saved.calib], val: [...saved.val], classNames: saved.classNames ? [...saved.classNames] : null };
    if (saved.model && saved.modelName) await setModel(saved.model, saved.modelName);
    if (saved.preprocess) project.preprocess = saved.preprocess;
    return info();
  }),

  async history() {
    return (await idbRequest('runs', 'readonly', (s) => s.getAll())) as RunSummary[];
  },

  async clearHistory() {
    await idbRequest('runs', 'readwrite', (s) => s.clear());
  },

  openDemo: (baseUrl) =>
    serial(async () => {
      const result = await openDemoProject(baseUrl);
      await persist({ kind: 'demo', baseUrl });
      return { ...result, warnings: project.warnings };
    }),

  addFiles: (dropped) => serial(async () => {
    project.warnings = [];
    const files = await expandZips(dropped, project.warnings);
    const models = files.filter((f) => f.path.toLowerCase().endsWith('.onnx'));
    if (models.length > 1) project.warnings.push(`${models.length} .onnx files were dropped; using ${models[0]!.path}`);
    for (const f of files.filter((f) => /\.(data|bin|onnx_data)$/i.test(f.path))) project.external.set(f.path.split('/').pop()!, new Uint8Array(await f.file.arrayBuffer()));
    if (models[0]) await setModel(new Uint8Array(await models[0].file.arrayBuffer()), models[0].path.split('/').pop()!);
    // whole .npy arrays (N×C×H×W, labels in NAME.labels.npy beside them) become one set each
    const isLabels = (p: string) => /[._]labels\.npy$/i.test(p);
    const arrays: DroppedFile[] = [];
    for (const f of files.filter((f) => /\.npy$/i.test(f.path) && !isLabels(f.path))) {
      const bytes = new Uint8Array(await f.file.arrayBuffer());
      const array = parseNpy(bytes, f.path);
      if (array.shape.length !== 4) continue;
      arrays.push(f);
      const stem = f.path.replace(/\.npy$/i, '');
      const labelFile = files.find((g) => g.path === `${stem}.labels.npy` || g.path === `${stem}_labels.npy`);
      const labels = labelFile ? parseNpy(new Uint8Array(await labelFile.file.arrayBuffer()), labelFile.path) : undefined;
      const samples = npySamples(array, f.path.split('/').pop()!, labels);
      if (labels) project.val = samples;
      else project.calib = samples;
    }
    const images = files.filter((f) => isImagePath(f.path) && !isLabels(f.path) && !arrays.includes(f));
    for (const [folder, group] of groupByTopFolder(images)) {
      const read = await Promise.all(group.map(async (f) => ({ path: f.path, bytes: new Uint8Array(await f.file.arrayBuffer()) })));
      let labelled: boolean;
      try {
        labelled = labelImages(read.map((r) => r.path)).classes !== null;
      } catch (e) {
        project.warnings.push(`${folder || 'dropped images'}: ${(e as Error).message}`);
        continue;
      }
      if (labelled || UNLABELLED_VALIDATION.test(folder.split('/').pop() ?? '')) project.val = read;
      else project.calib = read;
    }
    await persistFiles();
    return info();
  }),

  async partition(granularity, edits) {
    if (!project.model) throw new Error('drop a model first');
    const { proto } = await loadModel(project.model, project.external);
    return editedPartition(canonicalize(proto).model, granularity, edits).blocks.map(({ id, kind, layers }) => ({ id, kind, layers }));
  },

  // a run starts after any pending change of the project (a restore, a demo being opened) has finished
  run: (plan: QuantPlan, onEvent: (e: PipelineEvent) => void, compute: ComputeOptions) => serial(() => runPlan(plan, onEvent, compute)),

  cancel() {
    controller?.abort();
  },

  holdLifeLock: (name) => new Promise<void>((held) => void navigator.locks.request(name, () => {
    held();
    // never settles: the lock goes only with the worker
    return new Promise<never>(() => {});
  })),

  async pause() {
    await gate?.pause();
  },

  resume() {
    gate?.resume();
  },
};

async function runPlan(plan: QuantPlan, onEvent: (e: PipelineEvent) => void, compute: ComputeOptions): Promise<RunOutcome> {
  if (!project.model || !project.modelName || !project.preprocess) throw new Error('drop a model first');
  controller = new AbortController();
  gate = new PauseGate(controller.signal);
  const input: RunInput = {
    model: project.model,
    modelName: project.modelName,
    external: project.external,
    calib: project.calib,
    val: project.val,
    preprocess: project.preprocess,
    plan,
    ...(project.classNames ? { classNames: project.classNames } : {}),
    ...(RESUMABLE_METHODS.includes(plan.method) ? { checkpoints: indexedDbCheckpoints(project.modelName) } : {}),
    // a tab has about 4 GB: the caches adapt (float16, then a spill file in the origin-private
    // file system, then fewer calibration images) rather than crash it
    memoryBudgetBytes: BROWSER_MEMORY_BUDGET,
    // without an origin-private file system (a private window) caches only shrink, they cannot spill
    ...(await opfsSpillStore().then((spill) => ({ spill }), () => ({}))),
    // 'auto': WebGPU when this machine has a GPU adapter (navigator.gpu), else the WASM kernels; the run says which, and why
    backend: compute.backend,
    threads: compute.threads,
  };
  try {
    const t0 = performance.now();
    const { report, exported } = await runQuantization(input, onEvent, controller.signal);
    const summary: Omit<RunSummary, 'id'> = { modelName: project.modelName, finishedAt: new Date().toISOString(), plan, fp: report.fp?.top1 ?? null, quant: report.quant?.top1 ?? null, exported: report.exported?.top1 ?? null, seconds: (performance.now() - t0) / 1000 };
    const id = (await idbRequest('runs', 'readwrite', (s) => s.add(summary))) as number;
    await idbRequest('runs', 'readwrite', (s) => s.put({ ...summary, id }, id));
    return Comlink.transfer({ report, exported }, [exported.buffer as ArrayBuffer]);
  } finally {
    gate?.close();
    gate = null;
    controller = null;
  }
}

Comlink.expose(api);
