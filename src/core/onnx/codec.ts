import { decodeUtf8, encodeUtf8, ProtobufError, Reader, WireType, Writer } from './wire';
import { ModelSchema, type FieldSpec, type MessageSchema, type ModelProto } from './schema';

export class OnnxDecodeError extends Error {
  override name = 'OnnxDecodeError';
}

function specs(schema: MessageSchema): Map<number, FieldSpec> {
  if (!schema.byNum) schema.byNum = new Map(schema.fields.map((s) => [s.num, s]));
  return schema.byNum;
}

type Obj = Record<string, unknown> & { unknownFields?: Uint8Array[] };

function readScalar(r: Reader, kind: 'int' | 'float' | 'double' | 'string' | 'bytes', wire: number): number | string | Uint8Array {
  switch (kind) {
    case 'int':
      if (wire !== WireType.Varint) throw new ProtobufError(`expected varint, got wire type ${wire}`);
      return r.varint();
    case 'float':
      if (wire !== WireType.Fixed32) throw new ProtobufError(`expected fixed32, got wire type ${wire}`);
      return r.float32();
    case 'double':
      if (wire !== WireType.Fixed64) throw new ProtobufError(`expected fixed64, got wire type ${wire}`);
      return r.float64();
    case 'string':
      return decodeUtf8(r.bytes());
    case 'bytes':
      return r.bytes();
  }
}

function readFloatArray(r: Reader, wire: number, prev: Float32Array | undefined, double: boolean): Float32Array | Float64Array {
  const width = double ? 8 : 4;
  let add: Float32Array | Float64Array;
  if (wire === WireType.LengthDelimited) {
    const b = r.bytes();
    if (b.length % width) throw new ProtobufError('packed float array with a partial element');
    // copy: the view may be unaligned
    const copy = b.slice();
    add = double ? new Float64Array(copy.buffer) : new Float32Array(copy.buffer);
  } else {
    add = double ? Float64Array.of(r.float64()) : Float32Array.of(r.float32());
  }
  if (!prev || prev.length === 0) return add;
  const out = double ? new Float64Array(prev.length + add.length) : new Float32Array(prev.length + add.length);
  out.set(prev);
  out.set(add, prev.length);
  return out;
}

function decodeMessage(r: Reader, schema: MessageSchema): Obj {
  const out: Obj = {};
  const table = specs(schema);
  while (!r.done) {
    const start = r.pos;
    const key = r.varint();
    const num = Math.floor(key / 8);
    const wire = key & 7;
    const spec = table.get(num);
    if (!spec) {
      r.skip(wire);
      (out.unknownFields ??= []).push(r.buf.subarray(start, r.pos));
      continue;
    }
    const { kind, name } = spec;
    if (kind === 'floatArray' || kind === 'doubleArray') {
      out[name] = readFloatArray(r, wire, out[name] as Float32Array | undefined, kind === 'doubleArray');
    } else if (typeof kind === 'object') {
      if (wire !== WireType.LengthDelimited) throw new ProtobufError(`${schema.name}.${name}: expected a message`);
      const len = r.varint();
      if (r.pos + len > r.end) throw new ProtobufError(`${schema.name}.${name}: truncated sub-message`);
      const sub = new Reader(r.buf, r.pos + len);
      sub.pos = r.pos;
      const value = decodeMessage(sub, kind);
      r.pos += len;
      if (spec.repeated) ((out[name] ??= []) as unknown[]).push(value);
      else out[name] = value;
    } else if (spec.repeated) {
      const arr = (out[name] ??= []) as unknown[];
      if (wire === WireType.LengthDelimited && (kind === 'int' || kind === 'float' || kind === 'double')) {
        // packed scalars
        const len = r.varint();
        const end = r.pos + len;
        if (end > r.end) throw new ProtobufError(`${schema.name}.${name}: truncated packed field`);
        const sub = new Reader(r.buf, end);
        sub.pos = r.pos;
        const w = kind === 'int' ? WireType.Varint : kind === 'float' ? WireType.Fixed32 : WireType.Fixed64;
        while (!sub.done) arr.push(readScalar(sub, kind, w));
        r.pos = end;
      } else {
        arr.push(readScalar(r, kind, wire));
      }
    } else {
      out[name] = readScalar(r, kind, wire);
    }
  }
  return out;
}

function writeMessage(w: Writer, obj: Obj, schema: MessageSchema): void {
  for (const spec of schema.fields) {
    const v = obj[spec.name];
    if (v === undefined || v === null) continue;
    const { num, kind } = spec;
    if (kind === 'floatArray' || kind === 'doubleArray') {
      const a = v as Float32Array | Float64Array;
      if (a.length === 0) continue;
      w.tag(num, WireType.LengthDelimited);
      const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      w.bytes(bytes.slice());
    } else if (typeof kind === 'object') {
      const items = spec.repeated ? (v as Obj[]) : [v as Obj];
      for (const item of items) {
        const sub = new Writer();
        writeMessage(sub, item, kind);
        w.tag(num, WireType.LengthDelimited);
        w.bytes(sub.finish());
      }
    } else if (spec.repeated) {
      const items = v as (number | string | Uint8Array)[];
      if (items.length === 0) continue;
      if (spec.packed && kind !== 'string' && kind !== 'bytes') {
        const sub = new Writer();
        for (const x of items) writeScalar(sub, kind, x);
        w.tag(num, WireType.LengthDelimited);
        w.bytes(sub.finish());
      } else {
        for (const x of items) {
          w.tag(num, wireOf(kind));
          writeScalar(w, kind, x);
        }
      }
    } else {
      w.tag(num, wireOf(kind));
      writeScalar(w, kind, v as number | string | Uint8Array);
    }
  }
  for (const u of obj.unknownFields ?? []) w.raw(u);
}

function wireOf(kind: 'int' | 'float' | 'double' | 'string' | 'bytes'): WireType {
  return kind === 'int' ? WireType.Varint : kind === 'float' ? WireType.Fixed32 : kind === 'double' ? WireType.Fixed64 : WireType.LengthDelimited;
}

function writeScalar(w: Writer, kind: 'int' | 'float' | 'double' | 'string' | 'bytes', v: number | string | Uint8Array): void {
  switch (kind) {
    case 'int':
      return w.varint(v as number);
    case 'float':
      return w.float32(v as number);
    case 'double':
      return w.float64(v as number);
    case 'string':
      return w.bytes(encodeUtf8(v as string));
    case 'bytes':
      return w.bytes(v as Uint8Array);
  }
}

/**
 * Decodes an ONNX ModelProto. Tensor payloads stay views into `bytes`, so keep `bytes` alive
 * (and unmodified) as long as the model is in use.
 */
export function decodeModel(bytes: Uint8Array): ModelProto {
  if (bytes.length === 0) throw new OnnxDecodeError('the file is empty');
  let model: ModelProto;
  try {
    model = decodeMessage(new Reader(bytes), ModelSchema) as ModelProto;
  } catch (e) {
    if (e instanceof ProtobufError) throw new OnnxDecodeError(`not a valid ONNX file (corrupt or truncated protobuf: ${e.message})`);
    throw e;
  }
  if (!model.graph) throw new OnnxDecodeError('not a valid ONNX file: it has no graph');
  if (!model.irVersion) throw new OnnxDecodeError('not a valid ONNX file: ir_version is missing');
  return model;
}

export function encodeModel(model: ModelProto): Uint8Array {
  const w = new Writer();
  writeMessage(w, model as Obj, ModelSchema);
  return w.finish();
}
