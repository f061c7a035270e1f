import { useEffect, useRef, useState } from 'react';
import * as echarts from 'echarts/core';
import { BarChart } from 'echarts/charts';
import { GridComponent, LegendComponent, MarkLineComponent, TooltipComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';
import type { LayerReport } from '../core/pipeline';

echarts.use([BarChart, GridComponent, LegendComponent, MarkLineComponent, TooltipComponent, CanvasRenderer]);

/** The chart's option for one layer, shared by the page and the printable report (which renders it to SVG). */
export function weightHistogramOption(layer: LayerReport, dark: boolean): echarts.EChartsCoreOption {
  const h = layer.histogram;
  const lo = h.qmin - 1;
  const width = (h.qmax + 1 - lo) / h.float.length;
  const total = h.float.reduce((a, b) => a + b, 0) || 1;
  const levels = h.qmax - h.qmin + 1;
  return {
    backgroundColor: 'transparent',
    animation: false,
    legend: { top: 0, data: ['float weights', 'codes'] },
    grid: { left: 56, right: 16, top: 32, bottom: 36 },
    tooltip: { trigger: 'item' },
    xAxis: { type: 'value', min: lo, max: h.qmax + 1, name: 'steps', nameLocation: 'middle', nameGap: 24, axisLabel: { fontSize: 10 } },
    yAxis: { type: 'value', name: 'share per step', axisLabel: { formatter: (v: number) => `${(v * 100).toFixed(1)}%`, fontSize: 10 } },
    series: [
      {
        type: 'bar',
        name: 'float weights',
        barWidth: '100%',
        // density per step, so that the float histogram and the per-level code shares share a scale
        data: h.float.map((c, i) => [lo + (i + 0.5) * width, c / total / width]),
        itemStyle: { color: '#9db4ff' },
        // the grid: one line per level when they are few enough to read
        markLine: levels <= 16 ? { silent: true, symbol: 'none', lineStyle: { color: dark ? '#ccc' : '#555', type: 'dashed', width: 1 }, label: { show: false }, data: Array.from({ length: levels }, (_, k) => ({ xAxis: h.qmin + k })) } : undefined,
      },
      { type: 'bar', name: 'codes', barWidth: 4, data: h.codes.map((c, k) => [h.qmin + k, c / total]), itemStyle: { color: '#f0883e' } },
    ],
  };
}

/**
 * One layer's weights before and after quantization, in units of the step: the float weights as
 * a fine histogram with the integer grid drawn, the codes as bars on the grid points. Shows at a
 * glance how much of the range the grid covers, and what rounding did to the distribution.
 */
export function WeightHistogramChart({ layers, dark }: { layers: readonly LayerReport[]; dark: boolean }) {
  const [index, setIndex] = useState(Math.min(1, layers.length - 1));
  const layer = layers[index];
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!ref.current || !layer) return;
    const chart = echarts.init(ref.current, dark ? 'dark' : undefined, { renderer: 'canvas' });
    chart.setOption(weightHistogramOption(layer, dark));
    const resize = () => chart.resize();
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      chart.dispose();
    };
  }, [layer, dark]);
  if (!layer) return null;
  return (
    <div>
      <label className="inline">
        Layer{' '}
        <select value={index} onChange={(e) => setIndex(Number(e.target.value))}>
          {layers.map((l, i) => (
            <option key={l.name} value={i}>
              {`${l.name} (W${l.wbits})`}
            </option>
          ))}
        </select>
      </label>
      <div ref={ref} className="chart" role="img" aria-label={`Histogram of the weights of layer ${layer.name} before and after quantization, in units of the quantization step`} />
    </div>
  );
}
