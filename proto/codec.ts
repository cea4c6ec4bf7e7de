// Typed encode/decode on top of protobufjs reflection. The .proto files are the
// single source of truth; TypeScript interfaces in pprof.ts and wire.ts mirror them.
// 64-bit integers are bigint inside hotloop and strings/Long only at this edge.
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import protobuf from 'protobufjs';

const protoDir = fileURLToPath(new URL('../../proto/', import.meta.url));

let root: protobuf.Root | undefined;

export function protoRoot(): protobuf.Root {
  if (!root) {
    root = new protobuf.Root();
    root.loadSync([path.join(protoDir, 'profile.proto'), path.join(protoDir, 'hotloop/v1/hotloop.proto')], {
      keepCase: false,
    });
    root.resolveAll();
  }
  return root;
}

/** Raised for bytes that are not a valid message of the expected type. */
export class DecodeError extends Error {
  constructor(typeName: string, cause: unknown) {
    super(`malformed ${typeName}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'DecodeError';
  }
}

function bigintsToStrings(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return value.map(bigintsToStrings);
  if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value) && !(value instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = bigintsToStrings(v);
    return out;
  }
  return value;
}

const INT64_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

/**
 * 64-bit fields come back as decimal strings. Those named in `wide` (addresses,
 * absolute nanosecond times) become bigint; the rest (ids, string indices,
 * counts) are far below 2^53 and become number.
 */
function convertLongs(type: protobuf.Type, value: Record<string, unknown>, wide: ReadonlySet<string>): void {
  for (const field of type.fieldsArray) {
    const v = value[field.name];
    if (v === undefined || v === null) continue;
    if (field.resolvedType instanceof protobuf.Type) {
      const sub = field.resolvedType;
      if (field.repeated) for (const item of v as Record<string, unknown>[]) convertLongs(sub, item, wide);
      else convertLongs(sub, v as Record<string, unknown>, wide);
    } else if (INT64_TYPES.has(field.type)) {
      const conv = wide.has(field.name) ? BigInt : Number;
      value[field.name] = field.repeated ? (v as string[]).map((s) => conv(s)) : conv(v as string);
    }
  }
}

const UNKNOWN_FIELDS = Symbol('unknownFields');

/**
 * Numbers of the fields a decoded message arrived with that its type does not
 * define, or that came with the wrong wire type (text where a number belongs).
 * Always empty unless the codec was made with `reportUnknownFields`.
 */
export function unknownFieldNumbers(message: object): readonly number[] {
  return (message as { [UNKNOWN_FIELDS]?: number[] })[UNKNOWN_FIELDS] ?? [];
}

/** protobufjs keeps each unknown field's raw bytes (tag first) in `$unknowns` when the reader does not discard them. */
function recordUnknownFields(type: protobuf.Type, decoded: protobuf.Message, plain: Record<string, unknown>): void {
  const unknowns = (decoded as { $unknowns?: Uint8Array[] }).$unknowns;
  if (unknowns?.length) {
    // Non-enumerable, so the message still compares and prints as its declared fields.
    Object.defineProperty(plain, UNKNOWN_FIELDS, { value: unknowns.map((raw) => protobuf.Reader.create(raw).uint32() >>> 3) });
  }
  const fields = decoded as unknown as Record<string, unknown>;
  for (const field of type.fieldsArray) {
    if (!(field.resolvedType instanceof protobuf.Type) || field.map) continue;
    const sub = field.resolvedType;
    const inDecoded = fields[field.name];
    const inPlain = plain[field.name];
    if (!inDecoded || !inPlain) continue;
    if (field.repeated) {
      (inDecoded as protobuf.Message[]).forEach((item, i) => recordUnknownFields(sub, item, (inPlain as Record<string, unknown>[])[i]!));
    } else {
      recordUnknownFields(sub, inDecoded as protobuf.Message, inPlain as Record<string, unknown>);
    }
  }
}

export interface CodecOptions {
  /** Keep track of unknown fields for `unknownFieldNumbers` (costs a walk over every decoded message). */
  reportUnknownFields?: boolean;
}

export interface MessageCodec<T> {
  encode(message: T): Buffer;
  /** Throws DecodeError on malformed input. */
  decode(bytes: Uint8Array): T;
}

/** `wide`: names (camelCase) of the 64-bit fields that are bigint in T. */
export function codecFor<T>(typeName: string, wide: ReadonlySet<string>, options: CodecOptions = {}): MessageCodec<T> {
  const type = protoRoot().lookupType(typeName);
  const reportUnknown = options.reportUnknownFields === true;
  return {
    encode(message: T): Buffer {
      const plain = bigintsToStrings(message) as Record<string, unknown>;
      return Buffer.from(type.encode(type.fromObject(plain)).finish());
    },
    decode(bytes: Uint8Array): T {
      let decoded: protobuf.Message;
      try {
        const reader = protobuf.Reader.create(bytes);
        reader.discardUnknown = !reportUnknown;
        decoded = type.decode(reader);
      } catch (e) {
        throw new DecodeError(typeName, e);
      }
      const obj = type.toObject(decoded, { longs: String, bytes: Buffer, defaults: true, arrays: true, oneofs: true });
      convertLongs(type, obj, wide);
      if (reportUnknown) recordUnknownFields(type, decoded, obj);
      return obj as T;
    },
  };
}
