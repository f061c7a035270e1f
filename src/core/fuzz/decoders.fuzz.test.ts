import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { fixPngCrcs, mutations, planValues } from './mutate';
import { encodeModel, OnnxDecodeError } from '../onnx/codec';
import { loadModel, ModelInputError } from '../pipeline';
import { decodePng, ImageDecodeError, type DecodedImage } from '../data/png';
import { decodeImage } from '../data/batches';
import { decodeJpeg } from '../data/jpeg';
import { readZip } from '../data/zip';
import { writeZip } from '../testing/zip-writer';
import { DatasetError } from '../data/image-set';
import { decodeNpySample, npySamples, parseNpy, writeNpy } from '../data/npy';
import { checkPlanFits, parsePlan, PlanError } from '../plan';
import { tinyResNet } from '../testing/tiny-resnet';
import { mobileNetV2 } from '../testing/graphs';
import { UnsupportedTensorError } from '../onnx/tensor-data';
import { ShapeError } from '../graph/shapes';
import { PartitionError } from '../graph/partition';
import { canonicalize } from '../graph/canonicalize';
import { activationQuantPoints, findQuantLayers } from '../graph/layers';

/**
 * Bounded fuzzing with every test run: mutated models, images, arrays and plans must either load
 * or fail with one of the project's own errors, which the UI and the CLI turn into a clear message
 * (exit code 2). A TypeError or RangeError, an accepted value that is malformed, or a case that
 * takes over 5 s (a hang), fails the target.
 * Cases are seeded, so a failure names a case that reproduces; bench/RESULTS.md records the counts.
 */
const CASES = Number(process.env.LOWBIT_FUZZ_CASES ?? 2000);
// generous: the CI machines are shared; a real hang runs into it, a slow neighbour does not
const SLOW_MS = 5000;

interface Tally {
  ok: number;
  rejected: number;
  slowestMs: number;
}

async function fuzz(target: string, cases: Iterable<unknown>, run: (input: never) => unknown, expected: readonly (abstract new (...args: never[]) => Error)[]): Promise<Tally> {
  const tally: Tally = { ok: 0, rejected: 0, slowestMs: 0 };
  let i = 0;
  for (const input of cases) {
    const t0 = performance.now();
    try {
      await run(input as never);
      tally.ok++;
    } catch (e) {
      if (!expected.some((c) => e instanceof c)) throw new Error(`${target}, case ${i}: unexpected ${(e as Error)?.name}: ${(e as Error)?.message}`, { cause: e });
      tally.rejected++;
    }
    const ms = performance.now() - t0;
    tally.slowestMs = Math.max(tally.slowestMs, ms);
    if (ms > SLOW_MS) throw new Error(`${target}, case ${i}: took ${ms.toFixed(0)} ms`);
    i++;
  }
  console.log(`${target}: ${tally.ok} accepted, ${tally.rejected} rejected with the project's error; slowest case ${tally.slowestMs.toFixed(1)} ms`);
  return tally;
}

/** What an accepted input must satisfy: a broken value that got through fails the target like a crash. */
function valid(ok: boolean, what: string): void {
  if (!ok) throw new Error(`accepted, but ${what}`);
}

const wellFormed = (img: DecodedImage): void =>
  valid(img.width >= 1 && img.height >= 1 && img.data.length === img.width * img.height * img.channels && [1, 2, 3, 4].includes(img.channels), `the image is malformed (${img.width}×${img.height}×${img.channels}, ${img.data.length} samples)`);

function* chain<T>(...parts: Iterable<T>[]): Generator<T> {
  for (const p of parts) yield* p;
}

function* mapped<T, U>(xs: Iterable<T>, f: (x: T) => U): Generator<U> {
  for (const x of xs) yield f(x);
}

const FIXTURES = new URL('../data/__fixtures__/', import.meta.url);
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, FIXTURES)));
const MODEL_ERRORS = [OnnxDecodeError, ModelInputError, UnsupportedTensorError, ShapeError, PartitionError];

