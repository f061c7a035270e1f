import { describe, expect, it, beforeAll } from 'vitest';
import { lowbit } from './run-cli';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { writeNpy } from '../core/data/npy';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import { readImageFolder } from './files';
import { labelImages } from '../core/data/image-set';
import { ImageBatches } from '../core/data/batches';
import { FASHION_MNIST } from '../core/data/preprocess';

const DEMO = 'public/demo';
const tmp = mkdtempSync(join(tmpdir(), 'lowbit-cli-'));

interface Report {
  fp: { top1: number; top5: number; count: number };
  quant: { top1: number };
  exported: { top1: number };
  layers: { name: string; wbits: number; weightSqnrDb: number; groups?: { size: number; perChannel: number; last: number } }[];
  plan: { method: string; wbits: number; abits: number | null; groupSize?: number };
}

/** Top-1 of an exported model on the demo's validation set in native ONNX Runtime (onnxruntime-node), not the studio's WASM build. */
async function nativeTop1(model: string): Promise<number> {
  const session = await ortNode.InferenceSession.create(model);
  const files = await readImageFolder(`${DEMO}/val`);
  const set = labelImages(files.map((f) => f.path));
  const byPath = new Map(files.map((f) => [f.path, f]));
  const batches = new ImageBatches(set.images.map((i) => byPath.get(i.path)!), FASHION_MNIST, 100);
  let hits = 0;
  for (let b = 0; b < batches.batches; b++) {
    const { data, shape, start } = await batches.batch(b);
    const res = await session.run({ [session.inputNames[0]!]: new ortNode.Tensor('float32', data, shape) });
    const logits = res[session.outputNames[0]!]!.data as Float32Array;
    for (let i = 0; i < shape[0]; i++) {
      const row = Array.from(logits.subarray(i * 10, i * 10 + 10));
      if (row.indexOf(Math.max(...row)) === set.images[start + i]!.label) hits++;
    }
  }
  await session.release();
  return hits / set.images.length;
}

describe('lowbit quantize (W8A8 round-to-nearest on the demo)', () => {
  let report: Report;
  const out = join(tmp, 'demo-w8a8.onnx');
  const reportPath = join(tmp, 'report.json');

  beforeAll(async () => {
    const r = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--val', `${DEMO}/val`, '--method', 'rtn', '--wbits', '8', '--abits', '8', '-o', out, '--report', reportPath);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.code).toBe(0);
    report = JSON.parse(readFileSync(reportPath, 'utf8')) as Report;
  }, 300_000);

  it('reports fp, quant and exported top-1 as fractions, with W8A8 within 1 point of float', () => {
    for (const acc of [report.fp, report.quant, report.exported]) expect(acc.top1).toBeGreaterThan(0.5);
    for (const acc of [report.fp, report.quant, report.exported]) expect(acc.top1).toBeLessThanOrEqual(1);
    expect(report.fp.count).toBe(1000);
    expect(Math.abs(report.fp.top1 - report.exported.top1)).toBeLessThanOrEqual(0.01);
    expect(report.plan).toMatchObject({ method: 'rtn', wbits: 8, abits: 8 });
  });

  it('the exported model, re-run in native ONNX Runtime (onnxruntime-node), reproduces the reported accuracy', async () => {
    expect(Math.abs((await nativeTop1(out)) - report.exported.top1)).toBeLessThanOrEqual(0.001);
  });

  it('lowbit eval on the exported model prints the same top-1 as the report', async () => {
    const r = await lowbit('eval', out, '--val', `${DEMO}/val`, '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).top1).toBe(report.exported.top1);
  });
});

describe('lowbit quantize --group-size 32 (W3A8 round-to-nearest on the demo)', () => {
  it('exports per-group weights that native ONNX Runtime runs to the reported accuracy, with a weight error unlike per channel', async () => {
    const run = async (name: string, ...extra: string[]) => {
      const reportPath = join(tmp, `${name}.json`);
      const r = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--val', `${DEMO}/val`, '--method', 'rtn', '--wbits', '3', '--abits', '8', ...extra, '-o', join(tmp, `${name}.onnx`), '--report', reportPath);
      expect(r.stderr).not.toMatch(/internal error/);
      expect(r.code).toBe(0);
      return { log: r.stdout + r.stderr, report: JSON.parse(readFileSync(reportPath, 'utf8')) as Report };
    };
    const grouped = await run('group32', '--group-size', '32');
    const channel = await run('channel');
    expect(grouped.report.plan.groupSize).toBe(32);
    expect(channel.report.plan.groupSize).toBeUndefined();
    // the demo's first conv has 1·3·3 = 9 inputs per output channel: the run says its only group is short
    expect(grouped.log).toMatch(/groups of 32 inputs; a shorter last group in .*\(9 inputs: last group 9\)/);
    expect(Math.abs((await nativeTop1(join(tmp, 'group32.onnx'))) - grouped.report.exported.top1)).toBeLessThanOrEqual(0.001);
    // a layer with one group per channel is quantized exactly as per channel; with several, its weight error changes, and drops overall
    const byName = new Map(channel.report.layers.map((l) => [l.name, l.weightSqnrDb]));
    const split = grouped.report.layers.filter((l) => l.groups!.perChannel > 1);
    expect(split.length).toBeGreaterThan(0);
    for (const l of grouped.report.layers) {
      expect(l.groups!.size).toBe(32);
      if (l.groups!.perChannel === 1) expect(l.weightSqnrDb).toBe(byName.get(l.name));
      else expect(l.weightSqnrDb).not.toBe(byName.get(l.name));
    }
    expect(split.reduce((a, l) => a + l.weightSqnrDb - byName.get(l.name)!, 0)).toBeGreaterThan(0);
  }, 300_000);

  it('--act-scale percentile sets activation steps from the 99.99th percentile: never wider than min–max, narrower somewhere', async () => {
    const steps = async (init: string) => {
      const reportPath = join(tmp, `act-${init}.json`);
      const r = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--calib-size', '64', '--wbits', '8', '--abits', '8', '--act-scale', init, '-o', join(tmp, `act-${init}.onnx`), '--report', reportPath);
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(readFileSync(reportPath, 'utf8')) as { plan: { actScale?: string }; activations: { tensor: string; scale: number }[] };
      return { plan: report.plan, scales: new Map(report.activations.map((a) => [a.tensor, a.scale])) };
    };
    const minmax = await steps('minmax');
    const pct = await steps('percentile');
    expect(pct.plan.actScale).toBe('percentile');
    expect(pct.scales.size).toBe(minmax.scales.size);
    for (const [t, s] of pct.scales) expect(s).toBeLessThanOrEqual(minmax.scales.get(t)! * (1 + 1e-6));
    expect([...pct.scales].some(([t, s]) => s < minmax.scales.get(t)! * 0.999)).toBe(true);
  }, 300_000);

  it('refuses a group size other than 32, 64, 128 or none with exit code 2 and one line', async () => {
    const r = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--group-size', '48', '-o', join(tmp, 'x.onnx'));
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--group-size takes 32, 64, 128 or none, got "48"/);
  });
});

