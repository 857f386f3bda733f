// Virtual time for the client library: setTimeout/clearTimeout on a clock that only moves when
// the test says so. Promise continuations run between timers (setImmediate drains microtasks).

export const settle = () => new Promise((resolve) => setImmediate(resolve));

export class FakeTimers {
  constructor(start = 1_700_000_000_000) {
    this.time = start;
    this._queue = [];
    this._nextId = 1;
    this.setTimeout = (fn, ms = 0) => {
      const id = this._nextId++;
      this._queue.push({ id, at: this.time + Math.max(0, Number(ms) || 0), fn });
      return id;
    };
    this.clearTimeout = (id) => {
      this._queue = this._queue.filter((t) => t.id !== id);
    };
    this.now = () => this.time;
  }

  get pending() {
    return this._queue.length;
  }

  /** Move time forward by `ms`, running every timer that falls due, in order. */
  async advance(ms) {
    const target = this.time + ms;
    await settle();
    for (;;) {
      this._queue.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this._queue[0];
      if (!next || next.at > target) break;
      this._queue.shift();
      this.time = next.at;
      next.fn();
      await settle();
    }
    this.time = target;
    await settle();
  }
}

/** A seeded random source in [0, 1) from a list of fast-check doubles (cycled). */
export function cyclingRandom(values) {
  let i = 0;
  return () => {
    const v = values.length ? values[i++ % values.length] : 0.5;
    return v >= 1 ? 0.999999 : v < 0 ? 0 : v;
  };
}
