/**
 * Issue 9, item 2: the model zoo's ResNet-50 at 224×224 with 1,024 calibration images, run in the
 * studio in Chromium, with the memory of Chromium's whole process tree sampled every 500 ms.
 *
 *   node --import tsx bench/resnet50-browser.ts [--images 1024] [--val 100] [--method rtn|brecq]
 *        [--wbits 8] [--abits 8] [--iters 20] [--act-iters 5] [--granularity stage] [--port 4196]
 *        [--no-build] [--timeout-min 60] [--out DIR]
 *   (or: npx lowbit bench resnet50-browser …)
 *
 * Images: there is no ImageNet on this machine. The calibration images are a seeded sample of
 * Debian's Fashion-MNIST training set (bench/fmnist-train.ts), upscaled from 28×28 to 224×224
 * (bilinear) and written as RGB PNGs, grey copied into the three channels, into a temporary
 * folder. The studio then applies its ImageNet preset (resize to 256, centre crop 224, ImageNet
 * mean/std), as for any RGB model.
 *
 * The studio is driven as a user drives it: the model and the image folder through its file
 * inputs, the plan through "Load a saved plan", Run, then the downloads. The studio only takes
 * validation images in class sub-folders that match the model's outputs one to one (1,000 here),
 * and Fashion-MNIST has 10 classes, so the browser run gets no validation set. The `--val` images
 * (other Fashion-MNIST images) check the downloaded export on the Node side instead: ONNX Runtime
 * Node (native) against the studio's own runtime (onnxruntime-web's WASM build, here in Node), and
 * the export's fidelity to the float model (top-1 agreement, output cosine).
 *
 * Memory: every 500 ms, the resident set (VmRSS) and proportional set (Pss, which counts shared
 * pages once across processes) of every process under Chromium's browser process. Reported: the
 * peak of the sum, and the peak of the largest single process (the renderer running the page and
 * its workers), overall and per stage. This is a benchmark, not a test: it is not in the suite.
 */
