// The chat page: transcript, composer, sidebar; one client of docs/protocol.md.
import { copyText, flash, handleCopyClick, renderMarkdown } from "./markdown.js";
import { ChatSocket } from "./socket.js";

const $ = (id) => document.getElementById(id);
const root = $("chat");
const messagesEl = $("messages");
const scroller = $("scroller");
const emptyState = $("empty-state");
const composer = $("composer");
const textarea = $("message");
const sendButton = $("send");
const stopButton = $("stop");
const composerError = $("composer-error");
const charCount = $("char-count");
const connStatus = $("conn-status");
const titleEl = $("conversation-title");
const deleteForm = $("delete-form");
const conversationList = $("conversation-list");

const PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000";
const MAX_CHARS = Number(root.dataset.maxChars) || 100000;
const NEAR_BOTTOM_PX = 120;
const coarsePointer = window.matchMedia("(pointer: coarse)");
const numberFormat = new Intl.NumberFormat();

const state = {
  conversation: root.dataset.conversation || null,
  /** @type {Map<string, Reply>} */
  replies: new Map(),
  // Id of the reply being generated here; `true` while joined says one is but
  // its snapshot hasn't arrived yet.
  generating: null,
  // The send frame awaiting its `start`; resent after a reconnect (the server
  // dedupes on client_id, so a resend never makes a second turn).
  pending: null,
  regenerating: false,
};

// --- small helpers -----------------------------------------------------------

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // crypto.randomUUID needs a secure context; plain-http deployments don't have one.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function conversationUrl(id) {
  return root.dataset.conversationUrl.replace(PLACEHOLDER_ID, id);
}

function formatDuration(ms) {
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function isNearBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  scroller.scrollTop = scroller.scrollHeight;
}

/** Run a DOM change, then follow the bottom if the reader was already there. */
function keepingBottom(change) {
  const stick = isNearBottom();
  change();
  if (stick) scrollToBottom();
}

const announcer = el("div", "visually-hidden");
announcer.setAttribute("aria-live", "polite");
document.body.append(announcer);
function announce(text) {
  announcer.textContent = text;
}

// --- replies -----------------------------------------------------------------

/**
 * One assistant message on the page. Text accumulates here; the DOM is
 * re-rendered from it at most once per animation frame.
 */
class Reply {
  constructor(data) {
    this.id = data.id;
    this.content = data.content || "";
    this.reasoning = data.reasoning || "";
    this.status = data.status || "streaming";
    this.finishReason = data.finish_reason || "";
    this.errorMessage = data.error_message || "";
    this.usage = data.usage || null;
    this.ttftMs = data.ttft_ms ?? null;
    this.durationMs = data.duration_ms ?? null;
    this.model = data.model || "";
    this.seq = 0;
    this.dirty = false;
    this.thinkingAutoOpened = false;
    this.thinkingStarted = null;
    this.thinkingMs = null;

    this.el = el("article", "msg msg-assistant");
    this.el.dataset.id = this.id;
    this.el.dataset.role = "assistant";
    this.thinking = el("details", "thinking");
    this.thinking.hidden = true;
    const summary = el("summary", "", "Thinking");
    this.thinkingMeta = el("span", "thinking-meta");
    summary.append(this.thinkingMeta);
    this.thinkingBody = el("div", "thinking-body md");
    this.thinking.append(summary, this.thinkingBody);
    this.body = el("div", "md reply-body");
    this.typing = el("div", "typing");
    this.typing.setAttribute("aria-hidden", "true");
    this.typing.append(el("span"), el("span"), el("span"));
    this.footer = el("div", "reply-footer");
    this.el.append(this.thinking, this.body, this.typing, this.footer);
    this.thinking.addEventListener("toggle", () => {
      if (this.thinking.open) renderMarkdown(this.thinkingBody, this.reasoning);
    });
  }

  get streaming() {
    return this.status === "streaming";
  }

