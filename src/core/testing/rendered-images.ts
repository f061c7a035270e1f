import type { ImageFile } from '../data/image-set';
import { rng } from '../random';
import { encode } from './png-writer';

/**
 * Rendered test images: gradients, shapes, text lines and faces, with sensor-like noise, as PNG
 * files. Not a data set, but with the statistics of real pictures (smooth regions, edges, strokes,
 * a few colours) rather than of white noise, which no trained model's BatchNorm statistics were
 * set on: calibration and fidelity images for the real-world models (graph/realworld.test.ts).
 */

export type Domain = 'text' | 'face' | 'eye' | 'scene';

type Rgb = readonly [number, number, number];

class Canvas {
  readonly px: Float32Array;
  constructor(readonly w: number, readonly h: number) {
    this.px = new Float32Array(w * h * 3);
  }
  set(x: number, y: number, c: Rgb, a = 1): void {
    if (x < 0 || y < 0 || x >= this.w || y >= this.h) return;
    const o = (Math.floor(y) * this.w + Math.floor(x)) * 3;
    for (let k = 0; k < 3; k++) this.px[o + k] = this.px[o + k]! * (1 - a) + c[k]! * a;
  }
  gradient(a: Rgb, b: Rgb, angle: number): void {
    const [dx, dy] = [Math.cos(angle), Math.sin(angle)];
    const span = Math.abs(dx) * this.w + Math.abs(dy) * this.h;
    for (let y = 0; y < this.h; y++)
      for (let x = 0; x < this.w; x++) {
        const t = Math.min(1, Math.max(0, ((x - this.w / 2) * dx + (y - this.h / 2) * dy) / span + 0.5));
        this.set(x, y, [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]);
      }
  }
  ellipse(cx: number, cy: number, rx: number, ry: number, c: Rgb, a = 1): void {
    for (let y = Math.floor(cy - ry); y <= cy + ry; y++)
      for (let x = Math.floor(cx - rx); x <= cx + rx; x++) {
        const d = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2;
        // a one-pixel soft edge, as a camera's optics give
        if (d <= 1) this.set(x, y, c, a * Math.min(1, (1 - d) * Math.min(rx, ry)));
      }
  }
  rect(x0: number, y0: number, w: number, h: number, c: Rgb, a = 1): void {
    for (let y = Math.floor(y0); y < y0 + h; y++) for (let x = Math.floor(x0); x < x0 + w; x++) this.set(x, y, c, a);
  }
  line(x0: number, y0: number, x1: number, y1: number, width: number, c: Rgb): void {
    const n = Math.ceil(Math.hypot(x1 - x0, y1 - y0)) + 1;
    for (let i = 0; i <= n; i++) {
      const t = i / n;
      this.ellipse(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t, width / 2 + 0.5, width / 2 + 0.5, c);
    }
  }
  async png(noise: () => number): Promise<Uint8Array> {
    const samples = Array.from(this.px, (v) => Math.round(Math.min(255, Math.max(0, v + noise()))));
    return encode({ width: this.w, height: this.h, colorType: 2, depth: 8, samples });
  }
}

