/**
 * The ONNX messages the studio reads and writes (onnx.proto, IR 3–10+), as plain TypeScript objects.
 * Field numbers follow onnx/onnx.proto. Fields this table does not name are kept verbatim in
 * `unknownFields` and written back, so a model survives a round trip even when it uses parts of
 * ONNX the studio does not interpret (training info, functions, sparse initializers…).
 */

export enum DataType {
  UNDEFINED = 0,
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  UINT16 = 4,
  INT16 = 5,
  INT32 = 6,
  INT64 = 7,
  STRING = 8,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
  UINT32 = 12,
  UINT64 = 13,
  COMPLEX64 = 14,
  COMPLEX128 = 15,
  BFLOAT16 = 16,
  FLOAT8E4M3FN = 17,
  FLOAT8E4M3FNUZ = 18,
  FLOAT8E5M2 = 19,
  FLOAT8E5M2FNUZ = 20,
  UINT4 = 21,
  INT4 = 22,
  FLOAT4E2M1 = 23,
  FLOAT8E8M0 = 24,
  UINT2 = 25,
  INT2 = 26,
}

export enum AttributeType {
  UNDEFINED = 0,
  FLOAT = 1,
  INT = 2,
  STRING = 3,
  TENSOR = 4,
  GRAPH = 5,
  FLOATS = 6,
  INTS = 7,
  STRINGS = 8,
  TENSORS = 9,
  GRAPHS = 10,
  SPARSE_TENSOR = 11,
  SPARSE_TENSORS = 12,
  TYPE_PROTO = 13,
  TYPE_PROTOS = 14,
}

interface Unknown {
  /** Serialized fields this schema does not model, re-emitted verbatim on encode. */
  unknownFields?: Uint8Array[];
}

export interface StringStringEntry extends Unknown {
  key?: string;
  value?: string;
}

export interface OperatorSetId extends Unknown {
  domain?: string;
  version?: number;
}

export interface TensorProto extends Unknown {
  dims?: number[];
  dataType?: DataType;
  name?: string;
  docString?: string;
  /** A view into the source bytes; never copied on decode. */
  rawData?: Uint8Array;
  floatData?: Float32Array;
  int32Data?: number[];
  int64Data?: number[];
  doubleData?: Float64Array;
  uint64Data?: number[];
  stringData?: Uint8Array[];
  externalData?: StringStringEntry[];
  /** 0 = DEFAULT, 1 = EXTERNAL */
  dataLocation?: number;
}

export interface Dimension extends Unknown {
  dimValue?: number;
  dimParam?: string;
  denotation?: string;
}

export interface TensorShape extends Unknown {
  dim?: Dimension[];
}

export interface TensorTypeProto extends Unknown {
  elemType?: DataType;
  shape?: TensorShape;
}

export interface TypeProto extends Unknown {
  tensorType?: TensorTypeProto;
  denotation?: string;
}

export interface ValueInfo extends Unknown {
  name?: string;
  type?: TypeProto;
  docString?: string;
}

export interface Attribute extends Unknown {
  name?: string;
  refAttrName?: string;
  docString?: string;
  type?: AttributeType;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
}

export interface NodeProto extends Unknown {
  input?: string[];
  output?: string[];
  name?: string;
  opType?: string;
  domain?: string;
  attribute?: Attribute[];
  docString?: string;
}

export interface GraphProto extends Unknown {
  node?: NodeProto[];
  name?: string;
  initializer?: TensorProto[];
  docString?: string;
  input?: ValueInfo[];
  output?: ValueInfo[];
  valueInfo?: ValueInfo[];
}

export interface ModelProto extends Unknown {
  irVersion?: number;
  opsetImport?: OperatorSetId[];
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: number;
  docString?: string;
  graph?: GraphProto;
  metadataProps?: StringStringEntry[];
}

/** How one field is stored on the wire. */
export type FieldKind =
  | 'int' // varint: int32, int64, enum
  | 'float' // fixed32
  | 'double' // fixed64
  | 'string'
  | 'bytes'
  | 'floatArray' // repeated float, into a Float32Array; packed or not
  | 'doubleArray' // repeated double, into a Float64Array; packed or not
  | MessageSchema;

