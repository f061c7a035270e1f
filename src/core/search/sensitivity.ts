import type { ModelProto } from '../onnx/schema';
import type { QuantLayer } from '../graph/layers';
import type { Block } from '../graph/partition';
import type { ImageBatches } from '../data/batches';
import { captureTensors, type Captured } from '../quant/calibrate';
import { dequantizeTensor, quantizeTensor, weightParams, type Bits, type StepInit } from '../quant/quantizer';
import { BlockProgram } from '../engine/block-program';
import type { WasmConvPool } from '../engine/conv-engine';
import type { Nd } from '../backends/cpu/reference';
import { reconstructWeights } from '../methods/reconstruct';
import { weightGrid, type WeightGridKind } from '../plan';
import { throwIfAborted, yieldToEventLoop } from '../events';
import type { SearchEmit } from './events';

/**
 * Layer sensitivities for mixed precision (algorithms.md §3.5): for every quantizable layer and
 * candidate bit width, the loss of the layer's block when only that layer is lowered to that width
 * (the block's other layers at the highest candidate), and for every pair of layers of the same
 * block, the extra loss when both are at the lowest width. Pairs across blocks are not measured:
 * BRECQ's block-diagonal assumption.
 *
 * The loss is the block output's relative error on the calibration set, Σ(ŷ − y)² / Σy², with y
 * the float model's block output and the block fed the float model's block input. Relative errors
 * of successive blocks add up roughly as noise does, so the proxy of a configuration is their sum.
 *
 * - 'cheap': round-to-nearest weights, one forward pass of the block per entry.
 * - 'reconstructed': each entry after a short BRECQ reconstruction of the block (AdaRound
 *   variables learned jointly for the block), as §3.5 and pitfall 14 ask: round-to-nearest error
 *   overstates what reconstruction cannot fix, most of all at 2 bits.
 */

export type SensitivityMode = 'cheap' | 'reconstructed';

export const SENSITIVITY_LABELS: Readonly<Record<SensitivityMode, string>> = {
  cheap: 'cheap (round-to-nearest)',
  reconstructed: 'reconstructed (BRECQ)',
};

export interface SensitivityInput {
  /** The canonical (BN-folded) model. */
  readonly model: ModelProto;
  readonly layers: readonly QuantLayer[];
  /** The partition the proxy assumes independent (normally the 'block' partition). */
  readonly blocks: readonly Block[];
  readonly calib: ImageBatches;
  readonly convs: WasmConvPool;
}

export interface SensitivityOptions {
  readonly mode: SensitivityMode;
  /** Candidate weight bit widths (default 2, 4, 8). */
  readonly bits?: readonly Bits[];
  /** Reconstructed mode: BRECQ iterations per block and entry (default 200). */
  readonly iters?: number;
  /** Weight step sizes: BRECQ's Lp search (default) or min–max. */
  readonly scale?: StepInit;
  /** The weight grid below 8 bits (default asymmetric, as a quantize run's). */
  readonly weightGrid?: WeightGridKind;
  /** Same-block pair terms at the lowest candidate width (default true). */
  readonly pairs?: boolean;
  readonly seed?: number;
}

export const DEFAULT_CANDIDATE_BITS: readonly Bits[] = [2, 4, 8];
export const DEFAULT_SENSITIVITY_ITERS = 200;

export interface LayerSensitivity {
  readonly name: string;
  readonly block: string;
  /** Block loss with this layer at `bits[k]` and the rest of its block at the highest candidate. */
  readonly loss: readonly number[];
  /** loss[k] minus the block's loss with every layer at the highest candidate: the proxy's diagonal term. */
  readonly delta: readonly number[];
}

export interface PairSensitivity {
  readonly block: string;
  readonly a: string;
  readonly b: string;
  readonly bits: Bits;
  /** Block loss with both layers at `bits`, the rest at the highest candidate. */
  readonly loss: number;
  /** loss − (single losses of a and b) + base: the extra loss of lowering both, the proxy's off-diagonal term. */
  readonly extra: number;
}

/** The sensitivity lookup table. Plain JSON: it can be saved, shown and fed back to a search. */
export interface SensitivityTable {
  readonly kind: 'lowbit-sensitivity';
  readonly version: 1;
  readonly mode: SensitivityMode;
  /** For display: "cheap (round-to-nearest)" or "reconstructed (BRECQ, N iterations)". */
  readonly label: string;
  readonly metric: 'block-output relative error';
  /** Candidate bit widths, ascending; `loss` and `delta` arrays follow this order. */
  readonly bits: readonly Bits[];
  /** The width the pair terms were measured at; null when pairs were not measured. */
  readonly pairBits: Bits | null;
  readonly iters: number | null;
  readonly scale: StepInit;
  readonly images: number;
  readonly seed: number;
  /** Each block with its loss at the highest candidate everywhere. */
  readonly blocks: readonly { readonly id: string; readonly layers: readonly string[]; readonly base: number }[];
  /** Layers in graph order: the genome order of the search. */
  readonly layers: readonly LayerSensitivity[];
  readonly pairs: readonly PairSensitivity[];
  readonly seconds: number;
}

