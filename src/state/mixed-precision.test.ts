import { beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { decodeModel } from '../core/onnx/codec';
import { canonicalize } from '../core/graph/canonicalize';
import { FASHION_MNIST } from '../core/data/preprocess';
import { sampleImages } from '../core/data/sample';
import { readImageFolder } from '../cli/files';
import { configCost, uniformBits, type LatencyTable } from '../core/search/cost';
import { runSearch, type SearchReport } from '../core/search/run';
import { searchLayersOf, type SearchLayer } from '../core/search/layers';
import type { QuantPlan } from '../core/plan';
import type { RunSummary } from '../common/protocol';
import { bitsKey, measuredRuns, planBits, planBitsLabel, planWithBits, searchPoints, uniformCosts, type SearchPoint } from './mixed-precision';

/** A finished run as the history keeps it (accuracies are the run's, here any fractions). */
const run = (id: number, plan: QuantPlan, modelName = 'model.onnx'): RunSummary => ({ id, modelName, finishedAt: '', plan, fp: 0.9, quant: 0.8, exported: 0.8, seconds: 1 });

describe('the mixed-precision view of a search on the demo model', () => {
  let layers: SearchLayer[];
  let report: SearchReport;
  let points: SearchPoint[];
  const base: QuantPlan = { method: 'rtn', wbits: 4, abits: 8, headStem8bit: true };

  beforeAll(async () => {
    const bytes = new Uint8Array(await readFile('public/demo/model.onnx'));
    layers = searchLayersOf(canonicalize(decodeModel(bytes)).model);
    // a budget halfway between uniform W2 and W4, so that the chosen configuration mixes widths
    const [w2, w4] = uniformCosts('size', layers, 8, true, [2, 4], null);
    const calib = sampleImages(await readImageFolder('public/demo/calib'), 32, 0);
    report = await runSearch({ model: bytes, modelName: 'model.onnx', calib, preprocess: FASHION_MNIST, budget: { metric: 'size', value: (w2!.cost + w4!.cost) / 2 }, abits: 8, mode: 'cheap', headStem8bit: true, frontSteps: 8 });
    points = searchPoints(report);
  }, 300_000);

  it('lists the search layers in the search’s order, first and last marked', () => {
    expect(layers.map((l) => l.name)).toEqual(report.layers.map((l) => l.name));
    expect(layers.filter((l) => l.isFirst || l.isLast).length).toBeGreaterThanOrEqual(2);
  });

  it('gives the uniform plans the costs the search gives them, pinned layers included', () => {
    const mine = uniformCosts('size', layers, 8, true, report.sensitivity.bits, null);
    expect(mine.map((u) => u.bits)).toEqual(report.uniform.map((u) => u.bits));
    mine.forEach((u, i) => expect(u.cost).toBeCloseTo(report.uniform[i]!.cost, 6));
    // the pins cost: uniform W2 with the first and last layers at 8 bits is dearer than without
    const [pinned] = uniformCosts('size', layers, 8, true, [2], null);
    const [free] = uniformCosts('size', layers, 8, false, [2], null);
    expect(pinned!.cost).toBeGreaterThan(free!.cost);
    expect(free!.cost).toBeCloseTo(configCost('size', { layers, abits: 8 }, uniformBits(layers, 2)), 6);
    // BitOPs count the activation bits
    const [a8] = uniformCosts('bitops', layers, 8, true, [4], null);
    const [a4] = uniformCosts('bitops', layers, 4, true, [4], null);
    expect(a8!.cost / a4!.cost).toBeCloseTo(2, 9);
  });

  it('gives latency references only for widths the table has', () => {
    expect(uniformCosts('latency', layers, 8, true, [2, 4], null)).toEqual([]);
    const table: LatencyTable = { kind: 'lowbit-latency-table', version: 1, unit: 'ms', device: 'test', layers: Object.fromEntries(layers.map((l, i) => [l.name, { '4': i + 1, '8': 2 * (i + 1) }])) };
    const refs = uniformCosts('latency', layers, 8, false, [2, 3, 4, 8], table);
    expect(refs.map((r) => r.bits)).toEqual([4, 8]);
    expect(refs[1]!.cost).toBeCloseTo(2 * refs[0]!.cost, 9);
  });

  it('lists every configuration of the front and every uniform plan once, by ascending cost, the chosen one marked', () => {
    const keys = points.map((p) => bitsKey(layers, p.layerBits));
    expect(new Set(keys).size).toBe(points.length);
    for (const f of report.front) expect(keys).toContain(bitsKey(layers, f.layerBits));
    for (const u of report.uniform) expect(points.find((p) => p.uniform === u.bits)?.layerBits).toEqual(u.layerBits);
    for (let i = 1; i < points.length; i++) expect(points[i]!.cost).toBeGreaterThanOrEqual(points[i - 1]!.cost);
    const chosen = points.filter((p) => p.chosen);
    expect(chosen).toHaveLength(1);
    expect(chosen[0]!.layerBits).toEqual(report.chosen.layerBits);
    expect(new Set(Object.values(chosen[0]!.layerBits)).size).toBeGreaterThan(1);
  });

  it('loads a configuration into a plan that quantizes every layer at that configuration’s width', () => {
    // the plan before: W4, the first and last layers at 8 by the head/stem rule
    const before = planBits(base, layers);
    for (const l of layers) expect(before[l.name]).toBe(l.isFirst || l.isLast ? 8 : 4);
    const chosen = points.find((p) => p.chosen)!;
    const plan = planWithBits(base, chosen.layerBits, layers);
    expect(planBits(plan, layers)).toEqual(chosen.layerBits);
    expect(plan.wbits).toBe(Math.max(...Object.values(chosen.layerBits)));
    expect({ method: plan.method, abits: plan.abits, headStem8bit: plan.headStem8bit }).toEqual({ method: base.method, abits: base.abits, headStem8bit: base.headStem8bit });
    expect(planBitsLabel(plan)).toMatch(/^W2–8 mixed, A8$/);
    expect(planBitsLabel(base)).toBe('W4A8');
    // a uniform configuration loads as the plain plan at its width, the head/stem rule keeping the pins
    const w2 = points.find((p) => p.uniform === 2)!;
    const uniform = planWithBits(base, w2.layerBits, layers);
    expect(uniform).toEqual({ ...base, wbits: 2, layerBits: {} });
    expect(planBits(uniform, layers)).toEqual(w2.layerBits);
    expect(planBitsLabel(uniform)).toBe('W2A8');
  });

  it('finds the history’s runs of the search’s configurations, uniform plans by their width and pins', () => {
    const chosen = points.find((p) => p.chosen)!;
    const w2 = points.find((p) => p.uniform === 2)!;
    const history = [
      run(1, { ...base, wbits: 2 }),
      run(2, planWithBits(base, chosen.layerBits, layers)),
      run(3, planWithBits(base, chosen.layerBits, layers), 'another.onnx'),
      // uniform W2 without the pins is not the search's uniform W2
      run(4, { ...base, wbits: 2, headStem8bit: false }),
    ];
    const found = measuredRuns(history, 'model.onnx', layers, points);
    expect(found.map((m) => m.run.id)).toEqual([1, 2]);
    expect(found[0]!.point).toBe(w2);
    expect(found[1]!.point).toBe(chosen);
  });
});