  render() {
    this.dirty = false;
    const hasReasoning = this.reasoning.length > 0;
    this.thinking.hidden = !hasReasoning;
    if (hasReasoning) {
      const thinkingNow = this.streaming && !this.content;
      this.thinking.classList.toggle("active", thinkingNow);
      if (thinkingNow && !this.thinkingAutoOpened) {
        this.thinkingAutoOpened = true;
        this.thinkingStarted = performance.now();
        this.thinking.open = true;
      }
      if (!thinkingNow && this.thinkingStarted !== null && this.thinkingMs === null) {
        this.thinkingMs = performance.now() - this.thinkingStarted;
        this.thinking.open = false; // the answer has started: fold the thinking away
      }
      const parts = [];
      if (thinkingNow) parts.push("…");
      else if (this.thinkingMs !== null) parts.push(formatDuration(this.thinkingMs));
      parts.push(`${numberFormat.format(this.reasoning.length)} chars`);
      this.thinkingMeta.textContent = ` · ${parts.join(" · ")}`;
      // Rendering the (often long) thinking is wasted work while it's folded.
      if (this.thinking.open || !this.streaming) renderMarkdown(this.thinkingBody, this.reasoning);
    }
    renderMarkdown(this.body, this.content);
    this.typing.hidden = !(this.streaming && !this.content && !(hasReasoning && this.thinking.open));
    this.el.classList.toggle("streaming", this.streaming);
  }

  renderFooter(isLast) {
    const footer = this.footer;
    footer.replaceChildren();
    if (this.streaming) return;
    const canRetry = isLast && !state.generating && !state.pending;

    if (this.status === "error" || this.status === "interrupted") {
      const alert = el("div", "alert reply-error");
      alert.setAttribute("role", "alert");
      const fallback =
        this.status === "interrupted"
          ? "The reply was interrupted. The text so far is kept."
          : "Something went wrong while writing this reply.";
      alert.append(el("p", "", this.errorMessage || fallback));
      if (canRetry) {
        const retry = el("button", "btn btn-small", "Retry");
        retry.type = "button";
        retry.dataset.action = "regenerate";
        alert.append(retry);
      }
      footer.append(alert);
      return;
    }

    const meta = el("span", "reply-meta");
    const bits = [];
    if (this.status === "stopped") bits.push("Stopped");
    if (this.usage && this.usage.completion_tokens != null) {
      const approx = this.usage.estimated ? "≈" : "";
      bits.push(`${approx}${numberFormat.format(this.usage.completion_tokens)} tokens`);
      meta.title = [
        `prompt ${this.usage.prompt_tokens ?? "?"}`,
        `completion ${this.usage.completion_tokens}`,
        `total ${this.usage.total_tokens ?? "?"}`,
        this.usage.estimated ? "(estimated)" : "",
        this.ttftMs != null ? `· first token after ${formatDuration(this.ttftMs)}` : "",
        this.model ? `· ${this.model}` : "",
      ]
        .filter(Boolean)
        .join(" ");
    }
    if (this.durationMs != null) bits.push(formatDuration(this.durationMs));
    if (this.finishReason === "length") bits.push("cut off at the length limit");
    if (this.finishReason === "content_filter") bits.push("stopped by the content filter");
    meta.textContent = bits.join(" · ");

    const actions = el("div", "reply-actions");
    const copy = el("button", "btn-ghost", "Copy");
    copy.type = "button";
    copy.dataset.action = "copy-reply";
    copy.setAttribute("aria-label", "Copy reply");
    actions.append(copy);
    if (canRetry) {
      const regen = el("button", "btn-ghost", "Regenerate");
      regen.type = "button";
      regen.dataset.action = "regenerate";
      actions.append(regen);
    }
    footer.append(actions, meta);
  }
}

let frameRequested = false;

function scheduleRender(reply) {
  reply.dirty = true;
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(flushRenders);
}

function flushRenders() {
  frameRequested = false;
  const stick = isNearBottom();
  for (const reply of state.replies.values()) {
    if (reply.dirty) reply.render();
  }
  if (stick) scrollToBottom();
}

function lastReply() {
  const articles = messagesEl.querySelectorAll("article.msg");
  const last = articles[articles.length - 1];
  return last && last.dataset.role === "assistant" ? state.replies.get(last.dataset.id) : null;
}

/** Footers depend on which reply is last and on whether anything is running. */
function refreshFooters() {
  const last = lastReply();
  for (const reply of state.replies.values()) reply.renderFooter(reply === last);
}

