import { DataType, type ModelProto, type TensorProto } from './schema';

export class UnsupportedTensorError extends Error {
  override name = 'UnsupportedTensorError';
}

/** Bytes of external-data files, keyed by the `location` written in the model. */
export type ExternalFiles = ReadonlyMap<string, Uint8Array>;

export function elementCount(dims: readonly number[] | undefined): number {
  let n = 1;
  for (const d of dims ?? []) n *= d;
  return n;
}

/** Resolves where a tensor's bytes live: raw_data, or a slice of an external file. */
export function tensorBytes(t: TensorProto, external?: ExternalFiles): Uint8Array | undefined {
  if (t.dataLocation === 1) {
    const entry = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const location = entry.get('location');
    if (!location) throw new UnsupportedTensorError(`tensor "${t.name}" is stored externally but names no location`);
    const file = external?.get(location);
    if (!file) throw new UnsupportedTensorError(`tensor "${t.name}" is stored in the external file "${location}", which was not provided; add it next to the model`);
    const offset = Number(entry.get('offset') ?? 0);
    const length = entry.has('length') ? Number(entry.get('length')) : file.length - offset;
    if (offset + length > file.length) throw new UnsupportedTensorError(`tensor "${t.name}" reads past the end of "${location}" (truncated external data?)`);
    return file.subarray(offset, offset + length);
  }
  return t.rawData;
}

