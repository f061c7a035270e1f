import type { QuantLayer } from '../graph/layers';
import { tensorToFloat32 } from '../onnx/tensor-data';
import type { QuantizedWeight } from '../export/qdq';
import { lpSearchPerChannelSymmetric, minMaxPerChannelSymmetric, quantizeTensor, type Bits } from '../quant/quantizer';
import type { ScaleSearch } from '../plan';

/** Round-to-nearest on a per-channel grid (min–max or Lp-searched): the baseline every method is compared with. */
export function roundToNearest(layer: QuantLayer, bits: Bits, scale: ScaleSearch = 'minmax'): QuantizedWeight {
  const w = tensorToFloat32(layer.weightTensor);
  const grid = scale === 'lp' ? lpSearchPerChannelSymmetric : minMaxPerChannelSymmetric;
  const params = grid(w, layer.weightDims, layer.channelAxis, bits);
  return { layer, codes: quantizeTensor(w, layer.weightDims, params), params };
}
