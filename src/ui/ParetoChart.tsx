import { useEffect, useRef, useState, type KeyboardEvent } from 'react';
import * as echarts from 'echarts/core';
import { LineChart, ScatterChart } from 'echarts/charts';
import { GridComponent, LegendComponent, MarkLineComponent, TooltipComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';
import { formatCost, type SearchReport } from '../core/search/run';
import { METRIC_UNITS } from '../core/search/cost';
import { bitsKey, type SearchPoint } from '../state/mixed-precision';
import { TableToggle } from './TableToggle';

echarts.use([LineChart, ScatterChart, GridComponent, LegendComponent, MarkLineComponent, TooltipComponent, CanvasRenderer]);

const proxyText = (x: number): string => x.toPrecision(4);

/** "uniform W2", "chosen at the budget", "on the front": what a point is, for the tooltip, the table and screen readers. */
function describe(p: SearchPoint): string {
  return [p.uniform !== null ? `uniform W${p.uniform}` : 'mixed', p.chosen ? 'chosen at the budget' : '', p.onFront ? 'on the front' : 'not on the front'].filter(Boolean).join(', ');
}

interface Props {
  readonly report: SearchReport;
  readonly points: readonly SearchPoint[];
  /** The key (`bitsKey`) of the plan's current configuration, to ring the point it matches. */
  readonly loadedKey: string;
  readonly onLoad: (p: SearchPoint) => void;
  readonly disabled: boolean;
  readonly dark: boolean;
}

/**
 * The Pareto front of the search, proxy loss against cost, with the uniform plans as reference
 * points, the configuration chosen at the budget and the one loaded in the plan. A click on a
 * point loads it; so do the arrow keys and Enter on the focused chart, and the table's buttons.
 */
export function ParetoChart({ report, points, loadedKey, onLoad, disabled, dark }: Props) {
  const ref = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | null>(null);
  const [cursor, setCursor] = useState<number | null>(null);
  const metric = report.budget.metric;
  const { unit, scale } = METRIC_UNITS[metric];
  const key = (p: SearchPoint) => bitsKey(report.layers, p.layerBits);
  const loaded = points.findIndex((p) => key(p) === loadedKey);
  // the click handler is bound once per chart: it reads the latest props through a ref
  const latest = useRef({ points, onLoad, disabled });
  latest.current = { points, onLoad, disabled };

  useEffect(() => {
    if (!ref.current) return;
    const c = echarts.init(ref.current, dark ? 'dark' : undefined, { renderer: 'canvas' });
    c.on('click', (e) => {
      const index = (e.value as number[] | undefined)?.[2];
      const { points: ps, onLoad: load, disabled: off } = latest.current;
      if (index === undefined || off || !ps[index]) return;
      setCursor(index);
      load(ps[index]);
    });
    chart.current = c;
    const resize = () => c.resize();
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      c.dispose();
      chart.current = null;
    };
  }, [dark]);

  useEffect(() => {
    if (!chart.current) return;
    const xy = (p: SearchPoint, i: number) => [p.cost / scale, p.proxy, i];
    const logY = points.every((p) => p.proxy > 0);
    const indexed = points.map((p, i) => ({ p, i }));
    const one = (i: number) => (i >= 0 && points[i] ? [xy(points[i], i)] : []);
    chart.current.setOption(
      {
        backgroundColor: 'transparent',
        animation: false,
        grid: { left: 64, right: 24, top: 36, bottom: 44 },
        legend: { top: 0, textStyle: { fontSize: 11 }, data: ['Pareto front', 'uniform plans', 'chosen at the budget', 'loaded in the plan'] },
        tooltip: {
          trigger: 'item',
          formatter: (e: { value: number[] }) => {
            const p = points[e.value[2]!];
            return p ? `${describe(p)}<br/>${formatCost(metric, p.cost)}, proxy ${proxyText(p.proxy)}<br/>bits: ${key(p)}<br/>click to load into the plan` : '';
          },
        },
        xAxis: { type: 'value', scale: true, name: unit, nameLocation: 'middle', nameGap: 26, axisLabel: { fontSize: 10 } },
        yAxis: { type: logY ? 'log' : 'value', name: 'proxy loss', nameTextStyle: { fontSize: 10 }, axisLabel: { fontSize: 10, formatter: (v: number) => v.toExponential(0) } },
        series: [
          {
            name: 'Pareto front',
            type: 'line',
            symbol: 'circle',
            symbolSize: 9,
            data: indexed.filter(({ p }) => p.onFront).map(({ p, i }) => xy(p, i)),
            itemStyle: { color: '#4f7cff' },
            markLine: { silent: true, symbol: 'none', lineStyle: { type: 'dashed', color: dark ? '#aaa' : '#666' }, label: { formatter: 'budget', fontSize: 10 }, data: [{ xAxis: report.budget.value / scale }] },
          },
          {
            name: 'uniform plans',
            type: 'scatter',
            symbol: 'diamond',
            symbolSize: 13,
            data: indexed.filter(({ p }) => p.uniform !== null).map(({ p, i }) => xy(p, i)),
            itemStyle: { color: '#8a8f9c' },
            label: { show: true, position: 'right', fontSize: 10, formatter: (e: { value: number[] }) => `W${points[e.value[2]!]?.uniform ?? ''}` },
          },
          { name: 'chosen at the budget', type: 'scatter', symbol: 'triangle', symbolSize: 16, z: 4, data: one(points.findIndex((p) => p.chosen)), itemStyle: { color: '#f0883e' } },
          { name: 'loaded in the plan', type: 'scatter', symbol: 'emptyCircle', symbolSize: 24, z: 5, data: one(loaded), itemStyle: { color: '#1f8a4c', borderWidth: 3 } },
          // the keyboard's selection: a dashed ring, not in the legend
          { name: 'selected', type: 'scatter', symbol: 'emptyCircle', symbolSize: 30, z: 6, data: cursor === null ? [] : one(cursor), itemStyle: { color: dark ? '#fff' : '#111', borderType: 'dashed', borderWidth: 2 } },
        ],
      },
      true,
    );
  }, [points, loadedKey, loaded, cursor, report, metric, unit, scale, dark]);

  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    const last = points.length - 1;
    const at = cursor ?? (loaded >= 0 ? loaded : 0);
    const move: Record<string, number> = { ArrowRight: at + 1, ArrowUp: at + 1, ArrowLeft: at - 1, ArrowDown: at - 1, Home: 0, End: last };
    if (e.key in move) {
      e.preventDefault();
      setCursor(Math.min(last, Math.max(0, move[e.key]!)));
    } else if ((e.key === 'Enter' || e.key === ' ') && !disabled && points[at]) {
      e.preventDefault();
      setCursor(at);
      onLoad(points[at]);
    }
  };
  const selected = cursor !== null ? points[cursor] : undefined;
  const chosen = points.find((p) => p.chosen);
  return (
    <div>
      <div
        ref={ref}
        className="chart"
        tabIndex={0}
        // a widget of its own keys (arrows, Enter), not a still image
        role="application"
        aria-roledescription="interactive chart"
        data-testid="pareto-chart"
        onKeyDown={onKeyDown}
        onBlur={() => setCursor(null)}
        aria-label={`Pareto front: proxy loss against ${metric} for ${points.length} configurations, from ${formatCost(metric, points[0]?.cost ?? 0)} to ${formatCost(metric, points.at(-1)?.cost ?? 0)}; chosen at the budget: ${chosen ? `${formatCost(metric, chosen.cost)}, proxy ${proxyText(chosen.proxy)}` : 'none'}. Arrow keys pick a configuration, Enter loads it into the plan.`}
      />
      <p className="sr-only" aria-live="polite" data-testid="pareto-selection">
        {selected ? `${formatCost(metric, selected.cost)}, proxy ${proxyText(selected.proxy)}, ${describe(selected)}. Enter loads it.` : ''}
      </p>
      <TableToggle what="the configurations">
        <table className="blocks" data-testid="pareto-table">
          <caption className="sr-only">Configurations of the Pareto front and the uniform plans, by ascending cost</caption>
          <thead>
            <tr>
              <th scope="col">{`Cost (${unit})`}</th>
              <th scope="col">Proxy loss</th>
              <th scope="col">What</th>
              <th scope="col">Bits per layer</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {points.map((p, i) => (
              <tr key={key(p)} className={i === loaded ? 'loaded' : ''} data-bits={key(p)}>
                <td>{(p.cost / scale).toPrecision(4)}</td>
                <td>{proxyText(p.proxy)}</td>
                <td>{describe(p)}</td>
                <td className="bits">{key(p)}</td>
                <td>
                  <button type="button" className="small" disabled={disabled || i === loaded} onClick={() => onLoad(p)} aria-label={`Load the configuration at ${formatCost(metric, p.cost)} (${describe(p)}) into the plan`}>
                    {i === loaded ? 'loaded' : 'load'}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableToggle>
    </div>
  );
}
