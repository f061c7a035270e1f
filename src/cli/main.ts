import { PartitionError } from '../core/graph/partition';
import { UnsupportedOpError } from '../core/engine/kernels';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { batchSizeFor, checkClassCount, loadModel, ModelInputError, runQuantization } from '../core/pipeline';
import { decodeModel, encodeModel, OnnxDecodeError } from '../core/onnx/codec';
import { DatasetError, labelImages } from '../core/data/image-set';
import { openInputDims, PRESETS, PreprocessError, proposePreprocess, type PreprocessSpec } from '../core/data/preprocess';
import { ImageBatches } from '../core/data/batches';
import { ModelSession } from '../core/eval/runtime';
import { evaluateAccuracy, LabelMismatchError } from '../core/eval/accuracy';
import { RESUMABLE_METHODS, GROUP_SIZES, parsePlan, PlanError, DEFAULT_PLAN, type GroupSize, type MethodName } from '../core/plan';
import { CheckpointError, type CheckpointStore } from '../core/checkpoint';
import { CancelledError } from '../core/events';
import { externalLocations, UnsupportedTensorError } from '../core/onnx/tensor-data';
import { ImageDecodeError } from '../core/data/png';
import { ShapeError } from '../core/graph/shapes';
import { readImageFolder } from './files';
import { sampleImages } from '../core/data/sample';
import { finishReporter, terminalReporter } from './progress';
import { fileSpillStore } from './spill-store';
import { CACHE_STORAGES, type CacheStorage } from '../core/quant/row-cache';
import type { ModelSummary } from '../core/graph/summary';
import { runSearch, formatCost, type SearchReport } from '../core/search/run';
import { CostError, METRIC_UNITS, type Budget, type CostMetric } from '../core/search/cost';
import { BudgetError } from '../core/search/genetic';
import { SensitivityError, type SensitivityMode } from '../core/search/sensitivity';
import { SEARCH_PHASE_LABELS, type SearchEvent } from '../core/search/events';
import type { Bits } from '../core/quant/quantizer';

/** Bad input: exit code 2 with a one-line reason. */
class UsageError extends Error {
  override name = 'UsageError';
}

const USAGE = `usage:
  lowbit inspect MODEL [--json]
  lowbit eval MODEL --val DIR [preprocessing] [--labels FILE] [--json]
  lowbit quantize MODEL --calib DIR [--val DIR] [--plan PLAN.json] [--method rtn|adaround|brecq|qdrop|nwq|decoupleq] [--taps block|layer] [--wbits N] [--abits N|none]
                  [--scale minmax|lp|mse|percentile] [--act-scale minmax|lp|mse|percentile] [--group-size 32|64|128|none] [--weight-grid asymmetric|symmetric] [--iters N] [--act-iters N] [--granularity layer|block|stage|net] [--fisher] [--lambda X] [--keep P]
                  [--seed N] [--calib-size N] [--checkpoint DIR] [--memory-budget MB] [--caches auto|float32|float16|spill] [--threads N]
                  [--no-head-stem-8bit] [--weight-format integer|float] [preprocessing] [--labels FILE] -o OUT.onnx [--report REPORT.json] [--json]
  lowbit bench [NAME [ARGS…]]      (no NAME: the list)
  lowbit search MODEL --calib DIR --budget size=MB|bitops=G|latency=MS [--bits 2,4,8] [--mode cheap|reconstructed] [--iters N]
                  [--abits N|none] [--latency-table FILE.json] [--method M] [--no-head-stem-8bit] [--seed N] [--calib-size N]
                  [--front N] [preprocessing] -o PLAN.json [--report SEARCH.json] [--json]
preprocessing: --preprocess fmnist|imagenet | --size H,W --mean a[,b,c] --std a[,b,c] --channels 1|3`;

