// Reserved broadcast event names, recognised under any spelling (the server's rule, read from the
// same table: onair/realtime/protocol/event_names.py and event_names.json next to this file).
//
//   fold(name) = each code point: ASCII → ASCII lowercase; in the table's "ignorable" ranges →
//   nothing; listed under a target in the table's "fold" → that target; else unchanged.
//
// A name is server-only when its fold is one of "server_only", host-only when its fold starts
// with one of "host_only_prefixes". The hub lets only the server send the first kind and only the
// stream's hosts the second, in every spelling; this client goes one step further and ignores a
// reserved event unless its name is already folded (the spelling the server and hosts use), so a
// look-alike name can never reach a listener for the real one.

import table from "./event_names.json" with { type: "json" };

export const SERVER = "server";
export const HOST = "host";
export const SERVER_ONLY = Object.freeze(new Set(table.server_only));
export const HOST_ONLY_PREFIXES = Object.freeze([...table.host_only_prefixes]);

const FOLD = new Map();
for (const [first, last] of table.ignorable) {
  for (let cp = first; cp <= last; cp += 1) FOLD.set(cp, "");
}
for (const [target, sources] of Object.entries(table.fold)) {
  for (const ch of sources) FOLD.set(ch.codePointAt(0), target);
}
const ASCII_ONLY = /^[\x00-\x7f]*$/;

/** The spelling every variant of `name` collapses to (the rule above). */
export function foldEventName(name) {
  const text = String(name);
  if (ASCII_ONLY.test(text)) return text.toLowerCase();
  let out = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if (cp < 0x80) out += cp >= 0x41 && cp <= 0x5a ? String.fromCharCode(cp + 0x20) : ch;
    else out += FOLD.get(cp) ?? ch;
  }
  return out;
}

/** "server", "host" or null (anyone allowed to broadcast may send it). */
export function reservedFor(name) {
  const folded = foldEventName(name);
  if (SERVER_ONLY.has(folded)) return SERVER;
  if (HOST_ONLY_PREFIXES.some((prefix) => folded.startsWith(prefix))) return HOST;
  return null;
}

/** True for a reserved event in any spelling but its own folded one: never dispatched. */
export function isLookAlike(name) {
  return reservedFor(name) !== null && foldEventName(name) !== String(name);
}
