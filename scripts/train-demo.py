#!/usr/bin/env python3
"""Trains the demo model of Lowbit Studio and writes public/demo/.

Needs Debian's packages: apt-get install python3-torch python3-pil dataset-fashion-mnist
Run from the repository root: /usr/bin/python3 scripts/train-demo.py [--epochs N] [--seed S]

Writes (replacing whatever was there) public/demo/:
  model.onnx     opset 13, input "input" [batch,1,28,28] -> output "logits" [batch,10];
                 BatchNormalization left unfolded (folding is the studio's job)
  calib/         256 training images (28x28 8-bit grey PNG), a fixed random sample
  val/           1000 test images, the first 100 of each class, in class folders 0_T-shirt ... 9_Ankle-boot
  manifest.json  file lists, preprocessing and float accuracy (the browser cannot list folders)
  MODEL.md       the model card, with the numbers measured by this run

The exported file is checked without the onnx package: a small protobuf reader lists its graph,
and a reference interpreter (torch ops) runs it on the validation images to compare with the model.
"""
import argparse, collections, gzip, json, os, shutil, struct, time
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


def predict(run, x, mean, std):
    """Logits of `run` (a callable on a float batch) for the uint8 images x (N×28×28)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            out.append(run((x[i:i + 1000].float()[:, None] / 255 - mean) / std))
    return torch.cat(out)


def accuracy(model, x, y, mean, std):
    model.eval()
    return (predict(model, x, mean, std).argmax(1) == y).float().mean().item()


# --- a minimal ONNX reader (protobuf wire format) and reference interpreter, so that no onnx package is needed

def _varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7f) << s
        s += 7
        if c < 0x80:
            return r, i


def _fields(b):
    """(field number, wire type, value) of each field of a protobuf message; value: int, or bytes."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f'wire type {wt}')
        yield f, wt, v


def _ints(wt, v):
    """A repeated int64 field's values, packed or not."""
    if wt == 0:
        return [v - (1 << 64) if v >= 1 << 63 else v]
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i)
        out.append(x - (1 << 64) if x >= 1 << 63 else x)
    return out


def _tensor(b):
    dims, dtype, name, raw, floats = [], None, '', None, []
    for f, wt, v in _fields(b):
        if f == 1:
            dims += _ints(wt, v)
        elif f == 2:
            dtype = v
        elif f == 8:
            name = v.decode()
        elif f == 9:
            raw = v
        elif f == 4:
            floats += list(struct.unpack(f'<{len(v) // 4}f', v)) if wt == 2 else list(struct.unpack('<f', v))
    assert dtype == 1, f'initializer {name}: data type {dtype}, expected float'
    arr = np.frombuffer(raw, dtype='<f4') if raw is not None else np.array(floats, dtype=np.float32)
    return name, torch.from_numpy(arr.copy().reshape(dims))


def _attribute(b):
    a = {'ints': [], 'floats': []}
    for f, wt, v in _fields(b):
        if f == 1:
            a['name'] = v.decode()
        elif f == 2:
            a['f'] = struct.unpack('<f', v)[0]
        elif f == 3:
            a['i'] = _ints(0, v)[0]
        elif f == 8:
            a['ints'] += _ints(wt, v)
        elif f == 20:
            a['type'] = v
    kind = {1: 'f', 2: 'i', 7: 'ints'}.get(a.get('type'))
    assert kind, f'attribute {a.get("name")} of type {a.get("type")} not supported'
    return a['name'], a[kind]


def _value_info(b):
    name, dims = '', []
    for f, _, v in _fields(b):
        if f == 1:
            name = v.decode()
        elif f == 2:  # TypeProto.tensor_type.shape.dim
            for f2, _, tt in _fields(v):
                for f3, _, shape in (_fields(tt) if f2 == 1 else ()):
                    for f4, _, dim in (_fields(shape) if f3 == 2 else ()):
                        for f5, _, d in _fields(dim):
                            dims.append(d if f5 == 1 else d.decode())
    return name, dims


