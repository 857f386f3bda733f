// Is the viewer looking at a picture? The <video> is drawn into a small canvas every few seconds
// and judged from its pixels, as a user would see it: "black" (dark and flat: mean luminance and
// its spread near 0), "frozen" (a picture, but the same pixels sample after sample while the
// element claims to play) or "ok". A problem becomes an *episode* only after `confirm`
// consecutive bad samples (one dark frame in a fade is not a black screen), and an episode is
// reported once, when it starts; the next "ok" sample closes it.
//
// The pure parts (lumaStats, frameDifference, FrameJudge) take plain arrays and are tested under
// Node; FrameSampler is the thin browser shell around a canvas.

export const SAMPLE_SIZE = 32; // pixels per side of the canvas: 1,024 pixels, ~0.1 ms to judge

/** Mean and standard deviation of the Rec. 601 luma of RGBA bytes, and the luma per pixel. */
export function lumaStats(rgba) {
  const pixels = Math.floor(rgba.length / 4);
  if (pixels === 0) return { mean: 0, std: 0, luma: new Float32Array(0) };
  const luma = new Float32Array(pixels);
  let sum = 0;
  for (let i = 0; i < pixels; i += 1) {
    const y = 0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2];
    luma[i] = y;
    sum += y;
  }
  const mean = sum / pixels;
  let squares = 0;
  for (let i = 0; i < pixels; i += 1) squares += (luma[i] - mean) ** 2;
  return { mean, std: Math.sqrt(squares / pixels), luma };
}

/** Mean absolute difference of two luma arrays (Infinity when they cannot be compared). */
export function frameDifference(a, b) {
  if (!a || !b || a.length !== b.length || a.length === 0) return Infinity;
  let total = 0;
  for (let i = 0; i < a.length; i += 1) total += Math.abs(a[i] - b[i]);
  return total / a.length;
}

export const DEFAULT_THRESHOLDS = Object.freeze({
  blackMean: 16, // below this mean luma (0..255) and …
  blackStd: 6, // … this spread, the frame is black (the fake camera: mean ≈ 90, std ≈ 25)
  frozenDifference: 0.5, // below this mean pixel change between samples, the picture stands still
  confirm: 2, // consecutive bad samples before an episode starts
});

/** Classifies one sample against the previous one. */
export function classify(stats, previousLuma, t = DEFAULT_THRESHOLDS) {
  if (stats.mean < t.blackMean && stats.std < t.blackStd) return "black";
  if (previousLuma && frameDifference(stats.luma, previousLuma) < t.frozenDifference) return "frozen";
  return "ok";
}

/** Turns samples into episodes: `push(stats)` returns "black" or "frozen" when an episode starts,
 * else null. `paused` samples (the element is not playing) reset the judge: a paused picture is
 * meant to stand still. */
export class FrameJudge {
  constructor(thresholds = {}) {
    this.t = { ...DEFAULT_THRESHOLDS, ...thresholds };
    this._previous = null;
    this._streak = { kind: null, count: 0 };
    this.episode = null; // the problem being shown right now, if any
  }

  push(stats, { playing = true } = {}) {
    if (!playing) {
      this._previous = null;
      this._streak = { kind: null, count: 0 };
      this.episode = null;
      return null;
    }
    const kind = classify(stats, this._previous, this.t);
    this._previous = stats.luma;
    if (kind === "ok") {
      this._streak = { kind: null, count: 0 };
      this.episode = null;
      return null;
    }
    this._streak = this._streak.kind === kind ? { kind, count: this._streak.count + 1 } : { kind, count: 1 };
    if (this._streak.count >= this.t.confirm && this.episode !== kind) {
      this.episode = kind;
      return kind;
    }
    return null;
  }
}

/** Browser shell: samples `source` (a <video>, or a function returning the current one — Agora's
 * SDK creates its own) every `intervalMs` while it is meant to play and calls `onProblem(kind)`
 * when an episode starts. Returns a stop function. */
export function watchFrames(source, { onProblem, intervalMs = 2000, timers, thresholds, isPlaying } = {}) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = SAMPLE_SIZE;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const judge = new FrameJudge(thresholds);
  let timer = null;
  let stopped = false;
  const playing = (video) => (isPlaying ? isPlaying(video) : !video.paused && !video.ended && video.readyState >= 2);
  const tick = () => {
    if (stopped) return;
    try {
      const video = typeof source === "function" ? source() : source;
      const active = Boolean(video) && playing(video) && video.videoWidth > 0;
      let problem = null;
      if (active) {
        context.drawImage(video, 0, 0, SAMPLE_SIZE, SAMPLE_SIZE);
        problem = judge.push(lumaStats(context.getImageData(0, 0, SAMPLE_SIZE, SAMPLE_SIZE).data));
      } else {
        judge.push(null, { playing: false });
      }
      if (problem) onProblem?.(problem);
    } catch {
      // a tainted or torn-down canvas: skip this sample, try the next
    }
    timer = timers.setTimeout(tick, intervalMs);
  };
  timer = timers.setTimeout(tick, intervalMs);
  return () => {
    stopped = true;
    timers.clearTimeout(timer);
  };
}
