import { describe, expect, it } from 'vitest';
import { canonicalize } from '../graph/canonicalize';
import { findQuantLayers } from '../graph/layers';
import { partitionModel } from '../graph/partition';
import { tinyResNet } from '../testing/tiny-resnet';
import { inceptionNet, mobileNetV2, squeezeExciteNet } from '../testing/graphs';
import { compareTraces, reconstructionInput, traceRun, type RunTrace } from '../testing/reconstruction-parity';
import { referenceConv } from '../engine/conv-engine';
import { BlockProgram } from '../engine/block-program';
import { BackendBlock } from '../engine/backend-block';
import { ReferenceBackend } from '../backends/webgpu/reference-backend';

/*
 * The backend weight loop (reconstruct-backend.ts) against the CPU loop, with the CPU reference
 * kernels behind `KernelBackend` standing in for WebGPU, which Node does not have (the WebGPU run
 * is checked in Chromium by the same comparison: e2e/webgpu.spec.ts). Both loops draw the same
 * batches and do the same maths; the kernels differ (the reference's float64 sums against the WASM
 * engine's float32 ones), so the runs agree to float32 rounding, not bit for bit.
 */

const backend = () => new ReferenceBackend(new Float32Array(0));

function expectSameRun(cpu: RunTrace, other: RunTrace, nearest?: RunTrace): void {
  const c = compareTraces(cpu, other, nearest);
  expect(c.sameSchedule).toBe(true);
  expect(c.points).toBeGreaterThan(0);
  expect(c.maxRecErr).toBeLessThanOrEqual(1e-4);
  expect(c.maxRegErr).toBeLessThanOrEqual(1e-4);
  expect(c.betaMismatches).toBe(0);
  expect(c.sameCodes).toBeGreaterThanOrEqual(0.999);
  // the learned rounding moved away from nearest, so agreeing codes are not merely agreeing initialisations
  if (nearest) expect(c.moved!).toBeGreaterThan(0.01);
}

const onBackend = (t: RunTrace) => t.infos.filter((m) => /^block \S+: on cpu-reference$/.test(m));

describe('block reconstruction on a KernelBackend', () => {
  // lr 1e-2 so that 50 iterations move a good share of the rounding variables across 0
  const options = { iters: 50, seed: 4, lr: 1e-2, batch: 8 };

  it('residual blocks: the same loss trajectory and codes as the CPU loop; the head falls back, naming its op', async () => {
    const input = reconstructionInput(() => tinyResNet(4, { channels: 6, size: 8 }), [1, 8, 8], options);
    const cpu = await traceRun(input, null);
    const gpu = await traceRun(input, backend());
    expectSameRun(cpu, gpu, await traceRun({ ...input, options: { ...options, iters: 0 } }, null));
    expect(gpu.infos).toContain('block b1: on cpu-reference');
    expect(gpu.infos).toContain('block b2: on cpu-reference');
    expect(gpu.infos.find((m) => m.startsWith('block head:'))).toMatch(/^block head: on the CPU: op Flatten \(node "[^"]+"\) not on cpu-reference$/);
    // without a backend nothing is said about where blocks ran
    expect(cpu.infos.filter((m) => m.startsWith('block '))).toEqual([]);
  });

  it('with Fisher weighting, the same trajectory as the CPU loop', async () => {
    const input = reconstructionInput(() => tinyResNet(6, { channels: 4, size: 8 }), [1, 8, 8], { ...options, iters: 30, fisher: true });
    const gpu = await traceRun(input, backend());
    expect(onBackend(gpu).length).toBeGreaterThan(1);
    expectSameRun(await traceRun(input, null), gpu);
  });

  it('inverted residuals (depthwise, ReLU6) and squeeze-excitation (Mul, pooling, hard sigmoid): the same runs', async () => {
    for (const [make, shape] of [
      [() => mobileNetV2(5), [3, 16, 16]],
      [() => squeezeExciteNet(2), [3, 16, 16]],
    ] as const) {
      const input = reconstructionInput(make, shape, { ...options, iters: 30 });
      const gpu = await traceRun(input, backend());
      expect(onBackend(gpu).length, gpu.infos.join('\n')).toBeGreaterThan(1);
      expectSameRun(await traceRun(input, null), gpu);
    }
  });

  it('a block with an op outside the backend compiles to null, and the run falls back to the CPU for it', async () => {
    const { model } = canonicalize(inceptionNet(7));
    const layers = findQuantLayers(model);
    const branch = partitionModel(model, 'block').blocks.find((b) => b.kind === 'branch')!;
    expect(branch, 'the Inception block').toBeDefined();
    const program = BlockProgram.compile(model, branch, layers, referenceConv);
    const compiled = BackendBlock.compile(model, branch, program.slots, backend(), [2, 4, 8, 8]);
    expect(compiled.ok).toBe(false);
    if (!compiled.ok) expect(compiled.reason).toMatch(/^op (MaxPool|Concat) \(node "[^"]+"\)$/);

    const input = reconstructionInput(() => inceptionNet(7), [1, 8, 8], { ...options, iters: 10 });
    const gpu = await traceRun(input, backend());
    expect(gpu.infos).toContainEqual(expect.stringMatching(new RegExp(`^block ${branch.id}: on the CPU: op (MaxPool|Concat) `)));
    expectSameRun(await traceRun(input, null), gpu);
  });
});