const PREPROCESS_OPTIONS = {
  preprocess: { type: 'string' },
  size: { type: 'string' },
  mean: { type: 'string' },
  std: { type: 'string' },
  channels: { type: 'string' },
  labels: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

function numbers(flag: string, value: string): number[] {
  const out = value.split(',').map(Number);
  if (out.some((v) => !Number.isFinite(v))) throw new UsageError(`--${flag} takes comma-separated numbers, got "${value}"`);
  return out;
}

function preprocessFrom(values: Record<string, string | boolean | undefined>, summary: ModelSummary): PreprocessSpec {
  if (values.preprocess !== undefined) {
    const preset = PRESETS[values.preprocess as string];
    if (preset) return preset;
    throw new UsageError(`unknown --preprocess "${values.preprocess}"; known presets: ${Object.keys(PRESETS).join(', ')} (or give --size, --mean, --std, --channels)`);
  }
  const input = summary.inputs[0];
  const open = openInputDims(input?.shape ?? []);
  // a dynamic or unrecorded input is never guessed: the user says what the model takes
  if ((open.size && !values.size) || (open.channels && !values.channels)) {
    const what = input?.shape.length ? `has a dynamic shape [${input.shape.join(', ')}]` : 'has no shape in the file';
    const flags = [open.size && !values.size ? '--size H,W' : '', open.channels && !values.channels ? '--channels 1|3' : ''].filter(Boolean).join(' and ');
    throw new UsageError(`the model's input "${input?.name ?? ''}" ${what}: give ${flags} (with --mean and --std), or --preprocess ${Object.keys(PRESETS).join('|')}`);
  }
  const base = proposePreprocess(input?.shape ?? []);
  const size = values.size ? numbers('size', values.size as string) : [...base.size];
  if (size.length !== 2) throw new UsageError('--size takes H,W');
  const channels = values.channels ? Number(values.channels) : base.channels;
  if (channels !== 1 && channels !== 3) throw new UsageError('--channels must be 1 or 3');
  return {
    size: [size[0]!, size[1]!],
    // an explicit --size means "resize to this", not the preset's resize-then-crop
    ...(base.resize && !values.size ? { resize: base.resize } : {}),
    channels,
    mean: values.mean ? numbers('mean', values.mean as string) : base.mean,
    std: values.std ? numbers('std', values.std as string) : base.std,
  };
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  const text = await readFile(path, 'utf8').catch(() => {
    throw new UsageError(`${path}: cannot read the plan file`);
  });
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new UsageError(`${path}: the plan is not valid JSON`);
  }
}

async function readLabels(path: string | undefined): Promise<string[] | undefined> {
  if (!path) return undefined;
  const text = await readFile(path, 'utf8').catch(() => {
    throw new UsageError(`${path}: cannot read the labels file`);
  });
  return text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
}

/** The model file and the external-data files it names, read from beside it. */
async function readModel(path: string | undefined): Promise<{ bytes: Uint8Array; name: string; external: Map<string, Uint8Array> }> {
  if (!path) throw new UsageError('give the model: lowbit <command> MODEL.onnx');
  const bytes = new Uint8Array(
    await readFile(path).catch(() => {
      throw new UsageError(`${path}: cannot read the model file`);
    }),
  );
  const external = new Map<string, Uint8Array>();
  for (const location of externalLocations(decodeModel(bytes))) {
    const file = join(dirname(path), location);
    external.set(location, new Uint8Array(await readFile(file).catch(() => {
      throw new UsageError(`${path} keeps its weights in ${file}, which cannot be read`);
    })));
  }
  return { bytes, name: basename(path), external };
}

const pct = (x: number | undefined | null): string => (x == null ? 'n/a' : `${(x * 100).toFixed(2)}%`);

async function inspect(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, options: { json: { type: 'boolean' } }, allowPositionals: true });
  const { bytes, external } = await readModel(positionals[0]);
  const { summary } = await loadModel(bytes, external);
  if (values.json) {
    console.log(JSON.stringify(summary, null, 2));
    return;
  }
  const shape = (s: readonly (number | string)[]): string => `[${s.join(', ')}]`;
  console.log(`IR ${summary.irVersion}, opset ${summary.opset}${summary.producer ? `, from ${summary.producer}` : ''}`);
  for (const i of summary.inputs) console.log(`input  ${i.name}: ${i.type} ${shape(i.shape)}`);
  for (const o of summary.outputs) console.log(`output ${o.name}: ${o.type} ${shape(o.shape)}`);
  console.log(`ops: ${Object.entries(summary.ops).map(([k, v]) => `${k}×${v}`).join(', ')}`);
  console.log(`parameters: ${summary.params.toLocaleString('en-US')}${summary.macs !== null ? `, MACs per image: ${summary.macs.toLocaleString('en-US')}` : ''}`);
  console.log(`quantizable layers (${summary.layers.length}):`);
  for (const l of summary.layers) {
    const role = l.isFirst ? ' (first)' : l.isLast ? ' (last)' : '';
    console.log(`  ${l.name.padEnd(28)} ${l.kind.padEnd(6)} ${shape(l.weightShape).padEnd(18)} params ${String(l.params).padStart(8)}${l.macs !== null ? `  MACs ${String(l.macs).padStart(10)}` : ''}${role}`);
  }
  if (summary.blocks) {
    console.log(`blocks (${summary.blocks.length}, BatchNorm folded):`);
    for (const b of summary.blocks) console.log(`  ${b.id.padEnd(20)} ${b.kind.padEnd(9)} ${b.layers.join(', ')}`);
  }
}

