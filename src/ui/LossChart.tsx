import { useEffect, useRef } from 'react';
import * as echarts from 'echarts/core';
import { LineChart } from 'echarts/charts';
import { GridComponent, LegendComponent, TooltipComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';
import { useStudio } from '../state/store';

echarts.use([LineChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);

/** Live reconstruction loss of the layer being optimised: the output error and the rounding regulariser. */
export function LossChart({ dark }: { dark: boolean }) {
  const losses = useStudio((s) => s.losses);
  const ref = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | null>(null);
  useEffect(() => {
    if (!ref.current) return;
    chart.current = echarts.init(ref.current, dark ? 'dark' : undefined);
    return () => chart.current?.dispose();
  }, [dark]);
  useEffect(() => {
    if (!losses || !chart.current) return;
    chart.current.setOption({
      backgroundColor: 'transparent',
      animation: false,
      grid: { left: 56, right: 16, top: 28, bottom: 28 },
      legend: { top: 0, textStyle: { fontSize: 11 } },
      tooltip: { trigger: 'axis' },
      xAxis: { type: 'value', name: 'iteration', nameLocation: 'middle', nameGap: 20, nameTextStyle: { fontSize: 10 } },
      yAxis: { type: 'log', axisLabel: { fontSize: 10, formatter: (v: number) => v.toExponential(0) } },
      series: [
        { name: 'reconstruction', type: 'line', showSymbol: false, data: losses.points.map((p) => [p.iter, Math.max(p.rec, 1e-12)]) },
        { name: 'rounding regulariser', type: 'line', showSymbol: false, data: losses.points.filter((p) => p.reg > 0).map((p) => [p.iter, p.reg]) },
      ],
    });
  }, [losses]);
  return (
    <div>
      <p className="hint" data-testid="loss-position">
        Layer {losses?.layer}, iteration {losses?.points.at(-1)?.iter}
      </p>
      <div ref={ref} className="chart small" role="img" aria-label={`Loss curve of layer ${losses?.layer ?? ''}`} />
    </div>
  );
}
