import { describe, expect, it } from 'vitest';
import { decodeModel, encodeModel } from './codec';
import type { ModelProto } from './schema';
import { tinyResNet } from '../testing/tiny-resnet';
import { randn, rng } from '../random';
import { loadModel, ModelInputError } from '../pipeline';
import { ModelSession } from '../eval/runtime';

/** Moves every initializer's bytes into one external file, the layout `onnx.save(..., save_as_external_data=True)` writes. */
function externalise(model: ModelProto): { model: ModelProto; data: Uint8Array } {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const initializer = model.graph!.initializer!.map((t) => {
    const raw = t.rawData!;
    const pad = (64 - (offset % 64)) % 64; // aligned, like the Python writer
    chunks.push(new Uint8Array(pad), raw);
    offset += pad;
    const entry = { ...t, rawData: undefined, dataLocation: 1, externalData: [{ key: 'location', value: 'weights.data' }, { key: 'offset', value: String(offset) }, { key: 'length', value: String(raw.length) }] };
    offset += raw.length;
    return entry;
  });
  const data = new Uint8Array(offset);
  let o = 0;
  for (const c of chunks) {
    data.set(c, o);
    o += c.length;
  }
  return { model: { ...model, graph: { ...model.graph!, initializer } }, data };
}

describe('external data', () => {
  it('loads a model whose weights live in a .data file and computes what the inline model computes', async () => {
    const inline = tinyResNet(12);
    const { model, data } = externalise(inline);
    const bytes = encodeModel(model);
    expect(decodeModel(bytes).graph!.initializer!.every((t) => !t.rawData)).toBe(true);
    const loaded = await loadModel(bytes, new Map([['weights.data', data]]));
    const x = randn(64, rng(1));
    const run = async (m: Uint8Array) => {
      const s = await ModelSession.create(m, 'all');
      const out = (await s.run(x, [1, 1, 8, 8])).get('logits')!.data;
      await s.release();
      return Array.from(out);
    };
    expect(await run(encodeModel(loaded.proto))).toEqual(await run(encodeModel(inline)));
    expect(decodeModel(bytes).graph!.initializer![0]!.dataLocation).toBe(1);
  });

  it('names the missing file when the .data was not provided', async () => {
    const { model } = externalise(tinyResNet(12));
    await expect(loadModel(encodeModel(model))).rejects.toThrow(ModelInputError);
    await expect(loadModel(encodeModel(model))).rejects.toThrow(/weights\.data/);
  });
});
