// A tiny event emitter: listeners per event name, errors in one listener never stop the others.

export class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  /** Register `callback` for `event`; returns a function that removes it. */
  on(event, callback) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(callback);
    return () => this._listeners.get(event)?.delete(callback);
  }

  emit(event, ...args) {
    for (const callback of [...(this._listeners.get(event) ?? [])]) {
      try {
        callback(...args);
      } catch (err) {
        // A broken UI listener must not break the protocol code that emitted the event.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}

/** The real timers of the host environment, in the shape every module takes as `timers`. */
export const realTimers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (id) => globalThis.clearTimeout(id),
};

export const realClock = () => Date.now();