function addUserMessage({ id, content }) {
  if (id && messagesEl.querySelector(`article[data-id="${CSS.escape(id)}"]`)) return;
  const article = el("article", "msg msg-user");
  article.dataset.role = "user";
  if (id) article.dataset.id = id;
  article.append(el("div", "bubble", content));
  messagesEl.append(article);
  emptyState.hidden = true;
}

function addReply(data) {
  let reply = state.replies.get(data.id);
  if (reply) return reply;
  reply = new Reply(data);
  state.replies.set(reply.id, reply);
  messagesEl.append(reply.el);
  emptyState.hidden = true;
  reply.render();
  return reply;
}

function showTranscript(items) {
  messagesEl.replaceChildren();
  state.replies.clear();
  for (const item of items) {
    if (item.role === "user") addUserMessage(item);
    else addReply(item);
  }
  emptyState.hidden = items.length > 0;
  refreshFooters();
  scrollToBottom();
}

/** Re-read the saved transcript (after missing a reply's end while offline). */
async function reloadTranscript() {
  try {
    const response = await fetch(location.pathname, { credentials: "same-origin" });
    if (response.redirected && !new URL(response.url).pathname.startsWith(location.pathname)) {
      location.assign(response.url);
      return;
    }
    if (!response.ok) return;
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const data = doc.getElementById("transcript");
    if (data) showTranscript(JSON.parse(data.textContent));
  } catch {
    // Offline again: the next reconnect tries again.
  }
}

// --- sidebar -----------------------------------------------------------------

function upsertSidebar(id, title) {
  let item = conversationList.querySelector(`li[data-id="${CSS.escape(id)}"]`);
  if (!item) {
    item = el("li");
    item.dataset.id = id;
    const link = el("a");
    link.href = conversationUrl(id);
    item.append(link);
  }
  const link = item.querySelector("a");
  // Not "New chat": that name belongs to the link that starts one.
  link.textContent = title || "Untitled chat";
  link.title = title || "Untitled chat";
  conversationList.prepend(item);
  $("conversation-list-empty").hidden = true;
  markCurrentInSidebar();
}

function markCurrentInSidebar() {
  for (const link of conversationList.querySelectorAll("a")) {
    if (link.closest("li").dataset.id === state.conversation) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function setTitle(title) {
  titleEl.textContent = title || "New chat";
  document.title = `${title || "New chat"} · GLM chat`;
}

const layout = $("layout");
const backdrop = $("sidebar-backdrop");
const openButton = $("sidebar-open");

function setSidebar(open) {
  layout.classList.toggle("sidebar-shown", open);
  backdrop.hidden = !open;
  openButton.setAttribute("aria-expanded", String(open));
  if (open) document.querySelector("#sidebar .new-chat").focus();
}

openButton.addEventListener("click", () => setSidebar(true));
$("sidebar-close").addEventListener("click", () => {
  setSidebar(false);
  openButton.focus();
});
backdrop.addEventListener("click", () => setSidebar(false));

deleteForm.addEventListener("submit", (event) => {
  if (!window.confirm("Delete this chat? This can't be undone.")) event.preventDefault();
});

// --- composer ----------------------------------------------------------------

function showComposerError(message) {
  composerError.textContent = message;
  composerError.hidden = !message;
}

function updateComposer() {
  const busy = Boolean(state.generating);
  const length = textarea.value.length;
  const tooLong = length > MAX_CHARS;
  sendButton.hidden = busy;
  stopButton.hidden = !busy;
  sendButton.disabled = busy || Boolean(state.pending) || !textarea.value.trim() || tooLong;
  composer.classList.toggle("sending", Boolean(state.pending));
  if (length > MAX_CHARS * 0.9) {
    charCount.textContent = `${numberFormat.format(length)} / ${numberFormat.format(MAX_CHARS)}`;
    charCount.classList.toggle("over", tooLong);
  } else {
    charCount.textContent = "";
  }
}

function autoGrow() {
  // Setting style from script is allowed under style-src 'self' (CSSOM, not markup).
  textarea.style.height = "auto";
  textarea.style.height = `${textarea.scrollHeight + 2}px`;
}

// Drafts survive a reload or a detour through the login page (per tab only:
// sessionStorage, so nothing lingers on a shared computer).
function draftKey() {
  return `glmweb:draft:${state.conversation || "new"}`;
}

function saveDraft() {
  try {
    if (textarea.value) sessionStorage.setItem(draftKey(), textarea.value);
    else sessionStorage.removeItem(draftKey());
  } catch {
    // Storage full or disabled: drafts just aren't kept.
  }
}

function restoreDraft() {
  try {
    const draft = sessionStorage.getItem(draftKey());
    if (draft && !textarea.value) textarea.value = draft;
  } catch {
    // As above.
  }
}

function sendMessage() {
  const content = textarea.value;
  if (!content.trim() || state.pending || state.generating) return;
  if (content.length > MAX_CHARS) {
    showComposerError(`Your message is too long (${numberFormat.format(content.length)} characters; the limit is ${numberFormat.format(MAX_CHARS)}).`);
    return;
  }
  showComposerError("");
  const frame = { type: "send", conversation: state.conversation, content, client_id: uuid() };
  state.pending = frame;
  socket.send(frame); // if closed, onOpen sends it after reconnecting
  updateComposer();
  refreshFooters();
}

function regenerate() {
  if (!state.conversation || state.generating || state.pending) return;
  showComposerError("");
  if (!socket.send({ type: "regenerate", conversation: state.conversation, client_id: uuid() })) {
    showComposerError("Not connected. Try again in a moment.");
    return;
  }
  state.regenerating = true;
  for (const button of messagesEl.querySelectorAll('[data-action="regenerate"]')) button.disabled = true;
}

function stop() {
  if (state.generating && state.conversation) {
    socket.send({ type: "stop", conversation: state.conversation });
  }
}

composer.addEventListener("submit", (event) => {
  event.preventDefault();
  sendMessage();
});

textarea.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
  // On touch keyboards Return is how people type a new line; they tap Send.
  if (coarsePointer.matches) return;
  event.preventDefault();
  sendMessage();
});