def read_onnx(path):
    """The parts of an ONNX model this script needs: opsets, nodes, initializers, graph inputs and outputs."""
    with open(path, 'rb') as fh:
        model = fh.read()
    m = {'opset': {}, 'nodes': [], 'init': {}, 'inputs': [], 'outputs': []}
    for f, _, v in _fields(model):
        if f == 8:
            d = dict((f2, v2) for f2, _, v2 in _fields(v))
            m['opset'][d.get(1, b'').decode()] = d.get(2)
        elif f == 7:
            for f2, _, v2 in _fields(v):
                if f2 == 1:
                    node = {'inputs': [], 'outputs': [], 'attrs': {}, 'name': '', 'domain': ''}
                    for f3, _, v3 in _fields(v2):
                        if f3 == 1:
                            node['inputs'].append(v3.decode())
                        elif f3 == 2:
                            node['outputs'].append(v3.decode())
                        elif f3 == 3:
                            node['name'] = v3.decode()
                        elif f3 == 4:
                            node['op'] = v3.decode()
                        elif f3 == 5:
                            k, val = _attribute(v3)
                            node['attrs'][k] = val
                        elif f3 == 7:
                            node['domain'] = v3.decode()
                    m['nodes'].append(node)
                elif f2 == 5:
                    k, t = _tensor(v2)
                    m['init'][k] = t
                elif f2 == 11:
                    m['inputs'].append(_value_info(v2))
                elif f2 == 12:
                    m['outputs'].append(_value_info(v2))
    return m


def run_onnx(m, x):
    """Runs the graph on x with torch ops (only the op types this model uses)."""
    env = dict(m['init'])
    env[m['inputs'][0][0]] = x
    for n in m['nodes']:
        a, i = n['attrs'], [env[k] if k else None for k in n['inputs']]
        op = n['op']
        if op == 'Conv':
            pads = a.get('pads', [0, 0, 0, 0])
            assert pads[:2] == pads[2:], 'asymmetric pads'
            y = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None, a.get('strides', 1), pads[:2], a.get('dilations', 1), a.get('group', 1))
        elif op == 'BatchNormalization':
            assert len(n['outputs']) == 1 and not a.get('training_mode', 0), 'BatchNormalization in training mode'
            y = F.batch_norm(i[0], i[3], i[4], i[1], i[2], False, 0.0, a.get('epsilon', 1e-5))
        elif op == 'Relu':
            y = F.relu(i[0])
        elif op == 'Add':
            y = i[0] + i[1]
        elif op == 'GlobalAveragePool':
            y = i[0].mean((2, 3), keepdim=True)
        elif op == 'Flatten':
            y = torch.flatten(i[0], a.get('axis', 1))
        elif op == 'Reshape':
            y = i[0].reshape([d if d else i[0].shape[k] for k, d in enumerate(i[1].long().tolist())])
        elif op == 'Gemm':
            A = i[0].t() if a.get('transA', 0) else i[0]
            B = i[1].t() if a.get('transB', 0) else i[1]
            y = a.get('alpha', 1.0) * A @ B + (a.get('beta', 1.0) * i[2] if len(i) > 2 else 0)
        elif op == 'Identity':
            y = i[0]
        else:
            raise ValueError(f'op {op} not supported by the reference interpreter')
        env[n['outputs'][0]] = y
    return env[m['outputs'][0][0]]


def export(model, path):
    model.eval()
    # PRESERVE with an eval-mode model skips the exporter's Conv+BN fusion (that happens only in EVAL mode):
    # each BatchNormalization stays a node of its own, in inference form (one output).
    # The exporter also merges initializers with equal values into one plus Identity nodes, unless the
    # top-level module says it is training. Here it would merge each projection-shortcut BN bias with the
    # block's bn2 bias: the two are summed by the residual Add, so they receive the same gradients and stay
    # exactly equal. Setting only the top-level flag keeps them separate; every submodule stays in eval mode.
    model.training = True
    try:
        torch.onnx.export(model, torch.zeros(1, 1, 28, 28), path, opset_version=13,
                          input_names=['input'], output_names=['logits'],
                          dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}},
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    finally:
        model.eval()


