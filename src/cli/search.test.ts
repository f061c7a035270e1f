import { beforeAll, describe, expect, it } from 'vitest';
import { lowbit } from './run-cli';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePlan } from '../core/plan';
import { decodeModel } from '../core/onnx/codec';
import { canonicalize } from '../core/graph/canonicalize';
import { findQuantLayers } from '../core/graph/layers';
import { configCost, layerCostInfo, type CostContext } from '../core/search/cost';

const DEMO = 'public/demo';
const tmp = mkdtempSync(join(tmpdir(), 'lowbit-search-'));

/** The demo's layers with their cost facts, as the search counts them. */
function demoCosts(abits: 8 | null = 8): CostContext {
  const { model } = canonicalize(decodeModel(readFileSync(`${DEMO}/model.onnx`)));
  return { layers: layerCostInfo(model, findQuantLayers(model)), abits };
}

interface SearchJson {
  plan: unknown;
  budget: { metric: string; value: number };
  chosen: { layerBits: Record<string, number>; proxy: number; cost: number; sizeBytes: number };
  uniform: { bits: number; proxy: number; cost: number }[];
  front: { cost: number; proxy: number; layerBits: Record<string, number> }[];
  sensitivity: { label: string; layers: { name: string }[] };
}

describe('lowbit search (cheap sensitivities on the demo)', () => {
  const planPath = join(tmp, 'plan.json');
  let out: SearchJson;

  beforeAll(async () => {
    const r = await lowbit('search', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--calib-size', '64', '--budget', 'size=0.03', '--mode', 'cheap', '-o', planPath, '--json');
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.code).toBe(0);
    out = JSON.parse(r.stdout) as SearchJson;
  }, 300_000);

  it('writes a plan that parsePlan accepts, with a width for every layer, within the size budget', () => {
    const plan = parsePlan(JSON.parse(readFileSync(planPath, 'utf8')));
    expect(plan).toMatchObject({ method: 'brecq', abits: 8, headStem8bit: true });
    const ctx = demoCosts();
    expect(Object.keys(plan.layerBits!).sort()).toEqual(ctx.layers.map((l) => l.name).sort());
    for (const b of Object.values(plan.layerBits!)) expect([2, 4, 8]).toContain(b);
    const size = configCost('size', ctx, plan.layerBits!);
    expect(size).toBeLessThanOrEqual(0.03e6);
    expect(size).toBeCloseTo(out.chosen.sizeBytes, 6);
    // it uses the budget: more than uniform 2-bit, and it is not uniform
    expect(new Set(Object.values(plan.layerBits!)).size).toBeGreaterThan(1);
    expect(out.sensitivity.label).toBe('cheap (round-to-nearest)');
  });

  it('reports a Pareto front: ascending cost, descending proxy, holding the chosen configuration', () => {
    expect(out.front.length).toBeGreaterThan(3);
    for (let i = 1; i < out.front.length; i++) {
      expect(out.front[i]!.cost).toBeGreaterThan(out.front[i - 1]!.cost);
      expect(out.front[i]!.proxy).toBeLessThan(out.front[i - 1]!.proxy);
    }
    expect(out.front.some((p) => JSON.stringify(p.layerBits) === JSON.stringify(out.chosen.layerBits))).toBe(true);
    // the chosen proxy beats uniform 2-bit, the only uniform plan within 0.03 MB
    const w2 = out.uniform.find((u) => u.bits === 2)!;
    expect(w2.cost).toBeLessThanOrEqual(0.03e6);
    expect(out.chosen.proxy).toBeLessThan(w2.proxy);
  });

  it('lowbit quantize --plan runs the plan with its per-layer widths', async () => {
    const reportPath = join(tmp, 'mp-report.json');
    const r = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--plan', planPath, '--method', 'rtn', '--calib-size', '16', '-o', join(tmp, 'mp.onnx'), '--report', reportPath);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.code).toBe(0);
    const report = JSON.parse(readFileSync(reportPath, 'utf8')) as { layers: { name: string; wbits: number }[] };
    expect(Object.fromEntries(report.layers.map((l) => [l.name, l.wbits]))).toEqual(out.chosen.layerBits);
  }, 300_000);

  it('prints the front on a terminal run, with a BitOPs budget, pinned head and stem, and a given latency table', async () => {
    const ctx = demoCosts();
    // a latency table whose times follow the bits: the search must also respect it
    const table = { device: 'test', layers: Object.fromEntries(ctx.layers.map((l) => [l.name, { 2: l.weights * 1e-5, 4: l.weights * 2e-5, 8: l.weights * 4e-5 }])) };
    const tablePath = join(tmp, 'latency.json');
    writeFileSync(tablePath, JSON.stringify(table));
    const plan2 = join(tmp, 'plan2.json');
    const r = await lowbit('search', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--calib-size', '32', '--budget', 'bitops=0.35', '--latency-table', tablePath, '--method', 'adaround', '--front', '6', '-o', plan2);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/sensitivity: cheap \(round-to-nearest\)/);
    expect(r.stdout).toMatch(/Pareto front \(bitops, proxy/);
    expect(r.stdout).toMatch(/latency table: test/);
    const plan = parsePlan(JSON.parse(readFileSync(plan2, 'utf8')));
    expect(plan).toMatchObject({ method: 'adaround', headStem8bit: true });
    expect(plan.layerBits!['/stem/stem.0/Conv']).toBe(8);
    expect(plan.layerBits!['/fc/Gemm']).toBe(8);
    expect(configCost('bitops', ctx, plan.layerBits!)).toBeLessThanOrEqual(0.35e9);
  }, 300_000);
});

describe('lowbit search: bad input exits with code 2 and a one-line reason', () => {
  const run = (...extra: string[]) => lowbit('search', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--calib-size', '8', '-o', join(tmp, 'x.json'), ...extra);

  it('a malformed budget', async () => {
    const r = await run('--budget', 'weight=3');
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--budget takes size=MB, bitops=G or latency=ms/);
  });
  it('a budget below the cheapest configuration, before any measuring', async () => {
    const r = await run('--budget', 'size=0.001');
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/below the cheapest configuration of the candidates \(0\.02281 MB\)/);
  });
  it('candidate widths out of range, and pinning at 8 bits without 8 among them', async () => {
    expect((await run('--budget', 'size=1', '--bits', '2,9')).stderr).toMatch(/--bits takes comma-separated widths from 2 to 8/);
    // first and last layers are pinned at 8 bits by default, as in quantize
    const r = await run('--budget', 'size=1', '--bits', '2,4');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/needs 8 among the candidate widths/);
  });
  it('a latency table missing a layer', async () => {
    const tablePath = join(tmp, 'bad-latency.json');
    writeFileSync(tablePath, JSON.stringify({ layers: {} }));
    const r = await run('--budget', 'latency=1', '--latency-table', tablePath);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/the latency table has no row for layer "\/stem\/stem.0\/Conv"/);
  });
  it('an unknown method or mode', async () => {
    expect((await run('--budget', 'size=1', '--method', 'magic')).stderr).toMatch(/unknown method "magic"/);
    expect((await run('--budget', 'size=1', '--mode', 'fast')).stderr).toMatch(/--mode must be cheap or reconstructed/);
  });
});
