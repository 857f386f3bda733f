// The client's copy of one stream's chat, ordered by the server's `seq` (never by time).
//
// Rows arrive from four places — the newest history page, older pages, resync pages
// (`after_seq`) and live postgres_changes events or send replies — in any order and possibly
// twice. The log keeps one row per seq (the newest version of it: a tombstone beats an edit, a
// later edit beats an earlier one) and shows only the contiguous run floor..contiguous, so the user
// never sees a gap or a duplicate. The window starts with the newest history page (anchor());
// rows seen before that, or beyond a gap, are held until the gap is filled.

import { Emitter } from "./emitter.js";

export class ChatLog extends Emitter {
  constructor() {
    super();
    this.bySeq = new Map();
    this.floor = null; // lowest visible seq; null until the newest history page anchored the window
    this.contiguous = 0; // every seq in floor..contiguous is present
  }

  /** Merge rows; returns true when rows beyond a gap are waiting (a resync is needed). */
  applyRows(rows) {
    let changed = false;
    for (const row of rows) {
      if (!row || !Number.isInteger(row.seq) || row.seq < 1) continue;
      const current = this.bySeq.get(row.seq);
      if (current && !isNewer(row, current)) continue;
      this.bySeq.set(row.seq, row);
      changed = true;
    }
    if (this.floor !== null) {
      while (this.bySeq.has(this.contiguous + 1)) this.contiguous += 1;
    }
    if (changed) this.emit("change");
    return this.hasGap();
  }

  /** Start the window with the newest history page (empty: the chat starts at seq 1). */
  anchor(rows) {
    const seqs = rows.map((r) => r?.seq).filter((s) => Number.isInteger(s) && s >= 1);
    this.floor = seqs.length ? Math.min(...seqs) : 1;
    this.contiguous = this.floor - 1;
    return this.applyRows(rows);
  }

  /** Extend the window downwards with an older page (fetched with `before_seq` = floor). */
  extendBack(rows) {
    const seqs = rows.map((r) => r?.seq).filter((s) => Number.isInteger(s) && s >= 1 && s < this.floor);
    if (seqs.length) this.floor = Math.min(...seqs);
    return this.applyRows(rows);
  }

  hasGap() {
    if (this.floor === null) return false;
    for (const seq of this.bySeq.keys()) if (seq > this.contiguous + 1) return true;
    return false;
  }

  /** The cursor for a resync: everything after it is to be fetched. */
  get afterSeq() {
    return this.contiguous;
  }

  get loaded() {
    return this.floor !== null;
  }

  /** The visible messages, oldest first, tombstones included (the view hides or marks them). */
  messages() {
    const out = [];
    if (this.floor === null) return out;
    for (let seq = this.floor; seq <= this.contiguous; seq += 1) out.push(this.bySeq.get(seq));
    return out;
  }
}

function isNewer(candidate, current) {
  if (current.deleted_at) return false; // delete wins over edit
  if (candidate.deleted_at) return true;
  const a = candidate.edited_at ? Date.parse(candidate.edited_at) : 0;
  const b = current.edited_at ? Date.parse(current.edited_at) : 0;
  if (a !== b) return a > b;
  // the same version seen twice, or an edit tie: keep the later editor id (the server's rule)
  return String(candidate.edited_by ?? "") > String(current.edited_by ?? "");
}
