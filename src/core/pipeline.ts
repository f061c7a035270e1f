import { decodeModel, encodeModel } from './onnx/codec';
import type { ModelProto } from './onnx/schema';
import type { ExternalFiles } from './onnx/tensor-data';
import { canonicalize, type CanonicalizeReport } from './graph/canonicalize';
import { activationQuantPoints, findQuantLayers } from './graph/layers';
import { summarizeModel, type ModelSummary } from './graph/summary';
import { ImageBatches } from './data/batches';
import { DatasetError, labelImages, type ImageFile } from './data/image-set';
import type { PreprocessSpec } from './data/preprocess';
import { ModelSession } from './eval/runtime';
import { collectLogits, evaluateAccuracy, fidelity, LabelMismatchError, type Accuracy, type Fidelity } from './eval/accuracy';
import { collectRanges, sampleActivations, type Range } from './quant/calibrate';
import { activationQuantParams, dequantizeTensor, minMaxPerTensor, rowGroups, type Bits, type QuantParams, type StepInit } from './quant/quantizer';
import { roundToNearest } from './methods/rtn';
import { adaroundModel } from './methods/adaround-model';
import { createGemm } from './backends/cpu/wasm/gemm';
import { exportQdq, type QuantizedWeight } from './export/qdq';
import { weightHistogram, type WeightHistogram } from './quant/weight-histogram';
import { editedPartition } from './graph/partition';
import { learnActivationSteps, reconstructWeights, type BlockMetrics, type ReconstructionInput } from './methods/reconstruct';
import { WasmConvPool, type Threads } from './engine/conv-engine';
import { decoupleqModel } from './methods/decoupleq';
import { nwqModel } from './methods/nwq';
import { checkpointKey, type CheckpointStore } from './checkpoint';
import { cacheStoragesFor, calibImagesWithin, estimateRun, formatBytes, formatDuration } from './estimate';
import type { CacheStorage, SpillStore } from './quant/row-cache';
import { sampleImages } from './data/sample';
import { externalLocations, inlineExternalData, tensorToFloat32 } from './onnx/tensor-data';
import { actScaleFor, BLOCK_ITERS, BLOCK_METHODS, checkPlanFits, scaleSearchFor, weightBitsFor, weightGranularity, weightGridKindOf, type QuantPlan } from './plan';
import { throwIfAborted, type Emit, type Stage } from './events';
import { openBackend, type BackendChoice } from './backends/select';

/** The user's files for one run. Bytes are owned by the run (transferred to a worker, read from disk). */
export interface RunInput {
  readonly model: Uint8Array;
  readonly modelName: string;
  readonly external?: ExternalFiles;
  readonly calib: readonly ImageFile[];
  /** Class sub-folders; empty to skip accuracy. */
  readonly val: readonly ImageFile[];
  /** Class names in model-output order, when folder names do not sort that way. */
  readonly classNames?: readonly string[];
  readonly preprocess: PreprocessSpec;
  readonly plan: QuantPlan;
  /** How the export stores weights: integer codes behind DequantizeLinear (default), or dequantized floats. */
  readonly weightFormat?: 'integer' | 'float';
  /** Block methods save progress here after every block, and resume from what they find. */
  readonly checkpoints?: CheckpointStore;
  /** Memory the run's caches and buffers may take; over it, fewer calibration images are used (said in a warning), or the run is refused. */
  readonly memoryBudgetBytes?: number;
  /** Threads for the WASM kernels (default 'auto'). Not part of the plan: any count gives the same bytes. */
  readonly threads?: Threads;
  /**
   * How block methods keep their calibration caches: 'auto' (the default) takes float32, or under
   * a memory budget the first of float32, float16 and spilling (when `spill` is given) that fits.
   */
  readonly caches?: CacheStorage | 'auto';
  /** Where caches may spill: a temporary directory (CLI) or the origin-private file system (studio). */
  readonly spill?: SpillStore;
  /** Where BRECQ's and QDrop's block loops run (default 'wasm'; backends/select.ts). Not part of the plan either. */
  readonly backend?: BackendChoice;
}

