/**
 * Protobuf wire format, just what ONNX needs. Hand-written rather than generated so that
 * `bytes` fields (raw_data can be hundreds of MB) are returned as views into the input buffer,
 * never copied, and so that nothing has to run at build time.
 */

export const enum WireType {
  Varint = 0,
  Fixed64 = 1,
  LengthDelimited = 2,
  Fixed32 = 5,
}

export class ProtobufError extends Error {
  override name = 'ProtobufError';
}

const TWO_32 = 4294967296;

export class Reader {
  pos = 0;
  private readonly view: DataView;
  constructor(readonly buf: Uint8Array, readonly end = buf.length) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** Reads a varint as a JS number; int64 values beyond ±2^53 lose precision (never seen in ONNX dims). */
  varint(): number {
    let lo = 0;
    let hi = 0;
    let shift = 0;
    let b: number;
    // low 28 bits
    for (; shift < 28; shift += 7) {
      b = this.byte();
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) return lo >>> 0;
    }
    b = this.byte();
    lo |= (b & 0x0f) << 28;
    hi = (b & 0x7f) >> 4;
    if (b < 0x80) return hi * TWO_32 + (lo >>> 0);
    for (shift = 3; shift < 32; shift += 7) {
      b = this.byte();
      hi |= (b & 0x7f) << shift;
      if (b < 0x80) break;
      if (shift + 7 >= 32) {
        // 10th byte: only the sign bit remains
        b = this.byte();
        if (b >= 0x80) throw new ProtobufError('varint longer than 10 bytes');
        break;
      }
    }
    if (hi & 0x80000000) {
      // two's complement negative int64
      const nlo = (~lo + 1) >>> 0;
      const nhi = (~hi + (nlo === 0 ? 1 : 0)) >>> 0;
      return -(nhi * TWO_32 + nlo);
    }
    return (hi >>> 0) * TWO_32 + (lo >>> 0);
  }

  private byte(): number {
    if (this.pos >= this.end) throw new ProtobufError('truncated message (varint runs past the end)');
    return this.buf[this.pos++]!;
  }

  float32(): number {
    this.need(4);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  float64(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  fixed64(): number {
    this.need(8);
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getUint32(this.pos + 4, true);
    this.pos += 8;
    return hi * TWO_32 + lo;
  }

  /** A view into the underlying buffer: no copy. */
  bytes(): Uint8Array {
    const len = this.varint();
    this.need(len);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  skip(wire: number): void {
    switch (wire) {
      case WireType.Varint:
        this.varint();
        return;
      case WireType.Fixed64:
        this.need(8);
        this.pos += 8;
        return;
      case WireType.LengthDelimited: {
        const len = this.varint();
        this.need(len);
        this.pos += len;
        return;
      }
      case WireType.Fixed32:
        this.need(4);
        this.pos += 4;
        return;
      default:
        throw new ProtobufError(`unsupported wire type ${wire} at byte ${this.pos}`);
    }
  }

  private need(n: number): void {
    if (n < 0 || this.pos + n > this.end) throw new ProtobufError(`truncated message: need ${n} bytes at ${this.pos}, have ${this.end - this.pos}`);
  }
}

/** Appends into growing chunks; large `bytes` payloads are kept by reference until `finish`. */
export class Writer {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(4096);
  private len = 0;
  private total = 0;

  get length(): number {
    return this.total + this.len;
  }

  private ensure(n: number): void {
    if (this.len + n <= this.cur.length) return;
    this.flush();
    if (n > this.cur.length) this.cur = new Uint8Array(Math.max(n, 4096));
  }

  private flush(): void {
    if (this.len === 0) return;
    this.chunks.push(this.cur.subarray(0, this.len));
    this.total += this.len;
    this.cur = new Uint8Array(Math.max(4096, this.cur.length));
    this.len = 0;
  }

  tag(field: number, wire: WireType): void {
    this.varint(field * 8 + wire);
  }

  varint(v: number): void {
    this.ensure(10);
    if (v < 0) {
      // int64 two's complement: always 10 bytes
      let lo = Number(BigInt.asUintN(64, BigInt(v)) & 0xffffffffn);
      let hi = Number(BigInt.asUintN(64, BigInt(v)) >> 32n);
      for (let i = 0; i < 9; i++) {
        this.cur[this.len++] = (lo & 0x7f) | 0x80;
        lo = (lo >>> 7) | ((hi & 0x7f) << 25);
        hi >>>= 7;
      }
      this.cur[this.len++] = lo & 0x01;
      return;
    }
    while (v >= 0x80) {
      this.cur[this.len++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.cur[this.len++] = v;
  }

  float32(v: number): void {
    this.ensure(4);
    new DataView(this.cur.buffer, this.cur.byteOffset).setFloat32(this.len, v, true);
    this.len += 4;
  }

  float64(v: number): void {
    this.ensure(8);
    new DataView(this.cur.buffer, this.cur.byteOffset).setFloat64(this.len, v, true);
    this.len += 8;
  }

  raw(b: Uint8Array): void {
    if (b.length > 1024) {
      this.flush();
      this.chunks.push(b);
      this.total += b.length;
      return;
    }
    this.ensure(b.length);
    this.cur.set(b, this.len);
    this.len += b.length;
  }

  bytes(b: Uint8Array): void {
    this.varint(b.length);
    this.raw(b);
  }

  finish(): Uint8Array {
    this.flush();
    if (this.chunks.length === 1) return this.chunks[0]!;
    const out = new Uint8Array(this.total);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

const utf8d = new TextDecoder();
const utf8e = new TextEncoder();
export const decodeUtf8 = (b: Uint8Array): string => utf8d.decode(b);
export const encodeUtf8 = (s: string): Uint8Array => utf8e.encode(s);