function view<T extends Float32Array | Float64Array | Int32Array | BigInt64Array | Uint16Array>(
  ctor: { new (b: ArrayBuffer, o: number, n: number): T; BYTES_PER_ELEMENT: number },
  b: Uint8Array,
  n: number,
  name: string | undefined,
): T {
  if (b.length !== n * ctor.BYTES_PER_ELEMENT) throw new UnsupportedTensorError(`tensor "${name}" has ${b.length} bytes of data, expected ${n * ctor.BYTES_PER_ELEMENT}`);
  // raw_data may be unaligned inside the file: copy only then
  if (b.byteOffset % ctor.BYTES_PER_ELEMENT === 0) return new ctor(b.buffer as ArrayBuffer, b.byteOffset, n);
  return new ctor(b.slice().buffer as ArrayBuffer, 0, n);
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Reads any numeric tensor as float32 (float16/double/int widened or narrowed). */
export function tensorToFloat32(t: TensorProto, external?: ExternalFiles): Float32Array {
  const n = elementCount(t.dims);
  const raw = tensorBytes(t, external);
  const dt = t.dataType ?? DataType.UNDEFINED;
  if (raw && raw.length > 0) {
    switch (dt) {
      case DataType.FLOAT:
        return view(Float32Array, raw, n, t.name);
      case DataType.DOUBLE:
        return Float32Array.from(view(Float64Array, raw, n, t.name));
      case DataType.FLOAT16: {
        const h = view(Uint16Array, raw, n, t.name);
        const out = new Float32Array(n);
        for (let i = 0; i < n; i++) out[i] = halfToFloat(h[i]!);
        return out;
      }
      case DataType.INT32:
        return Float32Array.from(view(Int32Array, raw, n, t.name));
      case DataType.INT64:
        return Float32Array.from(view(BigInt64Array, raw, n, t.name), Number);
      case DataType.INT8:
        return Float32Array.from(new Int8Array(raw.buffer, raw.byteOffset, n));
      case DataType.UINT8:
      case DataType.BOOL:
        return Float32Array.from(raw.subarray(0, n));
      default:
        throw new UnsupportedTensorError(`tensor "${t.name}" has data type ${DataType[dt] ?? dt}, which cannot be read as float`);
    }
  }
  if (t.floatData && t.floatData.length) {
    if (dt === DataType.FLOAT) return t.floatData;
  }
  if (t.doubleData && t.doubleData.length) return Float32Array.from(t.doubleData);
  if (t.int64Data && t.int64Data.length) return Float32Array.from(t.int64Data);
  if (t.int32Data && t.int32Data.length) {
    if (dt === DataType.FLOAT16) return Float32Array.from(t.int32Data, halfToFloat);
    return Float32Array.from(t.int32Data);
  }
  if (t.floatData && t.floatData.length) return t.floatData;
  if (n === 0) return new Float32Array(0);
  throw new UnsupportedTensorError(`tensor "${t.name}" holds no data`);
}

/** Integer tensors (shapes, axes, indices) as plain numbers. */
export function tensorToInts(t: TensorProto, external?: ExternalFiles): number[] {
  const raw = tensorBytes(t, external);
  const n = elementCount(t.dims);
  if (raw && raw.length) {
    if (t.dataType === DataType.INT64) return Array.from(view(BigInt64Array, raw, n, t.name), Number);
    if (t.dataType === DataType.INT32) return Array.from(view(Int32Array, raw, n, t.name));
  }
  if (t.int64Data?.length) return t.int64Data.slice();
  if (t.int32Data?.length) return t.int32Data.slice();
  return Array.from(tensorToFloat32(t, external));
}

export function floatTensor(name: string, dims: readonly number[], data: Float32Array): TensorProto {
  return { name, dims: [...dims], dataType: DataType.FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

export function int64Tensor(name: string, dims: readonly number[], data: readonly number[]): TensorProto {
  const b = BigInt64Array.from(data, (v) => BigInt(v));
  return { name, dims: [...dims], dataType: DataType.INT64, rawData: new Uint8Array(b.buffer) };
}

export function int32Tensor(name: string, dims: readonly number[], data: Int32Array): TensorProto {
  return { name, dims: [...dims], dataType: DataType.INT32, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** 8-bit integers; `signed` picks INT8 or UINT8. */
export function int8Tensor(name: string, dims: readonly number[], data: Int8Array | Uint8Array, signed: boolean): TensorProto {
  return { name, dims: [...dims], dataType: signed ? DataType.INT8 : DataType.UINT8, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/**
 * Packs 4- or 2-bit integers as ONNX stores them: low bits first, two's complement for signed,
 * the last byte padded with zeros.
 */
export function packSubByte(values: ArrayLike<number>, bits: 4 | 2): Uint8Array {
  const per = 8 / bits;
  const mask = (1 << bits) - 1;
  const out = new Uint8Array(Math.ceil(values.length / per));
  for (let i = 0; i < values.length; i++) out[(i / per) | 0]! |= (values[i]! & mask) << ((i % per) * bits);
  return out;
}

export function unpackSubByte(bytes: Uint8Array, n: number, bits: 4 | 2, signed: boolean): Int32Array {
  const per = 8 / bits;
  const mask = (1 << bits) - 1;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let v = (bytes[(i / per) | 0]! >> ((i % per) * bits)) & mask;
    if (signed && v >> (bits - 1)) v -= 1 << bits;
    out[i] = v;
  }
  return out;
}

/** Names of the external-data files a model refers to. */
export function externalLocations(model: ModelProto): string[] {
  const out = new Set<string>();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataLocation !== 1) continue;
    const loc = t.externalData?.find((e) => e.key === 'location')?.value;
    if (loc) out.add(loc);
  }
  return [...out];
}

/**
 * The model with every externally stored initializer turned into raw_data (views into the
 * external buffers, not copies), so that it can be handed to ONNX Runtime as one buffer and
 * exported self-contained.
 */
export function inlineExternalData(model: ModelProto, external?: ExternalFiles): ModelProto {
  const inits = model.graph?.initializer ?? [];
  if (!inits.some((t) => t.dataLocation === 1)) return model;
  const initializer = inits.map((t) => {
    if (t.dataLocation !== 1) return t;
    const rawData = tensorBytes(t, external)!;
    const { externalData: _e, dataLocation: _d, ...rest } = t;
    return { ...rest, rawData };
  });
  return { ...model, graph: { ...model.graph!, initializer } };
}