def check_export(model, m):
    """Asserts the exported graph has the expected form; returns its op type counts."""
    ops = collections.Counter(n['op'] for n in m['nodes'])
    n_bn = sum(isinstance(x, nn.BatchNorm2d) for x in model.modules())
    n_conv = sum(isinstance(x, nn.Conv2d) for x in model.modules())
    assert m['opset'].get('') == 13, m['opset']
    assert m['inputs'] == [('input', ['batch', 1, 28, 28])], m['inputs']
    assert m['outputs'] == [('logits', ['batch', 10])], m['outputs']
    assert ops['BatchNormalization'] == n_bn and ops['Conv'] == n_conv, ops
    assert ops['Add'] == 3 and ops['GlobalAveragePool'] == 1 and ops['Gemm'] == 1, ops
    assert ops['Flatten'] + ops['Reshape'] == 1, ops
    assert not (set(ops) - {'Conv', 'BatchNormalization', 'Relu', 'Add', 'GlobalAveragePool', 'Flatten', 'Reshape', 'Gemm'}), ops
    for n in m['nodes']:
        if n['op'] == 'BatchNormalization':
            assert len(n['outputs']) == 1, f'{n["name"]}: BatchNormalization with {len(n["outputs"])} outputs'
        if n['op'] in ('Conv', 'BatchNormalization', 'Gemm'):
            assert all(k in m['init'] for k in n['inputs'][1:]), f'{n["name"]}: weights are not initializers'
    n_params = sum(p.numel() for p in model.parameters()) + sum(b.numel() for k, b in model.named_buffers() if not k.endswith('num_batches_tracked'))
    assert sum(t.numel() for t in m['init'].values()) == n_params, 'initializers do not match the parameters'
    return ops


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--epochs', type=int, default=15)
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
    print(f'train mean {mean:.4f} std {std:.4f}')

    model = DemoNet()
    batch = 128
    steps = args.epochs * (len(xtr) // batch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=steps, pct_start=0.2)
    t0, c0 = time.time(), time.process_time()
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
    train_s, train_cpu_s = time.time() - t0, time.process_time() - c0
    test_top1 = accuracy(model, xte, yte, mean, std)

    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(f'{OUT}/calib')
    export(model, f'{OUT}/model.onnx')
    graph = read_onnx(f'{OUT}/model.onnx')
    ops = check_export(model, graph)
    print('exported', f'{OUT}/model.onnx', f'({os.path.getsize(f"{OUT}/model.onnx"):,} bytes):', dict(ops))

    rng = np.random.default_rng(args.seed)
    calib_ids = rng.choice(len(xtr), 256, replace=False)
    calib = []
    for k, i in enumerate(calib_ids):
        path = f'calib/calib_{k:03d}.png'
        Image.fromarray(xtr[i].numpy()).save(f'{OUT}/{path}')
        calib.append(path)
    val = []
    val_ids = []
    for c in range(10):
        os.makedirs(f'{OUT}/val/{c}_{CLASSES[c]}')
        val_ids += [(c, int(i)) for i in np.nonzero(yte.numpy() == c)[0][:100]]
    for k, (c, i) in enumerate(val_ids):
        path = f'val/{c}_{CLASSES[c]}/val_{k:04d}.png'
        Image.fromarray(xte[i].numpy()).save(f'{OUT}/{path}')
        val.append({'path': path, 'label': c})

    # the 1000 validation images, read back from the PNG files, through the model and through the exported graph
    xval = torch.from_numpy(np.stack([np.asarray(Image.open(f'{OUT}/{v["path"]}')) for v in val]))
    yval = torch.tensor([v['label'] for v in val])
    assert xval.dtype == torch.uint8 and xval.shape == (1000, 28, 28)
    assert torch.equal(xval, xte[torch.tensor([i for _, i in val_ids])]), 'PNG round trip changed pixels'
    ref = predict(model, xval, mean, std)
    got = predict(lambda x: run_onnx(graph, x), xval, mean, std)
    max_diff = (ref - got).abs().max().item()
    assert max_diff < 1e-3 and torch.equal(ref.argmax(1), got.argmax(1)), f'exported graph differs: {max_diff}'
    val_top1 = (ref.argmax(1) == yval).float().mean().item()
    print(f'exported graph vs model on the val images: max |logit difference| {max_diff:.2e}, same top-1 predictions')

    params = sum(p.numel() for p in model.parameters())
    rows = []

    def hook(name):
        def f(mod, inp, out):
            if isinstance(mod, nn.Conv2d):
                kind = f'Conv {mod.kernel_size[0]}×{mod.kernel_size[1]}' + (f', stride {mod.stride[0]}' if mod.stride[0] > 1 else '')
                macs = out.numel() * mod.weight[0].numel()
            elif isinstance(mod, nn.Linear):
                kind, macs = 'Gemm (linear)', out.numel() * mod.in_features
            elif isinstance(mod, nn.BatchNorm2d):
                kind, macs = 'BatchNormalization', 0
            else:
                kind, macs = 'GlobalAveragePool', 0
            n = sum(p.numel() for p in mod.parameters(recurse=False))
            rows.append((name, kind, list(out.shape[1:]), n, macs))
        return f
    hooks = [mod.register_forward_hook(hook(name)) for name, mod in model.named_modules()
             if isinstance(mod, (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.AdaptiveAvgPool2d))]
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    for h in hooks:
        h.remove()
    total_macs = sum(r[4] for r in rows)
    assert sum(r[3] for r in rows) == params

    manifest = {
        'model': 'model.onnx',
        'input': {'name': 'input', 'shape': [1, 1, 28, 28]},
        'preprocess': {'size': [28, 28], 'channels': 1, 'mean': [mean], 'std': [std]},
        'classes': CLASSES,
        'calib': calib,
        'val': val,
        'fp': {'top1_test10k': round(test_top1, 4), 'top1_val1000': round(val_top1, 4)},
    }
    with open(f'{OUT}/manifest.json', 'w') as f:
        json.dump(manifest, f, indent=1)
        f.write('\n')

    table = '\n'.join(f'| `{n}` | {k} | {"×".join(map(str, s))} | {p:,} | {m:,} |' for n, k, s, p, m in rows)
    op_list = ', '.join(f'{k} ×{v}' for k, v in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))
    with open(f'{OUT}/MODEL.md', 'w') as f:
        f.write(f'''# Demo model card: a small residual CNN for Fashion-MNIST

Trained and exported by `scripts/train-demo.py` (seed {args.seed}, {args.epochs} epochs,
{train_s / 60:.1f} minutes of training on 2 CPU cores with PyTorch {torch.__version__.split('+')[0]}).

## Architecture
Stem conv 3×3 (1→16) + BN + ReLU; three ResNet BasicBlocks (conv3×3-BN-ReLU-conv3×3-BN, add the
shortcut, ReLU), one per stage, at widths 16, 32 and 64. The blocks of stages 2 and 3 start with stride 2
and have a 1×1 conv + BN projection shortcut (stage 1: identity shortcut). Global average pool, flatten,
linear 64→10. No bias in the convolutions (the BN that follows each one has it).

| layer | op | output (C×H×W) | parameters | MACs per image |
| --- | --- | --- | --- | --- |
{table}
| **total** | | | **{params:,}** | **{total_macs:,}** |

Parameters are the trainable ones; each BN also has 2×C running statistics (mean, variance), which the
ONNX file stores as initializers too. MACs count the convolutions and the linear layer; ReLU, Add, BN and
pooling are elementwise.

## ONNX export
- `model.onnx`, {os.path.getsize(f"{OUT}/model.onnx"):,} bytes, opset 13, weights as initializers.
- Input `input`: float32 [batch, 1, 28, 28] (dynamic `batch`); output `logits`: float32 [batch, 10], in the
  class order below (no softmax).
- BatchNormalization is left unfolded (inference form, one output each): folding it into the
  convolutions is the studio's job.
- Nodes: {op_list}.
- Checked when written: the graph, run by the script's reference interpreter on the 1,000 validation
  images, matches the PyTorch model (max |logit difference| {max_diff:.1e}, identical top-1 predictions).

## Preprocessing
Grey 28×28 pixels scaled to [0, 1], then (x − {mean:.4f}) / {std:.4f} (the training set's pixel mean and
standard deviation). Classes, in output order: {', '.join(f'{i} {c}' for i, c in enumerate(CLASSES))}.

## Accuracy (float)
- Fashion-MNIST test set (10,000 images): top-1 **{test_top1 * 100:.2f}%**
- The 1,000 validation images shipped in `val/` (the first 100 test images of each class): top-1 **{val_top1 * 100:.2f}%**

## Data shipped here
- `calib/`: 256 training images drawn at random (NumPy generator, seed {args.seed}), flat, for calibration.
- `val/`: 1,000 test images, 100 per class, in class folders `0_T-shirt` … `9_Ankle-boot` (sorted names
  follow the output order), named `val_0000.png` … `val_0999.png`.
- All images are 28×28 8-bit greyscale PNGs with the raw pixels (no normalisation).
- `manifest.json`: the file lists, labels, preprocessing and the float accuracy, for the browser (a static
  server cannot list folders).

## Training recipe
Fashion-MNIST training set (60,000 images); SGD (momentum 0.9, Nesterov, weight decay 5e-4), batch 128,
{args.epochs} epochs, one-cycle learning rate (peak 0.2 after 20% of the steps, cosine annealing), cross-entropy
with label smoothing 0.05; augmentation: random shifts of up to 2 pixels (pad 2 + random 28×28 crop) and
horizontal flips. `torch.set_num_threads(2)`, fixed seeds (a re-run gives the same weights on the same
machine). Training wall time: {train_s:.0f} s ({train_s / 60:.1f} minutes, including a test-set evaluation after
each epoch; CPU time {train_cpu_s:.0f} s over the 2 threads). The wall time also depends on what else the machine
was running at the time.

## Re-train
From the repository root (overwrites `public/demo/`):
```sh
apt-get install python3-torch python3-pil dataset-fashion-mnist
/usr/bin/python3 scripts/train-demo.py
```
Fashion-MNIST: Zalando Research, MIT licence.
''')
    print(f'test top-1 {test_top1:.4f}, val-1000 top-1 {val_top1:.4f}, {params:,} params, {total_macs:,} MACs, training {train_s:.0f} s wall, {train_cpu_s:.0f} s CPU')


if __name__ == '__main__':
    main()