/**
 * The caches' storage and the calibration images, from the estimate and the memory budget:
 * rather float16 or a spill file than fewer images, and fewer images rather than a crash. Says
 * what it chose.
 */
function chooseCaches(input: RunInput, summary: ModelSummary, emit: Emit): { storage: CacheStorage; calibFiles: readonly ImageFile[] } {
  const { plan, calib, val, memoryBudgetBytes: budget } = input;
  const allowed = cacheStoragesFor(plan).filter((s) => s !== 'spill' || input.spill);
  const asked = input.caches ?? 'auto';
  if (asked !== 'auto' && !allowed.includes(asked)) {
    throw new ModelInputError(asked === 'spill' && !input.spill ? 'spilled caches need a place to spill to' : `${plan.method} keeps its caches in float32; ${asked} caches are for ${['brecq', 'qdrop'].join(' and ')}`);
  }
  const candidates = asked === 'auto' ? (budget === undefined ? (['float32'] as const) : allowed) : [asked];
  const estimate = (s: CacheStorage) => estimateRun(summary, plan, calib.length, val.length, s);
  const first = estimate(candidates[0]!);
  if (!first.fromShapes) return { storage: candidates[0]!, calibFiles: calib };
  const fitting = budget === undefined ? candidates[0]! : candidates.find((s) => estimate(s).cacheBytes + estimate(s).workBytes <= budget);
  const storage = fitting ?? candidates[candidates.length - 1]!;
  const e = estimate(storage);
  const kept = storage === 'float32' ? '' : storage === 'float16' ? ' (float16)' : ` (spilled to disk in float16: ${formatBytes(e.spilledBytes)})`;
  emit({ type: 'info', message: `estimated: ${formatDuration(e.seconds)}, ${formatBytes(e.cacheBytes)} of calibration caches${kept} and ${formatBytes(e.workBytes)} of working memory` });
  if (storage !== 'float32' && asked === 'auto') emit({ type: 'info', message: `calibration caches kept ${storage === 'float16' ? 'in float16' : 'in a spill file'}, so that ${calib.length} images fit within ${formatBytes(budget!)}` });
  if (budget === undefined || fitting) return { storage, calibFiles: calib };
  const fits = calibImagesWithin(summary, plan, calib.length, val.length, budget, storage);
  if (fits < Math.min(32, calib.length)) throw new ModelInputError(`this run needs ${formatBytes(e.cacheBytes + e.workBytes)}, more than the ${formatBytes(budget)} it may use even with 32 calibration images; choose a smaller granularity or another method`);
  emit({ type: 'warning', message: `using ${fits} of the ${calib.length} calibration images, so that the caches stay within ${formatBytes(budget)}` });
  return { storage, calibFiles: sampleImages(calib, fits, plan.seed ?? 0) };
}

export interface LayerReport {
  readonly name: string;
  readonly wbits: number;
  /** Signal-to-quantization-noise ratio of the weight, in dB. */
  readonly weightSqnrDb: number;
  /** The weights in step units before quantization, and the codes after. */
  readonly histogram: WeightHistogram;
  /** Per-group weights: inputs per group, groups per output channel, and the length of the last one (shorter when the row is not a multiple). */
  readonly groups?: { readonly size: number; readonly perChannel: number; readonly last: number };
}

