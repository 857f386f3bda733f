// Realtime link quality from heartbeat round-trip times: good / degraded / poor, with hysteresis.
// A missed heartbeat counts as a "poor" reading; the connection manager closes the socket on its own
// heartbeat timeout, so this only grades a link that still works.

import { Hysteresis } from "./hysteresis.js";

export const LINK_QUALITIES = Object.freeze(["good", "degraded", "poor"]);

export const DEFAULT_RTT_THRESHOLDS = Object.freeze({ degradedMs: 300, poorMs: 1000 });

export function rttReading(rttMs, { degradedMs, poorMs } = DEFAULT_RTT_THRESHOLDS) {
  if (rttMs === null || rttMs === undefined || !Number.isFinite(rttMs) || rttMs >= poorMs) return 2;
  return rttMs >= degradedMs ? 1 : 0;
}

export class LinkQuality {
  constructor({ thresholds = DEFAULT_RTT_THRESHOLDS, downAfter = 2, upAfter = 3 } = {}) {
    this.thresholds = { ...DEFAULT_RTT_THRESHOLDS, ...thresholds };
    this._levels = new Hysteresis({ levels: 3, downAfter, upAfter });
    this.lastRttMs = null;
  }

  /** Record a heartbeat round trip (ms), or null for a missed one; returns the quality name. */
  record(rttMs) {
    this.lastRttMs = rttMs;
    return LINK_QUALITIES[this._levels.push(rttReading(rttMs, this.thresholds))];
  }

  get quality() {
    return LINK_QUALITIES[this._levels.level];
  }

  reset() {
    this._levels.reset(0);
    this.lastRttMs = null;
  }
}
