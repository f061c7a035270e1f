import { useStudio } from '../state/store';
import type { LayerSummary, ModelSummary } from '../core/graph/summary';

const fmt = (n: number): string => n.toLocaleString('en-US');

/** Millions or thousands, for a block's totals in its one-line heading. */
const short = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n));

function opLabel(l: LayerSummary): string {
  if (l.kind === 'gemm') return 'Gemm';
  if (l.kind === 'matmul') return 'MatMul';
  // a convolution's kernel is its weight's trailing dimensions
  return `Conv ${l.weightShape.slice(2).join('×')}`;
}

interface Group {
  readonly id: string;
  readonly kind: string;
  readonly layers: readonly LayerSummary[];
}

/** The model's quantizable layers grouped by block, in order; layers outside every block (or every layer, without a partition) form their own group. */
function groupsOf(summary: ModelSummary): Group[] {
  const byName = new Map(summary.layers.map((l) => [l.name, l]));
  const groups: Group[] = (summary.blocks ?? []).map((b) => ({ id: b.id, kind: b.kind, layers: b.layers.map((n) => byName.get(n)).filter((l): l is LayerSummary => !!l) }));
  const placed = new Set(groups.flatMap((g) => g.layers.map((l) => l.name)));
  const rest = summary.layers.filter((l) => !placed.has(l.name));
  if (rest.length) groups.push({ id: groups.length ? 'other layers' : 'all layers', kind: 'layers', layers: rest });
  return groups;
}

const total = (layers: readonly LayerSummary[], key: 'params' | 'macs'): number | null => (layers.some((l) => l[key] === null) ? null : layers.reduce((a, l) => a + (l[key] ?? 0), 0));

/** The graph as its blocks, each one collapsible, with every layer's op, shapes, parameters and MACs. */
export function ModelView() {
  const summary = useStudio((s) => s.project?.summary);
  if (!summary) return null;
  const groups = groupsOf(summary);
  return (
    <section className="card wide" aria-labelledby="graph-title">
      <h2 id="graph-title">Layers by block</h2>
      <p className="hint">The quantizable layers (Conv, Gemm, MatMul), block by block as BRECQ and QDrop reconstruct them. Shapes at batch 1; MACs per image.</p>
      <div data-testid="model-view">
        {groups.map((g, i) => {
          const macs = total(g.layers, 'macs');
          return (
            <details key={g.id} className="block-group" open={i === 0}>
              <summary>
                <b>{g.id}</b> <span className="hint">{`${g.kind} · ${g.layers.length} layer${g.layers.length === 1 ? '' : 's'} · ${short(total(g.layers, 'params')!)} parameters${macs === null ? '' : ` · ${short(macs)} MACs`}`}</span>
              </summary>
              <table className="blocks layers">
                <thead>
                  <tr>
                    <th scope="col">Layer</th>
                    <th scope="col">Op</th>
                    <th scope="col">Weight</th>
                    <th scope="col">Output</th>
                    <th scope="col">Parameters</th>
                    <th scope="col">MACs</th>
                  </tr>
                </thead>
                <tbody>
                  {g.layers.map((l) => (
                    <tr key={l.name}>
                      <td>{l.name}</td>
                      <td>{opLabel(l)}</td>
                      <td>{l.weightShape.join('×')}</td>
                      <td>{l.outputShape?.join('×') ?? '?'}</td>
                      <td>{fmt(l.params)}</td>
                      <td>{l.macs === null ? '?' : fmt(l.macs)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </details>
          );
        })}
      </div>
    </section>
  );
}
