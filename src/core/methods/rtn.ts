import type { QuantLayer } from '../graph/layers';
import { tensorToFloat32 } from '../onnx/tensor-data';
import type { QuantizedWeight } from '../export/qdq';
import { quantizeTensor, weightParams, type Bits, type StepInit } from '../quant/quantizer';
import { weightGrid, type GroupSize, type WeightGridKind } from '../plan';

/** Round-to-nearest on the plan's per-channel or per-group grid: the baseline every method is compared with. */
export function roundToNearest(layer: QuantLayer, bits: Bits, init: StepInit = 'minmax', groupSize?: GroupSize, grid: WeightGridKind = 'asymmetric'): QuantizedWeight {
  const w = tensorToFloat32(layer.weightTensor);
  const params = weightParams(w, layer.weightDims, weightGrid(bits, grid, groupSize, layer.channelAxis), init);
  return { layer, codes: quantizeTensor(w, layer.weightDims, params), params };
}
