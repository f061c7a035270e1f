import { useEffect, useRef } from 'react';
import * as echarts from 'echarts/core';
import { HeatmapChart } from 'echarts/charts';
import { GridComponent, TooltipComponent, VisualMapComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';
import type { SensitivityTable } from '../core/search/sensitivity';
import { TableToggle } from './TableToggle';

echarts.use([HeatmapChart, GridComponent, TooltipComponent, VisualMapComponent, CanvasRenderer]);

const sci = (x: number): string => (x === 0 ? '0' : x.toExponential(2));

/** Cell labels stay readable up to this many layers; beyond it the tooltip and the table carry the numbers. */
const LABELLED_LAYERS = 24;

/**
 * The sensitivity table as a heatmap, layers × candidate widths: the proxy's diagonal term, the
 * loss the layer's block gains when only that layer is lowered. The terms span orders of
 * magnitude (8-bit layers lose almost nothing, 2-bit ones a lot), so the colour follows their
 * logarithm; terms at or below the smallest positive one (the widest candidate's are 0 by
 * definition) take the lowest colour.
 */
export function SensitivityHeatmap({ table, dark }: { table: SensitivityTable; dark: boolean }) {
  const ref = useRef<HTMLDivElement>(null);
  const positive = table.layers.flatMap((l) => l.delta.filter((d) => d > 0));
  const floor = positive.length ? Math.min(...positive) : 1e-12;
  const ceil = positive.length ? Math.max(...positive) : floor * 10;
  useEffect(() => {
    if (!ref.current) return;
    const chart = echarts.init(ref.current, dark ? 'dark' : undefined, { renderer: 'canvas' });
    const lo = Math.log10(floor);
    const hi = Math.max(Math.log10(ceil), lo + 1e-6);
    chart.setOption({
      backgroundColor: 'transparent',
      animation: false,
      grid: { left: 170, right: 90, top: 8, bottom: 36 },
      tooltip: { formatter: (p: { data: [number, number, number, number] }) => `${table.layers[p.data[1]]!.name} at ${table.bits[p.data[0]]} bits: Δ loss ${sci(p.data[3])}` },
      xAxis: { type: 'category', data: table.bits.map((b) => `W${b}`), name: 'weight bits', nameLocation: 'middle', nameGap: 22, splitArea: { show: true } },
      // the first layer at the top, as in the model
      yAxis: { type: 'category', inverse: true, data: table.layers.map((l) => l.name), axisLabel: { fontSize: 10, width: 160, overflow: 'truncate' } },
      visualMap: {
        type: 'continuous',
        min: lo,
        max: hi,
        dimension: 2,
        calculable: false,
        orient: 'vertical',
        right: 4,
        top: 'middle',
        text: [`${sci(ceil)}`, `≤ ${sci(floor)}`],
        textStyle: { fontSize: 10 },
        inRange: { color: ['#f7fbff', '#9ecae1', '#4292c6', '#fd8d3c', '#d7301f'] },
      },
      series: [
        {
          type: 'heatmap',
          name: 'Δ loss',
          // [bit index, layer index, log10 of the term clamped to the scale, the term itself]
          data: table.layers.flatMap((l, i) => l.delta.map((d, k) => [k, i, Math.log10(Math.max(d, floor)), d])),
          label: { show: table.layers.length <= LABELLED_LAYERS, fontSize: 9, formatter: (p: { data: number[] }) => sci(p.data[3]!) },
        },
      ],
    });
    const resize = () => chart.resize();
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      chart.dispose();
    };
  }, [table, dark, floor, ceil]);
  const worst = table.layers.reduce((a, l) => (l.delta[0]! > a.delta[0]! ? l : a), table.layers[0]!);
  return (
    <div>
      <div
        ref={ref}
        className="chart"
        style={{ height: Math.max(180, 26 * table.layers.length + 60) }}
        role="img"
        data-testid="sensitivity-heatmap"
        aria-label={`Heatmap of layer sensitivities, ${table.layers.length} layers by ${table.bits.length} weight widths (${table.label}), log colour scale from ${sci(floor)} to ${sci(ceil)}. Most sensitive at ${table.bits[0]} bits: ${worst.name}.`}
      />
      <TableToggle what="the sensitivities">
        <table className="blocks" data-testid="sensitivity-table">
          <caption className="sr-only">Loss increase of each layer's block when only that layer is lowered to each width</caption>
          <thead>
            <tr>
              <th scope="col">Layer</th>
              <th scope="col">Block</th>
              {table.bits.map((b) => (
                <th scope="col" key={b}>{`Δ at W${b}`}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {table.layers.map((l) => (
              <tr key={l.name}>
                <th scope="row">{l.name}</th>
                <td>{l.block}</td>
                {l.delta.map((d, k) => (
                  <td key={k}>{sci(d)}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </TableToggle>
    </div>
  );
}