describe(`fuzzing (${CASES} cases per seed input)`, () => {
  it('the ONNX loader, and the graph passes every run starts with', async () => {
    const seeds = [encodeModel(tinyResNet(1)), encodeModel(mobileNetV2(2))];
    const cases = chain(...seeds.map((s, i) => mutations(s, CASES, 10 + i)));
    const tally = await fuzz(
      'onnx',
      cases,
      async (bytes: Uint8Array) => {
        const { proto, summary } = await loadModel(bytes);
        valid(proto.graph !== undefined && summary.inputs.every((i) => Array.isArray(i.shape)), 'the model has no graph or an input without a shape list');
        // what runQuantization does next with a model that loaded
        const { model } = canonicalize(proto);
        findQuantLayers(model);
        activationQuantPoints(model);
      },
      MODEL_ERRORS,
    );
    expect(tally.ok + tally.rejected).toBe(seeds.length * CASES);
    expect(tally.ok).toBeGreaterThan(0);
  });

  it('the PNG decoder, with and without valid chunk CRCs', async () => {
    const seeds = readdirSync(FIXTURES).filter((f) => f.endsWith('.png')).sort().map(fixture);
    // half the cases keep their broken CRCs (the checksum path), half get them repaired (the decoder behind it)
    const cases = chain(...seeds.map((s, i) => mapped(mutations(s, CASES, 20 + i), (b) => ((b[0]! + b.length) % 2 ? fixPngCrcs(b) : b))));
    const tally = await fuzz('png', cases, async (bytes: Uint8Array) => wellFormed(await decodePng(bytes)), [ImageDecodeError]);
    expect(tally.ok + tally.rejected).toBe(seeds.length * CASES);
    expect(tally.ok).toBeGreaterThan(seeds.length * CASES * 0.02);
  });

  it('the JPEG decoder: baseline, progressive, subsampled, restart intervals, CMYK', async () => {
    const seeds = readdirSync(FIXTURES).filter((f) => f.endsWith('.jpg')).sort().map(fixture);
    const cases = chain(...seeds.map((s, i) => mutations(s, CASES, 60 + i)));
    const tally = await fuzz('jpeg', cases, (bytes: Uint8Array) => wellFormed(decodeJpeg(bytes)), [ImageDecodeError]);
    expect(tally.ok + tally.rejected).toBe(seeds.length * CASES);
    // a mutation in entropy-coded data can decode (to other pixels): those cases reach the IDCT and upsampling
    expect(tally.ok).toBeGreaterThan(seeds.length * CASES * 0.1);
  });

  it('the zip reader: stored and deflated entries, in folders', async () => {
    const png = fixture('rgb8.png');
    const jpg = fixture('jpeg-420.jpg');
    const seeds = [
      await writeZip([{ path: 'val/0_a/x.png', bytes: png }, { path: 'val/1_b/y.jpg', bytes: jpg, deflate: false }]),
      await writeZip([{ path: 'a.png', bytes: png, deflate: false }, { path: 'b.jpg', bytes: jpg }, { path: 'notes.txt', bytes: new Uint8Array(40) }]),
    ];
    const cases = chain(...seeds.map((s, i) => mutations(s, CASES, 80 + i)));
    const tally = await fuzz(
      'zip',
      cases,
      async (bytes: Uint8Array) => {
        for (const f of await readZip(bytes, 'x.zip')) valid(typeof f.path === 'string' && f.bytes instanceof Uint8Array, 'an entry is malformed');
      },
      [DatasetError],
    );
    expect(tally.ok + tally.rejected).toBe(seeds.length * CASES);
    expect(tally.ok).toBeGreaterThan(0);
  });

  it('the image reader: JPEG, GIF, PNG and .npy samples by their signatures', async () => {
    const seeds = ['rgb.jpg', 'cmyk.jpg', 'grey.jpg', 'animated.gif', 'rgb8.png'].map(fixture);
    seeds.push(writeNpy([3, 4, 4], Float32Array.from({ length: 48 }, (_, i) => i / 48)));
    const cases = chain(...seeds.map((s, i) => mutations(s, CASES, 40 + i)));
    const tally = await fuzz('image reader', mapped(cases, (bytes) => ({ path: 'x', bytes })), async (file: { path: string; bytes: Uint8Array }) => wellFormed(await decodeImage(file)), [ImageDecodeError, DatasetError]);
    expect(tally.ok + tally.rejected).toBe(seeds.length * CASES);
  });

  it('the .npy reader: whole arrays, label arrays and single samples', async () => {
    const arr = writeNpy([2, 1, 3, 3], Float32Array.from({ length: 18 }, (_, i) => i / 18));
    const labels = writeNpy([2], Float32Array.of(0, 1));
    const sample = writeNpy([1, 3, 3], new Float32Array(9).fill(0.5));
    const seeds = [arr, labels, sample];
    const cases = chain(...seeds.map((s, i) => mutations(s, CASES, 50 + i)));
    const tally = await fuzz(
      'npy',
      cases,
      (bytes: Uint8Array) => {
        const a = parseNpy(bytes, 'x.npy');
        valid(a.data.length === a.shape.reduce((x, y) => x * y, 1), `shape (${a.shape.join(', ')}) holds ${a.data.length} values`);
        if (a.shape.length === 4) npySamples(a, 'x.npy', a.shape[0] === 2 ? parseNpy(labels, 'x.labels.npy') : undefined);
        if (a.shape.length === 3) wellFormed(decodeNpySample(bytes, 'x.npy'));
      },
      [DatasetError],
    );
    expect(tally.ok + tally.rejected).toBe(seeds.length * CASES);
    expect(tally.ok).toBeGreaterThan(0);
  });

  it('the plan loader: mutated JSON text and structured plans', async () => {
    const seed = new TextEncoder().encode(JSON.stringify({ method: 'adaround', wbits: 3, abits: 8, headStem8bit: true, iters: 100, seed: 1, scale: 'lp', layerBits: { a: 4 } }));
    const text = mapped(mutations(seed, CASES, 30), (b) => new TextDecoder().decode(b));
    const tally = await fuzz(
      'plan',
      chain<unknown>(text, planValues(CASES, 31)),
      (input: unknown) => {
        const plan = parsePlan(typeof input === 'string' ? JSON.parse(input) : input);
        // the studio saves plans and loads them back: an accepted plan must survive that unchanged
        valid(JSON.stringify(parsePlan(JSON.parse(JSON.stringify(plan)))) === JSON.stringify(plan), 'the plan changes when saved and loaded back');
        checkPlanFits(plan, ['a', 'conv1']);
      },
      [PlanError, SyntaxError],
    );
    expect(tally.ok + tally.rejected).toBe(2 * CASES);
    expect(tally.ok).toBeGreaterThan(0);
  });
});
