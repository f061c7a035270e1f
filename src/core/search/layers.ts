import type { ModelProto } from '../onnx/schema';
import { findQuantLayers } from '../graph/layers';
import { layerCostInfo, type LayerCostInfo } from './cost';

/** A quantizable layer as the studio's search view needs it: its cost facts, and whether the head/stem rule pins it. */
export interface SearchLayer extends LayerCostInfo {
  readonly isFirst: boolean;
  readonly isLast: boolean;
}

/** The quantizable layers of a canonical (BN-folded) model, in graph order: the search's layers. */
export function searchLayersOf(model: ModelProto): SearchLayer[] {
  const layers = findQuantLayers(model);
  const costs = layerCostInfo(model, layers);
  return layers.map((l, i) => ({ ...costs[i]!, isFirst: l.isFirst, isLast: l.isLast }));
}
