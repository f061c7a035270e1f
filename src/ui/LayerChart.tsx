import { useEffect, useRef } from 'react';
import * as echarts from 'echarts/core';
import { BarChart } from 'echarts/charts';
import { GridComponent, TooltipComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';
import type { LayerReport } from '../core/pipeline';

echarts.use([BarChart, GridComponent, TooltipComponent, CanvasRenderer]);

/** The chart's option, shared by the page and the printable report (which renders it to SVG). */
export function layerChartOption(layers: readonly LayerReport[]): echarts.EChartsCoreOption {
  return {
    backgroundColor: 'transparent',
    animation: false,
    grid: { left: 60, right: 16, top: 16, bottom: 72 },
    tooltip: { trigger: 'axis', valueFormatter: (v: number) => `${v.toFixed(1)} dB` },
    xAxis: { type: 'category', data: layers.map((l) => l.name), axisLabel: { rotate: 40, fontSize: 10 } },
    yAxis: { type: 'value', axisLabel: { formatter: '{value} dB', fontSize: 10 } },
    series: [{ type: 'bar', name: 'weight SQNR', data: layers.map((l) => Number(l.weightSqnrDb.toFixed(2))), itemStyle: { color: '#4f7cff' } }],
  };
}

/** Weight SQNR per layer: where quantization hurts the weights most. */
export function LayerChart({ layers, dark }: { layers: readonly LayerReport[]; dark: boolean }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!ref.current) return;
    const chart = echarts.init(ref.current, dark ? 'dark' : undefined, { renderer: 'canvas' });
    chart.setOption(layerChartOption(layers));
    const resize = () => chart.resize();
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      chart.dispose();
    };
  }, [layers, dark]);
  return <div ref={ref} className="chart" role="img" aria-label="Bar chart of weight signal-to-quantization-noise ratio per layer" />;
}
