import { describe, expect, it } from 'vitest';
import { reportHtml } from './report-html';
import type { RunReport } from '../core/pipeline';

const report = {
  tool: 'lowbit-studio',
  reportVersion: 1,
  model: { name: 'net <b>&</b>.onnx', params: 12345, macs: 678900 },
  plan: { method: 'brecq', wbits: 3, abits: null, headStem8bit: true, iters: 40, seed: 0 },
  preprocess: { size: [28, 28], channels: 1, mean: [0.286], std: [0.353] },
  calibration: { images: 256 },
  validation: { images: 1000, classes: ['a', 'b'] },
  canonicalize: {},
  fp: { top1: 0.9123, top5: 0.99, count: 1000 },
  quant: { top1: 0.8811, top5: 0.98, count: 1000 },
  exported: { top1: 0.881, top5: 0.98, count: 1000 },
  fidelity: null,
  layers: [
    { name: 'stem.conv', wbits: 8, weightSqnrDb: 38.21, histogram: { qmin: -128, qmax: 127, float: [0, 2, 5, 2, 0], codes: Array.from({ length: 256 }, (_, k) => (k === 128 ? 9 : 0)) } },
    { name: 'layer1.0.conv1', wbits: 3, weightSqnrDb: 14.5, histogram: { qmin: -4, qmax: 3, float: [1, 3, 6, 9, 6, 3, 1, 0, 0, 0], codes: [1, 2, 5, 9, 7, 3, 1, 1] } },
  ],
  blocks: [{ block: 'layer1', layers: ['layer1.0.conv1'], sqnrDb: 21.34, cosine: 0.99321, loss: 0.1, decided: 0.9, seconds: 2.5 }],
  activations: [],
  timings: { 'fp-eval': 1.5, quantize: 10.25 },
} as unknown as RunReport;

describe('the printable HTML report', () => {
  const html = reportHtml(report, new Date('2025-01-02T03:04:05Z'));

  it('holds the accuracies, the plan, a row per block and per layer with their bits', () => {
    for (const f of ['91.23%', '88.11%', '88.10%']) expect(html).toContain(`<b>${f}</b>`);
    expect(html).toContain('<tr><td>layer1</td><td>1</td><td>21.3 dB</td><td>0.9932</td><td>2.5 s</td></tr>');
    expect(html).toContain('<tr><td>layer1.0.conv1</td><td>3</td><td>14.5 dB</td></tr>');
    expect(html).toContain('<tr><td>stem.conv</td><td>8</td><td>38.2 dB</td></tr>');
    expect(html).toContain('<dt>Activation bits</dt><dd>float (weight-only)</dd>');
    expect(html).toContain('<dt>iters</dt><dd>40</dd>');
    expect(html).toContain('2025-01-02 03:04 UTC');
  });

  it('is one self-contained page: inline SVG chart, print CSS, no script and no http(s) address', () => {
    expect(html).toMatch(/<svg[^>]*>[\s\S]*<\/svg>/);
    // the chart names the layers on its axis
    expect(html).toMatch(/<text[^>]*>[^<]*layer1\.0\.conv1/);
    expect(html).toContain('@media print');
    expect(html).not.toMatch(/https?:\/\//i);
    expect(html).not.toMatch(/<script|<link|<img/i);
  });

  it('draws each layer’s weight histogram before and after quantization, the 3-bit one with its grid', () => {
    const figures = html.match(/<figure data-testid="report-histogram">[\s\S]*?<\/figure>/g) ?? [];
    expect(figures).toHaveLength(2);
    expect(figures[1]).toContain('layer1.0.conv1 (W3)');
    expect(figures[1]).toMatch(/<svg[\s\S]*<\/svg>/);
    // eight levels: the grid's dashed lines are drawn; 256 levels: too many to draw
    expect(figures[1]).toMatch(/stroke-dasharray/);
    expect(figures[0]).not.toMatch(/stroke-dasharray/);
  });

  it('escapes what comes from the user’s files', () => {
    expect(html).toContain('net &#60;b&#62;&#38;&#60;/b&#62;.onnx');
    expect(html).not.toContain('<b>&</b>');
  });
});