export interface RunReport {
  readonly tool: 'lowbit-studio';
  readonly reportVersion: 1;
  readonly model: { readonly name: string; readonly params: number; readonly macs: number | null };
  readonly plan: QuantPlan;
  readonly preprocess: PreprocessSpec;
  readonly calibration: { readonly images: number; readonly caches: CacheStorage };
  readonly validation: { readonly images: number; readonly classes: readonly string[] | null };
  readonly canonicalize: CanonicalizeReport;
  /** Null when no labelled validation images were given. */
  readonly fp: Accuracy | null;
  /** The fake-quantized model (QDQ run node by node, no fusion). */
  readonly quant: Accuracy | null;
  /** The exported model as ONNX Runtime deploys it (full optimisation, fused integer kernels). */
  readonly exported: Accuracy | null;
  /** With unlabelled validation images: agreement with the float model instead of accuracy. */
  readonly fidelity: { readonly quant: Fidelity; readonly exported: Fidelity } | null;
  readonly layers: readonly LayerReport[];
  /** Block methods: how well each reconstructed block reproduces the float model's output on the calibration set. */
  readonly blocks: readonly BlockMetrics[];
  readonly activations: readonly { readonly tensor: string; readonly bits: number; readonly min: number; readonly max: number; readonly scale: number; readonly zeroPoint: number }[];
  /** Seconds per stage. */
  readonly timings: Readonly<Partial<Record<Stage, number>>>;
}

export interface RunResult {
  readonly report: RunReport;
  /** The exported QDQ ONNX model. */
  readonly exported: Uint8Array;
}

export class ModelInputError extends Error {
  override name = 'ModelInputError';
}

export interface LoadedModel {
  readonly proto: ModelProto;
  readonly summary: ModelSummary;
}

/** Decodes a model with its external data inlined: everything downstream sees one self-contained model. */
export async function loadModel(bytes: Uint8Array, external?: ExternalFiles): Promise<LoadedModel> {
  const decoded = decodeModel(bytes);
  const missing = externalLocations(decoded).filter((l) => !external?.has(l));
  if (missing.length) throw new ModelInputError(`the model keeps its weights in ${missing.map((m) => `"${m}"`).join(', ')}; add ${missing.length > 1 ? 'those files' : 'that file'} next to the model`);
  checkStructure(decoded);
  const proto = inlineExternalData(decoded, external);
  return { proto, summary: summarizeModel(proto) };
}

/** The structural rules every later stage relies on; a file breaking them is refused with the first violation. */
function checkStructure(model: ModelProto): void {
  const produced = new Set<string>();
  for (const [i, n] of (model.graph!.node ?? []).entries()) {
    const label = `node ${i}${n.name ? ` "${n.name}"` : ''}`;
    if (!n.opType) throw new ModelInputError(`${label} has no operator type: the file is corrupt`);
    if (!(n.output ?? []).some(Boolean)) throw new ModelInputError(`${label} (${n.opType}) has no output: the file is corrupt`);
    for (const o of n.output ?? []) {
      if (o && produced.has(o)) throw new ModelInputError(`${label} (${n.opType}) writes "${o}", which another node also writes: the file is corrupt`);
      if (o) produced.add(o);
    }
  }
}

/** Checks that preprocessing fits the model's input; returns the batch size: the model's fixed batch dimension, or 32 when it is dynamic. */
export function batchSizeFor(summary: ModelSummary, spec: PreprocessSpec): number {
  const input = summary.inputs[0];
  if (!input) throw new ModelInputError('the model has no inputs');
  if (summary.inputs.length > 1) throw new ModelInputError(`the model has ${summary.inputs.length} inputs; the studio quantizes single-input image models`);
  if (input.type !== 'float') throw new ModelInputError(`the model's input "${input.name}" is ${input.type}, not a float image tensor`);
  // a file that records no shape for its input: the preprocessing the user gave is taken as N×C×H×W
  if (input.shape.length === 0) return 32;
  if (input.shape.length !== 4) throw new ModelInputError(`the model's input "${input.name}" has shape [${input.shape.join(', ')}]; an image model takes N×C×H×W`);
  const [n, c, h, w] = input.shape;
  const want = [spec.channels, spec.size[0], spec.size[1]];
  [c, h, w].forEach((d, i) => {
    if (typeof d === 'number' && d !== want[i]) throw new ModelInputError(`the model expects input [${input.shape.join(', ')}] but preprocessing produces [N, ${want.join(', ')}]; adjust the preprocessing`);
  });
  return typeof n === 'number' && n > 0 ? n : 32;
}

