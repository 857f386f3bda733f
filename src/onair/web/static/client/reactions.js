// Reactions (issue 14): the fixed set, and the tally a page keeps of them.
//
// A viewer's tap goes to the server as a "react" broadcast (or REST when the channel is down);
// the server answers everyone, the tapper included, with one "reactions" aggregate per window
// (counts per kind). The tapper's own taps are shown at once, so the aggregate that later carries
// them must not show them again: ReactionTally remembers own taps for `ownHoldMs` and takes them
// out of the next aggregates (taps the server dropped by its rate limit simply expire).

export const KINDS = Object.freeze(["heart", "fire", "laugh", "wow", "clap"]);
export const EMOJI = Object.freeze({ heart: "❤️", fire: "🔥", laugh: "😂", wow: "😮", clap: "👏" });
export const TAP_EVENT = "react";
export const AGGREGATE_EVENT = "reactions";
const MINUTE_MS = 60_000;

export class ReactionTally {
  constructor({ ownHoldMs = 3000, now = () => Date.now() } = {}) {
    this.ownHoldMs = ownHoldMs;
    this.now = now;
    this.own = new Map(); // kind -> [tap times], oldest first
    this.totals = Object.fromEntries(KINDS.map((k) => [k, 0])); // everyone's, from aggregates
    this.minute = []; // [time, count] of aggregates within the last minute
  }

  /** Record an own tap; false for a kind outside the set. */
  tapped(kind) {
    if (!KINDS.includes(kind)) return false;
    const times = this.own.get(kind) ?? [];
    times.push(this.now());
    this.own.set(kind, times);
    return true;
  }

  /** Apply one aggregate's counts; returns {kind: n} of the taps that are not our own (to show). */
  received(counts) {
    const now = this.now();
    const others = {};
    let sum = 0;
    for (const kind of KINDS) {
      const n = Number.isInteger(counts?.[kind]) && counts[kind] > 0 ? counts[kind] : 0;
      if (!n) continue;
      sum += n;
      this.totals[kind] += n;
      const mine = (this.own.get(kind) ?? []).filter((t) => now - t <= this.ownHoldMs);
      const taken = Math.min(mine.length, n);
      this.own.set(kind, mine.slice(taken));
      if (n - taken > 0) others[kind] = n - taken;
    }
    if (sum) this.minute.push([now, sum]);
    this._prune(now);
    return others;
  }

  /** Reactions per minute: everyone's taps in the last 60 s. */
  perMinute() {
    this._prune(this.now());
    return this.minute.reduce((a, [, n]) => a + n, 0);
  }

  get total() {
    return KINDS.reduce((a, k) => a + this.totals[k], 0);
  }

  _prune(now) {
    while (this.minute.length && now - this.minute[0][0] > MINUTE_MS) this.minute.shift();
  }
}
