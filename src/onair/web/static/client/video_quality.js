// Which video layer to receive: "high", "low" (the publisher's low stream / lower bitrate) or
// "audio" (video dropped). Fed with Agora-style network-quality readings (downlink 0..6:
// 0 unknown, 1 excellent, 2 good, 3 poor, 4 bad, 5 very bad, 6 down) or with the realtime link
// quality, through the same hysteresis. Under partial connectivity video degrades first: chat and
// stream state use the realtime socket, which never depends on this choice.

import { Hysteresis } from "./hysteresis.js";

export const VIDEO_LAYERS = Object.freeze(["high", "low", "audio"]);

/** Map a network-quality reading to a layer index, or null for "unknown" (ignored). */
export function layerForNetworkQuality(q) {
  if (!Number.isInteger(q) || q <= 0 || q > 6) return null;
  if (q <= 2) return 0;
  if (q <= 4) return 1;
  return 2;
}

const LINK_TO_LAYER = { good: 0, degraded: 1, poor: 2 };

export class VideoQuality {
  constructor({ downAfter = 2, upAfter = 5, initial = "high" } = {}) {
    this._levels = new Hysteresis({ levels: 3, downAfter, upAfter, initial: VIDEO_LAYERS.indexOf(initial) });
  }

  /** Feed a network-quality reading (0..6); returns the chosen layer name. */
  recordNetworkQuality(q) {
    const reading = layerForNetworkQuality(q);
    if (reading !== null) this._levels.push(reading);
    return this.layer;
  }

  /** Feed the realtime link quality ("good"|"degraded"|"poor"). */
  recordLinkQuality(quality) {
    const reading = LINK_TO_LAYER[quality];
    if (reading !== undefined) this._levels.push(reading);
    return this.layer;
  }

  get layer() {
    return VIDEO_LAYERS[this._levels.level];
  }
}
