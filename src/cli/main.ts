import { PartitionError } from '../core/graph/partition';
import { UnsupportedOpError } from '../core/engine/kernels';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { batchSizeFor, loadModel, ModelInputError, runQuantization } from '../core/pipeline';
import { decodeModel, encodeModel, OnnxDecodeError } from '../core/onnx/codec';
import { DatasetError, labelImages } from '../core/data/image-set';
import { PRESETS, PreprocessError, proposePreprocess, type PreprocessSpec } from '../core/data/preprocess';
import { ImageBatches } from '../core/data/batches';
import { ModelSession } from '../core/eval/runtime';
import { evaluateAccuracy, LabelMismatchError } from '../core/eval/accuracy';
import { BLOCK_METHODS, parsePlan, PlanError, DEFAULT_PLAN } from '../core/plan';
import { CheckpointError, type CheckpointStore } from '../core/checkpoint';
import { CancelledError } from '../core/events';
import { externalLocations, UnsupportedTensorError } from '../core/onnx/tensor-data';
import { ImageDecodeError } from '../core/data/png';
import { ShapeError } from '../core/graph/shapes';
import { readImageFolder } from './files';
import { sampleImages } from '../core/data/sample';
import { finishReporter, terminalReporter } from './progress';
import type { ModelSummary } from '../core/graph/summary';

/** Bad input: exit code 2 with a one-line reason. */
class UsageError extends Error {
  override name = 'UsageError';
}

const USAGE = `usage:
  lowbit inspect MODEL [--json]
  lowbit eval MODEL --val DIR [preprocessing] [--labels FILE] [--json]
  lowbit quantize MODEL --calib DIR [--val DIR] [--plan PLAN.json] [--method rtn|adaround|brecq|qdrop|nwq|decoupleq] [--taps block|layer] [--wbits N] [--abits N|none]
                  [--scale minmax|lp] [--iters N] [--act-iters N] [--granularity layer|block|stage|net] [--fisher] [--lambda X] [--keep P]
                  [--seed N] [--calib-size N] [--checkpoint DIR]
                  [--no-head-stem-8bit] [--weight-format integer|float] [preprocessing] [--labels FILE] -o OUT.onnx [--report REPORT.json] [--json]
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
  const base = proposePreprocess(summary.inputs[0]?.shape ?? []);
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
  const files = await readImageFolder(values.val);
  const set = labelImages(files.map((f) => f.path), await readLabels(values.labels));
  if (!set.classes) throw new DatasetError(`${values.val}: images need class sub-folders to be evaluated`);
  const byPath = new Map(files.map((f) => [f.path, f]));
  const batch = batchSizeFor(summary, spec);
  const session = await ModelSession.create(external.size ? encodeModel(proto) : bytes, 'all');
  const acc = await evaluateAccuracy(session, new ImageBatches(set.images.map((i) => byPath.get(i.path)!), spec, batch), set.images.map((i) => i.label!));
  await session.release();
  if (values.json) console.log(JSON.stringify(acc));
  else console.log(`top-1 ${pct(acc.top1)}  top-5 ${pct(acc.top5)}  (${acc.count} images)`);
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
      scale: { type: 'string' },
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
  const val = values.val ? await readImageFolder(values.val) : [];
  const classNames = await readLabels(values.labels);
  const checkpoints = values.checkpoint ? folderCheckpoints(values.checkpoint) : undefined;
  if (checkpoints && !BLOCK_METHODS.includes(plan.method)) throw new UsageError(`--checkpoint works with the block methods (${BLOCK_METHODS.join(', ')}), not ${plan.method}`);
  const controller = new AbortController();
  const onSigint = (): void => {
    if (values.checkpoint) process.stderr.write(`\nlowbit: stopping; finished blocks are saved in ${values.checkpoint}: run the same command to resume\n`);
    controller.abort();
  };
  process.once('SIGINT', onSigint);
  try {
    const { report, exported } = await runQuantization(
      { model: model.bytes, modelName: model.name, external: model.external, calib, val, preprocess, plan, weightFormat, ...(classNames ? { classNames } : {}), ...(checkpoints ? { checkpoints } : {}) },
      terminalReporter(process.stderr, values.json === true),
      controller.signal,
    );
    finishReporter(process.stderr);
    await writeFile(values.output, exported);
    if (values.report) await writeFile(values.report, JSON.stringify(report, null, 2));
    if (values.json) console.log(JSON.stringify(report));
    else {
      console.log(`FP        top-1 ${pct(report.fp?.top1)}`);
      console.log(`quantized top-1 ${pct(report.quant?.top1)}  (W${plan.wbits}A${plan.abits ?? 32}, ${plan.method})`);
      console.log(`exported  top-1 ${pct(report.exported?.top1)}  → ${values.output}`);
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

const BAD_INPUT = [CheckpointError, ShapeError, PartitionError, UnsupportedOpError, UsageError, OnnxDecodeError, DatasetError, PreprocessError, PlanError, ModelInputError, LabelMismatchError, UnsupportedTensorError, ImageDecodeError];

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
