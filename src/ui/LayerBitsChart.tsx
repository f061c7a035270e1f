import { useEffect, useRef } from 'react';
import * as echarts from 'echarts/core';
import { BarChart } from 'echarts/charts';
import { GridComponent, TooltipComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';
import type { Bits } from '../core/quant/quantizer';
import type { SearchLayer } from '../core/search/layers';
import { TableToggle } from './TableToggle';

echarts.use([BarChart, GridComponent, TooltipComponent, CanvasRenderer]);

/** One colour per width, from the narrowest (warm: most error) to the widest. */
const BIT_COLOURS: Readonly<Record<Bits, string>> = { 2: '#d7301f', 3: '#fc8d59', 4: '#fdbb84', 5: '#9ecae1', 6: '#6baed6', 7: '#4292c6', 8: '#2171b5' };

/** The weight bits of every layer in the plan that Run will run, with each layer's parameter count. */
export function LayerBitsChart({ layers, bits, dark }: { layers: readonly SearchLayer[]; bits: Readonly<Record<string, Bits>>; dark: boolean }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!ref.current) return;
    const chart = echarts.init(ref.current, dark ? 'dark' : undefined, { renderer: 'canvas' });
    chart.setOption({
      backgroundColor: 'transparent',
      animation: false,
      grid: { left: 44, right: 16, top: 16, bottom: 80 },
      tooltip: { trigger: 'axis', formatter: (ps: { dataIndex: number }[]) => `${layers[ps[0]!.dataIndex]!.name}: W${bits[layers[ps[0]!.dataIndex]!.name]}, ${layers[ps[0]!.dataIndex]!.weights} weights` },
      xAxis: { type: 'category', data: layers.map((l) => l.name), axisLabel: { rotate: 40, fontSize: 10 } },
      yAxis: { type: 'value', min: 0, max: 8, interval: 2, name: 'bits', axisLabel: { fontSize: 10 } },
      series: [{ type: 'bar', name: 'weight bits', data: layers.map((l) => ({ value: bits[l.name], itemStyle: { color: BIT_COLOURS[bits[l.name]!] } })), label: { show: true, position: 'top', fontSize: 10 } }],
    });
    const resize = () => chart.resize();
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      chart.dispose();
    };
  }, [layers, bits, dark]);
  const counts = [...new Set(Object.values(bits))].sort((a, b) => a - b).map((b) => {
    const n = layers.filter((l) => bits[l.name] === b).length;
    return `${n} layer${n === 1 ? '' : 's'} at W${b}`;
  });
  return (
    <div>
      <div ref={ref} className="chart" role="img" data-testid="layer-bits-chart" aria-label={`Bar chart of the bit width of each layer in the plan: ${counts.join(', ')}`} />
      <TableToggle what="the plan’s bits per layer">
        <table className="blocks" data-testid="layer-bits-table">
          <caption className="sr-only">Weight bits per layer in the plan</caption>
          <thead>
            <tr>
              <th scope="col">Layer</th>
              <th scope="col">Weights</th>
              <th scope="col">Bits</th>
            </tr>
          </thead>
          <tbody>
            {layers.map((l) => (
              <tr key={l.name}>
                <th scope="row">{l.name}</th>
                <td>{l.weights}</td>
                <td className="bits">{bits[l.name]}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableToggle>
    </div>
  );
}
