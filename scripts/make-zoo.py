#!/usr/bin/env python3
"""Exports the model zoo the graph-core tests read: torchvision CNNs with seeded random weights.

Needs Debian's packages: apt-get install python3-torch python3-torchvision (scripts/test-all.sh installs
torchvision when it is missing). Nothing is downloaded: every model is built with weights=None.
Run from the repository root: /usr/bin/python3 scripts/make-zoo.py [--out DIR] [--force] [name ...]

Writes, per model, into .cache/zoo/ (gitignored). A model is skipped when its <name>.stamp holds the hash of
this script, i.e. when the files were written by this very recipe (src/core/testing/zoo.ts checks the same):
  <name>.onnx        opset 13, input "input" [batch,3,224,224] -> output "logits" [batch,1000], the batch
                     axis dynamic; exported by torch.onnx.export with its defaults, nothing rewritten
                     afterwards (torch 1.13's constant folding folds each BatchNorm into the Conv before
                     it, DenseNet's pre-activation BNs stay; it writes torch.flatten as Flatten)
  <name>.input.bin   one fixed sample input, float32 little-endian, 1x3x224x224, standard normal
  <name>.output.bin  torch's logits for it, float32 little-endian, 1x1000
  <name>.json        what PyTorch says about the model: its Conv2d and Linear layers and their multiply-
                     accumulates per image (counted on the sample's forward pass), the versions and the seed
  <name>.stamp       the first 16 hex digits of the SHA-256 of this script, written last

Random weights alone give a network whose activations blow up or die out. To make the models behave like
trained ones, BatchNorm running statistics are set on random normal batches first: the BN layers (and only
they: dropout and stochastic depth stay off) run in training mode with a cumulative average
(momentum=None), over CALIB_BATCHES batches of CALIB_BATCH images, then the model goes to eval().

Normalised random networks are also chaotic, which trained ones are not: with every residual branch at
full strength, noise of 1% (-40 dB) on the input of ResNet-50 moves its logits by 14% (cosine 0.990), and
even 8-bit per-channel weights alone leave 2 dB of signal-to-noise in the last stage. Trained residual
networks have small residual branches next to the identity path (training recipes start them at zero,
torchvision's zero_init_residual). So the BN at the end of every residual branch gets the weight (gamma)
RESIDUAL_GAMMA instead of 1; then the same 1% input noise moves ResNet-50's logits by about 2% (cosine
0.9998). Networks without residual adds (SqueezeNet, DenseNet) are left as they are.

Deterministic: each model has its own seed, and torch runs on one thread (also keeps the shared machine free).
"""
import argparse, hashlib, json, os, sys, time, zlib

import torch
import torchvision
import torchvision.models as tvm
from torchvision.models import efficientnet, mnasnet, mobilenetv2, mobilenetv3, regnet, resnet

MODELS = [
    'resnet18',
    'resnet50',
    'mobilenet_v2',
    'mobilenet_v3_small',
    'efficientnet_b0',
    'regnet_x_400mf',
    'mnasnet0_5',
    'squeezenet1_1',
    'densenet121',
]
OPSET = 13
CALIB_BATCHES = 4
CALIB_BATCH = 8
SIZE = 224
RESIDUAL_GAMMA = 0.25


def residual_branch_bns(model):
    """The BatchNorm that ends each residual branch (the one whose output goes into the add)."""
    found = []
    for m in model.modules():
        if isinstance(m, resnet.BasicBlock):
            found.append(m.bn2)
        elif isinstance(m, resnet.Bottleneck):
            found.append(m.bn3)
        elif isinstance(m, regnet.ResBottleneckBlock):
            found.append(m.f.c[1])
        elif isinstance(m, mobilenetv2.InvertedResidual) and m.use_res_connect:
            found.append(m.conv[-1])
        elif isinstance(m, mnasnet._InvertedResidual) and m.apply_residual:
            found.append(m.layers[-1])
        elif isinstance(m, (efficientnet.MBConv, mobilenetv3.InvertedResidual)) and m.use_res_connect:
            found.append(m.block[-1][1])
    assert all(isinstance(bn, torch.nn.BatchNorm2d) for bn in found), 'torchvision changed its block layout'
    return found


