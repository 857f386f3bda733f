// Where a page gets a fresh user token (client/user_token.js): the embedding app's hook first,
// then supabase-js's session, then dev auth, else nothing (the page then says the sign-in expired).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { initialToken, jwtClaims, sessionFromJwt, userTokenSource } from "../../src/onair/web/static/client/user_token.js";

const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
const jwt = (claims) => `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(claims)}.sig`;
const EXP = Math.floor(Date.now() / 1000) + 3600;

test("a JWT becomes the page's session: user from sub, role from the configured claim path, buyer by default", () => {
  assert.deepEqual(sessionFromJwt(jwt({ sub: "u1", exp: EXP, app_metadata: { role: "seller" } })),
    { access_token: jwt({ sub: "u1", exp: EXP, app_metadata: { role: "seller" } }), user_id: "u1", role: "seller" });
  assert.equal(sessionFromJwt(jwt({ sub: "u1", exp: EXP })).role, "buyer");
  assert.equal(sessionFromJwt(jwt({ sub: "u1", exp: EXP, user_role: "moderator" }), "user_role").role, "moderator");
  assert.equal(jwtClaims(jwt({ sub: "Zoë ✓", exp: EXP })).sub, "Zoë ✓", "UTF-8 claims");
  assert.throws(() => sessionFromJwt(jwt({ exp: EXP })), /no user/);
  assert.throws(() => sessionFromJwt(jwt({ sub: "u1" })), /no expiry/);
  fc.assert(fc.property(fc.string(), (junk) => {
    assert.equal(jwtClaims(junk) === null || typeof jwtClaims(junk) === "object", true);
    try {
      sessionFromJwt(junk);
    } catch (err) {
      assert.ok(err instanceof Error);
    }
  }));
});

test("the source: the app's hook wins over supabase-js, which wins over dev auth; none without any", async () => {
  const fresh = jwt({ sub: "u1", exp: EXP });
  const supabase = { auth: { refreshSession: async () => ({ data: { session: { access_token: fresh } }, error: null }) } };
  const hook = { getAccessToken: async () => fresh };
  const dev = async () => fresh;
  assert.equal(userTokenSource({ host: { onairAuth: hook, onairSupabase: supabase }, devAuth: true, devSignIn: dev }).name, "hook");
  assert.equal(userTokenSource({ host: { onairSupabase: supabase }, devAuth: true, devSignIn: dev }).name, "supabase");
  assert.equal(userTokenSource({ host: {}, devAuth: true, devSignIn: dev }).name, "dev");
  assert.equal(userTokenSource({ host: {}, devAuth: false, devSignIn: dev }), null);
  for (const host of [{ onairAuth: hook }, { onairSupabase: supabase }]) {
    assert.equal(await userTokenSource({ host }).get(), fresh);
  }
});

test("a source that fails or returns no JWT rejects (the refresh timer retries until expiry, then the page says so)", async () => {
  const failing = { auth: { refreshSession: async () => ({ data: { session: null }, error: new Error("refresh_token_not_found") }) } };
  await assert.rejects(userTokenSource({ host: { onairSupabase: failing } }).get(), /refresh_token_not_found/);
  await assert.rejects(userTokenSource({ host: { onairAuth: { getAccessToken: async () => "" } } }).get(), /did not return a JWT/);
  await assert.rejects(userTokenSource({ host: { onairAuth: { getAccessToken: async () => undefined } } }).get(), /did not return a JWT/);
});

test("a page with no stored session starts from the hook's token or supabase-js's current session", async () => {
  const token = jwt({ sub: "u2", exp: EXP });
  assert.equal(await initialToken({ onairAuth: { getAccessToken: async () => token } }), token);
  assert.equal(await initialToken({ onairSupabase: { auth: { getSession: async () => ({ data: { session: { access_token: token } } }) } } }), token);
  assert.equal(await initialToken({ onairSupabase: { auth: { getSession: async () => ({ data: { session: null } }) } } }), null);
  assert.equal(await initialToken({}), null);
});