/**
 * Class folders must follow the model's outputs one to one: with fewer or more, sorted folder
 * names would give the wrong class indices and the accuracy would be silently wrong.
 */
export function checkClassCount(summary: ModelSummary, classes: readonly string[]): void {
  const shape = summary.outputs[0]?.shape ?? [];
  const k = shape[shape.length - 1];
  if (shape.length !== 2 || typeof k !== 'number' || classes.length === k) return;
  const shown = classes.length > 6 ? `${classes.slice(0, 6).join(', ')}, …` : classes.join(', ');
  throw new LabelMismatchError(`the validation set has ${classes.length} classes (${shown}) but the model outputs ${k}; give one class folder per output, or a label list (--labels) naming all ${k} in output order`);
}

function sqnrDb(ref: Float32Array, approx: Float32Array): number {
  let s = 0;
  let e = 0;
  for (let i = 0; i < ref.length; i++) {
    s += ref[i]! * ref[i]!;
    e += (ref[i]! - approx[i]!) ** 2;
  }
  return e === 0 ? Infinity : 10 * Math.log10(s / e);
}

/**
 * One run: FP accuracy → canonicalise → calibrate → quantize → export → accuracy of the
 * fake-quantized and the exported model. The browser worker, the CLI and the tests all call this.
 */
export async function runQuantization(input: RunInput, emit: Emit, signal?: AbortSignal): Promise<RunResult> {
  // one set of kernel threads for the whole run, stopped when it ends however it ends
  const convs = new WasmConvPool(input.threads ?? 'auto');
  // a GPU only for the methods whose loops can use one
  const kernels = await openBackend(['brecq', 'qdrop'].includes(input.plan.method) ? (input.backend ?? 'wasm') : 'wasm', emit);
  try {
    return await quantizeWith(input, convs, kernels.backend, emit, signal);
  } finally {
    kernels.close();
    await convs.dispose();
  }
}

