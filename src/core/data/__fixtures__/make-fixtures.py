#!/usr/bin/env python3
"""Regenerates the PNG fixtures for png.test.ts.

Run from anywhere:  /usr/bin/python3 src/core/data/__fixtures__/make-fixtures.py

Every fixture NAME.png gets a NAME.json with the pixels the decoder must produce
({width, height, channels, bitDepth, data[, animated]}, data row-major and
interleaved). Ordinary files are written by Pillow; layouts Pillow cannot write
(Adam7 interlacing, several IDAT chunks, every filter type) come from the small
encoder below, and Pillow re-reads them as an independent check.
"""
import json
import os
import struct
import zlib

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def pattern(w, h, channels, maxval, seed):
    """Deterministic, non-trivial sample values (row-major, interleaved)."""
    return [((x * 37 + y * 59 + c * 101 + seed) * 2654435761 >> 7) % (maxval + 1)
            for y in range(h) for x in range(w) for c in range(channels)]


def save_expected(name, w, h, channels, bit_depth, data, animated=False):
    doc = {"width": w, "height": h, "channels": channels, "bitDepth": bit_depth, "data": data}
    if animated:
        doc["animated"] = True
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))


def pil_pixels(path):
    """Flattened pixels as Pillow decodes them (its own modes, not ours)."""
    im = Image.open(path)
    im.load()
    out = []
    for p in im.getdata():
        out.extend(p if isinstance(p, tuple) else (p,))
    return im, out


# --- files written by Pillow -------------------------------------------------

def pil_fixtures():
    w, h = 7, 5

    grey = pattern(w, h, 1, 255, 1)
    Image.frombytes("L", (w, h), bytes(grey)).save(os.path.join(HERE, "grey8.png"))
    save_expected("grey8", w, h, 1, 8, grey)

    # Width 10 so each 1-bit row ends in padding bits.
    bw = pattern(10, 3, 1, 1, 2)
    Image.frombytes("L", (10, 3), bytes(v * 255 for v in bw)).convert("1", dither=Image.Dither.NONE) \
        .save(os.path.join(HERE, "grey1.png"))
    save_expected("grey1", 10, 3, 1, 8, [v * 255 for v in bw])

    g16 = pattern(w, h, 1, 65535, 3)
    Image.frombytes("I;16", (w, h), struct.pack("<%dH" % len(g16), *g16)).save(os.path.join(HERE, "grey16.png"))
    save_expected("grey16", w, h, 1, 16, g16)

    rgb = pattern(w, h, 3, 255, 4)
    Image.frombytes("RGB", (w, h), bytes(rgb)).save(os.path.join(HERE, "rgb8.png"))
    save_expected("rgb8", w, h, 3, 8, rgb)

    rgba = pattern(w, h, 4, 255, 5)
    Image.frombytes("RGBA", (w, h), bytes(rgba)).save(os.path.join(HERE, "rgba8.png"))
    save_expected("rgba8", w, h, 4, 8, rgba)

    la = pattern(w, h, 2, 255, 6)
    Image.frombytes("LA", (w, h), bytes(la)).save(os.path.join(HERE, "grey-alpha.png"))
    save_expected("grey-alpha", w, h, 2, 8, la)

    # 8-bit palette with tRNS for the first 4 of 6 entries (the rest stay opaque).
    pal = [10, 20, 30, 200, 0, 0, 0, 200, 0, 0, 0, 200, 255, 255, 255, 1, 2, 3]
    alpha = [0, 64, 128, 192]
    idx = pattern(w, h, 1, 5, 7)
    im = Image.frombytes("P", (w, h), bytes(idx))
    im.putpalette(pal)
    im.save(os.path.join(HERE, "palette-trns.png"), transparency=bytes(alpha), bits=8)
    rgba_of = lambda i: pal[3 * i:3 * i + 3] + [alpha[i] if i < len(alpha) else 255]
    save_expected("palette-trns", w, h, 4, 8, [v for i in idx for v in rgba_of(i)])

    # 4-bit palette without tRNS expands to plain RGB.
    im = Image.frombytes("P", (w, h), bytes(idx))
    im.putpalette(pal)
    im.save(os.path.join(HERE, "palette4.png"), bits=4)
    save_expected("palette4", w, h, 3, 8, [v for i in idx for v in pal[3 * i:3 * i + 3]])

    # RGB colour key: pixels equal to the key become transparent.
    key = tuple(rgb[0:3])
    rgb = rgb[:-3] + list(key)  # the key colour appears twice
    Image.frombytes("RGB", (w, h), bytes(rgb)).save(os.path.join(HERE, "rgb-trns.png"), transparency=key)
    keyed = []
    for i in range(0, len(rgb), 3):
        px = rgb[i:i + 3]
        keyed += px + [0 if tuple(px) == key else 255]
    save_expected("rgb-trns", w, h, 4, 8, keyed)

    # APNG: the decoder returns only the default image (frame 0) and flags the file.
    f0 = pattern(4, 3, 3, 255, 8)
    f1 = pattern(4, 3, 3, 255, 9)
    frames = [Image.frombytes("RGB", (4, 3), bytes(f)) for f in (f0, f1)]
    frames[0].save(os.path.join(HERE, "animated.png"), save_all=True, append_images=frames[1:], duration=100)
    save_expected("animated", 4, 3, 3, 8, f0, animated=True)


