#!/usr/bin/env python3
"""Writes the image foreign-format files (JPEG ones now decode; CMYK and GIF are refused), for the bad-input tests and as fuzzing seeds.

Run from anywhere:  /usr/bin/python3 src/core/data/__fixtures__/make-foreign-fixtures.py

JPEG (baseline RGB, greyscale and Adobe CMYK) and an animated GIF, 8x8 pixels each, written by
Pillow. Pillow's encoder is deterministic for a given version; the bytes are committed, so the
tests never need Python.
"""
import os

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def gradient(mode, w=8, h=8):
    im = Image.new("RGB", (w, h))
    im.putdata([(x * 32, y * 32, (x + y) * 16) for y in range(h) for x in range(w)])
    return im.convert(mode)


gradient("RGB").save(os.path.join(HERE, "rgb.jpg"), quality=90)
gradient("L").save(os.path.join(HERE, "grey.jpg"), quality=90)
gradient("CMYK").save(os.path.join(HERE, "cmyk.jpg"), quality=90)
frames = [gradient("P"), gradient("RGB").transpose(Image.FLIP_LEFT_RIGHT).convert("P")]
frames[0].save(os.path.join(HERE, "animated.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0)