export interface FieldSpec {
  num: number;
  name: string;
  kind: FieldKind;
  repeated?: boolean;
  /** Write repeated scalars packed (onnx.proto marks only TensorProto's data arrays `[packed = true]`). */
  packed?: boolean;
}

export interface MessageSchema {
  name: string;
  fields: FieldSpec[];
  /** Filled lazily: field number → spec. */
  byNum?: Map<number, FieldSpec>;
}

const msg = (name: string, fields: FieldSpec[]): MessageSchema => ({ name, fields });
const f = (num: number, name: string, kind: FieldKind, repeated = false, packed = false): FieldSpec => ({ num, name, kind, repeated, packed });

export const StringStringEntrySchema = msg('StringStringEntryProto', [f(1, 'key', 'string'), f(2, 'value', 'string')]);
export const OperatorSetIdSchema = msg('OperatorSetIdProto', [f(1, 'domain', 'string'), f(2, 'version', 'int')]);
export const TensorSchema = msg('TensorProto', [
  f(1, 'dims', 'int', true),
  f(2, 'dataType', 'int'),
  f(4, 'floatData', 'floatArray', true, true),
  f(5, 'int32Data', 'int', true, true),
  f(6, 'stringData', 'bytes', true),
  f(7, 'int64Data', 'int', true, true),
  f(8, 'name', 'string'),
  f(9, 'rawData', 'bytes'),
  f(10, 'doubleData', 'doubleArray', true, true),
  f(11, 'uint64Data', 'int', true, true),
  f(12, 'docString', 'string'),
  f(13, 'externalData', StringStringEntrySchema, true),
  f(14, 'dataLocation', 'int'),
]);
export const DimensionSchema = msg('TensorShapeProto.Dimension', [f(1, 'dimValue', 'int'), f(2, 'dimParam', 'string'), f(3, 'denotation', 'string')]);
export const TensorShapeSchema = msg('TensorShapeProto', [f(1, 'dim', DimensionSchema, true)]);
export const TensorTypeSchema = msg('TypeProto.Tensor', [f(1, 'elemType', 'int'), f(2, 'shape', TensorShapeSchema)]);
export const TypeSchema = msg('TypeProto', [f(1, 'tensorType', TensorTypeSchema), f(6, 'denotation', 'string')]);
export const ValueInfoSchema = msg('ValueInfoProto', [f(1, 'name', 'string'), f(2, 'type', TypeSchema), f(3, 'docString', 'string')]);
export const GraphSchema: MessageSchema = msg('GraphProto', []);
export const AttributeSchema = msg('AttributeProto', [
  f(1, 'name', 'string'),
  f(21, 'refAttrName', 'string'),
  f(13, 'docString', 'string'),
  f(20, 'type', 'int'),
  f(2, 'f', 'float'),
  f(3, 'i', 'int'),
  f(4, 's', 'bytes'),
  f(5, 't', TensorSchema),
  f(6, 'g', GraphSchema),
  f(7, 'floats', 'float', true),
  f(8, 'ints', 'int', true),
  f(9, 'strings', 'bytes', true),
  f(10, 'tensors', TensorSchema, true),
  f(11, 'graphs', GraphSchema, true),
]);
export const NodeSchema = msg('NodeProto', [
  f(1, 'input', 'string', true),
  f(2, 'output', 'string', true),
  f(3, 'name', 'string'),
  f(4, 'opType', 'string'),
  f(7, 'domain', 'string'),
  f(5, 'attribute', AttributeSchema, true),
  f(6, 'docString', 'string'),
]);
GraphSchema.fields.push(
  f(1, 'node', NodeSchema, true),
  f(2, 'name', 'string'),
  f(5, 'initializer', TensorSchema, true),
  f(10, 'docString', 'string'),
  f(11, 'input', ValueInfoSchema, true),
  f(12, 'output', ValueInfoSchema, true),
  f(13, 'valueInfo', ValueInfoSchema, true),
);
export const ModelSchema = msg('ModelProto', [
  f(1, 'irVersion', 'int'),
  f(8, 'opsetImport', OperatorSetIdSchema, true),
  f(2, 'producerName', 'string'),
  f(3, 'producerVersion', 'string'),
  f(4, 'domain', 'string'),
  f(5, 'modelVersion', 'int'),
  f(6, 'docString', 'string'),
  f(7, 'graph', GraphSchema),
  f(14, 'metadataProps', StringStringEntrySchema, true),
]);
