// The Agora adapter against the REAL Web SDK's type declarations (agora-rtc-sdk-ng, the exact
// version the pages load from Agora's CDN, installed by `make test` as a devDependency). The stub
// the behaviour tests use could hide a member the real SDK lacks (it once did: the studio picked
// its camera track by `kind`, which the SDK's tracks do not have). This test reads every SDK
// member, event and option value agora.js uses and fails when the SDK does not declare it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { AGORA_SDK_URL, FALLBACK_LOW_THEN_AUDIO, STREAM_HIGH, STREAM_LOW } from "../../src/onair/web/static/client/media/agora.js";

// the package's "exports" hide its package.json from require.resolve: read it from node_modules
const sdkDir = new URL("../../node_modules/agora-rtc-sdk-ng/", import.meta.url);
const sdkVersion = JSON.parse(readFileSync(new URL("package.json", sdkDir), "utf8")).version;
const dts = readFileSync(new URL("rtc-sdk_en.d.ts", sdkDir), "utf8");
const adapter = readFileSync(new URL("../../src/onair/web/static/client/media/agora.js", import.meta.url), "utf8");

/** The top-level body of `export declare interface NAME … {`. */
function body(kind, name) {
  const start = dts.search(new RegExp(`(?:export )?declare ${kind} ${name}\\b[^{]*\\{`));
  assert.ok(start >= 0, `${kind} ${name} is declared`);
  let depth = 0;
  for (let i = dts.indexOf("{", start); i < dts.length; i += 1) {
    if (dts[i] === "{") depth += 1;
    if (dts[i] === "}" && --depth === 0) return dts.slice(dts.indexOf("{", start) + 1, i);
  }
  throw new Error(`unterminated ${name}`);
}

/** Members of an interface and every interface it extends. */
function members(name) {
  const header = dts.match(new RegExp(`export declare interface ${name}(?:<[^>]*>)? extends ([^{]+)\\{`));
  const own = new Set([...body("interface", name).matchAll(/^ {4}(?:readonly )?(\w+)\??\s*[(:<]/gm)].map((m) => m[1]));
  for (const parent of header ? header[1].split(",").map((p) => p.trim().replace(/<.*$/, "")) : []) {
    if (parent === "EventEmitter") for (const m of ["on", "once", "off", "removeAllListeners", "emit", "getListeners"]) own.add(m);
    else for (const m of members(parent)) own.add(m);
  }
  return own;
}

const used = (pattern) => new Set([...adapter.matchAll(pattern)].map((m) => m[1]));
const union = (...names) => new Set(names.flatMap((n) => [...members(n)]));

function enumValue(name, key) {
  const match = body("enum", name).match(new RegExp(`\\b${key}\\s*=\\s*(\\d+)`));
  assert.ok(match, `${name}.${key} is declared`);
  return Number(match[1]);
}

function stringUnion(typeName) {
  const match = dts.match(new RegExp(`export declare type ${typeName} = ([^;]+);`));
  assert.ok(match, `type ${typeName} is declared`);
  return new Set([...match[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]));
}

test("the pages load the same SDK version the tests check", () => {
  assert.ok(AGORA_SDK_URL.endsWith(`AgoraRTC_N-${sdkVersion}.js`), `${AGORA_SDK_URL} vs installed ${sdkVersion}`);
});

test("every AgoraRTC member the adapter uses is declared by IAgoraRTC", () => {
  const api = members("IAgoraRTC");
  const names = used(/AgoraRTC\.(\w+)/g);
  assert.ok(names.size >= 4, `found ${[...names]}`);
  for (const name of names) assert.ok(api.has(name), `AgoraRTC.${name} is not in the real SDK`);
});

test("every client method and event the adapter uses is declared by IAgoraRTCClient", () => {
  const client = members("IAgoraRTCClient");
  const methods = used(/\bclient\??\.(\w+)/g);
  assert.ok(methods.size >= 10, `found ${[...methods]}`);
  for (const name of methods) assert.ok(client.has(name), `client.${name} is not in the real SDK`);
  const declaredEvents = new Set([...body("interface", "IAgoraRTCClient").matchAll(/on\(event: "([\w-]+)"/g)].map((m) => m[1]));
  const events = used(/\bclient\.on\("([\w-]+)"/g);
  assert.ok(events.size >= 8, `found ${[...events]}`);
  for (const name of events) assert.ok(declaredEvents.has(name), `client event "${name}" is not in the real SDK`);
});

test("remote users and tracks: every member read is declared", () => {
  const user = members("IAgoraRTCRemoteUser");
  for (const name of used(/\buser\.(\w+)/g)) assert.ok(user.has(name), `user.${name} is not in the real SDK`);
  const remote = union("IRemoteVideoTrack", "IRemoteAudioTrack");
  const remoteUsed = used(/\bremoteTrack\??\.(\w+)/g);
  assert.ok(remoteUsed.has("play"));
  for (const name of remoteUsed) assert.ok(remote.has(name), `remoteTrack.${name} is not in the real SDK`);
});

test("local tracks: every member read is declared on the camera and microphone tracks (trackMediaType, not kind)", () => {
  const local = union("ICameraVideoTrack", "IMicrophoneAudioTrack");
  const localUsed = used(/\blocalTrack\??\.(\w+)/g);
  for (const name of ["trackMediaType", "play", "close", "setDevice"]) assert.ok(localUsed.has(name), `agora.js uses localTrack.${name}`);
  for (const name of localUsed) assert.ok(local.has(name), `localTrack.${name} is not in the real SDK`);
  assert.equal(local.has("kind"), false, "the SDK's tracks have no `kind`");
});

test("option values and constants are the SDK's", () => {
  assert.equal(STREAM_HIGH, enumValue("RemoteStreamType", "HIGH_STREAM"));
  assert.equal(STREAM_LOW, enumValue("RemoteStreamType", "LOW_STREAM"));
  assert.equal(FALLBACK_LOW_THEN_AUDIO, enumValue("RemoteStreamFallbackType", "AUDIO_ONLY"));
  assert.ok(stringUnion("SDK_MODE").has("live"));
  assert.ok(stringUnion("ClientRole").has("audience") && stringUnion("ClientRole").has("host"));
  assert.match(body("enum", "VideoCodec"), /\bvp8\b/);
  assert.match(dts, /fit\?: "cover" \| "contain" \| "fill"/);
  assert.match(dts, /\| "720p_2" +\|/, "the encoder preset the studio asks for");
  const states = stringUnion("ConnectionState");
  for (const state of used(/current === "([A-Z]+)"/g)) assert.ok(states.has(state), `connection state ${state}`);
  const reasons = body("enum", "ConnectionDisconnectedReason");
  for (const reason of used(/reason (?:===|!==) "([A-Z_]+)"/g)) assert.match(reasons, new RegExp(`\\b${reason} = "${reason}"`), `disconnect reason ${reason}`);
  const errorCodes = body("enum", "AgoraRTCErrorCode");
  assert.match(errorCodes, /OPERATION_ABORTED = "OPERATION_ABORTED"/, "leave() during join rejects with this code");
});
