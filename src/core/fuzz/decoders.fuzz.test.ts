import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { mutations } from './mutate';
import { encodeModel, OnnxDecodeError } from '../onnx/codec';
import { loadModel, ModelInputError } from '../pipeline';
import { decodePng, ImageDecodeError } from '../data/png';
import { parsePlan, PlanError } from '../plan';
import { tinyResNet } from '../testing/tiny-resnet';
import { mobileNetV2 } from '../testing/graphs';
import { UnsupportedTensorError } from '../onnx/tensor-data';
import { ShapeError } from '../graph/shapes';

/**
 * Bounded fuzzing run with every test: mutated models, images and plans must either load or fail
 * with the error the UI and the CLI turn into a clear message, never with a crash of another kind.
 * The counts are fixed so the run is reproducible; bench/RESULTS.md records them.
 */
const CASES = Number(process.env.LOWBIT_FUZZ_CASES ?? 2000);

function outcome(run: () => unknown, expected: (e: unknown) => boolean): Promise<'ok' | 'rejected'> {
  return Promise.resolve()
    .then(run)
    .then(
      () => 'ok' as const,
      (e: unknown) => {
        if (expected(e)) return 'rejected' as const;
        throw new Error(`unexpected ${(e as Error)?.name}: ${(e as Error)?.message}`);
      },
    );
}

describe(`fuzzing (${CASES} cases per seed input)`, () => {
  it('the ONNX loader', async () => {
    const seeds = [encodeModel(tinyResNet(1)), encodeModel(mobileNetV2(2))];
    const tally = { ok: 0, rejected: 0 };
    for (const [i, seed] of seeds.entries()) {
      for (const bytes of mutations(seed, CASES, 10 + i)) {
        tally[await outcome(() => loadModel(bytes), (e) => e instanceof OnnxDecodeError || e instanceof ModelInputError || e instanceof UnsupportedTensorError || e instanceof ShapeError)]++;
      }
    }
    console.log(`onnx: ${tally.ok} loaded, ${tally.rejected} rejected with a clear error`);
    expect(tally.ok + tally.rejected).toBe(seeds.length * CASES);
  });

  it('the PNG decoder', async () => {
    const dir = new URL('../data/__fixtures__/', import.meta.url);
    const seeds = readdirSync(dir).filter((f) => f.endsWith('.png')).slice(0, 6).map((f) => new Uint8Array(readFileSync(new URL(f, dir))));
    const tally = { ok: 0, rejected: 0 };
    for (const [i, seed] of seeds.entries()) {
      for (const bytes of mutations(seed, CASES, 20 + i)) tally[await outcome(() => decodePng(bytes), (e) => e instanceof ImageDecodeError)]++;
    }
    console.log(`png: ${tally.ok} decoded, ${tally.rejected} rejected with a clear error`);
    expect(tally.ok + tally.rejected).toBe(seeds.length * CASES);
  });

  it('the plan loader', async () => {
    const seed = new TextEncoder().encode(JSON.stringify({ method: 'adaround', wbits: 3, abits: 8, headStem8bit: true, iters: 100, seed: 1, scale: 'lp', layerBits: { a: 4 } }));
    const tally = { ok: 0, rejected: 0 };
    for (const bytes of mutations(seed, CASES, 30)) {
      tally[
        await outcome(
          () => parsePlan(JSON.parse(new TextDecoder().decode(bytes))),
          (e) => e instanceof PlanError || e instanceof SyntaxError,
        )
      ]++;
    }
    console.log(`plan: ${tally.ok} accepted, ${tally.rejected} rejected with a clear error`);
    expect(tally.ok + tally.rejected).toBe(CASES);
  });
});