import { chromium, expect, type Page } from '@playwright/test';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ortNode from 'onnxruntime-node';
import { fmnistTrainImages } from './fmnist-train';
import { parseNpy } from '../src/core/data/npy';
import { ImageBatches } from '../src/core/data/batches';
import { fidelity } from '../src/core/eval/accuracy';
import { ModelSession } from '../src/core/eval/runtime';
import type { RunReport } from '../src/core/pipeline';
import { STAGE_LABELS, type Stage } from '../src/core/events';
import type { QuantPlan } from '../src/core/plan';
import type { ImageFile } from '../src/core/data/image-set';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '1024' },
    val: { type: 'string', default: '100' },
    method: { type: 'string', default: 'rtn' },
    wbits: { type: 'string' },
    abits: { type: 'string', default: '8' },
    iters: { type: 'string', default: '20' },
    'act-iters': { type: 'string', default: '5' },
    granularity: { type: 'string', default: 'stage' },
    port: { type: 'string', default: '4196' },
    'no-build': { type: 'boolean', default: false },
    'timeout-min': { type: 'string', default: '60' },
    out: { type: 'string', default: 'out/resnet50-browser' },
    model: { type: 'string', default: '.cache/zoo/resnet50.onnx' },
  },
});
const nImages = Number(values.images);
const nVal = Number(values.val);
const method = values.method as 'rtn' | 'brecq';
if (method !== 'rtn' && method !== 'brecq') throw new Error('--method is rtn or brecq');
const PORT = Number(values.port);
const OUT_DIR = 'dist-r50';
const outDir = resolve(values.out!);
mkdirSync(outDir, { recursive: true });
const plan: QuantPlan = {
  method,
  wbits: Number(values.wbits ?? (method === 'rtn' ? 8 : 4)) as QuantPlan['wbits'],
  abits: values.abits === 'none' ? null : (Number(values.abits) as NonNullable<QuantPlan['abits']>),
  headStem8bit: true,
  seed: 0,
  ...(method === 'brecq' ? { iters: Number(values.iters), actIters: Number(values['act-iters']), granularity: values.granularity as QuantPlan['granularity'] } : {}),
};
const log = (m: string) => console.error(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${m}`);
const t0 = performance.now();
const load0 = loadavg();

// ---- images: Fashion-MNIST → 224×224 RGB PNGs (python3 + PIL writes the PNGs) ----
const work = mkdtempSync(join(tmpdir(), 'lowbit-r50-'));
const calibDir = join(work, 'calib');
const valDir = join(work, 'val');
{
  // one seeded sample, split: the first images calibrate, the rest check the export
  const samples = fmnistTrainImages(nImages + nVal, 0);
  const raw = new Uint8Array(samples.length * 784);
  samples.forEach((s, i) => parseNpy(s.bytes, s.path).data.forEach((v, j) => (raw[i * 784 + j] = Math.round(v * 255))));
  writeFileSync(join(work, 'raw.u8'), raw);
  const py = `
import sys, os
from PIL import Image
work, n_cal, n_val = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
raw = open(os.path.join(work, 'raw.u8'), 'rb').read()
for d in ('calib', 'val'): os.makedirs(os.path.join(work, d), exist_ok=True)
for i in range(n_cal + n_val):
    im = Image.frombytes('L', (28, 28), raw[i*784:(i+1)*784]).resize((224, 224), Image.BILINEAR).convert('RGB')
    im.save(os.path.join(work, 'calib' if i < n_cal else 'val', '%05d.png' % i))
`;
  execFileSync('/usr/bin/python3', ['-c', py, work, String(nImages), String(nVal)], { stdio: 'inherit' });
}
const calibBytes = readdirSync(calibDir).reduce((a, f) => a + readFileSync(join(calibDir, f)).length, 0);
log(`${nImages} calibration PNGs (${(calibBytes / 2 ** 20).toFixed(1)} MB) and ${nVal} check PNGs in ${work}`);

// ---- the app, built into its own folder and served on its own port ----
if (!values['no-build'] || !existsSync(`${OUT_DIR}/index.html`)) {
  log(`building the app into ${OUT_DIR}/…`);
  execFileSync('npx', ['vite', 'build', '--logLevel', 'warn', '--outDir', OUT_DIR], { stdio: 'inherit' });
}
const server = spawn('npx', ['vite', 'preview', '--outDir', OUT_DIR, '--port', String(PORT), '--strictPort'], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
const stopServer = () => {
  try {
    // npx starts vite as a child: the whole group goes
    process.kill(-server.pid!);
  } catch {
    /* already gone */
  }
};
process.on('exit', stopServer);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
await new Promise<void>((ok, fail) => {
  const timer = setTimeout(() => fail(new Error('vite preview did not start in 60 s')), 60_000);
  server.stdout!.on('data', (d: Buffer) => {
    if (String(d).includes(String(PORT))) {
      clearTimeout(timer);
      ok();
    }
  });
});

// ---- memory of Chromium's process tree ----
interface Proc {
  pid: number;
  ppid: number;
}
function processTree(root: number): number[] {
  const procs: Proc[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // the command name may hold spaces and parentheses: fields start after the last ')'
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      procs.push({ pid: Number(d), ppid });
    } catch {
      /* gone between readdir and read */
    }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const p of procs) if (p.ppid === out[i]) out.push(p.pid);
  return out;
}
const kb = (text: string, key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
function kindOf(pid: number): string {
  try {
    // Chromium rewrites its children's command lines (setproctitle): arguments may be space-separated
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split(/[\0 ]/);
    const type = cmd.find((a) => a.startsWith('--type='))?.slice(7);
    const sub = cmd.find((a) => a.startsWith('--utility-sub-type='))?.slice(19);
    return type ? (sub ? `${type}:${sub.split('.').pop()}` : type) : 'browser';
  } catch {
    return '?';
  }
}
interface Peak {
  rssSum: number;
  pssSum: number;
  largest: number;
  largestKind: string;
}
const newPeak = (): Peak => ({ rssSum: 0, pssSum: 0, largest: 0, largestKind: '' });
const peaks = new Map<string, Peak>();
let stage = 'setup';
const timeline: { t: number; stage: string; rssSum: number; pssSum: number; largest: number }[] = [];
let browserPid = 0;
function sample(): void {
  if (!browserPid) return;
  let rssSum = 0;
  let pssSum = 0;
  let largest = 0;
  let largestPid = 0;
  for (const pid of processTree(browserPid)) {
    try {
      const rss = kb(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS');
      rssSum += rss;
      pssSum += kb(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
      if (rss > largest) [largest, largestPid] = [rss, pid];
    } catch {
      /* exited */
    }
  }
  timeline.push({ t: (performance.now() - t0) / 1000, stage, rssSum, pssSum, largest });
  for (const key of ['all', stage]) {
    const p = peaks.get(key) ?? newPeak();
    p.rssSum = Math.max(p.rssSum, rssSum);
    p.pssSum = Math.max(p.pssSum, pssSum);
    if (largest > p.largest) [p.largest, p.largestKind] = [largest, kindOf(largestPid)];
    peaks.set(key, p);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
// Playwright (1.65) does not expose the browser's pid: it is the Chromium child of this process
browserPid = readdirSync('/proc')
  .filter((d) => /^\d+$/.test(d))
  .map(Number)
  .find((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid && /chrom/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]!);
    } catch {
      return false;
    }
  }) ?? 0;
if (!browserPid) throw new Error('could not find the Chromium process');
const sampler = setInterval(sample, 500);
const chromiumVersion = browser.version();
let report!: RunReport;
let exported!: Uint8Array;
let loadSeconds = 0;
const runLog: string[] = [];
const stageStarts: { stage: string; t: number }[] = [];
let wall = 0;
try {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  page.on('pageerror', (e) => log(`page error: ${e.message}`));
  page.on('crash', () => log('the page crashed'));
  page.on('console', (m) => m.type() === 'error' && log(`console: ${m.text()}`));
  await page.goto(`http://localhost:${PORT}/`);
  stage = 'load-files';
  const tLoad = performance.now();
  await page.locator('input[type=file][accept=".onnx,.data"]').setInputFiles(resolve(values.model!));
  await page.getByTestId('model-summary').waitFor({ timeout: 300_000 });
  // the folder input (webkitdirectory): the browser gets the files with their relative paths, calib/xxxxx.png
  await page.locator('input[type=file][webkitdirectory]').setInputFiles(calibDir);
  await page.getByTestId('calib-count').filter({ hasText: `${nImages.toLocaleString('en-US')} images` }).waitFor({ timeout: 600_000 });
  loadSeconds = (performance.now() - tLoad) / 1000;
  log(`model and ${nImages} images loaded in ${loadSeconds.toFixed(1)} s`);
  await page.getByLabel('Load a saved plan').setInputFiles({ name: 'plan.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(plan)) });
  await expect(page.getByLabel('Method')).toHaveValue(method);

  stage = 'run';
  const tRun = performance.now();
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  const deadline = Date.now() + Number(values['timeout-min']) * 60_000;
  const download = page.getByTestId('download-model');
  for (;;) {
    await followRun(page);
    if (await download.isVisible()) break;
    const failed = await page.getByRole('alert').allTextContents();
    if (failed.length) throw new Error(`the run failed: ${failed.join(' | ')}`);
    if (page.isClosed()) throw new Error('the page closed (crashed)');
    if (Date.now() > deadline) throw new Error(`no result after ${values['timeout-min']} min`);
    await page.waitForTimeout(1000);
  }
  wall = (performance.now() - tRun) / 1000;
  await followRun(page);
  stage = 'download';
  const save = async (click: () => Promise<void>, name: string): Promise<string> => {
    const [d] = await Promise.all([page.waitForEvent('download'), click()]);
    const path = join(outDir, name);
    await d.saveAs(path);
    return path;
  };
  exported = new Uint8Array(readFileSync(await save(() => download.click(), 'resnet50-export.onnx')));
  report = JSON.parse(readFileSync(await save(() => page.getByRole('link', { name: 'Download report (JSON)' }).click(), 'resnet50-report.json'), 'utf8')) as RunReport;
  await page.screenshot({ path: join(outDir, 'resnet50-results.png'), fullPage: true });
  log(`done: run ${wall.toFixed(0)} s (load ${loadSeconds.toFixed(0)} s before it)`);
} finally {
  clearInterval(sampler);
  sample();
  await browser.close();
  stopServer();
}

/** Stage changes (from the status line) and the run log (the page shows its last 8 lines), accumulated. */
async function followRun(page: Page): Promise<void> {
  const status = (await page.getByRole('status').first().textContent({ timeout: 1000 }).catch(() => null)) ?? '';
  const label = status.split('about')[0]!.trim();
  if (label && label !== stageStarts[stageStarts.length - 1]?.stage) {
    stageStarts.push({ stage: label, t: (performance.now() - t0) / 1000 });
    stage = label;
    log(`stage: ${label}`);
  }
  for (const line of await page.getByTestId('run-log').locator('li').allTextContents().catch(() => [] as string[])) {
    if (!runLog.includes(line)) {
      runLog.push(line);
      log(`log: ${line}`);
    }
  }
}

// ---- the export, checked on the Node side ----
log('checking the export in ONNX Runtime Node…');
const valFiles: ImageFile[] = readdirSync(valDir).sort().map((f) => ({ path: f, bytes: new Uint8Array(readFileSync(join(valDir, f))) }));
const batches = new ImageBatches(valFiles, report.preprocess, 32);
async function nodeLogits(bytes: Uint8Array, level: 'all' | 'disabled'): Promise<{ data: Float32Array; classes: number }> {
  const s = await ortNode.InferenceSession.create(bytes, { graphOptimizationLevel: level });
  const parts: Float32Array[] = [];
  for (let b = 0; b < batches.batches; b++) {
    const { data, shape } = await batches.batch(b);
    const out = await s.run({ [s.inputNames[0]!]: new ortNode.Tensor('float32', data, shape) });
    parts.push(out[s.outputNames[0]!]!.data as Float32Array);
  }
  await s.release();
  const data = Float32Array.from(parts.flatMap((p) => [...p]));
  return { data, classes: data.length / valFiles.length };
}
const floatBytes = new Uint8Array(readFileSync(values.model!));
const fpNode = await nodeLogits(floatBytes, 'all');
const quantNode = await nodeLogits(exported, 'disabled');
const exportedNode = await nodeLogits(exported, 'all');
// the studio's runtime (onnxruntime-web, WASM, one thread) on the first batch, for the runtimes' agreement
const webSession = await ModelSession.create(exported, 'all');
const first = await batches.batch(0);
const web = [...(await webSession.run(first.data, first.shape)).values()][0]!.data;
await webSession.release();
let maxDiff = 0;
let maxAbs = 0;
for (let i = 0; i < web.length; i++) {
  maxDiff = Math.max(maxDiff, Math.abs(web[i]! - exportedNode.data[i]!));
  maxAbs = Math.max(maxAbs, Math.abs(web[i]!));
}
const webVsNode = fidelity({ data: web, classes: exportedNode.classes }, { data: exportedNode.data.subarray(0, web.length), classes: exportedNode.classes });
const fidQuant = fidelity(fpNode, quantNode);
const fidExported = fidelity(fpNode, exportedNode);
const load1 = loadavg();
rmSync(work, { recursive: true, force: true });

// ---- results ----
const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;
const all = peaks.get('all')!;
const lines: string[] = [];
lines.push(`machine: ${cpus()[0]?.model} ×${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GB; Chromium ${chromiumVersion}; load average ${load0.map((l) => l.toFixed(2)).join(' ')} at the start, ${load1.map((l) => l.toFixed(2)).join(' ')} at the end`);
lines.push(`plan: ${JSON.stringify(report.plan)}; calibration images used: ${report.calibration.images} of ${nImages}; caches: ${report.calibration.caches}`);
lines.push(`model and images loaded into the studio in ${loadSeconds.toFixed(1)} s; run wall time (Run pressed → downloads shown) ${wall.toFixed(1)} s`);
lines.push('');
lines.push('| stage | seconds (report) | peak sum RSS | peak sum PSS | peak largest process |');
lines.push('| --- | --- | --- | --- | --- |');
for (const [name, secs] of Object.entries(report.timings)) {
  // samples are attributed to the stage the page showed when they were taken
  const p = peaks.get(STAGE_LABELS[name as Stage]);
  lines.push(`| ${name} | ${secs!.toFixed(1)} | ${p ? mb(p.rssSum) : ''} | ${p ? mb(p.pssSum) : ''} | ${p ? `${mb(p.largest)} (${p.largestKind})` : ''} |`);
}
lines.push(`| whole session | ${wall.toFixed(1)} (run) | ${mb(all.rssSum)} | ${mb(all.pssSum)} | ${mb(all.largest)} (${all.largestKind}) |`);
lines.push('');
lines.push(`export checked on ${nVal} other Fashion-MNIST images (ONNX Runtime Node ${ortNode.env.versions?.common ?? ''}): fidelity to the float model, simulated (no optimisation) agreement ${(fidQuant.agreement * 100).toFixed(2)}%, cosine ${fidQuant.cosine.toFixed(4)}; exported (full optimisation) agreement ${(fidExported.agreement * 100).toFixed(2)}%, cosine ${fidExported.cosine.toFixed(4)}`);
lines.push(`studio runtime (onnxruntime-web WASM) against ONNX Runtime Node on the export, ${first.shape[0]} images: top-1 agreement ${(webVsNode.agreement * 100).toFixed(2)}%, cosine ${webVsNode.cosine.toFixed(6)}, max |Δlogit| ${maxDiff.toExponential(2)} (max |logit| ${maxAbs.toFixed(2)})`);
lines.push('');
lines.push('run log:');
for (const l of runLog) lines.push(`- ${l}`);
const text = lines.join('\n');
console.log(text);
writeFileSync(join(outDir, 'resnet50-browser.md'), `${text}\n`);
writeFileSync(join(outDir, 'resnet50-memory.json'), JSON.stringify({ peaks: Object.fromEntries(peaks), stageStarts, timeline }, null, 1));
process.exit(0);
