// The chat column of the studio and the watch page: the ChatLog's visible run (oldest first),
// then the user's queued and failed sends. Bodies are plain text and always rendered with
// textContent (never innerHTML). The studio passes `moderation` to get delete / mute buttons.
// Without an outbox (a stream that had ended when the page opened) the panel is read-only.

const MAX_SHOWN = 500;

export class ChatPanel {
  constructor({ root, log, outbox, sync, me, maxChars = 500, moderation = null }) {
    this.log = log;
    this.outbox = outbox;
    this.sync = sync;
    this.me = me;
    this.moderation = moderation;
    root.classList.add("chat");
    root.innerHTML = `
      <button type="button" class="chat-older">Load older messages</button>
      <ul class="chat-log" aria-live="polite" aria-label="Chat messages"></ul>
      <form class="chat-form">
        <input name="body" autocomplete="off" aria-label="Message" placeholder="Say something…">
        <button type="submit">Send</button>
      </form>
      <p class="error chat-error" role="alert" hidden></p>`;
    this.list = root.querySelector(".chat-log");
    this.error = root.querySelector(".chat-error");
    this.form = root.querySelector("form");
    this.older = root.querySelector(".chat-older");
    this.olderExhausted = false; // the server had nothing before the floor (e.g. removed by retention)
    const input = root.querySelector("input");
    input.maxLength = maxChars;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = input.value.trim();
      if (!body || !this.outbox) return;
      input.value = "";
      this.outbox.send(body);
    });
    this.older.addEventListener("click", async () => {
      const n = await this.sync.loadOlder().catch(() => 0);
      if (n === 0) this.olderExhausted = true;
      this.render();
    });
    log.on("change", () => this.render());
    if (outbox) {
      outbox.on("change", () => this.render());
      outbox.on("failed", (_entry, err) => this.showError(err));
    } else {
      this.closeInput("Chat is read-only");
    }
    this.render();
  }

  /** No more sending (the stream ended): the input and its button are disabled, saying why. */
  closeInput(reason) {
    for (const control of this.form.elements) control.disabled = true;
    this.form.elements.body.placeholder = reason;
    this.form.dataset.closed = "";
  }

  showError(err) {
    this.error.hidden = !err;
    this.error.textContent = err ? String(err.message ?? err) : "";
  }

  render() {
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    const items = [];
    // seqs are gapless from 1 per stream: a floor above 1 means older messages exist
    this.older.hidden = this.olderExhausted || !this.log.loaded || this.log.floor <= 1;
    const shown = this.log.messages().slice(-MAX_SHOWN);
    const delivered = new Set(shown.map((m) => m.client_msg_id));
    for (const m of shown) items.push(this.item(m));
    for (const e of this.outbox?.pending() ?? []) {
      if (!delivered.has(e.client_msg_id)) items.push(this.item({ sender_id: this.me, body: e.body, client_msg_id: e.client_msg_id }, "pending"));
    }
    for (const e of this.outbox?.failed ?? []) items.push(this.item({ sender_id: this.me, body: `${e.body} — not sent: ${e.error}` }, "failed"));
    this.list.replaceChildren(...items);
    if (atBottom) this.list.scrollTop = this.list.scrollHeight;
  }

  item(message, state = "") {
    const li = document.createElement("li");
    if (message.seq) li.dataset.seq = String(message.seq);
    if (state) li.classList.add(state);
    const deleted = Boolean(message.deleted_at || message.deleted);
    if (deleted) li.classList.add("deleted");
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = message.sender_id ?? "?";
    const body = document.createElement("span");
    body.className = "body";
    body.textContent = deleted ? "message deleted" : (message.body ?? "");
    li.append(who, body);
    if (this.moderation && message.seq && !deleted) {
      const del = document.createElement("button");
      del.type = "button";
      del.className = "mod";
      del.textContent = "Delete";
      del.addEventListener("click", () => this.moderation.remove(message).catch((err) => this.showError(err)));
      li.append(del);
      if (this.moderation.pin) {
        const pin = document.createElement("button");
        pin.type = "button";
        pin.className = "mod";
        pin.textContent = "Pin";
        pin.addEventListener("click", () => this.moderation.pin(message).catch((err) => this.showError(err)));
        li.append(pin);
      }
      if (message.sender_id !== this.me) {
        const mute = document.createElement("button");
        mute.type = "button";
        mute.className = "mod";
        mute.textContent = "Mute 5 min";
        mute.addEventListener("click", () => this.moderation.mute(message.sender_id).catch((err) => this.showError(err)));
        li.append(mute);
      }
    }
    return li;
  }
}
