#!/usr/bin/env python3
"""Side-by-side reference for the methods table: the authors' own BRECQ code on the demo model.

Runs the released BRECQ implementation (github.com/yhhhli/BRECQ, not copied here: point BRECQ_DIR
at a checkout) on public/demo/model.onnx with the settings bench/methods.ts uses for our BRECQ row:
the 256 images of public/demo/calib/ (sorted by name), the Fashion-MNIST preprocessing of
src/core/data/preprocess.ts, the same bits, iterations per block and seed, one kernel thread. It then
reports top-1 on the 1,000 images of public/demo/val/ (class folders in sorted order = output order).

Needs Debian's packages (no pip): apt-get install python3-torch python3-torchvision python3-onnx
python3-numpy python3-pil. From the repository root:

  BRECQ_DIR=/path/to/BRECQ /usr/bin/python3 bench/reference-brecq.py --wbits 2 --abits 4 \
      --iters 300 --act-iters 75 --seed 0 [--threads 1]

--abits 32 takes the reference script's weight-only path (no --act_quant there). Without BRECQ_DIR
the script prints a "skipped" line and exits 0. The reference's progress lines go to stderr; stdout
gets one JSON line: config, fp_top1, w_only_top1 (after the weight pass), quant_top1, iters,
act_iters, seconds (QuantModel construction through the last evaluation).

What it reproduces, step by step, is the flow of the reference's main_imagenet.py: the network is
assembled from the ONNX initializers around the reference's own BasicBlock (models/resnet.py), so
QuantModel turns each residual block into its QuantBasicBlock and folds each BatchNorm itself; the
float top-1 is checked against the model card's 94.40% first. Then: per-channel MSE-searched weight
grids, first conv and last linear layer at 8 bits, weight and activation ranges initialised on the
first 64 calibration images, block-wise AdaRound reconstruction (rounding-loss weight 0.01, beta
20 -> 2, warm-up 0.2, batches of 32, quantized block inputs against float targets), and, with
activation quantization, the LSQ-style step-size pass (Adam, lr 4e-4 as the script's default, L2.4
loss, cosine schedule) with the network output left unquantized.

Run-time adaptation (nothing in the checkout is edited): the reference's block reconstruction moves
each mini-batch to the hard-coded device 'cuda'; this script keeps everything on the CPU by making
Tensor.to map a CUDA target to the CPU while it runs.
"""
import argparse, contextlib, json, os, sys, time

FP_TOP1_CARD = 94.40  # public/demo/MODEL.md, the 1,000 validation images
MEAN, STD = 0.286, 0.353  # FASHION_MNIST in src/core/data/preprocess.ts
DEMO = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'public', 'demo')


def parse_args():
    ap = argparse.ArgumentParser(description='Reference BRECQ (yhhhli/BRECQ) on the demo model')
    ap.add_argument('--wbits', type=int, default=2)
    ap.add_argument('--abits', type=int, default=4, help='32: weights only')
    ap.add_argument('--iters', type=int, default=300, help='AdaRound iterations per block/layer')
    ap.add_argument('--act-iters', type=int, default=75, help='activation step-size iterations')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--lr', type=float, default=4e-4, help="activation step lr (main_imagenet.py's default)")
    return ap.parse_args()


def load_images(paths):
    import numpy as np
    import torch
    from PIL import Image
    x = np.stack([np.asarray(Image.open(p).convert('L'), dtype=np.float32) for p in paths])
    return torch.from_numpy((x / 255.0 - MEAN) / STD).float()[:, None]


def load_data():
    import torch
    calib_dir = os.path.join(DEMO, 'calib')
    calib = load_images(sorted(os.path.join(calib_dir, f) for f in os.listdir(calib_dir) if f.endswith('.png')))
    val_dir = os.path.join(DEMO, 'val')
    paths, labels = [], []
    for label, cls in enumerate(sorted(d for d in os.listdir(val_dir) if os.path.isdir(os.path.join(val_dir, d)))):
        files = sorted(f for f in os.listdir(os.path.join(val_dir, cls)) if f.endswith('.png'))
        paths += [os.path.join(val_dir, cls, f) for f in files]
        labels += [label] * len(files)
    return calib, load_images(paths), torch.tensor(labels)


def build_model(BasicBlock):
    """The demo network laid out like the reference's ResNet, weights from the ONNX initializers."""
    import numpy as np
    import onnx
    import onnx.numpy_helper
    import torch
    import torch.nn as nn

    def down(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 1, 2, bias=False), nn.BatchNorm2d(cout))

    class DemoNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            self.relu = nn.ReLU(inplace=True)
            # norm_layer given explicitly: the reference's BasicBlock default needs its ResNet built first
            self.layer1 = nn.Sequential(BasicBlock(16, 16, 1, None, norm_layer=nn.BatchNorm2d))
            self.layer2 = nn.Sequential(BasicBlock(16, 32, 2, down(16, 32), norm_layer=nn.BatchNorm2d))
            self.layer3 = nn.Sequential(BasicBlock(32, 64, 2, down(32, 64), norm_layer=nn.BatchNorm2d))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    net = DemoNet()
    graph = onnx.load(os.path.join(DEMO, 'model.onnx')).graph
    for node in graph.node:  # the card says eps 1e-5, PyTorch's default; make sure
        if node.op_type == 'BatchNormalization':
            eps = [a.f for a in node.attribute if a.name == 'epsilon']
            assert not eps or abs(eps[0] - 1e-5) < 1e-9, eps
    state = {}
    for init in graph.initializer:
        name = init.name.replace('stem.0.', 'conv1.').replace('stem.1.', 'bn1.')
        for n in (1, 2, 3):
            name = name.replace(f'layer{n}.down.', f'layer{n}.0.downsample.')
            if name.startswith(f'layer{n}.') and not name.startswith(f'layer{n}.0.'):
                name = name.replace(f'layer{n}.', f'layer{n}.0.', 1)
        state[name] = torch.from_numpy(np.array(onnx.numpy_helper.to_array(init), dtype=np.float32))
    missing = [k for k in net.state_dict() if k not in state and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state if k not in net.state_dict()]
    assert not missing and not unexpected, (missing, unexpected)
    net.load_state_dict(state, strict=False)
    return net.eval()


