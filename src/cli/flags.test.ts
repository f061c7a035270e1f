import { describe, expect, it } from 'vitest';
import { lowbit } from './run-cli';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeModel } from '../core/onnx/codec';

/**
 * The quantize and eval flags not exercised by cli.test.ts: each one is checked for its effect on
 * the run (the plan it produces, the exported bytes, the accuracy), not only for being accepted.
 */
const DEMO = 'public/demo';
const tmp = mkdtempSync(join(tmpdir(), 'lowbit-flags-'));

interface Report {
  plan: Record<string, unknown>;
  calibration: { images: number; caches: string };
  layers: { name: string; wbits: number; weightSqnrDb: number }[];
  quant: { top1: number } | null;
}

async function quantize(name: string, ...flags: string[]): Promise<{ report: Report; model: Uint8Array; stderr: string }> {
  const out = join(tmp, `${name}.onnx`);
  const reportPath = join(tmp, `${name}.json`);
  const r = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--calib-size', '32', '-o', out, '--report', reportPath, ...flags);
  expect(r.stderr).not.toMatch(/internal error/);
  expect(r.code, r.stderr).toBe(0);
  return { report: JSON.parse(readFileSync(reportPath, 'utf8')) as Report, model: readFileSync(out), stderr: r.stderr };
}

async function top1(...flags: string[]): Promise<number> {
  const r = await lowbit('eval', `${DEMO}/model.onnx`, '--val', `${DEMO}/val`, '--json', ...flags);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { top1: number }).top1;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('lowbit preprocessing flags', () => {
  it('--size, --mean, --std and --channels spelled out give the fmnist preset’s accuracy; another mean changes it', async () => {
    const preset = await top1('--preprocess', 'fmnist');
    expect(await top1('--size', '28,28', '--mean', '0.286', '--std', '0.353', '--channels', '1')).toBe(preset);
    expect(await top1('--size', '28,28', '--mean', '0.9', '--std', '0.353', '--channels', '1')).toBeLessThan(preset - 0.05);
  }, 120_000);

  it('--channels 3 on a one-channel model and a malformed --size are refused with exit code 2', async () => {
    for (const flags of [['--channels', '3'], ['--size', '28'], ['--mean', 'a,b']]) {
      const r = await lowbit('eval', `${DEMO}/model.onnx`, '--val', `${DEMO}/val`, ...flags);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  }, 60_000);

  it('--labels maps class folders to outputs: folder order reproduces the default, a reversed list scrambles it, an unknown class is refused', async () => {
    const classes = readdirSync(`${DEMO}/val`).sort();
    const inOrder = join(tmp, 'labels.txt');
    const reversed = join(tmp, 'reversed.txt');
    const unknown = join(tmp, 'unknown.txt');
    writeFileSync(inOrder, classes.join('\n'));
    writeFileSync(reversed, [...classes].reverse().join('\n'));
    writeFileSync(unknown, [...classes.slice(1), 'Zebra'].join('\n'));
    const plain = await top1();
    expect(await top1('--labels', inOrder)).toBe(plain);
    expect(await top1('--labels', reversed)).toBeLessThan(0.3);
    const r = await lowbit('eval', `${DEMO}/model.onnx`, '--val', `${DEMO}/val`, '--labels', unknown);
    expect(r.code).toBe(2);
  }, 120_000);
});

describe('lowbit quantize flags', () => {
  it('the reconstruction knobs land in the saved plan: --granularity, --lambda, --keep, --act-iters, --fisher, --taps', async () => {
    const q = await quantize('qdrop', '--method', 'qdrop', '--wbits', '4', '--abits', '8', '--iters', '4', '--granularity', 'stage', '--lambda', '0.02', '--keep', '0.7');
    expect(q.report.plan).toMatchObject({ method: 'qdrop', granularity: 'stage', lambda: 0.02, keep: 0.7, iters: 4 });
    const b = await quantize('brecq-fisher', '--method', 'brecq', '--wbits', '4', '--abits', '8', '--iters', '4', '--act-iters', '3', '--fisher');
    expect(b.report.plan).toMatchObject({ method: 'brecq', actIters: 3, fisher: true });
    const n = await quantize('nwq-layer', '--method', 'nwq', '--wbits', '4', '--abits', 'none', '--iters', '4', '--taps', 'layer');
    expect(n.report.plan).toMatchObject({ method: 'nwq', taps: 'layer' });
    for (const [flag, value] of [['--granularity', 'row'], ['--keep', '1.5'], ['--taps', 'neuron'], ['--lambda', '-1']] as const) {
      const r = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--method', 'qdrop', flag, value, '-o', join(tmp, 'x.onnx'));
      expect(r.code, `${flag} ${value}`).toBe(2);
    }
  }, 600_000);

  it('--no-head-stem-8bit quantizes the first and last layers at the requested bits too', async () => {
    const withRule = await quantize('rule', '--wbits', '4', '--abits', 'none');
    const without = await quantize('norule', '--wbits', '4', '--abits', 'none', '--no-head-stem-8bit');
    expect(withRule.report.layers.map((l) => l.wbits)).toContain(8);
    expect(without.report.layers.every((l) => l.wbits === 4)).toBe(true);
    expect(without.report.plan.headStem8bit).toBe(false);
  }, 120_000);

  it('--weight-format float stores dequantized float weights; integer stores codes behind DequantizeLinear', async () => {
    const dq = (bytes: Uint8Array): number => (decodeModel(bytes).graph?.node ?? []).filter((n) => n.opType === 'DequantizeLinear').length;
    const integer = await quantize('int', '--wbits', '4', '--abits', 'none');
    const float = await quantize('float', '--wbits', '4', '--abits', 'none', '--weight-format', 'float');
    expect(dq(integer.model)).toBe(integer.report.layers.length);
    expect(dq(float.model)).toBe(0);
    const bad = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--weight-format', 'int3', '-o', join(tmp, 'x.onnx'));
    expect(bad.code).toBe(2);
  }, 120_000);

  it('--scale lp finds 3-bit step sizes with less weight error than --scale minmax', async () => {
    const minmax = await quantize('minmax', '--wbits', '3', '--abits', 'none', '--scale', 'minmax');
    const lp = await quantize('lp', '--wbits', '3', '--abits', 'none', '--scale', 'lp');
    const inner = (r: Report): number[] => r.layers.filter((l) => l.wbits === 3).map((l) => l.weightSqnrDb);
    expect(mean(inner(lp.report))).toBeGreaterThan(mean(inner(minmax.report)) + 0.5);
  }, 120_000);

  it('--threads changes only the speed: one thread and two give the same model, byte for byte', async () => {
    const flags = ['--method', 'brecq', '--wbits', '3', '--abits', '8', '--iters', '6', '--act-iters', '2', '--seed', '2'];
    const one = await quantize('threads1', ...flags, '--threads', '1');
    const two = await quantize('threads2', ...flags, '--threads', '2');
    expect(Buffer.compare(one.model, two.model)).toBe(0);
    for (const bad of ['0', '1.5', 'many']) {
      const r = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--threads', bad, '-o', join(tmp, 'x.onnx'));
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--threads/);
    }
  }, 600_000);
});

