// Letterbox layout: where a video of size (vw × vh) sits inside a container (cw × ch) so that its
// aspect ratio is kept (never stretched, never cropped) and it is centred. Mirrors CSS
// `object-fit: contain`, which the pages use; the function exists so the rules can be tested and
// so the player can size its container before the first frame arrives.

export const DEFAULT_ASPECT = 16 / 9;
export const MIN_BOX = 2; // px: a container is never allowed to collapse to zero

/** Size of the player container for a viewport: full width, height from the source's aspect,
 * limited to `maxHeightFraction` of the viewport height; never below MIN_BOX. */
export function playerSize(viewport, sourceAspect = DEFAULT_ASPECT, maxHeightFraction = 0.75) {
  const vw = Math.max(MIN_BOX, finiteOr(viewport.width, MIN_BOX));
  const vh = Math.max(MIN_BOX, finiteOr(viewport.height, MIN_BOX));
  const aspect = sourceAspect > 0 && Number.isFinite(sourceAspect) ? sourceAspect : DEFAULT_ASPECT;
  const width = vw;
  const height = Math.max(MIN_BOX, Math.min(vh * maxHeightFraction, width / aspect));
  return { width: Math.round(width), height: Math.round(height) };
}

/** The rendered video box inside the container: {x, y, width, height} (CSS pixels). */
export function letterbox(container, video) {
  const cw = Math.max(MIN_BOX, finiteOr(container.width, MIN_BOX));
  const ch = Math.max(MIN_BOX, finiteOr(container.height, MIN_BOX));
  const known = video && video.width > 0 && video.height > 0 && Number.isFinite(video.width / video.height);
  const aspect = known ? video.width / video.height : DEFAULT_ASPECT;
  let width = cw;
  let height = cw / aspect;
  if (height > ch) {
    height = ch;
    width = ch * aspect;
  }
  width = Math.max(MIN_BOX, width);
  height = Math.max(MIN_BOX, height);
  return { x: (cw - width) / 2, y: (ch - height) / 2, width, height };
}

function finiteOr(value, fallback) {
  return Number.isFinite(value) ? value : fallback;
}
