// Exponential backoff with "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"):
// the n-th retry waits a uniformly random time in [0, min(cap, base · 2^n)). Randomising the whole
// interval spreads a crowd of clients that lost the server at the same moment, so a restarted
// server is not hit by all of them at once.

/** @typedef {{baseMs: number, capMs: number, maxAttempts: number}} BackoffPolicy */

export const DEFAULT_BACKOFF = Object.freeze({ baseMs: 500, capMs: 15000, maxAttempts: 8 });

/** Upper bound of the delay before retry number `attempt` (0-based). */
export function backoffCeiling(attempt, { baseMs, capMs }) {
  // 2 ** attempt overflows to Infinity for large attempts; min() keeps the cap.
  return Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
}

/** Delay before retry number `attempt`: uniform in [0, ceiling); `random` returns [0, 1). */
export function fullJitterDelay(attempt, policy, random = Math.random) {
  const r = random();
  const unit = r >= 0 && r < 1 ? r : 0;
  return Math.floor(unit * backoffCeiling(attempt, policy));
}

/** Counts failed attempts and says when to give up; reset() after success or a manual retry. */
export class Backoff {
  constructor(policy = DEFAULT_BACKOFF, random = Math.random) {
    this.policy = { ...DEFAULT_BACKOFF, ...policy };
    this.random = random;
    this.attempt = 0;
  }

  /** True once `maxAttempts` retries have failed: time to tell the user. */
  exhausted() {
    return this.attempt >= this.policy.maxAttempts;
  }

  /** The delay for the next retry, and count it. */
  next() {
    const delay = fullJitterDelay(this.attempt, this.policy, this.random);
    this.attempt += 1;
    return delay;
  }

  reset() {
    this.attempt = 0;
  }
}