def top1(model, x, y):
    import torch
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 250]).argmax(1) for i in range(0, len(x), 250)])
    return round((pred == y).float().mean().item() * 100, 2)


def cuda_targets_to_cpu(torch):
    """block_recon.py moves each batch to 'cuda'; keep those moves on the CPU instead."""
    orig = torch.Tensor.to

    def is_cuda(d):
        return (isinstance(d, str) and d.startswith('cuda')) or (isinstance(d, torch.device) and d.type == 'cuda')

    def to(self, *args, **kwargs):
        args = tuple('cpu' if is_cuda(a) else a for a in args)
        if is_cuda(kwargs.get('device')):
            kwargs['device'] = 'cpu'
        return orig(self, *args, **kwargs)
    torch.Tensor.to = to


def main():
    args = parse_args()
    brecq_dir = os.environ.get('BRECQ_DIR')
    if not brecq_dir:
        print('skipped: set BRECQ_DIR to a checkout of yhhhli/BRECQ')
        return 0
    if not os.path.isfile(os.path.join(brecq_dir, 'main_imagenet.py')):
        print(f'error: BRECQ_DIR={brecq_dir} has no main_imagenet.py (not a yhhhli/BRECQ checkout)', file=sys.stderr)
        return 2
    if not (2 <= args.wbits <= 8) or not (2 <= args.abits <= 8 or args.abits == 32):
        print('error: --wbits 2..8, --abits 2..8 or 32', file=sys.stderr)
        return 2
    sys.path.insert(0, os.path.abspath(brecq_dir))
    import torch
    with contextlib.redirect_stdout(sys.stderr):  # its modules print a line on import
        from main_imagenet import seed_all
        from models.resnet import BasicBlock
        from quant import QuantModel, QuantModule, BaseQuantBlock, block_reconstruction, layer_reconstruction

    cuda_targets_to_cpu(torch)
    torch.set_num_threads(args.threads)
    act_quant = args.abits != 32
    config = f'W{args.wbits}A{args.abits}'
    seed_all(args.seed)  # random, numpy, torch (and the CUDA seeds, unused here)

    calib, val_x, val_y = load_data()
    cnn = build_model(BasicBlock)
    fp = top1(cnn, val_x, val_y)
    if abs(fp - FP_TOP1_CARD) > 0.005:
        print(f'error: float top-1 {fp} differs from the model card ({FP_TOP1_CARD})', file=sys.stderr)
        return 1

    t0 = time.time()
    with contextlib.redirect_stdout(sys.stderr):  # the reference prints its progress to stdout
        wq_params = {'n_bits': args.wbits, 'channel_wise': True, 'scale_method': 'mse'}
        # abits 32: the reference's weight-only path (leaf_param off, activation bits never used)
        aq_params = {'n_bits': args.abits if act_quant else 8, 'channel_wise': False,
                     'scale_method': 'mse', 'leaf_param': act_quant}
        qnn = QuantModel(model=cnn, weight_quant_params=wq_params, act_quant_params=aq_params)
        qnn.eval()
        blocks = [n for n, m in qnn.named_modules() if isinstance(m, BaseQuantBlock)]
        print(f'quant blocks: {blocks}')
        assert blocks == ['model.layer1.0', 'model.layer2.0', 'model.layer3.0'], blocks
        qnn.set_quant_state(False, False)
        print(f'folded float top-1: {top1(qnn, val_x, val_y)}')
        qnn.set_first_last_layer_to_8bit()

        qnn.set_quant_state(True, False)  # weight grids, initialised by one forward pass
        _ = qnn(calib[:64])

        def recon(module, kwargs):  # the script's walk: layers and blocks in order, first layer skipped
            for name, child in module.named_children():
                if isinstance(child, (QuantModule, BaseQuantBlock)):
                    if child.ignore_reconstruction:
                        print(f'skip {name}')
                    elif isinstance(child, QuantModule):
                        print(f'layer reconstruction {name}')
                        layer_reconstruction(qnn, child, **kwargs)
                    else:
                        print(f'block reconstruction {name}')
                        block_reconstruction(qnn, child, **kwargs)
                else:
                    recon(child, kwargs)

        recon(qnn, dict(cali_data=calib, iters=args.iters, weight=0.01, asym=True, b_range=(20, 2),
                        warmup=0.2, act_quant=False, opt_mode='mse'))
        qnn.set_quant_state(weight_quant=True, act_quant=False)
        w_only = top1(qnn, val_x, val_y)
        print(f'weight-only top-1: {w_only}')
        final = w_only
        if act_quant:
            qnn.set_quant_state(True, True)
            with torch.no_grad():
                _ = qnn(calib[:64])  # activation ranges
            qnn.disable_network_output_quantization()
            recon(qnn, dict(cali_data=calib, iters=args.act_iters, act_quant=True, opt_mode='mse',
                            lr=args.lr, p=2.4))
            qnn.set_quant_state(weight_quant=True, act_quant=True)
            final = top1(qnn, val_x, val_y)
            print(f'{config} top-1: {final}')
    print(json.dumps({'config': config, 'fp_top1': fp, 'w_only_top1': w_only, 'quant_top1': final,
                      'iters': args.iters, 'act_iters': args.act_iters if act_quant else 0,
                      'seconds': round(time.time() - t0, 1)}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