describe('lowbit quantize --caches', () => {
  const brecq = ['--method', 'brecq', '--wbits', '3', '--abits', 'none', '--iters', '5', '--act-iters', '0', '--seed', '1'];

  it('float16 in memory and float16 spilled to disk give the same model, byte for byte; the report says which ran', async () => {
    const half = await quantize('caches-f16', ...brecq, '--caches', 'float16');
    const spilled = await quantize('caches-spill', ...brecq, '--caches', 'spill');
    expect(half.report.calibration.caches).toBe('float16');
    expect(spilled.report.calibration.caches).toBe('spill');
    expect(spilled.stderr).toMatch(/spilled to disk in float16/);
    expect(Buffer.compare(half.model, spilled.model)).toBe(0);
    const bad = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--caches', 'float8', '-o', join(tmp, 'x.onnx'));
    expect(bad.code).toBe(2);
    const notBlock = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--method', 'adaround', '--caches', 'float16', '-o', join(tmp, 'x.onnx'));
    expect(notBlock.code).toBe(2);
  }, 300_000);

  it('under a memory budget, float16 or a spill file keeps every calibration image rather than dropping some', async () => {
    // 256 images (a later --calib-size wins): caches of tens of MB, so budgets can sit between the storages' needs
    const all = [...brecq, '--calib-size', '256'];
    const need = async (caches: string): Promise<number> => {
      const r = await quantize(`est-${caches}`, ...all, '--iters', '1', '--caches', caches);
      const m = /estimated: .*?, (\d+) MB of calibration caches.*? and (\d+) MB of working memory/.exec(r.stderr)!;
      return Number(m[1]) + Number(m[2]);
    };
    const [full, half, spill] = [await need('float32'), await need('float16'), await need('spill')];
    expect(full).toBeGreaterThan(half + 4);
    expect(half).toBeGreaterThan(spill + 4);
    const roomy = await quantize('budget-f16', ...all, '--memory-budget', String(Math.round((full + half) / 2)));
    expect(roomy.report.calibration).toEqual({ images: 256, caches: 'float16' });
    expect(roomy.stderr).toMatch(/calibration caches kept in float16, so that 256 images fit/);
    const tight = await quantize('budget-spill', ...all, '--memory-budget', String(Math.round((half + spill) / 2)));
    expect(tight.report.calibration).toEqual({ images: 256, caches: 'spill' });
    expect(tight.stderr).toMatch(/calibration caches kept in a spill file/);
  }, 300_000);
});

describe('lowbit search flags', () => {
  it('--mode reconstructed with --iters, --abits none, --seed and --preprocess reach the plan and the table', async () => {
    const out = join(tmp, 'search-rec.json');
    const r = await lowbit('search', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--calib-size', '8', '--budget', 'size=0.03', '--mode', 'reconstructed', '--iters', '2', '--abits', 'none', '--seed', '3', '--preprocess', 'fmnist', '-o', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { plan: { abits: number | null; seed: number }; sensitivity: { label: string } };
    expect(report.plan).toMatchObject({ abits: null, seed: 3 });
    expect(report.sensitivity.label).toBe('reconstructed (BRECQ, 2 iterations)');
    expect(JSON.parse(readFileSync(out, 'utf8'))).toMatchObject({ abits: null, seed: 3 });
    const bad = await lowbit('search', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--budget', 'size=0.03', '--mode', 'reconstructed', '--iters', '0', '-o', out);
    expect(bad.code).toBe(2);
  }, 600_000);
});
