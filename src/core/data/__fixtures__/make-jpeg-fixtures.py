#!/usr/bin/env python3
"""Writes the JPEG fixtures of jpeg.test.ts, each NAME.jpg with NAME.json holding the pixels that
Pillow (libjpeg-turbo: 'islow' IDCT, 'fancy' upsampling) decodes from it, so the tests compare
our decoder with libjpeg's without needing Python.

Run from anywhere:  /usr/bin/python3 src/core/data/__fixtures__/make-jpeg-fixtures.py

Pillow writes baseline 4:4:4 / 4:2:2 / 4:2:0, grey and progressive files. It cannot write restart
intervals or sampling factors other than those, so `encode` below is a small baseline encoder
(float DCT, fixed-length Huffman codes, which any decoder must accept) for those; Pillow decodes
its output for the expected pixels as for the others.
"""
import json
import math
import os
import struct

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
W, H = 37, 23  # odd, and not a multiple of any MCU size


def picture(w=W, h=H):
    """Gradients with an edge and some texture, so every band of coefficients carries something."""
    im = Image.new("RGB", (w, h))
    px = []
    for y in range(h):
        for x in range(w):
            t = ((x * 7 + y * 13) * 2654435761 >> 9) % 48
            edge = 90 if x > w // 2 else 0
            px.append((min(255, x * 6 + t), min(255, y * 10 + edge), min(255, (x + y) * 4 + t // 2)))
    im.putdata(px)
    return im


def save_expected(name, path):
    im = Image.open(path)
    im.load()
    channels = len(im.getbands())
    data = []
    for p in im.getdata():
        data.extend(p if isinstance(p, tuple) else (p,))
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        json.dump({"width": im.width, "height": im.height, "channels": channels, "bitDepth": 8, "data": data}, f, separators=(",", ":"))


def pil(name, im, **opts):
    path = os.path.join(HERE, name + ".jpg")
    im.save(path, **opts)
    save_expected(name, path)


# --- a small baseline encoder, for restart intervals and unusual sampling factors ---------------

ZIGZAG = sorted(range(64), key=lambda i: (i // 8 + i % 8, (i // 8) if (i // 8 + i % 8) % 2 else (i % 8)))
QTABLE = [max(1, 2 + (i // 8 + i % 8) * 3) for i in range(64)]  # natural order
DC_SYMBOLS = list(range(12))
AC_SYMBOLS = [0x00, 0xF0] + [(r << 4) | s for r in range(16) for s in range(1, 11)]


def huffman_table(symbols, length):
    """Every symbol gets a code of `length` bits: a valid canonical table of T.81 C.2."""
    bits = [0] * 16
    bits[length - 1] = len(symbols)
    return bits, {sym: (i, length) for i, sym in enumerate(symbols)}


def fdct(block):
    out = [0.0] * 64
    for v in range(8):
        for u in range(8):
            cu = math.sqrt(0.5) if u == 0 else 1
            cv = math.sqrt(0.5) if v == 0 else 1
            s = 0.0
            for y in range(8):
                for x in range(8):
                    s += block[y * 8 + x] * math.cos((2 * x + 1) * u * math.pi / 16) * math.cos((2 * y + 1) * v * math.pi / 16)
            out[v * 8 + u] = 0.25 * cu * cv * s
    return out


class Bits:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, code, length):
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((code >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)
                self.acc = self.n = 0

    def flush(self):
        while self.n:
            self.put(1, 1)


def magnitude(v):
    s = 0 if v == 0 else int(abs(v)).bit_length()
    return s, (v if v >= 0 else v + (1 << s) - 1)


def encode(name, im, factors, restart):
    """Baseline JPEG of `im` (RGB or L) with sampling `factors` [(h, v), ...] and a restart every `restart` MCUs."""
    w, h = im.size
    if im.mode == "L":
        planes = [[p - 128.0 for p in im.getdata()]]
    else:
        planes = [[], [], []]
        for r, g, b in im.getdata():
            planes[0].append(0.299 * r + 0.587 * g + 0.114 * b - 128)
            planes[1].append(-0.168736 * r - 0.331264 * g + 0.5 * b)
            planes[2].append(0.5 * r - 0.418688 * g - 0.081312 * b)
    hmax = max(f[0] for f in factors)
    vmax = max(f[1] for f in factors)
    mx, my = -(-w // (8 * hmax)), -(-h // (8 * vmax))

    def sample(c, x, y):
        """Component c's sample (x, y): the mean of the pixels it covers, edges repeated."""
        sx, sy = hmax // factors[c][0], vmax // factors[c][1]
        vals = [planes[c][min(y * sy + j, h - 1) * w + min(x * sx + i, w - 1)] for j in range(sy) for i in range(sx)]
        return sum(vals) / len(vals)

    dc_bits, dc_codes = huffman_table(DC_SYMBOLS, 4)
    ac_bits, ac_codes = huffman_table(AC_SYMBOLS, 8)
    bits = Bits()
    scan = bytearray()
    pred = [0] * len(factors)
    for m in range(mx * my):
        if restart and m and m % restart == 0:
            bits.flush()
            scan += bits.out + bytes((0xFF, 0xD0 + (m // restart - 1) % 8))
            bits.out = bytearray()
            pred = [0] * len(factors)
        bx, by = m % mx, m // mx
        for c, (fh, fv) in enumerate(factors):
            for v in range(fv):
                for u in range(fh):
                    x0, y0 = (bx * fh + u) * 8, (by * fv + v) * 8
                    coefs = fdct([sample(c, x0 + i % 8, y0 + i // 8) for i in range(64)])
                    q = [round(coefs[ZIGZAG[k]] / QTABLE[ZIGZAG[k]]) for k in range(64)]
                    s, bitsv = magnitude(q[0] - pred[c])
                    pred[c] = q[0]
                    bits.put(*dc_codes[s])
                    bits.put(bitsv, s)
                    run = 0
                    for k in range(1, 64):
                        if q[k] == 0:
                            run += 1
                            continue
                        while run > 15:
                            bits.put(*ac_codes[0xF0])
                            run -= 16
                        s, bitsv = magnitude(q[k])
                        bits.put(*ac_codes[(run << 4) | s])
                        bits.put(bitsv, s)
                        run = 0
                    if run:
                        bits.put(*ac_codes[0x00])
    bits.flush()
    scan += bits.out

    def segment(marker, payload):
        return struct.pack(">HH", marker, len(payload) + 2) + payload

    n = len(factors)
    out = bytearray(b"\xff\xd8")
    out += segment(0xFFDB, bytes([0]) + bytes(QTABLE[ZIGZAG[k]] for k in range(64)))
    out += segment(0xFFC0, struct.pack(">BHHB", 8, h, w, n) + b"".join(bytes((c + 1, (f[0] << 4) | f[1], 0)) for c, f in enumerate(factors)))
    out += segment(0xFFC4, bytes([0x00]) + bytes(dc_bits) + bytes(DC_SYMBOLS) + bytes([0x10]) + bytes(ac_bits) + bytes(AC_SYMBOLS))
    if restart:
        out += segment(0xFFDD, struct.pack(">H", restart))
    out += segment(0xFFDA, bytes([n]) + b"".join(bytes((c + 1, 0x00)) for c in range(n)) + bytes((0, 63, 0)))
    out += scan + b"\xff\xd9"
    path = os.path.join(HERE, name + ".jpg")
    with open(path, "wb") as f:
        f.write(out)
    save_expected(name, path)


rgb = picture()
pil("jpeg-420", rgb, quality=90, subsampling=2)
pil("jpeg-422", rgb, quality=90, subsampling=1)
pil("jpeg-444", rgb, quality=90, subsampling=0)
pil("jpeg-grey", rgb.convert("L"), quality=90)
pil("jpeg-progressive", picture(61, 45), quality=85, subsampling=2, progressive=True)
pil("jpeg-progressive-grey", picture(61, 45).convert("L"), quality=85, progressive=True)
encode("jpeg-restart", rgb, [(2, 2), (1, 1), (1, 1)], restart=2)
encode("jpeg-restart-grey", rgb.convert("L"), [(1, 1)], restart=5)
encode("jpeg-440", rgb, [(1, 2), (1, 1), (1, 1)], restart=0)
