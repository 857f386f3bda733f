// Where a page gets a fresh user token before the current one expires. In order:
//   1. a hook the embedding app provides: `window.onairAuth = { getAccessToken: async () => jwt }`
//      (any sign-in system whose JWTs onair accepts: ONAIR_JWT_SECRET / ONAIR_JWT_JWKS_URL);
//   2. supabase-js: `window.onairSupabase = createClient(url, anonKey)` — its session is
//      refreshed with `auth.refreshSession()` (Supabase Auth tokens expire after an hour);
//   3. dev auth (ONAIR_DEV_AUTH): sign in again as the same user;
//   4. none: the page says the sign-in expired instead of failing silently.
// The token a source returns becomes the page's session (user id from `sub`, role from the
// configured app-role claim), is used by REST at once and handed to every joined channel.

import { jwtExpiry } from "./token_refresh.js";

/** The JWT's payload, or null when it is not one. */
export function jwtClaims(jwt) {
  try {
    const part = String(jwt).split(".")[1];
    const binary = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

/** {access_token, user_id, role} for Session.save(), from a JWT; `roleClaim` is a dotted path. */
export function sessionFromJwt(jwt, roleClaim = "app_metadata.role") {
  const claims = jwtClaims(jwt);
  if (!claims || typeof claims.sub !== "string" || !claims.sub) throw new Error("the sign-in token has no user (sub)");
  if (jwtExpiry(jwt) === null) throw new Error("the sign-in token has no expiry (exp)");
  let role = claims;
  for (const key of roleClaim.split(".")) role = role && typeof role === "object" ? role[key] : undefined;
  return { access_token: jwt, user_id: claims.sub, role: typeof role === "string" && role ? role : "buyer" };
}

/**
 * The page's token source: {name, get: async () => jwt} or null when nothing can refresh.
 * `devSignIn` is an async () => jwt that signs the same user in again (dev auth only).
 */
export function userTokenSource({ host = globalThis, devAuth = false, devSignIn = null }) {
  const hook = host.onairAuth;
  if (hook && typeof hook.getAccessToken === "function") {
    return { name: "hook", get: async () => checked(await hook.getAccessToken(), "onairAuth.getAccessToken()") };
  }
  const auth = host.onairSupabase?.auth;
  if (auth && typeof auth.refreshSession === "function") {
    return {
      name: "supabase",
      get: async () => {
        const { data, error } = await auth.refreshSession();
        if (error) throw error;
        return checked(data?.session?.access_token, "supabase.auth.refreshSession()");
      },
    };
  }
  if (devAuth && devSignIn) return { name: "dev", get: async () => checked(await devSignIn(), "dev sign-in") };
  return null;
}

/** The token a page starts with when it has none stored: the hook's or supabase-js's session. */
export async function initialToken(host = globalThis) {
  if (typeof host.onairAuth?.getAccessToken === "function") return checked(await host.onairAuth.getAccessToken(), "onairAuth.getAccessToken()");
  const auth = host.onairSupabase?.auth;
  if (auth && typeof auth.getSession === "function") {
    const { data } = await auth.getSession();
    return data?.session?.access_token ?? null;
  }
  return null;
}

function checked(jwt, from) {
  if (typeof jwt !== "string" || jwt.split(".").length !== 3) throw new Error(`${from} did not return a JWT`);
  return jwt;
}
