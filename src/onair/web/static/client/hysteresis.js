// Level selection with hysteresis: a level changes only after several consecutive readings agree,
// and getting worse is quicker than getting better. This keeps a flaky network from flipping the
// video layer (or the quality badge) on every sample.
//
// Levels are indices 0..n-1, 0 the best. A reading is the level the latest sample suggests.
// Rules (checked by Property 9):
//   * a step down (worse) happens after `downAfter` consecutive readings worse than the current level;
//   * a step up (better) happens after `upAfter` consecutive readings better than the current level;
//   * each change moves one level, and resets the streaks;
//   * a reading equal to the current level resets both streaks.

export class Hysteresis {
  constructor({ levels, initial = 0, downAfter = 2, upAfter = 5 }) {
    if (!(levels >= 2)) throw new Error("need at least two levels");
    this.levels = levels;
    this.level = initial;
    this.downAfter = downAfter;
    this.upAfter = upAfter;
    this._worse = 0;
    this._better = 0;
  }

  /** Feed one reading (a level index); returns the current level after it. */
  push(reading) {
    const target = Math.min(this.levels - 1, Math.max(0, Math.trunc(reading)));
    if (target > this.level) {
      this._worse += 1;
      this._better = 0;
      if (this._worse >= this.downAfter) this._move(this.level + 1);
    } else if (target < this.level) {
      this._better += 1;
      this._worse = 0;
      if (this._better >= this.upAfter) this._move(this.level - 1);
    } else {
      this._worse = 0;
      this._better = 0;
    }
    return this.level;
  }

  reset(level = 0) {
    this._move(level);
  }

  _move(level) {
    this.level = level;
    this._worse = 0;
    this._better = 0;
  }
}
