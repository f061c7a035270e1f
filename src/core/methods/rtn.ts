import type { QuantLayer } from '../graph/layers';
import { tensorToFloat32, type ExternalFiles } from '../onnx/tensor-data';
import type { QuantizedWeight } from '../export/qdq';
import { minMaxPerChannelSymmetric, quantizeTensor, type Bits } from '../quant/quantizer';

/** Round-to-nearest on a per-channel min–max grid: the baseline every method is compared with. */
export function roundToNearest(layer: QuantLayer, bits: Bits, external?: ExternalFiles): QuantizedWeight {
  const w = tensorToFloat32(layer.weightTensor, external);
  const params = minMaxPerChannelSymmetric(w, layer.weightDims, layer.channelAxis, bits);
  return { layer, codes: quantizeTensor(w, layer.weightDims, params), params };
}
