// Phoenix / Supabase Realtime wire formats (spec: supabase-realtime.md §2).
//
// vsn 1.0.0: JSON objects {topic, event, payload, ref, join_ref} in text frames.
// vsn 2.0.0: JSON arrays [join_ref, ref, topic, event, payload] in text frames, plus the binary
// kind 4 (USER_BROADCAST, server → client) that realtime servers may use for broadcasts.
// We always send broadcasts as JSON text: servers must accept it for both vsn (§2.3), and it keeps
// this module free of the binary push encoder.

export const VSN_1 = "1.0.0";
export const VSN_2 = "2.0.0";

const KIND_USER_BROADCAST = 4;

export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

/** @typedef {{join_ref: string|null, ref: string|null, topic: string, event: string, payload: any}} Message */

/** Encode one message for the given vsn; the result is a string (text frame). */
export function encode(message, vsn = VSN_2) {
  const { join_ref = null, ref = null, topic, event, payload = {} } = message;
  if (vsn === VSN_1) return JSON.stringify({ topic, event, payload, ref, join_ref });
  if (vsn === VSN_2) return JSON.stringify([join_ref, ref, topic, event, payload]);
  throw new ProtocolError(`unknown vsn ${vsn}`);
}

/** Decode one frame (string, ArrayBuffer or Uint8Array) into a Message; throws ProtocolError. */
export function decode(frame, vsn = VSN_2) {
  if (typeof frame !== "string") return decodeBinary(frame);
  let data;
  try {
    data = JSON.parse(frame);
  } catch {
    throw new ProtocolError("frame is not JSON");
  }
  if (vsn === VSN_2) {
    if (!Array.isArray(data) || data.length < 5) throw new ProtocolError("expected a 5-element array");
    const [join_ref, ref, topic, event, payload] = data;
    return checked({ join_ref, ref, topic, event, payload });
  }
  if (vsn === VSN_1) {
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      throw new ProtocolError("expected a JSON object");
    }
    const { join_ref = null, ref = null, topic, event, payload } = data;
    return checked({ join_ref, ref, topic, event, payload });
  }
  throw new ProtocolError(`unknown vsn ${vsn}`);
}

function checked(message) {
  if (typeof message.topic !== "string" || typeof message.event !== "string") {
    throw new ProtocolError("topic and event must be strings");
  }
  for (const key of ["join_ref", "ref"]) {
    if (message[key] !== null && typeof message[key] !== "string") {
      throw new ProtocolError(`${key} must be a string or null`);
    }
  }
  return message;
}

function decodeBinary(frame) {
  const bytes = frame instanceof Uint8Array ? frame : new Uint8Array(frame);
  if (bytes.length < 5 || bytes[0] !== KIND_USER_BROADCAST) {
    throw new ProtocolError("unsupported binary frame");
  }
  const [topicLen, eventLen, metaLen, encoding] = bytes.subarray(1, 5);
  let offset = 5;
  const take = (n) => {
    if (offset + n > bytes.length) throw new ProtocolError("truncated binary frame");
    const part = bytes.subarray(offset, offset + n);
    offset += n;
    return part;
  };
  const text = new TextDecoder("utf-8", { fatal: true });
  let topic, userEvent, meta, body;
  try {
    topic = text.decode(take(topicLen));
    userEvent = text.decode(take(eventLen));
    const metaBytes = take(metaLen);
    meta = metaLen ? JSON.parse(text.decode(metaBytes)) : undefined;
    const rest = bytes.subarray(offset);
    body = encoding === 1 ? JSON.parse(text.decode(rest)) : rest.slice().buffer;
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError("malformed binary broadcast");
  }
  const payload = { type: "broadcast", event: userEvent, payload: body };
  if (meta !== undefined) payload.meta = meta;
  return { join_ref: null, ref: null, topic, event: "broadcast", payload };
}