async function quantizeWith(input: RunInput, convs: WasmConvPool, backend: ReconstructionInput['backend'], emit: Emit, signal?: AbortSignal): Promise<RunResult> {
  const timings: Partial<Record<Stage, number>> = {};
  const stage = async <T>(name: Stage, work: (progress: (done: number, total: number) => void) => Promise<T>): Promise<T> => {
    throwIfAborted(signal);
    emit({ type: 'stage', stage: name });
    const t0 = performance.now();
    const result = await work((done, total) => emit({ type: 'progress', stage: name, done, total }));
    timings[name] = (performance.now() - t0) / 1000;
    return result;
  };

  const { proto, summary } = await stage('load', async () => loadModel(input.model, input.external));
  // ORT takes one buffer: re-encode only when weights had to be inlined from external files
  const selfContained = input.external?.size ? encodeModel(proto) : input.model;
  const bs = batchSizeFor(summary, input.preprocess);
  if (input.calib.length === 0) throw new DatasetError('no calibration images were given');
  const val = input.val.length ? labelImages(input.val.map((f) => f.path), input.classNames) : null;
  // validation images without class folders still tell how faithful the quantized model is
  const labelled = val?.classes ? val : null;
  const valByPath = new Map(input.val.map((f) => [f.path, f]));
  const valFiles = val ? val.images.map((im) => valByPath.get(im.path)!) : [];
  const labels = labelled ? labelled.images.map((im) => im.label!) : [];
  if (labelled) checkClassCount(summary, labelled.classes!);
  const valBatches = new ImageBatches(valFiles, input.preprocess, bs, (m) => emit({ type: 'warning', message: `validation images: ${m}` }));
  // before any work: what the run will cost, and whether its caches fit the memory it may use
  const { storage, calibFiles } = chooseCaches(input, summary, emit);
  const calibBatches = new ImageBatches([...calibFiles].sort((a, b) => a.path.localeCompare(b.path)), input.preprocess, bs, (m) => emit({ type: 'warning', message: `calibration images: ${m}` }));
  if (val && !labelled) emit({ type: 'warning', message: 'the validation images have no class sub-folders: the report gives fidelity to the float model (top-1 agreement, output cosine) instead of accuracy' });

  let fpLogits: { data: Float32Array; classes: number } | null = null;
  const fidelities: Partial<Record<'quant' | 'exported', Fidelity>> = {};
  const evaluate = async (bytes: Uint8Array, optimization: 'none' | 'all', name: Stage): Promise<Accuracy | null> => {
    if (!val) return null;
    return stage(name, async (progress) => {
      const session = await ModelSession.create(bytes, optimization);
      try {
        if (labelled) return await evaluateAccuracy(session, valBatches, labels, progress, signal);
        const logits = await collectLogits(session, valBatches, progress, signal);
        if (name === 'fp-eval') fpLogits = logits;
        else if (fpLogits) fidelities[name === 'quant-eval' ? 'quant' : 'exported'] = fidelity(fpLogits, logits);
        return null;
      } finally {
        await session.release();
      }
    });
  };

  const fp = await evaluate(selfContained, 'all', 'fp-eval');
  const { model: canonical, report: canonReport } = canonicalize(proto);
  const layers = findQuantLayers(canonical);
  if (layers.length === 0) throw new ModelInputError('the model has no Conv, Gemm or MatMul layer with constant weights: nothing to quantize');
  checkPlanFits(input.plan, layers.map((l) => l.name));
  if (input.plan.groupSize) {
    // a row that is not a multiple of the group size keeps a shorter last group (as ONNX blocked quantization does), never a fallback to per channel
    const size = input.plan.groupSize;
    const short = layers.flatMap((l) => {
      const { row } = rowGroups(l.weightDims, weightGranularity(size, l.channelAxis));
      return row % size ? [`${l.name} (${row} inputs: last group ${row % size})`] : [];
    });
    if (short.length) emit({ type: 'info', message: `weights in groups of ${size} inputs; a shorter last group in ${short.join(', ')}` });
  }

  const plan = input.plan;
  const points = plan.abits === null ? [] : activationQuantPoints(canonical);
  const lastLayerInput = layers[layers.length - 1]!.node.input![0]!;
  const stemOutput = afterActivations(canonical, layers[0]!.node.output![0]!);
  // the stem's output and the classifier's input follow the head/stem rule too, as BRECQ keeps them
  const actBits = (tensor: string): Bits => (plan.headStem8bit && (tensor === stemOutput || feedsInto(canonical, tensor, lastLayerInput)) ? 8 : plan.abits!);
  const grid = weightGridKindOf(plan);
  /** Activation parameters measured on `model` (its weights quantized as they stand): min–max over all images, or a search on a sample of 64 images. */
  const activationParams = (model: ModelProto, search: StepInit) =>
    stage('calibrate', async (progress) => {
      const out = new Map<string, QuantParams>();
      const ranges = new Map<string, Range>();
      if (search === 'minmax') {
        for (const [t, r] of await collectRanges(model, points, calibBatches, progress, signal)) ranges.set(t, r);
      } else {
        for (const [t, r] of await sampleActivations(model, points, calibBatches, { seed: plan.seed ?? 0 }, signal)) {
          ranges.set(t, r);
          if (Number.isFinite(r.min)) out.set(t, activationQuantParams(r.values, r.min, r.max, actBits(t), search));
        }
      }
      for (const [t, r] of ranges) {
        if (!Number.isFinite(r.min)) throw new DatasetError(`no calibration values reached tensor "${t}"`);
        if (!out.has(t)) out.set(t, minMaxPerTensor(r.min, r.max, actBits(t), false, false));
      }
      return { params: out, ranges };
    });

  let weights: QuantizedWeight[];
  let activations = new Map<string, QuantParams>();
  let ranges = new Map<string, Range>();
  let blockReports: BlockMetrics[] = [];
  if (BLOCK_METHODS.includes(plan.method)) {
    const partition = editedPartition(canonical, plan.granularity ?? 'block', plan.partitionEdits);
    const recon: ReconstructionInput = {
      model: canonical,
      layers,
      blocks: partition.blocks,
      bitsFor: (l) => weightBitsFor(l, plan),
      scale: scaleSearchFor(plan),
      groupSize: plan.groupSize,
      weightGrid: grid,
      // BRECQ leaves the 8-bit first layer at round-to-nearest; QDrop reconstructs it (§1.5)
      skip: (l) => plan.method === 'brecq' && plan.headStem8bit && l.isFirst,
      calib: calibBatches,
      convs,
      backend,
      caches: { storage, ...(input.spill ? { spill: input.spill } : {}) },
      ...(input.checkpoints ? { checkpoints: { key: checkpointKey(plan, input.model), store: input.checkpoints } } : {}),
      options: { iters: plan.iters ?? BLOCK_ITERS, seed: plan.seed ?? 0, ...(plan.lambda !== undefined ? { lambda: plan.lambda } : {}), ...(plan.actIters !== undefined ? { actIters: plan.actIters } : {}), ...(plan.keep !== undefined ? { keep: plan.keep } : {}), ...(plan.fisher ? { fisher: true } : {}) },
    };
    if (plan.method === 'qdrop' && plan.abits !== null) {
      // QDrop's (and NWQ's) observers set activation ranges before reconstruction, on round-to-nearest weights
      const rtn = layers.map((l) => roundToNearest(l, weightBitsFor(l, plan), scaleSearchFor(plan), plan.groupSize, grid));
      ({ params: activations, ranges } = await activationParams(exportQdq({ model: canonical, weights: rtn, activations: new Map(), weightFormat: 'float' }), actScaleFor(plan)));
    }
    if (plan.method === 'nwq' && plan.abits !== null) {
      const rtn = layers.map((l) => roundToNearest(l, weightBitsFor(l, plan), scaleSearchFor(plan), plan.groupSize, grid));
      ({ params: activations, ranges } = await activationParams(exportQdq({ model: canonical, weights: rtn, activations: new Map(), weightFormat: 'float' }), actScaleFor(plan)));
    }
    const result = plan.method === 'nwq'
      ? await stage('quantize', async () => ({ ...(await nwqModel({ ...recon, options: { iters: plan.iters ?? BLOCK_ITERS, seed: plan.seed ?? 0, ...(plan.taps ? { taps: plan.taps } : {}) } }, plan.abits !== null ? activations : null, emit, signal)), blocks: [] }))
      : await stage('quantize', () => reconstructWeights(recon, plan.method === 'qdrop' ? 'qdrop' : 'brecq', plan.method === 'qdrop' && plan.abits !== null ? activations : null, emit, signal));
    weights = result.weights;
    blockReports = result.blocks;
    if (plan.method !== 'brecq') activations = result.activations;
    else if (plan.abits !== null) {
      ({ params: activations, ranges } = await activationParams(exportQdq({ model: canonical, weights, activations: new Map(), weightFormat: 'float' }), actScaleFor(plan)));
      if (recon.options.actIters !== 0) activations = await stage('act-steps', () => learnActivationSteps(recon, weights, activations, emit, signal));
    }
  } else {
    weights = await stage('quantize', async (progress) => {
      if (plan.method === 'decoupleq') {
        const blocks = editedPartition(canonical, plan.granularity ?? 'block', plan.partitionEdits).blocks;
        return decoupleqModel({ model: canonical, layers, blocks, bitsFor: (l) => weightBitsFor(l, plan), calib: calibBatches, convs, groupSize: plan.groupSize, options: { seed: plan.seed ?? 0, ...(plan.iters !== undefined ? { blockIters: plan.iters } : {}) } }, emit, signal);
      }
      if (plan.method === 'adaround') {
        const gemm = await createGemm();
        return adaroundModel({ model: canonical, layers, bitsFor: (l) => weightBitsFor(l, plan), scale: scaleSearchFor(plan), groupSize: plan.groupSize, weightGrid: grid, calib: calibBatches, gemm, options: { ...(plan.iters ? { iters: plan.iters } : {}), seed: plan.seed ?? 0 } }, emit, signal);
      }
      return layers.map((layer, i) => {
        throwIfAborted(signal);
        const q = roundToNearest(layer, weightBitsFor(layer, plan), scaleSearchFor(plan), plan.groupSize, grid);
        progress(i + 1, layers.length);
        return q;
      });
    });
    // activation ranges are measured with the weights already quantized (algorithms.md §2.5, §3.4)
    if (plan.abits !== null) ({ params: activations, ranges } = await activationParams(exportQdq({ model: canonical, weights, activations: new Map(), weightFormat: 'float' }), actScaleFor(plan)));
  }

  const layerReports: LayerReport[] = weights.map((w) => ({
    name: w.layer.name,
    wbits: w.params.bits,
    weightSqnrDb: sqnrDb(tensorToFloat32(w.layer.weightTensor), dequantizeTensor(w.codes, w.layer.weightDims, w.params)),
    histogram: weightHistogram(tensorToFloat32(w.layer.weightTensor), w.layer.weightDims, w.codes, w.params),
    ...groupsOf(w),
  }));

  const exported = await stage('export', async () => encodeModel(exportQdq({ model: canonical, weights, activations, weightFormat: input.weightFormat ?? 'integer' })));
  const quant = await evaluate(exported, 'none', 'quant-eval');
  const exportedAcc = await evaluate(exported, 'all', 'exported-eval');

  const report: RunReport = {
    tool: 'lowbit-studio',
    reportVersion: 1,
    model: { name: input.modelName, params: summary.params, macs: summary.macs },
    plan,
    preprocess: input.preprocess,
    calibration: { images: calibFiles.length, caches: storage },
    validation: { images: valFiles.length, classes: val?.classes ?? null },
    canonicalize: canonReport,
    fp,
    quant,
    exported: exportedAcc,
    fidelity: fidelities.quant && fidelities.exported ? { quant: fidelities.quant, exported: fidelities.exported } : null,
    layers: layerReports,
    blocks: blockReports,
    activations: [...activations].map(([tensor, p]) => ({ tensor, bits: p.bits, min: ranges.get(tensor)!.min, max: ranges.get(tensor)!.max, scale: p.scale[0]!, zeroPoint: p.zeroPoint[0]! })),
    timings,
  };
  return { report, exported };
}