export class SensitivityError extends Error {
  override name = 'SensitivityError';
}

/** Σ(ŷ − y)² / Σy², or the plain squared error when the target is all zeros. */
function relativeError(err: number, sig: number): number {
  return sig > 0 ? err / sig : err;
}

/** Round-to-nearest weights of a block at one configuration: the block's float input through it, against the float output. */
class CheapBlock {
  private readonly cache = new Map<string, Nd>();
  constructor(
    private readonly program: BlockProgram,
    private readonly inputs: Captured,
    private readonly targets: Captured,
    private readonly scale: StepInit,
    private readonly grid: WeightGridKind,
  ) {}

  private weight(slot: number, bits: Bits): Nd {
    const key = `${slot}:${bits}`;
    let w = this.cache.get(key);
    if (!w) {
      const { weight } = this.program.slots[slot]!;
      const p = weightParams(weight.data, weight.shape, weightGrid(bits, this.grid, undefined, 0), this.scale);
      w = { shape: weight.shape, data: dequantizeTensor(quantizeTensor(weight.data, weight.shape, p), weight.shape, p) };
      this.cache.set(key, w);
    }
    return w;
  }

  async loss(bitsOf: (layer: string) => Bits, signal?: AbortSignal): Promise<number> {
    const weights = this.program.slots.map((s, k) => this.weight(k, bitsOf(s.layer.name)));
    const n = this.inputs.shape[0]!;
    const per = this.inputs.data.length / n;
    const perOut = this.targets.data.length / n;
    let err = 0;
    let sig = 0;
    for (let start = 0; start < n; start += 32) {
      throwIfAborted(signal);
      const end = Math.min(n, start + 32);
      const x: Nd = { shape: [end - start, ...this.inputs.shape.slice(1)], data: this.inputs.data.slice(start * per, end * per) };
      const y = this.program.forward(x, weights).output.data;
      const t = this.targets.data.subarray(start * perOut, end * perOut);
      for (let i = 0; i < y.length; i++) {
        sig += t[i]! * t[i]!;
        err += (t[i]! - y[i]!) ** 2;
      }
      await yieldToEventLoop();
    }
    return relativeError(err, sig);
  }
}

/** One entry of a block: which of its layers are lowered, to what. */
interface Entry {
  readonly lowered: ReadonlyMap<string, Bits>;
}