async function evalCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, options: { val: { type: 'string' }, ...PREPROCESS_OPTIONS }, allowPositionals: true });
  const { bytes, external } = await readModel(positionals[0]);
  if (!values.val) throw new UsageError('eval needs --val DIR (class sub-folders of images)');
  const { summary, proto } = await loadModel(bytes, external);
  const spec = preprocessFrom(values, summary);
  const names = await readLabels(values.labels);
  const files = await readImageFolder(values.val, names);
  const set = labelImages(files.map((f) => f.path), names);
  if (!set.classes) throw new DatasetError(`${values.val}: images need class sub-folders to be evaluated`);
  checkClassCount(summary, set.classes);
  const byPath = new Map(files.map((f) => [f.path, f]));
  const batch = batchSizeFor(summary, spec);
  const session = await ModelSession.create(external.size ? encodeModel(proto) : bytes, 'all');
  const acc = await evaluateAccuracy(session, new ImageBatches(set.images.map((i) => byPath.get(i.path)!), spec, batch), set.images.map((i) => i.label!));
  await session.release();
  if (values.json) console.log(JSON.stringify(acc));
  else console.log(`top-1 ${pct(acc.top1)}  top-5 ${pct(acc.top5)}  (${acc.count} images)`);
}

/** `--group-size`: 32, 64 or 128 inputs per weight group, or none for per output channel. */
function groupSizeFlag(value: string): GroupSize | null {
  if (value === 'none') return null;
  const n = Number(value);
  if (!GROUP_SIZES.includes(n as GroupSize)) throw new UsageError(`--group-size takes ${GROUP_SIZES.join(', ')} or none, got "${value}"`);
  return n as GroupSize;
}