describe('lowbit inspect', () => {
  it('lists inputs, the BN-unfolded op histogram and the quantizable layers with MACs', async () => {
    const r = await lowbit('inspect', `${DEMO}/model.onnx`, '--json');
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.inputs[0].shape.slice(1)).toEqual([1, 28, 28]);
    expect(s.ops.BatchNormalization).toBeGreaterThan(0);
    expect(s.layers.length).toBeGreaterThanOrEqual(8);
    expect(s.layers[0].isFirst).toBe(true);
    expect(s.macs).toBeGreaterThan(1e6);
  });
});

describe('lowbit quantize --plan and --calib-size', () => {
  it('runs a saved plan, lets flags override it, and calibrates on a seeded subset', async () => {
    const planPath = join(tmp, 'plan.json');
    writeFileSync(planPath, JSON.stringify({ method: 'rtn', wbits: 4, abits: 8, headStem8bit: true }));
    const reportPath = join(tmp, 'plan-report.json');
    const r = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--plan', planPath, '--abits', 'none', '--calib-size', '32', '-o', join(tmp, 'p.onnx'), '--report', reportPath);
    expect(r.code).toBe(0);
    const report = JSON.parse(readFileSync(reportPath, 'utf8'));
    expect(report.plan).toMatchObject({ method: 'rtn', wbits: 4, abits: null });
    expect(report.calibration.images).toBe(32);
    expect(report.layers.map((l: { wbits: number }) => l.wbits)).toEqual([8, 4, 4, 4, 4, 4, 4, 4, 4, 8]);
    expect(report.fp).toBeNull();
  });

  it('runs BRECQ block by block, with per-block metrics, a saved partition edit and the exported model reproducing the quantized accuracy', async () => {
    const planPath = join(tmp, 'brecq.plan.json');
    // one edit of the automatic partition (merge the first two residual stages) travels in the plan
    writeFileSync(planPath, JSON.stringify({ method: 'brecq', wbits: 4, abits: 8, headStem8bit: true, iters: 12, actIters: 4, seed: 3, partitionEdits: [{ merge: ['layer1', 'layer2'] }] }));
    const reportPath = join(tmp, 'brecq.report.json');
    const r = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--val', `${DEMO}/val`, '--plan', planPath, '--calib-size', '32', '-o', join(tmp, 'brecq.onnx'), '--report', reportPath);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.code).toBe(0);
    const rep = JSON.parse(readFileSync(reportPath, 'utf8')) as Report & { blocks: { block: string; layers: string[]; sqnrDb: number; cosine: number }[] };
    expect(rep.plan.method).toBe('brecq');
    expect(rep.blocks.map((b) => b.block)).toEqual(['stem', 'layer1+layer2', 'layer3', 'head']);
    for (const b of rep.blocks) {
      expect(b.cosine).toBeGreaterThan(0.5);
      expect(b.cosine).toBeLessThanOrEqual(1 + 1e-6);
    }
    expect(Math.abs(rep.exported.top1 - rep.quant.top1)).toBeLessThanOrEqual(0.001);
    expect(rep.quant.top1).toBeGreaterThan(rep.fp.top1 - 0.05);
  }, 600_000);

  it('Ctrl-C stops a BRECQ run with a checkpoint, and the same command resumes it to the same model, byte for byte', async () => {
    const args = (out: string) => ['quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--calib-size', '32', '--method', 'brecq', '--wbits', '3', '--abits', 'none', '--iters', '40', '--seed', '5', '-o', out];
    const whole = await lowbit(...args(join(tmp, 'whole.onnx')));
    expect(whole.code).toBe(0);
    const dir = join(tmp, 'ckpt');
    const file = join(dir, 'checkpoint.json');
    const child = spawn(process.execPath, ['bin/lowbit.mjs', ...args(join(tmp, 'resumed.onnx')), '--checkpoint', dir]);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // interrupt as soon as the first block is saved
    for (let i = 0; i < 600 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(file)).toBe(true);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toMatch(/finished blocks are saved in .*ckpt: run the same command to resume/);
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { blocksDone: number };
    expect(saved.blocksDone).toBeGreaterThanOrEqual(1);
    expect(saved.blocksDone).toBeLessThan(5);
    const resumed = await lowbit(...args(join(tmp, 'resumed.onnx')), '--checkpoint', dir);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toMatch(new RegExp(`resuming from the checkpoint: ${saved.blocksDone} of 5 blocks already done`));
    expect(Buffer.compare(readFileSync(join(tmp, 'resumed.onnx')), readFileSync(join(tmp, 'whole.onnx')))).toBe(0);
  }, 600_000);

  it('reads images from .npy arrays (labels in a sibling .npy): eval gives the PNG folder’s top-1, and quantize calibrates on one', async () => {
    const val = await readImageFolder(`${DEMO}/val`);
    const pick = val.filter((_, i) => i % 10 === 0);
    const set = labelImages(pick.map((f) => f.path));
    // the pixels in [0, 1], N×1×28×28, from the same PNGs (decoded by the studio's own decoder)
    const pixels = new ImageBatches(pick, { size: [28, 28], channels: 1, mean: [0], std: [1] }, pick.length);
    const { data } = await pixels.batch(0);
    writeFileSync(join(tmp, 'val.npy'), writeNpy([pick.length, 1, 28, 28], data));
    const labels = new Uint8Array(writeNpy([pick.length], Float32Array.from(set.images.map((im) => im.label!))));
    writeFileSync(join(tmp, 'val.labels.npy'), labels);
    const dir = join(tmp, 'val-png');
    for (const f of pick) {
      mkdirSync(join(dir, f.path.split('/')[0]!), { recursive: true });
      writeFileSync(join(dir, f.path), f.bytes);
    }
    const fromNpy = await lowbit('eval', `${DEMO}/model.onnx`, '--val', join(tmp, 'val.npy'), '--preprocess', 'fmnist', '--json');
    const fromPng = await lowbit('eval', `${DEMO}/model.onnx`, '--val', dir, '--preprocess', 'fmnist', '--json');
    expect(fromNpy.code).toBe(0);
    const a = JSON.parse(fromNpy.stdout) as { top1: number; count: number };
    const b = JSON.parse(fromPng.stdout) as { top1: number; count: number };
    expect(a.count).toBe(100);
    expect(a.top1).toBe(b.top1);
    // calibration from an unlabelled array
    writeFileSync(join(tmp, 'calib.npy'), writeNpy([pick.length, 1, 28, 28], data));
    const q = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', join(tmp, 'calib.npy'), '--preprocess', 'fmnist', '--wbits', '8', '-o', join(tmp, 'npy.onnx'));
    expect(q.stderr).not.toMatch(/internal error/);
    expect(q.code).toBe(0);
    // a wrong array is refused with a reason
    writeFileSync(join(tmp, 'bad.npy'), writeNpy([4, 28, 28], new Float32Array(4 * 28 * 28)));
    const bad = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', join(tmp, 'bad.npy'), '-o', join(tmp, 'x.onnx'));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/expected an N×C×H×W array, got shape \(4, 28, 28\)/);
  }, 120_000);

  it('validation images without class folders give fidelity to the float model instead of accuracy', async () => {
    const reportPath = join(tmp, 'fidelity.json');
    // the calibration folder is flat: as "validation" it has no labels
    const r = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--calib-size', '32', '--val', `${DEMO}/calib`, '--wbits', '4', '--abits', '8', '-o', join(tmp, 'fid.onnx'), '--report', reportPath);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/no labels: fidelity to the float model on 256 images/);
    const rep = JSON.parse(readFileSync(reportPath, 'utf8')) as { fp: null; quant: null; fidelity: { quant: { agreement: number; cosine: number; count: number }; exported: { agreement: number; cosine: number } } };
    expect(rep.fp).toBeNull();
    expect(rep.quant).toBeNull();
    expect(rep.fidelity.quant.count).toBe(256);
    // W4A8 follows the float model closely, but not exactly
    expect(rep.fidelity.quant.agreement).toBeGreaterThan(0.9);
    expect(rep.fidelity.quant.cosine).toBeGreaterThan(0.95);
    expect(rep.fidelity.quant.cosine).toBeLessThan(1);
    expect(Math.abs(rep.fidelity.exported.agreement - rep.fidelity.quant.agreement)).toBeLessThan(0.02);
  }, 120_000);

  it('lowbit bench lists the benchmarks and refuses an unknown one', async () => {
    const list = await lowbit('bench');
    expect(list.code).toBe(0);
    for (const name of ['gemm', 'conv', 'methods', 'mixed-precision', 'onnx-decode']) expect(list.stdout).toMatch(new RegExp(`^${name} `, 'm'));
    const bad = await lowbit('bench', 'nope');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown benchmark "nope"/);
  });

  it('prints its estimate first; under a memory budget, with float32 caches asked for, it calibrates on a subset that fits, or refuses', async () => {
    // --caches float32: left to 'auto', the run would keep every image in float16 or a spill file (flags.test.ts)
    const args = ['quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--method', 'brecq', '--iters', '1', '--abits', 'none', '--caches', 'float32', '-o', join(tmp, 'budget.onnx'), '--report', join(tmp, 'budget.json')];
    const fits = await lowbit(...args, '--memory-budget', '20');
    expect(fits.code).toBe(0);
    expect(fits.stderr).toMatch(/estimated: .*of calibration caches/);
    const m = /using (\d+) of the 256 calibration images, so that the caches stay within 20 MB/.exec(fits.stderr);
    expect(m).not.toBeNull();
    const used = Number(m![1]);
    expect(used).toBeGreaterThanOrEqual(32);
    expect(used).toBeLessThan(256);
    expect((JSON.parse(readFileSync(join(tmp, 'budget.json'), 'utf8')) as { calibration: { images: number } }).calibration.images).toBe(used);
    const refused = await lowbit(...args, '--memory-budget', '5');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/this run needs .* more than the 5 MB it may use/);
  }, 300_000);

  it('rejects a partition edit that does not fit the model, naming it', async () => {
    const planPath = join(tmp, 'bad-edit.plan.json');
    writeFileSync(planPath, JSON.stringify({ method: 'brecq', wbits: 4, abits: 8, headStem8bit: true, iters: 1, partitionEdits: [{ merge: ['layer1', 'nope'] }] }));
    const r = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--plan', planPath, '--calib-size', '8', '-o', join(tmp, 'x.onnx'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/partition edit 1 .* does not apply to this model: no block 'nope'/);
  });

  it('rejects a plan naming an unknown method', async () => {
    const planPath = join(tmp, 'bad-plan.json');
    writeFileSync(planPath, JSON.stringify({ method: 'magic', wbits: 4, abits: 8 }));
    const r = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--plan', planPath, '-o', join(tmp, 'x.onnx'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown method "magic"; this version supports: rtn, adaround, brecq, qdrop, nwq, decoupleq/);
  });
});

describe('bad input exits with code 2 and a one-line reason', () => {
  it('a missing model file', async () => {
    const r = await lowbit('inspect', join(tmp, 'nope.onnx'));
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/cannot read the model file/);
  });
  it('a file that is not ONNX', async () => {
    const bad = join(tmp, 'bad.onnx');
    writeFileSync(bad, 'definitely not a model');
    const r = await lowbit('inspect', bad);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not a valid ONNX file/);
  });
  it('quantize without calibration images', async () => {
    const r = await lowbit('quantize', `${DEMO}/model.onnx`, '-o', join(tmp, 'x.onnx'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--calib/);
  });
  it('preprocessing that does not fit the model input', async () => {
    const r = await lowbit('eval', `${DEMO}/model.onnx`, '--val', `${DEMO}/val`, '--preprocess', 'imagenet');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/expects input \[batch, 1, 28, 28\] but preprocessing produces \[N, 3, 224, 224\]/);
  });
  it('an unsupported bit width', async () => {
    const r = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--wbits', '9', '-o', join(tmp, 'x.onnx'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/wbits/);
  });
});