# --- hand-written encoder for layouts Pillow cannot produce -------------------

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filter_row(ftype, row, prev, bpp):
    out = bytearray()
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i] if prev else 0
        c = prev[i - bpp] if prev and i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][ftype]
        out.append((x - pred) & 0xFF)
    return bytes([ftype]) + bytes(out)


def encode(w, h, color_type, depth, samples, channels, interlace=False, idat_parts=1):
    """samples: row-major interleaved raw sample values at `depth`; filters cycle 0..4 per row."""
    bpp = max(1, channels * depth // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw = bytearray()
    row_no = 0
    for x0, y0, dx, dy in passes:
        xs, ys = range(x0, w, dx), range(y0, h, dy)
        if not xs or not ys:
            continue
        prev = None
        for y in ys:
            vals = [samples[(y * w + x) * channels + c] for x in xs for c in range(channels)]
            if depth == 16:
                row = b"".join(struct.pack(">H", v) for v in vals)
            elif depth == 8:
                row = bytes(vals)
            else:
                bits = "".join(format(v, "0%db" % depth) for v in vals)
                bits += "0" * (-len(bits) % 8)
                row = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
            raw += filter_row(row_no % 5, row, prev, bpp)
            prev = row
            row_no += 1
    z = zlib.compress(bytes(raw), 9)
    cuts = [len(z) * i // idat_parts for i in range(idat_parts + 1)]
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for i in range(idat_parts):
        png += chunk(b"IDAT", z[cuts[i]:cuts[i + 1]])
    if idat_parts > 1:
        png += chunk(b"IDAT", b"")  # a legal, empty trailing IDAT
    return png + chunk(b"IEND", b"")


def custom(name, w, h, color_type, depth, channels, expected_of, **kw):
    samples = pattern(w, h, channels, (1 << depth) - 1, len(name))
    path = os.path.join(HERE, name + ".png")
    with open(path, "wb") as f:
        f.write(encode(w, h, color_type, depth, samples, channels, **kw))
    expected = expected_of(samples)
    im, got = pil_pixels(path)  # independent decoder must agree (modulo its own scaling)
    assert im.size == (w, h), name
    return samples, expected, got


def custom_fixtures():
    # 13x11 leaves some Adam7 passes with partial rows/columns.
    s, exp, got = custom("interlaced-rgb8", 13, 11, 2, 8, 3, lambda s: s, interlace=True)
    assert got == exp, "interlaced-rgb8"
    save_expected("interlaced-rgb8", 13, 11, 3, 8, exp)

    # Sub-byte samples packed per Adam7 pass, 3x5 so the first passes are tiny.
    s, exp, got = custom("interlaced-grey2", 3, 5, 0, 2, 1, lambda s: [v * 85 for v in s], interlace=True)
    assert got == exp, "interlaced-grey2"
    save_expected("interlaced-grey2", 3, 5, 1, 8, exp)

    # 16-bit RGBA (filter bpp 8) split over several IDAT chunks.
    s, exp, got = custom("multi-idat-rgba16", 6, 4, 6, 16, 4, lambda s: s, idat_parts=3)
    assert [v >> 8 for v in exp] == got, "multi-idat-rgba16"  # Pillow reduces 16-bit RGBA to 8 bits
    save_expected("multi-idat-rgba16", 6, 4, 4, 16, exp)


if __name__ == "__main__":
    pil_fixtures()
    custom_fixtures()
    # Pillow's own decode of its files must match what we claim, so a Pillow
    # behaviour change cannot silently produce wrong expectations.
    for name in ["grey8", "grey16", "rgb8", "rgba8", "grey-alpha"]:
        with open(os.path.join(HERE, name + ".json")) as f:
            exp = json.load(f)["data"]
        assert pil_pixels(os.path.join(HERE, name + ".png"))[1] == exp, name
    print("fixtures written to", HERE)