textarea.addEventListener("input", () => {
  saveDraft();
  autoGrow();
  updateComposer();
});

stopButton.addEventListener("click", stop);

document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  if (layout.classList.contains("sidebar-shown")) {
    setSidebar(false);
    openButton.focus();
  } else if (state.generating) {
    event.preventDefault();
    stop();
  }
});

messagesEl.addEventListener("click", (event) => {
  if (handleCopyClick(event)) return;
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  if (button.dataset.action === "regenerate") regenerate();
  if (button.dataset.action === "copy-reply") {
    const reply = state.replies.get(button.closest("article").dataset.id);
    copyText(reply ? reply.content : "").then(
      () => flash(button, "Copied"),
      () => flash(button, "Copy failed"),
    );
  }
});

// --- protocol events ---------------------------------------------------------

const handlers = {
  start(event) {
    const mine = state.pending && event.user_message?.client_id === state.pending.client_id;
    if (mine && state.conversation === null) {
      state.conversation = event.conversation;
      history.replaceState(null, "", conversationUrl(event.conversation));
      deleteForm.action = root.dataset.deleteUrl.replace(PLACEHOLDER_ID, event.conversation);
      deleteForm.hidden = false;
    }
    upsertSidebar(event.conversation, event.title);
    if (event.conversation !== state.conversation) return;
    setTitle(event.title);

    if (mine) {
      try {
        sessionStorage.removeItem("glmweb:draft:new");
      } catch {
        // Storage disabled.
      }
      if (textarea.value === state.pending.content) {
        textarea.value = "";
        autoGrow();
      }
      saveDraft();
      state.pending = null;
      showComposerError("");
    }
    if (event.user_message) {
      addUserMessage(event.user_message);
    } else {
      // A regenerated reply replaces the earlier one(s) on screen; they stay
      // saved as other branches.
      state.regenerating = false;
      const parent = event.parent && messagesEl.querySelector(`article[data-id="${CSS.escape(event.parent)}"]`);
      let next = parent ? parent.nextElementSibling : null;
      while (next) {
        const after = next.nextElementSibling;
        if (next.dataset.role === "assistant" && next.dataset.id !== event.reply) {
          state.replies.delete(next.dataset.id);
          next.remove();
        }
        next = after;
      }
    }
    const reply = addReply({ id: event.reply, status: "streaming", model: event.model });
    reply.seq = Math.max(reply.seq, event.seq || 0);
    state.generating = event.reply;
    updateComposer();
    refreshFooters();
    scrollToBottom();
  },

  delta(event) {
    if (event.conversation !== state.conversation) return;
    const reply = state.replies.get(event.reply) || addReply({ id: event.reply, status: "streaming" });
    if (event.seq <= reply.seq) return; // already in a snapshot or applied
    reply.seq = event.seq;
    if (event.reasoning) reply.reasoning += event.reasoning;
    if (event.content) reply.content += event.content;
    if (!state.generating || state.generating === true) {
      state.generating = reply.id;
      updateComposer();
    }
    scheduleRender(reply);
  },

  snapshot(event) {
    if (event.conversation !== state.conversation) return;
    const reply = state.replies.get(event.reply) || addReply({ id: event.reply, status: "streaming", model: event.model });
    if (event.seq < reply.seq) return;
    reply.content = event.content || "";
    reply.reasoning = event.reasoning || "";
    reply.seq = event.seq;
    reply.status = "streaming";
    state.generating = reply.id;
    updateComposer();
    refreshFooters();
    scheduleRender(reply);
  },

  done(event) {
    if (event.conversation !== state.conversation) return;
    const reply = state.replies.get(event.reply);
    if (reply) {
      reply.seq = event.seq;
      reply.status = event.status || "complete";
      reply.finishReason = event.finish_reason || "";
      reply.usage = event.usage || null;
      reply.ttftMs = event.ttft_ms ?? null;
      reply.durationMs = event.duration_ms ?? null;
    }
    if (state.generating === event.reply || state.generating === true) state.generating = null;
    announce(event.status === "stopped" ? "Reply stopped" : "Reply complete");
    keepingBottom(() => {
      reply?.render();
      updateComposer();
      refreshFooters();
    });
  },

  error(event) {
    if (event.reply) {
      if (event.conversation !== state.conversation) return;
      const reply = state.replies.get(event.reply);
      if (reply) {
        reply.seq = event.seq ?? reply.seq;
        reply.status = event.status || "error";
        reply.errorMessage = event.message || "";
      }
      if (state.generating === event.reply || state.generating === true) state.generating = null;
      keepingBottom(() => {
        reply?.render();
        updateComposer();
        refreshFooters();
      });
      return;
    }
    // An error about a frame we sent: the send (its text stays in the box),
    // a regenerate, a stop or a join.
    if (event.code === "not_authenticated") return; // the socket closes with 4401
    state.pending = null;
    state.regenerating = false;
    if (event.code === "busy" && !state.generating) state.generating = true;
    showComposerError(event.message || "Something went wrong.");
    updateComposer();
    refreshFooters();
  },

  joined(event) {
    if (event.conversation !== state.conversation) return;
    if (event.generating) {
      if (!state.generating) state.generating = true;
    } else {
      state.generating = null;
      // We missed the end of a reply while disconnected: fetch how it ended.
      if ([...state.replies.values()].some((reply) => reply.streaming)) reloadTranscript();
    }
    updateComposer();
    refreshFooters();
  },
};