def seed_of(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def set_bn_stats(model, gen):
    """Running mean/var of every BatchNorm from random normal batches (cumulative average)."""
    model.eval()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    with torch.no_grad():
        for _ in range(CALIB_BATCHES):
            model(torch.randn(CALIB_BATCH, 3, SIZE, SIZE, generator=gen))
    for bn in bns:
        bn.momentum = 0.1
    model.eval()
    return len(bns)


def write_atomic(path, data):
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)


def make(name, out):
    seed = seed_of(name)
    torch.manual_seed(seed)
    model = getattr(tvm, name)(weights=None)
    residual = residual_branch_bns(model)
    with torch.no_grad():
        for bn in residual:
            bn.weight.fill_(RESIDUAL_GAMMA)
    gen = torch.Generator().manual_seed(seed + 1)
    n_bn = set_bn_stats(model, gen)
    sample = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed + 2))
    macs = []

    def count(module, inputs, output):
        per_output = module.in_features if isinstance(module, torch.nn.Linear) else module.weight[0].numel()
        macs.append(output.numel() * per_output)

    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    hooks = [m.register_forward_hook(count) for m in layers]
    with torch.no_grad():
        logits = model(sample)
    for h in hooks:
        h.remove()
    onnx_path = os.path.join(out, f'{name}.onnx')
    tmp = f'{onnx_path}.tmp{os.getpid()}'
    torch.onnx.export(
        model,
        sample,
        tmp,
        opset_version=OPSET,
        input_names=['input'],
        output_names=['logits'],
        dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}},
    )
    os.replace(tmp, onnx_path)
    write_atomic(os.path.join(out, f'{name}.input.bin'), sample.numpy().astype('<f4').tobytes())
    write_atomic(os.path.join(out, f'{name}.output.bin'), logits.numpy().astype('<f4').tobytes())
    meta = {'model': name, 'torch': torch.__version__, 'torchvision': torchvision.__version__,
            'seed': seed, 'layers': len(layers), 'macs': sum(macs), 'opset': OPSET}
    write_atomic(os.path.join(out, f'{name}.json'), (json.dumps(meta, indent=1) + '\n').encode())
    a = logits.numpy()
    return n_bn, len(residual), float(a.std()), os.path.getsize(onnx_path)


def recipe_stamp():
    with open(__file__, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def is_current(out, name, stamp):
    files = [os.path.join(out, f'{name}{ext}') for ext in ('.onnx', '.input.bin', '.output.bin', '.json')]
    try:
        with open(os.path.join(out, f'{name}.stamp')) as f:
            return f.read().strip() == stamp and all(os.path.exists(p) for p in files)
    except FileNotFoundError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='.cache/zoo')
    ap.add_argument('--force', action='store_true', help='re-export models already present')
    ap.add_argument('names', nargs='*', help=f'models to export (default: all of {", ".join(MODELS)})')
    args = ap.parse_args()
    names = args.names or MODELS
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        sys.exit(f'unknown model(s): {", ".join(unknown)}; the zoo has {", ".join(MODELS)}')
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    stamp = recipe_stamp()
    for name in names:
        if not args.force and is_current(args.out, name, stamp):
            print(f'{name}: present, skipped')
            continue
        t0 = time.time()
        n_bn, n_res, std, size = make(name, args.out)
        write_atomic(os.path.join(args.out, f'{name}.stamp'), stamp.encode())
        print(f'{name}: {size / 2**20:.1f} MB, {n_bn} BatchNorms calibrated ({n_res} ending residual branches), logits std {std:.3f}, {time.time() - t0:.1f} s', flush=True)


if __name__ == '__main__':
    main()
