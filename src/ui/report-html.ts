import * as echarts from 'echarts/core';
import { BarChart } from 'echarts/charts';
import { GridComponent, LegendComponent, MarkLineComponent } from 'echarts/components';
import { SVGRenderer } from 'echarts/renderers';
import type { RunReport } from '../core/pipeline';
import type { Accuracy } from '../core/eval/accuracy';
import { STAGE_LABELS, type Stage } from '../core/events';
import { weightGridKindOf } from '../core/plan';
import { layerChartOption } from './LayerChart';
import { weightHistogramOption } from './WeightHistogramChart';

echarts.use([BarChart, GridComponent, LegendComponent, MarkLineComponent, SVGRenderer]);

const escape = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
const fmt = (n: number): string => n.toLocaleString('en-US');
const db = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(1)} dB` : '∞');

/**
 * The chart as an SVG string, rendered without a DOM (echarts' server-side mode). The namespace
 * attributes are dropped: inside HTML the parser puts <svg> in its namespace anyway, and the page
 * then holds no http(s) address at all, not even a namespace name that only looks like one.
 */
function svgChart(option: echarts.EChartsCoreOption, width: number, height: number): string {
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width, height });
  try {
    chart.setOption({ ...option, tooltip: undefined });
    return chart.renderToSVGString().replace(/\s+xmlns(:\w+)?="[^"]*"/g, '');
  } finally {
    chart.dispose();
  }
}

function table(head: readonly string[], rows: readonly (readonly string[])[], testId: string): string {
  const th = head.map((h) => `<th scope="col">${escape(h)}</th>`).join('');
  const tr = rows.map((r) => `<tr>${r.map((c) => `<td>${escape(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table data-testid="${testId}"><thead><tr>${th}</tr></thead><tbody>\n${tr}\n</tbody></table>`;
}

function accuracyRow(label: string, a: Accuracy | null): string[] {
  return [label, a ? pct(a.top1) : 'n/a', a ? pct(a.top5) : 'n/a', a ? fmt(a.count) : '—'];
}

const CSS = `
:root { color-scheme: light; font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; font-size: 14px; line-height: 1.45; color: #1b1f2a; }
body { max-width: 960px; margin: 24px auto; padding: 0 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; border-bottom: 1px solid #dde1ea; padding-bottom: 4px; }
.meta { color: #5d6577; margin: 0; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dt { color: #5d6577; }
dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; width: 100%; }
th, td { padding: 3px 10px; border-bottom: 1px solid #dde1ea; text-align: right; }
th:first-child, td:first-child { text-align: left; overflow-wrap: anywhere; }
thead th { background: #f3f5fa; }
.headline { display: flex; gap: 16px; flex-wrap: wrap; }
.headline div { border: 1px solid #dde1ea; border-radius: 8px; padding: 8px 14px; }
.headline b { display: block; font-size: 22px; }
svg { max-width: 100%; height: auto; }
.histograms { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 8px; }
.histograms figure { margin: 0; break-inside: avoid; }
figcaption { font-size: 12px; }
@page { size: A4; margin: 14mm; }
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 11px; }
  h2 { break-after: avoid; }
  tr, figure, .headline { break-inside: avoid; }
  thead { display: table-header-group; }
  thead th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
`;

/**
 * A run's report as one self-contained, printable HTML page: inline CSS, the charts as inline SVG,
 * no script and no address outside the page, so it opens (and prints) anywhere, offline.
 */
export function reportHtml(report: RunReport, createdAt: Date = new Date()): string {
  const { plan, model, preprocess } = report;
  const planRows: [string, string][] = [
    ['Method', plan.method],
    ['Weight bits', `W${plan.wbits}${plan.headStem8bit ? ' (first and last layers at 8)' : ''}`],
    ['Activation bits', plan.abits === null ? 'float (weight-only)' : `A${plan.abits}`],
    ['Weight grid', plan.method === 'decoupleq' ? 'decoupleQ: signed codes with a float offset' : `${weightGridKindOf(plan)} below 8 bits, int8 symmetric at 8`],
    ...Object.entries(plan)
      .filter(([k]) => !['method', 'wbits', 'abits', 'headStem8bit', 'weightGrid'].includes(k))
      .map(([k, v]): [string, string] => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]),
  ];
  const facts = (rows: readonly (readonly [string, string])[]) => `<dl>${rows.map(([k, v]) => `<dt>${escape(k)}</dt><dd>${escape(v)}</dd>`).join('')}</dl>`;
  const headline = (
    [
      ['Float top-1', report.fp],
      ['Quantized top-1', report.quant],
      ['Exported top-1 (ONNX Runtime)', report.exported],
    ] as const
  )
    .map(([label, a]) => `<div>${escape(label)}<b>${a ? pct(a.top1) : 'n/a'}</b></div>`)
    .join('');
  const parts: string[] = [
    `<h1>${escape(model.name)}: ${escape(plan.method)} W${plan.wbits}${plan.abits === null ? '' : `A${plan.abits}`}</h1>`,
    `<p class="meta">Lowbit Studio report, ${escape(createdAt.toISOString().replace('T', ' ').slice(0, 16))} UTC</p>`,
    '<h2>Accuracy</h2>',
    `<div class="headline">${headline}</div>`,
  ];
  if (report.fp || report.quant || report.exported) parts.push(table(['Model', 'Top-1', 'Top-5', 'Images'], [accuracyRow('Float', report.fp), accuracyRow('Quantized (simulated)', report.quant), accuracyRow('Exported (fused kernels)', report.exported)], 'report-accuracy'));
  if (report.fidelity) {
    const f = report.fidelity;
    parts.push(
      '<p>No labels: fidelity to the float model.</p>',
      table(['Model', 'Top-1 agreement', 'Output cosine', 'Images'], (['quant', 'exported'] as const).map((k) => [k === 'quant' ? 'Quantized (simulated)' : 'Exported (fused kernels)', pct(f[k].agreement), f[k].cosine.toFixed(4), fmt(f[k].count)]), 'report-fidelity'),
    );
  }
  parts.push(
    '<h2>Model</h2>',
    facts([
      ['File', model.name],
      ['Parameters', fmt(model.params)],
      ['MACs / image', model.macs === null ? 'unknown' : fmt(model.macs)],
      ['Preprocessing', `${preprocess.resize ? `shorter side ${preprocess.resize}, centre crop ` : ''}${preprocess.size.join('×')}, ${preprocess.channels} channel(s), mean [${preprocess.mean.join(', ')}], std [${preprocess.std.join(', ')}]`],
      ['Calibration', `${fmt(report.calibration.images)} images`],
      ['Validation', report.validation.images ? `${fmt(report.validation.images)} images${report.validation.classes ? ` in ${report.validation.classes.length} classes` : ''}` : 'none'],
    ]),
    '<h2>Plan</h2>',
    facts(planRows),
  );
  if (report.blocks.length) {
    parts.push(
      '<h2>Blocks after reconstruction</h2>',
      table(['Block', 'Layers', 'Output SQNR', 'Cosine', 'Time'], report.blocks.map((b) => [b.block, String(b.layers.length), db(b.sqnrDb), b.cosine.toFixed(4), `${b.seconds.toFixed(1)} s`]), 'report-blocks'),
    );
  }
  parts.push(
    '<h2>Layers: bit-widths and weight SQNR</h2>',
    `<figure>${svgChart(layerChartOption(report.layers), 900, 300)}</figure>`,
    table(['Layer', 'Weight bits', 'Weight SQNR'], report.layers.map((l) => [l.name, String(l.wbits), db(l.weightSqnrDb)]), 'report-layers'),
    '<h2>Weights before and after quantization</h2>',
    '<p>Each layer’s float weights in units of its quantization step (fine bars, the grid dashed when it has 16 levels or fewer) and the share of each integer code after rounding.</p>',
    `<div class="histograms">${report.layers.map((l) => `<figure data-testid="report-histogram"><figcaption>${escape(`${l.name} (W${l.wbits})`)}</figcaption>${svgChart(weightHistogramOption(l, false), 440, 220)}</figure>`).join('')}</div>`,
  );
  if (report.activations.length) {
    parts.push(
      '<h2>Activation quantizers</h2>',
      table(['Tensor', 'Bits', 'Min', 'Max', 'Scale', 'Zero point'], report.activations.map((a) => [a.tensor, String(a.bits), a.min.toPrecision(4), a.max.toPrecision(4), a.scale.toPrecision(4), String(a.zeroPoint)]), 'report-activations'),
    );
  }
  const timings = Object.entries(report.timings) as [Stage, number][];
  if (timings.length) parts.push('<h2>Time per stage</h2>', table(['Stage', 'Seconds'], timings.map(([s, t]) => [STAGE_LABELS[s], t.toFixed(1)]), 'report-timings'));
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(`${model.name} — Lowbit Studio report`)}</title>
<style>${CSS}</style>
</head>
<body>
${parts.join('\n')}
</body>
</html>
`;
}
