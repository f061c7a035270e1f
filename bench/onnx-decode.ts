/**
 * Decoding a 100 MB ONNX model: the studio's hand-written codec against protobufjs (reflection,
 * from a minimal onnx.proto). Measures decode time and memory growth (RSS and ArrayBuffers),
 * which is what matters for models of hundreds of MB in a browser tab.
 * Run each side in its own process for clean memory figures:
 *   node --expose-gc --import tsx bench/onnx-decode.ts lowbit
 *   node --expose-gc --import tsx bench/onnx-decode.ts protobufjs
 * A file instead of the synthetic model, e.g. the model zoo's ResNet-50 (scripts/make-zoo.py):
 *   node --expose-gc --import tsx bench/onnx-decode.ts lowbit .cache/zoo/resnet50.onnx
 * Peak RSS is the process's high-water mark after decoding (the file's bytes included), with how much
 * the decode raised it: a transient peak inside the decode that RSS growth after it would miss.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import protobuf from 'protobufjs';
import { decodeModel, encodeModel } from '../src/core/onnx/codec';
import { floatTensor } from '../src/core/onnx/tensor-data';
import { tinyResNet } from '../src/core/testing/tiny-resnet';

const ONNX_SUBSET = `
syntax = "proto2";
message StringStringEntryProto { optional string key = 1; optional string value = 2; }
message OperatorSetIdProto { optional string domain = 1; optional int64 version = 2; }
message TensorProto {
  repeated int64 dims = 1; optional int32 data_type = 2;
  repeated float float_data = 4 [packed = true]; repeated int32 int32_data = 5 [packed = true];
  repeated bytes string_data = 6; repeated int64 int64_data = 7 [packed = true];
  optional string name = 8; optional bytes raw_data = 9; repeated double double_data = 10 [packed = true];
  repeated uint64 uint64_data = 11 [packed = true]; optional string doc_string = 12;
  repeated StringStringEntryProto external_data = 13; optional int32 data_location = 14;
}
message AttributeProto {
  optional string name = 1; optional float f = 2; optional int64 i = 3; optional bytes s = 4; optional TensorProto t = 5;
  optional GraphProto g = 6; repeated float floats = 7; repeated int64 ints = 8; repeated bytes strings = 9;
  repeated TensorProto tensors = 10; repeated GraphProto graphs = 11; optional int32 type = 20;
}
message NodeProto { repeated string input = 1; repeated string output = 2; optional string name = 3; optional string op_type = 4; repeated AttributeProto attribute = 5; optional string domain = 7; }
message TensorShapeProto { message Dimension { optional int64 dim_value = 1; optional string dim_param = 2; } repeated Dimension dim = 1; }
message TypeProto { message Tensor { optional int32 elem_type = 1; optional TensorShapeProto shape = 2; } optional Tensor tensor_type = 1; }
message ValueInfoProto { optional string name = 1; optional TypeProto type = 2; }
message GraphProto { repeated NodeProto node = 1; optional string name = 2; repeated TensorProto initializer = 5; repeated ValueInfoProto input = 11; repeated ValueInfoProto output = 12; repeated ValueInfoProto value_info = 13; }
message ModelProto { optional int64 ir_version = 1; repeated OperatorSetIdProto opset_import = 8; optional string producer_name = 2; optional GraphProto graph = 7; }
`;

function bigModel(): Uint8Array {
  const model = tinyResNet(1);
  // 25 × 4 MB of extra weights: a 100 MB model
  for (let i = 0; i < 25; i++) model.graph!.initializer!.push(floatTensor(`big_${i}`, [1024, 1024], new Float32Array(1024 * 1024).fill(i)));
  return encodeModel(model);
}

const gc = (globalThis as { gc?: () => void }).gc;
const which = process.argv[2] ?? 'lowbit';
const file = process.argv[3];
const bytes: Uint8Array = file ? readFileSync(file) : bigModel();
// schema parsing is a one-off: keep it out of the timed decode
const Model = protobuf.parse(ONNX_SUBSET).root.lookupType('ModelProto');
gc?.();
const before = process.memoryUsage();
const peakBefore = process.resourceUsage().maxRSS * 1024;
const t0 = performance.now();
let tensors = 0;
if (which === 'lowbit') {
  const m = decodeModel(bytes);
  tensors = m.graph!.initializer!.length;
} else {
  const m = Model.decode(bytes) as unknown as { graph: { initializer: unknown[] } };
  tensors = m.graph.initializer.length;
}
const ms = performance.now() - t0;
const after = process.memoryUsage();
const peak = process.resourceUsage().maxRSS * 1024;
const mb = (x: number): string => (x / 2 ** 20).toFixed(1);
const model = `${file ? `${basename(file)}, ` : ''}${mb(bytes.length)} MB`;
console.log(
  `| ${which} | ${model} | ${tensors} | ${ms.toFixed(1)} ms | +${mb(after.rss - before.rss)} MB | +${mb(after.arrayBuffers - before.arrayBuffers)} MB | ${mb(peak)} MB (+${mb(peak - peakBefore)}) |`,
);