/** Measures the table. Progress counts block evaluations (one per entry). */
export async function measureSensitivity(input: SensitivityInput, options: SensitivityOptions, emit: SearchEmit = () => {}, signal?: AbortSignal): Promise<SensitivityTable> {
  const t0 = performance.now();
  const bits = [...new Set(options.bits ?? DEFAULT_CANDIDATE_BITS)].sort((a, b) => a - b);
  if (bits.length < 2) throw new SensitivityError('a mixed-precision search needs at least two candidate bit widths');
  const top = bits.at(-1)!;
  const low = bits[0]!;
  const scale = options.scale ?? 'lp';
  const grid = options.weightGrid ?? 'asymmetric';
  const seed = options.seed ?? 0;
  const iters = options.mode === 'reconstructed' ? (options.iters ?? DEFAULT_SENSITIVITY_ITERS) : null;
  const withPairs = options.pairs !== false;
  const { model, layers, calib } = input;

  const blocks = input.blocks.filter((b) => b.layers.length > 0);
  const blockOf = new Map<string, Block>();
  for (const b of blocks) for (const l of b.layers) blockOf.set(l, b);
  for (const l of layers) if (!blockOf.has(l.name)) throw new SensitivityError(`layer "${l.name}" belongs to no block of the partition`);

  // every entry of every block, counted first so that progress has a total
  const plan = blocks.map((block) => {
    const entries: Entry[] = [{ lowered: new Map() }];
    for (const l of block.layers) for (const b of bits) if (b !== top) entries.push({ lowered: new Map([[l, b]]) });
    const pairs: [string, string][] = [];
    if (withPairs) for (let i = 0; i < block.layers.length; i++) for (let j = i + 1; j < block.layers.length; j++) pairs.push([block.layers[i]!, block.layers[j]!]);
    for (const [a, b] of pairs) entries.push({ lowered: new Map([[a, low], [b, low]]) });
    return { block, entries, pairs };
  });
  const total = plan.reduce((a, p) => a + p.entries.length, 0);
  let done = 0;
  emit({ type: 'phase', phase: 'sensitivity' });

  const results = new Map<Block, number[]>();
  for (const { block, entries } of plan) {
    throwIfAborted(signal);
    const losses: number[] = [];
    if (options.mode === 'cheap') {
      const program = BlockProgram.compile(model, block, layers, await input.convs.factory());
      const cap = await captureTensors(model, [block.input, block.output], calib, signal);
      const cheap = new CheapBlock(program, cap.get(block.input)!, cap.get(block.output)!, scale, grid);
      for (const e of entries) {
        losses.push(await cheap.loss((l) => e.lowered.get(l) ?? top, signal));
        emit({ type: 'progress', phase: 'sensitivity', done: ++done, total });
      }
    } else {
      for (const e of entries) {
        const base = done;
        const r = await reconstructWeights(
          {
            model,
            layers,
            blocks: [block],
            bitsFor: (l) => e.lowered.get(l.name) ?? top,
            scale,
            weightGrid: grid,
            skip: () => false,
            calib,
            convs: input.convs,
            options: { iters: iters!, seed },
          },
          'brecq',
          null,
          (ev) => {
            if (ev.type === 'progress' && ev.total > 0) emit({ type: 'progress', phase: 'sensitivity', done: base + ev.done / ev.total, total });
          },
          signal,
        );
        const m = r.blocks[0];
        if (!m) throw new SensitivityError(`block "${block.id}" was not reconstructed`);
        // SQNR +∞: no error; −∞: an all-zero target (counted as 100% error, which keeps the table JSON)
        losses.push(Number.isFinite(m.sqnrDb) ? 10 ** (-m.sqnrDb / 10) : m.sqnrDb > 0 ? 0 : 1);
        emit({ type: 'progress', phase: 'sensitivity', done: ++done, total });
      }
    }
    results.set(block, losses);
  }

  const baseOf = new Map(plan.map(({ block }) => [block.id, results.get(block)![0]!]));
  const singles = new Map<string, number>();
  for (const { block, entries } of plan) {
    entries.forEach((e, k) => {
      if (e.lowered.size === 1) {
        const [[l, b]] = [...e.lowered] as [[string, Bits]];
        singles.set(`${l}@${b}`, results.get(block)![k]!);
      }
    });
  }
  const single = (l: string, b: Bits): number => (b === top ? baseOf.get(blockOf.get(l)!.id)! : singles.get(`${l}@${b}`)!);
  const layerRows: LayerSensitivity[] = layers.map((l) => {
    const block = blockOf.get(l.name)!.id;
    const loss = bits.map((b) => single(l.name, b));
    return { name: l.name, block, loss, delta: loss.map((v) => v - baseOf.get(block)!) };
  });
  const pairRows: PairSensitivity[] = plan.flatMap(({ block, entries, pairs }) => {
    const offset = entries.length - pairs.length;
    return pairs.map(([a, b], k) => {
      const loss = results.get(block)![offset + k]!;
      return { block: block.id, a, b, bits: low, loss, extra: loss - single(a, low) - single(b, low) + baseOf.get(block.id)! };
    });
  });
  return {
    kind: 'lowbit-sensitivity',
    version: 1,
    mode: options.mode,
    label: options.mode === 'cheap' ? SENSITIVITY_LABELS.cheap : `reconstructed (BRECQ, ${iters} iterations)`,
    metric: 'block-output relative error',
    bits,
    pairBits: withPairs ? low : null,
    iters,
    scale,
    images: calib.count,
    seed,
    blocks: plan.map(({ block }) => ({ id: block.id, layers: block.layers, base: baseOf.get(block.id)! })),
    layers: layerRows,
    pairs: pairRows,
    seconds: (performance.now() - t0) / 1000,
  };
}

/**
 * The accuracy proxy of a configuration: Σ block bases + Σ diagonal terms + Σ pair terms of
 * same-block pairs that are both at the pair width. `choice[i]` indexes `table.bits` for
 * `table.layers[i]`. Compiled once, evaluated in O(layers + pairs).
 */
export function compileProxy(table: SensitivityTable): (choice: ArrayLike<number>) => number {
  const K = table.bits.length;
  const delta = new Float64Array(table.layers.length * K);
  table.layers.forEach((l, i) => l.delta.forEach((d, k) => (delta[i * K + k] = d)));
  const base = table.blocks.reduce((a, b) => a + b.base, 0);
  const index = new Map(table.layers.map((l, i) => [l.name, i]));
  const pairIdx = table.pairBits === null ? -1 : table.bits.indexOf(table.pairBits);
  const pa = Int32Array.from(table.pairs, (p) => index.get(p.a)!);
  const pb = Int32Array.from(table.pairs, (p) => index.get(p.b)!);
  const extra = Float64Array.from(table.pairs, (p) => p.extra);
  return (choice) => {
    let s = base;
    for (let i = 0; i < table.layers.length; i++) s += delta[i * K + choice[i]!]!;
    for (let p = 0; p < extra.length; p++) if (choice[pa[p]!] === pairIdx && choice[pb[p]!] === pairIdx) s += extra[p]!;
    return s;
  };
}

/** The proxy of a `layerBits` map (every layer of the table must have one of its candidate widths). */
export function proxyLoss(table: SensitivityTable, layerBits: Readonly<Record<string, Bits>>): number {
  const choice = table.layers.map((l) => {
    const k = table.bits.indexOf(layerBits[l.name]!);
    if (k < 0) throw new SensitivityError(`layer "${l.name}" is at ${layerBits[l.name] ?? 'no'} bits, which is not a candidate of the table (${table.bits.join(', ')})`);
    return k;
  });
  return compileProxy(table)(choice);
}
