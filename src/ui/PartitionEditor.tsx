import { useEffect, useState } from 'react';
import { useStudio } from '../state/store';
import { studioWorker } from '../state/studio-worker';
import type { BlockInfo } from '../common/protocol';
import type { PartitionEdit } from '../core/graph/partition';

/**
 * The blocks a block method reconstructs one at a time, with the user's edits: merge a block with
 * the next one, or split one after a layer. Edits live in the plan, so a saved plan keeps them.
 */
export function PartitionEditor({ disabled }: { disabled: boolean }) {
  const { plan, setPlan, project } = useStudio();
  const [blocks, setBlocks] = useState<readonly BlockInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const granularity = plan.granularity ?? 'block';
  const edits = plan.partitionEdits ?? [];
  const key = JSON.stringify([project?.modelName, granularity, edits]);
  useEffect(() => {
    let live = true;
    studioWorker()
      .partition(granularity, edits)
      .then((b) => live && (setBlocks(b), setError(null)))
      .catch((e: unknown) => live && setError((e instanceof Error ? e.message : String(e)).replace(/^\w*Error: /, '')));
    return () => void (live = false);
    // the key covers granularity and edits by value
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  const edit = (e: PartitionEdit) => setPlan({ partitionEdits: [...edits, e] });
  return (
    <fieldset className="partition" aria-label="Blocks to reconstruct">
      <legend>Blocks ({blocks?.length ?? '…'})</legend>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <ol data-testid="partition">
        {blocks?.map((b, i) => (
          <li key={b.id}>
            <span className="chip" title={`${b.kind}: ${b.layers.join(', ')}`}>
              {b.id}
            </span>{' '}
            <span className="hint">{b.layers.length} layer{b.layers.length === 1 ? '' : 's'}</span>{' '}
            {i + 1 < blocks.length && (
              <button type="button" className="small" disabled={disabled} onClick={() => edit({ merge: [b.id, blocks[i + 1]!.id] })} aria-label={`Merge ${b.id} with ${blocks[i + 1]!.id}`}>
                merge with next
              </button>
            )}
            {b.layers.length > 1 && (
              <select
                className="small"
                disabled={disabled}
                value=""
                aria-label={`Split ${b.id} after a layer`}
                onChange={(e) => e.target.value && edit({ split: b.id, after: e.target.value })}
              >
                <option value="">split after…</option>
                {b.layers.slice(0, -1).map((l) => (
                  <option key={l} value={l}>
                    {l}
                  </option>
                ))}
              </select>
            )}
          </li>
        ))}
      </ol>
      {edits.length > 0 && (
        <button type="button" className="small" disabled={disabled} onClick={() => setPlan({ partitionEdits: [] })}>
          Undo all edits ({edits.length})
        </button>
      )}
    </fieldset>
  );
}