function render(domain: Domain, w: number, h: number, seed: number): Canvas {
  const r = rng(seed);
  const u = (a: number, b: number) => a + (b - a) * r();
  const colour = (lo = 0, hi = 255): Rgb => [u(lo, hi), u(lo, hi), u(lo, hi)];
  const cv = new Canvas(w, h);
  cv.gradient(colour(), colour(), u(0, Math.PI * 2));
  // background clutter: a few translucent shapes
  for (let i = 0; i < 3 + Math.floor(r() * 4); i++) {
    if (r() < 0.5) cv.ellipse(u(0, w), u(0, h), u(w / 20, w / 3), u(h / 20, h / 3), colour(), u(0.3, 0.9));
    else cv.rect(u(-w / 4, w), u(-h / 4, h), u(w / 10, w / 2), u(h / 10, h / 2), colour(), u(0.3, 0.9));
  }
  if (domain === 'text') {
    // a page or a cut-out line: light paper, dark glyphs of strokes, in lines of words
    const paper = colour(190, 255);
    const ink: Rgb = colour(0, 90);
    cv.rect(0, 0, w, h, paper, u(0.6, 1));
    const size = Math.max(6, Math.min(h * u(0.25, 0.6), w / 8, 28));
    for (let y = size * u(0.6, 1.2); y < h - size / 2; y += size * u(1.3, 2)) {
      let x = u(0, size);
      while (x < w - size) {
        const letters = 1 + Math.floor(r() * 6);
        for (let k = 0; k < letters && x < w - size; k++) {
          const strokes = 1 + Math.floor(r() * 4);
          for (let s = 0; s < strokes; s++) cv.line(x + u(0, size * 0.7), y - u(0, size), x + u(0, size * 0.7), y - u(0, size * 0.3), Math.max(1, size / 9), ink);
          x += size * u(0.7, 1);
        }
        x += size * u(0.4, 1.2);
      }
    }
  } else if (domain === 'face') {
    // a face filling most of the crop, as an aligned face model sees it: skin, eyes, brows, mouth
    const skin: Rgb = [u(90, 240), u(60, 200), u(40, 170)];
    const cx = w / 2 + u(-w, w) * 0.08;
    const cy = h / 2 + u(-h, h) * 0.06;
    const rx = w * u(0.3, 0.42);
    const ry = h * u(0.38, 0.5);
    cv.ellipse(cx, cy - ry * 0.7, rx * 1.05, ry * 0.55, colour(0, 120));
    cv.ellipse(cx, cy, rx, ry, skin);
    const dark: Rgb = [u(10, 60), u(10, 50), u(10, 50)];
    for (const side of [-1, 1]) {
      const ex = cx + side * rx * u(0.35, 0.45);
      const ey = cy - ry * u(0.1, 0.25);
      cv.ellipse(ex, ey, rx * 0.18, ry * 0.08, [235, 235, 230]);
      cv.ellipse(ex, ey, rx * 0.07, ry * u(0.04, 0.08), dark);
      cv.line(ex - rx * 0.18, ey - ry * 0.16, ex + rx * 0.18, ey - ry * u(0.14, 0.22), Math.max(1, w / 40), dark);
    }
    cv.line(cx, cy - ry * 0.05, cx + rx * 0.05, cy + ry * 0.25, Math.max(1, w / 60), [skin[0] * 0.7, skin[1] * 0.7, skin[2] * 0.7]);
    cv.line(cx - rx * 0.3, cy + ry * 0.5, cx + rx * 0.3, cy + ry * u(0.45, 0.55), Math.max(1, w / 35), [u(120, 200), u(30, 80), u(30, 80)]);
  } else if (domain === 'eye') {
    // an eye crop: skin, a brow, and an open eye (white, iris, pupil, lids) or a closed one (a lash line)
    const skin: Rgb = [u(90, 240), u(60, 200), u(40, 170)];
    cv.rect(0, 0, w, h, skin, u(0.85, 1));
    const dark: Rgb = [u(10, 60), u(10, 50), u(10, 50)];
    const cx = w / 2 + u(-w, w) * 0.08;
    const cy = h / 2 + u(-h, h) * 0.08;
    cv.line(cx - w * 0.35, cy - h * u(0.25, 0.35), cx + w * 0.35, cy - h * u(0.25, 0.4), Math.max(1, h / 10), dark);
    if (r() < 0.5) {
      cv.ellipse(cx, cy, w * u(0.28, 0.4), h * u(0.12, 0.2), [u(200, 245), u(200, 240), u(195, 235)]);
      cv.ellipse(cx + u(-w, w) * 0.06, cy, w * 0.12, h * 0.12, colour(20, 140));
      cv.ellipse(cx + u(-w, w) * 0.03, cy, w * 0.05, h * 0.05, [10, 10, 10]);
      cv.line(cx - w * 0.35, cy - h * 0.08, cx + w * 0.35, cy - h * 0.1, Math.max(1, h / 16), [skin[0] * 0.6, skin[1] * 0.6, skin[2] * 0.6]);
    } else {
      cv.line(cx - w * 0.35, cy, cx + w * 0.35, cy + h * u(-0.05, 0.05), Math.max(1, h / 14), dark);
    }
  } else {
    // a scene: a few faces (small and large) among objects
    for (let i = 0; i < 1 + Math.floor(r() * 3); i++) {
      const s = u(0.1, 0.35) * Math.min(w, h);
      const x = u(s, w - s);
      const y = u(s, h - s);
      cv.ellipse(x, y, s * 0.8, s, [u(90, 240), u(60, 200), u(40, 170)]);
      for (const side of [-1, 1]) cv.ellipse(x + side * s * 0.35, y - s * 0.2, s * 0.12, s * 0.07, [30, 25, 25]);
      cv.line(x - s * 0.3, y + s * 0.45, x + s * 0.3, y + s * 0.45, Math.max(1, s / 12), [150, 50, 50]);
    }
    for (let i = 0; i < 4; i++) cv.line(u(0, w), u(0, h), u(0, w), u(0, h), u(1, 4), colour());
  }
  return cv;
}

/** `count` PNGs at the model's own size: two in three of its domain and the rest of the others, or all of its domain with `mixed` false. */
export async function renderedImages(domain: Domain, [h, w]: readonly [number, number], count: number, seed: number, prefix: string, mixed = true): Promise<ImageFile[]> {
  const others: Domain[] = (['text', 'face', 'scene'] as const).filter((d) => d !== domain).slice(0, 2);
  const out: ImageFile[] = [];
  for (let i = 0; i < count; i++) {
    const d = mixed && i % 3 === 2 ? others[Math.floor(i / 3) % others.length]! : domain;
    const r = rng(seed * 100_003 + i);
    // sensor noise: Gaussian-ish, a few levels
    const noise = () => (r() + r() + r() - 1.5) * 6;
    out.push({ path: `${prefix}/${String(i).padStart(3, '0')}.png`, bytes: await render(d, w, h, seed * 7919 + i).png(noise) });
  }
  return out;
}