function groupsOf(w: QuantizedWeight): Pick<LayerReport, 'groups'> {
  const g = w.params.granularity;
  if (g.kind !== 'group') return {};
  const { row, groups } = rowGroups(w.layer.weightDims, g);
  return { groups: { size: g.size, perChannel: groups, last: row - (groups - 1) * g.size } };
}

/** The tensor a layer's output becomes after the activations that alone read it (Conv → ReLU → …). */
function afterActivations(model: ModelProto, tensor: string): string {
  const nodes = model.graph!.node ?? [];
  let cur = tensor;
  for (let guard = 0; guard < 4; guard++) {
    const readers = nodes.filter((n) => n.input?.includes(cur));
    if (readers.length !== 1 || !['Relu', 'Clip', 'LeakyRelu', 'HardSigmoid', 'HardSwish', 'Sigmoid'].includes(readers[0]!.opType ?? '')) return cur;
    cur = readers[0]!.output![0]!;
  }
  return cur;
}

/** Whether `tensor` reaches `target` through ops that do not compute (pooling, reshapes). */
function feedsInto(model: ModelProto, tensor: string, target: string): boolean {
  let cur = target;
  for (let guard = 0; guard < 16; guard++) {
    if (cur === tensor) return true;
    const node = (model.graph!.node ?? []).find((n) => n.output?.includes(cur));
    if (!node || !['GlobalAveragePool', 'AveragePool', 'ReduceMean', 'MaxPool', 'Flatten', 'Reshape', 'Squeeze'].includes(node.opType ?? '')) return false;
    cur = node.input![0]!;
  }
  return false;
}
