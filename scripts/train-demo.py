#!/usr/bin/env python3
"""Trains the demo model of Lowbit Studio and writes public/demo/.

Needs Debian's packages: apt-get install python3-torch python3-pil dataset-fashion-mnist
Run from the repository root: /usr/bin/python3 scripts/train-demo.py [--epochs N]

Writes public/demo/model.onnx (BatchNormalization left unfolded: folding is the studio's job),
calibration and validation PNGs, manifest.json (the browser cannot list folders) and MODEL.md.
"""
import argparse, gzip, json, os, shutil, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

DATA = '/usr/share/datasets/fashion-mnist'
OUT = 'public/demo'
CLASSES = ['T-shirt', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle-boot']


def idx(name):
    with gzip.open(os.path.join(DATA, name)) as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class Block(nn.Module):
    """ResNet BasicBlock: conv-BN-ReLU-conv-BN, plus an identity or 1x1-conv+BN projection shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class DemoNet(nn.Module):
    def __init__(self, widths=(16, 32, 64), classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        self.layer1 = Block(widths[0], widths[0], 1)
        self.layer2 = Block(widths[0], widths[1], 2)
        self.layer3 = Block(widths[1], widths[2], 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[2], classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def augment(x, gen):
    """Random 2-pixel shifts (pad + crop) and horizontal flips, on a uint8 batch N×28×28."""
    n = x.shape[0]
    padded = F.pad(x, (2, 2, 2, 2))
    dx = torch.randint(0, 5, (n,), generator=gen)
    dy = torch.randint(0, 5, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(28)[None, :])[:, :, None].expand(n, 28, 28)
    cols = (dx[:, None] + torch.arange(28)[None, :])[:, None, :].expand(n, 28, 28)
    out = padded[torch.arange(n)[:, None, None], rows, cols]
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def accuracy(model, x, y, mean, std):
    model.eval()
    hits = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            xb = (x[i:i + 1000].float()[:, None] / 255 - mean) / std
            hits += (model(xb).argmax(1) == y[i:i + 1000]).sum().item()
    return hits / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--epochs', type=int, default=12)
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(args.seed)

    xtr = torch.from_numpy(idx('train-images-idx3-ubyte.gz').copy())
    ytr = torch.from_numpy(idx('train-labels-idx1-ubyte.gz').astype(np.int64))
    xte = torch.from_numpy(idx('t10k-images-idx3-ubyte.gz').copy())
    yte = torch.from_numpy(idx('t10k-labels-idx1-ubyte.gz').astype(np.int64))
    pixels = xtr.float() / 255
    mean = round(pixels.mean().item(), 4)
    std = round(pixels.std().item(), 4)
    print(f'train mean {mean} std {std}')

    model = DemoNet()
    batch = 128
    steps = args.epochs * (len(xtr) // batch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=steps, pct_start=0.2)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        total = 0.0
        for i in range(len(xtr) // batch):
            ids = perm[i * batch:(i + 1) * batch]
            xb = (augment(xtr[ids], gen).float()[:, None] / 255 - mean) / std
            loss = F.cross_entropy(model(xb), ytr[ids], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        acc = accuracy(model, xte, yte, mean, std)
        print(f'epoch {epoch + 1}/{args.epochs} loss {total / (len(xtr) // batch):.4f} test top-1 {acc:.4f} ({time.time() - t0:.0f} s)', flush=True)
    train_s = time.time() - t0
    test_top1 = accuracy(model, xte, yte, mean, std)

    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(f'{OUT}/calib')
    model.eval()
    # PRESERVE with an eval-mode model skips the exporter's Conv+BN fusion: BN stays as its own node
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), f'{OUT}/model.onnx', opset_version=13,
                      input_names=['input'], output_names=['logits'],
                      dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}},
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)

    rng = np.random.default_rng(args.seed)
    calib_ids = rng.choice(len(xtr), 256, replace=False)
    calib = []
    for k, i in enumerate(calib_ids):
        path = f'calib/calib_{k:03d}.png'
        Image.fromarray(xtr[i].numpy(), mode='L').save(f'{OUT}/{path}')
        calib.append(path)
    val = []
    val_ids = []
    for c in range(10):
        os.makedirs(f'{OUT}/val/{c}_{CLASSES[c]}')
        val_ids += [(c, int(i)) for i in np.nonzero(yte.numpy() == c)[0][:100]]
    for k, (c, i) in enumerate(val_ids):
        path = f'val/{c}_{CLASSES[c]}/val_{k:04d}.png'
        Image.fromarray(xte[i].numpy(), mode='L').save(f'{OUT}/{path}')
        val.append({'path': path, 'label': c})
    ids = torch.tensor([i for _, i in val_ids])
    val_top1 = accuracy(model, xte[ids], yte[ids], mean, std)

    params = sum(p.numel() for p in model.parameters())
    macs = {}

    def hook(name):
        def f(mod, inp, out):
            k = mod.weight[0].numel() if isinstance(mod, nn.Conv2d) else mod.in_features
            macs[name] = (out.numel() * k, mod.weight.numel() + (0 if mod.bias is None else mod.bias.numel()), tuple(mod.weight.shape))
        return f
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            mod.register_forward_hook(hook(name))
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))

    manifest = {
        'model': 'model.onnx',
        'input': {'name': 'input', 'shape': [1, 1, 28, 28]},
        'preprocess': {'size': [28, 28], 'channels': 1, 'mean': [mean], 'std': [std]},
        'classes': CLASSES,
        'calib': calib,
        'val': val,
        'fp': {'top1_test10k': test_top1, 'top1_val1000': val_top1},
    }
    with open(f'{OUT}/manifest.json', 'w') as f:
        json.dump(manifest, f, indent=1)

    rows = '\n'.join(f'| `{n}` | {list(s)} | {p:,} | {m:,} |' for n, (m, p, s) in macs.items())
    with open(f'{OUT}/MODEL.md', 'w') as f:
        f.write(f'''# Demo model card: a small residual CNN for Fashion-MNIST

Trained by `scripts/train-demo.py` (seed {args.seed}, {args.epochs} epochs, {train_s / 60:.1f} minutes on 2 CPU cores).

## Architecture
Stem conv 3×3 (1→16) + BN + ReLU; three BasicBlocks (conv3×3-BN-ReLU-conv3×3-BN, add, ReLU) at widths
16, 32 and 64, the last two with stride 2 and a 1×1 conv + BN projection shortcut; global average pool;
linear 64→10. BatchNormalization is exported unfolded. ONNX opset 13, input `input` [batch, 1, 28, 28],
output `logits` [batch, 10].

| layer | weight shape | parameters | MACs per image |
| --- | --- | --- | --- |
{rows}

Total: {params:,} parameters, {sum(m for m, _, _ in macs.values()):,} MACs per image.

## Preprocessing
Grey 28×28 pixels scaled to [0, 1], then (x − {mean}) / {std} (the training set's mean and std).

## Accuracy (float)
- Fashion-MNIST test set (10,000 images): top-1 **{test_top1 * 100:.2f}%**
- The 1,000 validation images shipped in `val/` (the first 100 test images of each class): top-1 **{val_top1 * 100:.2f}%**

## Data shipped here
- `calib/`: 256 training images drawn at random (seed {args.seed}), flat, for calibration.
- `val/`: 1,000 test images, 100 per class, in class folders `0_T-shirt` … `9_Ankle-boot` (sorted names follow the output order).
- `manifest.json`: the file lists and preprocessing, for the browser (a static server cannot list folders).

## Training recipe
SGD (momentum 0.9, Nesterov, weight decay 5e-4), batch 128, one-cycle learning rate peaking at 0.2,
label smoothing 0.05, random 2-pixel shifts and horizontal flips.

## Re-train
```sh
apt-get install python3-torch python3-pil dataset-fashion-mnist
/usr/bin/python3 scripts/train-demo.py
```
Fashion-MNIST: Zalando Research, MIT licence.
''')
    print(f'test top-1 {test_top1:.4f}, val-1000 top-1 {val_top1:.4f}, {params} params, {train_s:.0f} s')


if __name__ == '__main__':
    main()