async function quantize(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      calib: { type: 'string' },
      val: { type: 'string' },
      plan: { type: 'string' },
      method: { type: 'string' },
      wbits: { type: 'string' },
      abits: { type: 'string' },
      'calib-size': { type: 'string' },
      'no-head-stem-8bit': { type: 'boolean' },
      'weight-format': { type: 'string', default: 'integer' },
      iters: { type: 'string' },
      'act-iters': { type: 'string' },
      granularity: { type: 'string' },
      lambda: { type: 'string' },
      keep: { type: 'string' },
      taps: { type: 'string' },
      fisher: { type: 'boolean' },
      checkpoint: { type: 'string' },
      'memory-budget': { type: 'string' },
      threads: { type: 'string' },
      caches: { type: 'string' },
      scale: { type: 'string' },
      'act-scale': { type: 'string' },
      'group-size': { type: 'string' },
      'weight-grid': { type: 'string' },
      seed: { type: 'string' },
      output: { type: 'string', short: 'o' },
      report: { type: 'string' },
      ...PREPROCESS_OPTIONS,
    },
    allowPositionals: true,
  });
  const model = await readModel(positionals[0]);
  if (!values.calib) throw new UsageError('quantize needs --calib DIR (a folder of calibration images)');
  if (!values.output) throw new UsageError('quantize needs -o OUT.onnx');
  // a saved plan is the starting point; flags given on the command line override its fields
  const base: Record<string, unknown> = values.plan ? await readJson(values.plan) : { ...DEFAULT_PLAN };
  const plan = parsePlan({
    ...base,
    ...(values.method !== undefined ? { method: values.method } : {}),
    ...(values.wbits !== undefined ? { wbits: Number(values.wbits) } : {}),
    ...(values.abits !== undefined ? { abits: values.abits === 'none' ? null : Number(values.abits) } : {}),
    ...(values['no-head-stem-8bit'] ? { headStem8bit: false } : {}),
    ...(values.scale !== undefined ? { scale: values.scale } : {}),
    ...(values['act-scale'] !== undefined ? { actScale: values['act-scale'] } : {}),
    ...(values['group-size'] !== undefined ? { groupSize: groupSizeFlag(values['group-size']) } : {}),
    ...(values['weight-grid'] !== undefined ? { weightGrid: values['weight-grid'] } : {}),
    ...(values.iters !== undefined ? { iters: Number(values.iters) } : {}),
    ...(values['act-iters'] !== undefined ? { actIters: Number(values['act-iters']) } : {}),
    ...(values.granularity !== undefined ? { granularity: values.granularity } : {}),
    ...(values.lambda !== undefined ? { lambda: Number(values.lambda) } : {}),
    ...(values.keep !== undefined ? { keep: Number(values.keep) } : {}),
    ...(values.taps !== undefined ? { taps: values.taps } : {}),
    ...(values.fisher ? { fisher: true } : {}),
    ...(values.seed !== undefined ? { seed: Number(values.seed) } : {}),
  });
  const weightFormat = values['weight-format'];
  if (weightFormat !== 'integer' && weightFormat !== 'float') throw new UsageError('--weight-format must be integer or float');
  const { summary } = await loadModel(model.bytes, model.external);
  const preprocess = preprocessFrom(values, summary);
  let calib = await readImageFolder(values.calib);
  if (values['calib-size'] !== undefined) {
    const n = Number(values['calib-size']);
    if (!Number.isInteger(n) || n < 1) throw new UsageError('--calib-size must be a positive integer');
    calib = sampleImages(calib, n, plan.seed ?? 0);
  }
  const classNames = await readLabels(values.labels);
  const val = values.val ? await readImageFolder(values.val, classNames) : [];
  const checkpoints = values.checkpoint ? folderCheckpoints(values.checkpoint) : undefined;
  const budgetMb = values['memory-budget'] === undefined ? undefined : Number(values['memory-budget']);
  if (budgetMb !== undefined && !(budgetMb > 0)) throw new UsageError('--memory-budget takes a size in MB');
  const threads = values.threads === undefined ? 'auto' : Number(values.threads);
  if (threads !== 'auto' && !(Number.isInteger(threads) && threads >= 1 && threads <= 64)) throw new UsageError(`--threads takes a whole number from 1 to 64, got "${values.threads}"`);
  const caches = values.caches ?? 'auto';
  if (caches !== 'auto' && !CACHE_STORAGES.includes(caches as CacheStorage)) throw new UsageError(`--caches takes auto, ${CACHE_STORAGES.join(', ')}; got "${caches}"`);
  if (checkpoints && !RESUMABLE_METHODS.includes(plan.method)) throw new UsageError(`--checkpoint works with the methods that save after every block (${RESUMABLE_METHODS.join(', ')}), not ${plan.method}${plan.method === 'nwq' ? ', which optimises the whole network at once' : ''}`);
  const controller = new AbortController();
  const onSigint = (): void => {
    if (values.checkpoint) process.stderr.write(`\nlowbit: stopping; finished blocks are saved in ${values.checkpoint}: run the same command to resume\n`);
    controller.abort();
  };
  process.once('SIGINT', onSigint);
  try {
    const { report, exported } = await runQuantization(
      { model: model.bytes, modelName: model.name, external: model.external, calib, val, preprocess, plan, weightFormat, ...(classNames ? { classNames } : {}), ...(checkpoints ? { checkpoints } : {}), ...(budgetMb ? { memoryBudgetBytes: budgetMb * 2 ** 20 } : {}), threads, caches: caches as CacheStorage | 'auto', spill: fileSpillStore() },
      terminalReporter(process.stderr, values.json === true),
      controller.signal,
    );
    finishReporter(process.stderr);
    await writeFile(values.output, exported);
    if (values.report) await writeFile(values.report, JSON.stringify(report, null, 2));
    if (values.json) console.log(JSON.stringify(report));
    else {
      if (report.fidelity) {
        const f = report.fidelity;
        console.log(`no labels: fidelity to the float model on ${f.exported.count} images`);
        console.log(`quantized top-1 agreement ${pct(f.quant.agreement)}, output cosine ${f.quant.cosine.toFixed(4)}  (W${plan.wbits}A${plan.abits ?? 32}, ${plan.method})`);
        console.log(`exported  top-1 agreement ${pct(f.exported.agreement)}, output cosine ${f.exported.cosine.toFixed(4)}  → ${values.output}`);
      } else {
        console.log(`FP        top-1 ${pct(report.fp?.top1)}`);
        console.log(`quantized top-1 ${pct(report.quant?.top1)}  (W${plan.wbits}A${plan.abits ?? 32}, ${plan.method})`);
        console.log(`exported  top-1 ${pct(report.exported?.top1)}  → ${values.output}`);
      }
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** A checkpoint folder: one JSON file, replaced atomically so that a kill mid-write leaves the previous one. */
function folderCheckpoints(dir: string): CheckpointStore {
  const file = join(dir, 'checkpoint.json');
  return {
    load: async () => {
      try {
        return await readFile(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw e;
      }
    },
    save: async (text) => {
      await mkdir(dir, { recursive: true });
      await writeFile(`${file}.tmp`, text);
      await rename(`${file}.tmp`, file);
    },
  };
}

/** Search phases on stderr: a progress bar on a terminal, one line per phase otherwise. */
function searchReporter(stream: NodeJS.WriteStream, quiet: boolean): (e: SearchEvent) => void {
  const tty = stream.isTTY === true;
  let lastLine = '';
  return (e) => {
    if (quiet) return;
    if (e.type === 'phase') {
      if (tty && lastLine) stream.write('\n');
      lastLine = '';
      if (!tty) stream.write(`${SEARCH_PHASE_LABELS[e.phase]}…\n`);
    } else if (e.type === 'progress' && tty) {
      const frac = e.total ? e.done / e.total : 1;
      lastLine = `${SEARCH_PHASE_LABELS[e.phase].padEnd(44)} [${'#'.repeat(Math.round(frac * 30)).padEnd(30)}] ${Math.floor(e.done)}/${e.total}`;
      stream.write(`\r${lastLine}`);
    } else if (e.type === 'info') stream.write(`${tty && lastLine ? '\n' : ''}${e.message}\n`);
  };
}

function parseBudget(text: string): Budget {
  const m = /^(size|bitops|latency)=(.+)$/.exec(text);
  const value = m ? Number(m[2]) : NaN;
  if (!m || !Number.isFinite(value) || value <= 0) throw new UsageError(`--budget takes size=MB, bitops=G or latency=ms with a positive number, got "${text}"`);
  const metric = m[1] as CostMetric;
  return { metric, value: value * METRIC_UNITS[metric].scale };
}

function parseBits(text: string): Bits[] {
  const bits = text.split(',').map((b) => Number(b.trim()));
  if (bits.some((b) => !Number.isInteger(b) || b < 2 || b > 8)) throw new UsageError(`--bits takes comma-separated widths from 2 to 8, got "${text}"`);
  if (new Set(bits).size < 2) throw new UsageError('--bits needs at least two different widths');
  return [...new Set(bits)].sort((a, b) => a - b) as Bits[];
}

function positiveInt(flag: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${flag} must be ${min === 0 ? 'a non-negative' : 'a positive'} integer, got "${value}"`);
  return n;
}

function printSearch(r: SearchReport, out: string): void {
  const m = r.budget.metric;
  const t = r.sensitivity;
  const seconds = (x: number): string => `${x.toFixed(1)} s`;
  console.log(`sensitivity: ${t.label}, ${t.layers.length} layers × ${t.bits.join('/')} bits, ${t.pairs.length} same-block pairs at ${t.pairBits ?? '-'} bits, ${t.images} images (${seconds(r.timings.sensitivity)})`);
  if (r.latency) console.log(`latency table: ${r.latency.device}${r.timings.latency > 0 ? ` (${seconds(r.timings.latency)})` : ''}`);
  const costs = (p: SearchReport['chosen']): string =>
    [`size ${formatCost('size', p.sizeBytes)}`, p.bitops !== null ? `BitOPs ${formatCost('bitops', p.bitops)}` : '', p.latencyMs !== null ? `latency ${formatCost('latency', p.latencyMs)}` : ''].filter(Boolean).join(', ');
  console.log(`budget: ${m} ≤ ${formatCost(m, r.budget.value)}; genetic search: population ${r.genetic.population}, ${r.genetic.generations} generations, mutation ${r.genetic.mutation}, seed ${r.genetic.seed} (${seconds(r.timings.search)} with the front)`);
  console.log(`chosen: proxy ${r.chosen.proxy.toPrecision(4)}, ${costs(r.chosen)}  → ${out}`);
  const delta = new Map(t.layers.map((l) => [l.name, l]));
  for (const l of r.layers) {
    const b = r.chosen.layerBits[l.name]!;
    const d = delta.get(l.name)!.delta[t.bits.indexOf(b)]!;
    console.log(`  ${l.name.padEnd(28)} W${b}  params ${String(l.weights).padStart(8)}  Δproxy ${d.toExponential(2)}`);
  }
  console.log('uniform:');
  for (const u of r.uniform) console.log(`  W${u.bits}  proxy ${u.proxy.toPrecision(4).padEnd(10)} ${costs(u)}${u.cost > r.budget.value * (1 + 1e-12) ? '  (over the budget)' : ''}`);
  console.log(`Pareto front (${m}, proxy; bits in layer order; * = chosen):`);
  const chosen = JSON.stringify(r.chosen.layerBits);
  for (const p of r.front) console.log(`  ${formatCost(m, p.cost).padEnd(16)} ${p.proxy.toPrecision(4).padEnd(10)} ${Object.values(p.layerBits).join(' ')}${JSON.stringify(p.layerBits) === chosen ? '  *' : ''}`);
}

async function search(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      calib: { type: 'string' },
      budget: { type: 'string' },
      bits: { type: 'string', default: '2,4,8' },
      mode: { type: 'string', default: 'cheap' },
      iters: { type: 'string' },
      abits: { type: 'string', default: '8' },
      'latency-table': { type: 'string' },
      method: { type: 'string', default: 'brecq' },
      'no-head-stem-8bit': { type: 'boolean' },
      seed: { type: 'string' },
      'calib-size': { type: 'string' },
      front: { type: 'string' },
      output: { type: 'string', short: 'o' },
      report: { type: 'string' },
      ...PREPROCESS_OPTIONS,
    },
    allowPositionals: true,
  });
  const model = await readModel(positionals[0]);
  if (!values.calib) throw new UsageError('search needs --calib DIR (a folder of calibration images)');
  if (!values.budget) throw new UsageError('search needs --budget size=MB, bitops=G or latency=ms');
  if (!values.output) throw new UsageError('search needs -o PLAN.json');
  const budget = parseBudget(values.budget);
  const bits = parseBits(values.bits);
  const mode = values.mode as SensitivityMode;
  if (mode !== 'cheap' && mode !== 'reconstructed') throw new UsageError(`--mode must be cheap or reconstructed, got "${values.mode}"`);
  const abits = values.abits === 'none' ? null : Number(values.abits);
  if (abits !== null && !(Number.isInteger(abits) && abits >= 2 && abits <= 8)) throw new UsageError(`--abits must be 2 to 8 or none, got "${values.abits}"`);
  // the method is checked as the plan will be
  parsePlan({ method: values.method, wbits: 8, abits: 8 });
  const iters = positiveInt('iters', values.iters);
  const seed = positiveInt('seed', values.seed, 0) ?? 0;
  const frontSteps = positiveInt('front', values.front);
  if (frontSteps !== undefined && frontSteps < 2) throw new UsageError('--front needs at least 2 budgets');
  const latencyTable = values['latency-table'] ? await readJsonFile(values['latency-table'], 'latency table') : undefined;
  const { summary } = await loadModel(model.bytes, model.external);
  const preprocess = preprocessFrom(values, summary);
  let calib = await readImageFolder(values.calib);
  const calibSize = positiveInt('calib-size', values['calib-size']);
  if (calibSize !== undefined) calib = sampleImages(calib, calibSize, seed);
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once('SIGINT', onSigint);
  try {
    const report = await runSearch(
      {
        model: model.bytes,
        modelName: model.name,
        external: model.external,
        calib,
        preprocess,
        budget,
        bits,
        abits: abits as Bits | null,
        mode,
        method: values.method as MethodName,
        seed,
        // the same default as quantize: first and last layers pinned at 8 bits
        headStem8bit: values['no-head-stem-8bit'] !== true,
        ...(iters !== undefined ? { iters } : {}),
        ...(latencyTable !== undefined ? { latencyTable } : {}),
        ...(frontSteps !== undefined ? { frontSteps } : {}),
      },
      searchReporter(process.stderr, values.json === true),
      controller.signal,
    );
    finishReporter(process.stderr);
    await writeFile(values.output, `${JSON.stringify(report.plan, null, 2)}\n`);
    if (values.report) await writeFile(values.report, JSON.stringify(report, null, 2));
    if (values.json) console.log(JSON.stringify({ plan: report.plan, budget: report.budget, chosen: report.chosen, uniform: report.uniform, front: report.front, sensitivity: report.sensitivity, timings: report.timings }));
    else printSearch(report, values.output);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

async function readJsonFile(path: string, what: string): Promise<unknown> {
  const text = await readFile(path, 'utf8').catch(() => {
    throw new UsageError(`${path}: cannot read the ${what} file`);
  });
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UsageError(`${path}: the ${what} is not valid JSON`);
  }
}

/** The benchmarks of bench/ (each writes its table to stdout; the figures belong in bench/RESULTS.md). */
const BENCHES: Readonly<Record<string, string>> = {
  gemm: 'SGEMM GFLOP/s (SIMD and relaxed SIMD)',
  conv: 'convolution forward and gradients, 1 and 2 threads, against ONNX Runtime Web',
  'onnx-decode': 'decode time and memory of an ONNX file',
  rtn: 'round-to-nearest on the demo at several bit widths',
  adaround: 'AdaRound against round-to-nearest on the demo, and its iteration speed',
  methods: 'the methods’ quality table on the demo (long)',
  'mixed-precision': 'mixed precision against uniform precision on the demo',
  'ga-optimality': 'how often the mixed-precision genetic search reaches the brute-force optimum',
  webgpu: 'WebGPU kernels (needs a browser with WebGPU)',
  'resnet50-browser': 'ResNet-50 at 224×224 with 1,024 calibration images in the studio in Chromium: peak memory and time (long)',
};
const BENCH_FILES: Readonly<Record<string, string>> = { rtn: 'rtn-demo', adaround: 'adaround-demo' };

/** `lowbit bench [NAME [ARGS…]]`: lists the benchmarks, or runs one in a child process with the same flags as the CLI. */
async function bench(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (!name || name === '--list') {
    for (const [k, v] of Object.entries(BENCHES)) console.log(`${k.padEnd(16)} ${v}`);
    return 0;
  }
  if (!BENCHES[name]) throw new UsageError(`unknown benchmark "${name}"; lowbit bench lists them`);
  const file = join(dirname(new URL(import.meta.url).pathname), '../../bench', `${BENCH_FILES[name] ?? name}.ts`);
  const { spawn } = await import('node:child_process');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--experimental-wasm-relaxed-simd', '--import', 'tsx', file, ...rest], { stdio: 'inherit' });
    child.on('exit', (code, signal) => resolve(signal ? 130 : (code ?? 1)));
  });
}

const BAD_INPUT = [BudgetError, CostError, SensitivityError, CheckpointError, ShapeError, PartitionError, UnsupportedOpError, UsageError, OnnxDecodeError, DatasetError, PreprocessError, PlanError, ModelInputError, LabelMismatchError, UnsupportedTensorError, ImageDecodeError];

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'inspect':
        await inspect(rest);
        return 0;
      case 'eval':
        await evalCommand(rest);
        return 0;
      case 'quantize':
        await quantize(rest);
        return 0;
      case 'search':
        await search(rest);
        return 0;
      case 'bench':
        return await bench(rest);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"\n${USAGE}`);
    }
  } catch (e) {
    const err = e as Error;
    if (e instanceof CancelledError) {
      console.error('lowbit: cancelled');
      return 130;
    }
    if (BAD_INPUT.some((c) => e instanceof c) || (err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || (err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      console.error(`lowbit: ${err.message}`);
      return 2;
    }
    console.error(`lowbit: internal error: ${err.stack ?? err.message}`);
    return 1;
  }
}