const STATUS_TEXT = {
  connecting: "",
  open: "",
  reconnecting: "Reconnecting…",
  refused: "Connection refused",
};

let statusTimer = null;
const socket = new ChatSocket({
  onEvent(event) {
    const handler = handlers[event.type];
    if (handler) handler(event);
  },
  onOpen() {
    if (state.conversation) socket.send({ type: "join", conversation: state.conversation });
    if (state.pending) socket.send(state.pending);
  },
  onState(connection) {
    clearTimeout(statusTimer);
    const show = () => {
      connStatus.textContent = STATUS_TEXT[connection] ?? "";
      connStatus.classList.toggle("visible", Boolean(connStatus.textContent));
    };
    // A reconnect that succeeds at once isn't worth a flicker.
    if (connection === "reconnecting") statusTimer = setTimeout(show, 400);
    else show();
  },
  onUnauthenticated() {
    const login = new URL(root.dataset.loginUrl, location.href);
    login.searchParams.set("next", location.pathname);
    location.assign(login.href);
  },
});

window.addEventListener("online", () => socket.nudge());

// --- start -------------------------------------------------------------------

showTranscript(JSON.parse($("transcript").textContent || "[]"));
restoreDraft();
markCurrentInSidebar();
updateComposer();
autoGrow();
socket.connect();
// Tests and scripts can tell the page is live (the Send button is disabled until then).
root.dataset.ready = "true";
