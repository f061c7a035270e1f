import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The model zoo: torchvision CNNs with seeded random weights, exported to ONNX by
 * scripts/make-zoo.py into the gitignored `.cache/zoo` (node-only; tests and benches).
 */
export const ZOO_MODELS = [
  'resnet18',
  'resnet50',
  'mobilenet_v2',
  'mobilenet_v3_small',
  'efficientnet_b0',
  'regnet_x_400mf',
  'mnasnet0_5',
  'squeezenet1_1',
  'densenet121',
] as const;
export type ZooModel = (typeof ZOO_MODELS)[number];

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const ZOO_DIR = join(ROOT, '.cache/zoo');
const SCRIPT = 'scripts/make-zoo.py';
/** Input of every zoo model; the batch axis is dynamic. */
export const ZOO_INPUT = [3, 224, 224] as const;
export const ZOO_CLASSES = 1000;

type ZooFile = '.onnx' | '.input.bin' | '.output.bin' | '.json';
const FILES: readonly ZooFile[] = ['.onnx', '.input.bin', '.output.bin', '.json'];
export const zooPath = (name: ZooModel, ext: ZooFile = '.onnx'): string => join(ZOO_DIR, `${name}${ext}`);

/** What scripts/make-zoo.py writes into <name>.stamp: the first 16 hex digits of its own SHA-256. */
const recipeStamp = (): string => createHash('sha256').update(readFileSync(join(ROOT, SCRIPT))).digest('hex').slice(0, 16);

/** The models whose files are missing, or were written by another version of the script. */
function stale(names: readonly ZooModel[]): ZooModel[] {
  const stamp = recipeStamp();
  return names.filter((n) => {
    if (FILES.some((e) => !existsSync(zooPath(n, e)))) return true;
    const file = join(ZOO_DIR, `${n}.stamp`);
    return !existsSync(file) || readFileSync(file, 'utf8').trim() !== stamp;
  });
}

/**
 * Makes sure the zoo files exist and come from the current recipe, running the export script for
 * the models that do not (CI runs it from scripts/test-all.sh before the tests; this covers
 * `npx vitest` on a fresh checkout). Throws, naming the command to run, when that fails.
 */
export function ensureZoo(names: readonly ZooModel[] = ZOO_MODELS): void {
  const todo = stale(names);
  if (todo.length === 0) return;
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  let why = '';
  try {
    execFileSync(python, [SCRIPT, ...todo], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'], timeout: 20 * 60_000 });
  } catch (e) {
    why = ` (${(e as Error).message.split('\n')[0]})`;
  }
  const still = stale(todo);
  if (still.length) {
    throw new Error(
      `the model zoo in .cache/zoo lacks ${still.join(', ')}, or holds them from another version of ${SCRIPT}${why}. ` +
        `Build it with \`${python} ${SCRIPT}\` (needs Debian's python3-torch and python3-torchvision; scripts/test-all.sh installs them).`,
    );
  }
}

export interface ZooFiles {
  readonly bytes: Uint8Array;
  /** The fixed sample input, [1, 3, 224, 224]. */
  readonly sample: Float32Array;
  /** PyTorch's logits for the sample, [1, 1000]. */
  readonly torchLogits: Float32Array;
  /** PyTorch's count of its Conv2d and Linear layers, and of their multiply-accumulates per image. */
  readonly torch: { readonly layers: number; readonly macs: number };
}

const floats = (path: string): Float32Array => {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

export function readZoo(name: ZooModel): ZooFiles {
  const b = readFileSync(zooPath(name));
  const meta = JSON.parse(readFileSync(zooPath(name, '.json'), 'utf8')) as { layers: number; macs: number };
  return {
    bytes: new Uint8Array(b.buffer, b.byteOffset, b.byteLength),
    sample: floats(zooPath(name, '.input.bin')),
    torchLogits: floats(zooPath(name, '.output.bin')),
    torch: { layers: meta.layers, macs: meta.macs },
  };
}
