// The chat page: transcript, composer, sidebar; one client of docs/protocol.md.
import { installAnnouncements } from "./announcements.js";
import { copyText, flash, handleMarkdownClick, renderMarkdown } from "./markdown.js";
import { installShortcuts } from "./shortcuts.js";
import { ChatSocket } from "./socket.js";
import { MessageTree, keepTimesFresh, timeElement, versionNav } from "./tree.js";
import { renameInSidebar, setCurrentConversation, setTitle, upsertSidebar } from "./sidebar.js";
import { conversationCreated, newChatSettings, showSettingsErrors } from "./settings.js";
import { modelTag } from "./header.js";
import "./empty.js";

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

const PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000";
const PLACEHOLDER_MESSAGE_ID = "11111111-1111-1111-1111-111111111111";
const MAX_CHARS = Number(root.dataset.maxChars) || 100000;
const NEAR_BOTTOM_PX = 120;
const coarsePointer = window.matchMedia("(pointer: coarse)");
const numberFormat = new Intl.NumberFormat();

const state = {
  conversation: root.dataset.conversation || null,
  /** Every message of every branch; the page shows the branch ending at `leaf`. */
  tree: new MessageTree(),
  leaf: null,
  // A branch chosen here that the server hasn't confirmed yet (see switchTo).
  unsyncedLeaf: null,
  /** @type {Map<string, Reply>} */
  replies: new Map(),
  /** @type {Map<string, UserMessage>} */
  userMessages: new Map(),
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
    this.contextLeftOut = data.context_left_out || 0;
    this.createdAt = data.created_at || new Date().toISOString();
    this.rating = data.rating ?? null;
    this.feedbackComment = data.feedback_comment || "";
    this.commentForm = null;
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
    const summary = el("summary");
    this.thinkingLabel = el("span", "thinking-label", "Thinking");
    this.thinkingMeta = el("span", "thinking-meta");
    summary.append(this.thinkingLabel, this.thinkingMeta);
    this.thinkingBody = el("div", "thinking-body md");
    this.thinking.append(summary, this.thinkingBody);
    this.body = el("div", "md reply-body");
    this.typing = el("div", "typing");
    this.typing.setAttribute("aria-hidden", "true");
    this.typing.append(el("span"), el("span"), el("span"));
    this.footer = el("div", "reply-footer");
    this.contextNote = el("p", "context-note");
    this.contextNote.hidden = true;
    this.el.append(this.contextNote, this.thinking, this.body, this.typing, this.footer);
    this.thinking.addEventListener("toggle", () => {
      if (this.thinking.open) renderMarkdown(this.thinkingBody, this.reasoning, { streaming: this.streaming });
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
      const chars = `${numberFormat.format(this.reasoning.length)} chars`;
      if (thinkingNow) this.thinkingMeta.textContent = ` · ${chars} so far…`;
      else if (this.thinkingMs !== null) this.thinkingMeta.textContent = ` · thought for ${formatDuration(this.thinkingMs)} · ${chars}`;
      else this.thinkingMeta.textContent = ` · ${chars}`;
      // Rendering the (often long) thinking is wasted work while it's folded.
      if (this.thinking.open || !this.streaming) {
        renderMarkdown(this.thinkingBody, this.reasoning, { streaming: this.streaming });
      }
    }
    renderMarkdown(this.body, this.content, { streaming: this.streaming });
    const leftOut = this.contextLeftOut;
    this.contextNote.hidden = !leftOut;
    if (leftOut) {
      const messages = leftOut === 1 ? "1 earlier message was" : `${numberFormat.format(leftOut)} earlier messages were`;
      this.contextNote.textContent = `${messages} left out to fit ${this.model || "the model"}'s context.`;
    }
    this.typing.hidden = !(this.streaming && !this.content && !(hasReasoning && this.thinking.open));
    this.el.classList.toggle("streaming", this.streaming);
  }

  renderFooter(isLast) {
    const footer = this.footer;
    footer.replaceChildren();
    if (this.streaming) return;
    const idle = !state.generating && !state.pending;

    const notice = this.endNotice();
    if (notice) {
      const alert = el("div", `alert reply-notice reply-notice-${notice.kind}`);
      alert.setAttribute("role", notice.kind === "error" ? "alert" : "status");
      alert.append(el("p", "", notice.text));
      if (notice.action === "continue" && isLast && idle) {
        alert.append(actionButton("btn btn-small", "Continue", "continue", "Continue this reply"));
      }
      if (notice.action === "retry" && idle) {
        alert.append(actionButton("btn btn-small", "Retry", "regenerate", "Retry this reply"));
      }
      footer.append(alert);
    }

    const actions = el("div", "reply-actions");
    const versions = versionNav(state.tree, this.id, !idle);
    if (versions) actions.append(versions);
    actions.append(actionButton("btn-ghost", "Copy", "copy-reply", "Copy reply"));
    if (idle) actions.append(actionButton("btn-ghost", "Regenerate", "regenerate", "Regenerate reply"));
    actions.append(this.thumb(1, "Good reply"), this.thumb(-1, "Bad reply"));
    footer.append(actions, this.meta());
    if (this.commentForm) footer.append(this.commentForm);
    else if (this.feedbackComment) footer.append(el("p", "feedback-comment", `Your feedback: ${this.feedbackComment}`));
  }

  /** How the reply ended, when a person should know: cut, blocked, failed. */
  endNotice() {
    if (this.status === "error" || this.status === "interrupted") {
      const fallback =
        this.status === "interrupted"
          ? "The reply was interrupted. The text so far is kept."
          : "Something went wrong while writing this reply.";
      return { kind: "error", text: this.errorMessage || fallback, action: "retry" };
    }
    if (this.status !== "complete") return null;
    switch (this.finishReason) {
      case "":
      case "stop":
        return null;
      case "length":
        return {
          kind: "warning",
          text: "The reply was cut off: it reached the length limit (max tokens).",
          action: "continue",
        };
      case "content_filter":
      case "sensitive":
        return { kind: "warning", text: "The provider's content filter blocked the rest of this reply." };
      case "network_error":
        return {
          kind: "error",
          text: "The provider had a network error while writing this reply. The text so far is kept.",
          action: "retry",
        };
      default:
        return { kind: "warning", text: `The reply ended early (${this.finishReason}).`, action: "retry" };
    }
  }

  thumb(rating, label) {
    const pressed = this.rating === rating;
    const button = actionButton("btn-ghost thumb", "", "rate", label);
    button.title = label;
    button.append(thumbIcon(rating < 0));
    button.dataset.rating = String(rating);
    button.setAttribute("aria-pressed", String(pressed));
    return button;
  }

  meta() {
    const meta = el("span", "reply-meta");
    const bits = [];
    if (this.status === "stopped") bits.push("Stopped");
    if (this.usage && this.usage.completion_tokens != null) {
      const approx = this.usage.estimated ? "≈" : "";
      const tokens = this.usage.completion_tokens;
      bits.push(`${approx}${numberFormat.format(tokens)} ${tokens === 1 ? "token" : "tokens"}`);
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
    meta.textContent = bits.length ? `${bits.join(" · ")} · ` : "";
    meta.prepend(...modelTag(this.model));
    meta.append(timeElement(this.createdAt));
    return meta;
  }

  /** The optional comment after a rating; kept across footer re-renders while open. */
  openCommentForm() {
    const form = el("form", "feedback-form");
    const id = `feedback-${this.id}`;
    const label = el("label", "", this.rating === -1 ? "What was wrong with this reply? (optional)" : "Any comment? (optional)");
    label.htmlFor = id;
    const box = el("textarea");
    box.id = id;
    box.rows = 2;
    box.maxLength = 2000;
    box.value = this.feedbackComment;
    const send = actionButton("btn btn-small btn-primary", "Send feedback", "send-feedback");
    send.type = "submit";
    const skip = actionButton("btn btn-small", "Skip", "close-feedback");
    form.append(label, box, el("div", "feedback-buttons"));
    form.lastChild.append(send, skip);
    this.commentForm = form;
    this.renderFooter(this.el === messagesEl.lastElementChild);
    box.focus();
  }
}

const SVG = "http://www.w3.org/2000/svg";
const THUMB_PATH = "M7 10v11H4V10h3zm0 0 4-7c1.5 0 2.5 1 2.3 2.6L12.8 9H19a2 2 0 0 1 2 2.3l-1.3 7.6A2 2 0 0 1 17.7 21H7";

/** A thumb icon (emoji fonts are not everywhere); pointing down for "bad". */
function thumbIcon(down) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "16");
  svg.setAttribute("height", "16");
  svg.setAttribute("aria-hidden", "true");
  if (down) svg.classList.add("thumb-down");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", THUMB_PATH);
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "1.8");
  path.setAttribute("stroke-linejoin", "round");
  svg.append(path);
  return svg;
}

function actionButton(className, text, action, label) {
  const button = el("button", className, text);
  button.type = "button";
  button.dataset.action = action;
  if (label) button.setAttribute("aria-label", label);
  return button;
}

/** One user message on the page: text, Edit (inline editor), Copy, versions. */
class UserMessage {
  constructor(data) {
    this.id = data.id;
    this.content = data.content || "";
    this.createdAt = data.created_at || new Date().toISOString();
    this.editor = null;
    this.el = el("article", "msg msg-user");
    this.el.dataset.role = "user";
    this.el.dataset.id = this.id;
    this.bubble = el("div", "bubble", this.content);
    this.footer = el("div", "user-footer");
    this.el.append(this.bubble, this.footer);
  }

  renderFooter() {
    if (this.editor) return;
    const idle = !state.generating && !state.pending;
    this.footer.replaceChildren();
    const versions = versionNav(state.tree, this.id, !idle);
    if (versions) this.footer.append(versions);
    const edit = actionButton("btn-ghost", "Edit", "edit", "Edit message");
    edit.disabled = !idle;
    this.footer.append(
      edit,
      actionButton("btn-ghost", "Copy", "copy-message", "Copy message"),
      timeElement(this.createdAt),
    );
  }

  openEditor() {
    const form = el("form", "edit-form");
    const id = `edit-${this.id}`;
    const label = el("label", "visually-hidden", "Edit message");
    label.htmlFor = id;
    const box = el("textarea", "edit-box");
    box.id = id;
    box.value = this.content;
    box.rows = Math.min(12, this.content.split("\n").length + 1);
    const buttons = el("div", "edit-buttons");
    const save = actionButton("btn btn-small btn-primary", "Save & send", "save-edit");
    save.type = "submit";
    buttons.append(save, actionButton("btn btn-small", "Cancel", "cancel-edit"));
    form.append(label, box, buttons);
    box.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation(); // Esc here cancels the edit, nothing else
        this.closeEditor();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sendEdit(this, box.value);
    });
    this.editor = form;
    this.bubble.hidden = true;
    this.footer.replaceChildren(form);
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  closeEditor() {
    if (!this.editor) return;
    this.editor = null;
    this.bubble.hidden = false;
    this.renderFooter();
    this.el.querySelector('[data-action="edit"]')?.focus();
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

/** The ids of the branch shown, oldest first. */
function shownPath() {
  return state.leaf ? state.tree.branchThrough(state.leaf) : [];
}

function lastReply() {
  const path = shownPath();
  const last = path[path.length - 1];
  return last ? state.replies.get(last) || null : null;
}

/** Footers depend on which reply is last and on whether anything is running. */
function refreshFooters() {
  const path = shownPath();
  const last = path[path.length - 1];
  for (const id of path) {
    const view = state.replies.get(id) || state.userMessages.get(id);
    if (view) view.renderFooter(id === last);
  }
}

/** The element of one message, made the first time it is shown. */
function viewOf(id) {
  const data = state.tree.get(id);
  if (data.role === "user") {
    if (!state.userMessages.has(id)) state.userMessages.set(id, new UserMessage(data));
    return state.userMessages.get(id);
  }
  let reply = state.replies.get(id);
  if (!reply) {
    reply = new Reply(data);
    state.replies.set(id, reply);
    reply.render();
  }
  return reply;
}

/** Show the branch ending at `state.leaf`. */
function showBranch() {
  const path = shownPath();
  messagesEl.replaceChildren(...path.map((id) => viewOf(id).el));
  emptyState.hidden = path.length > 0;
  refreshFooters();
}

function addUserMessage(data) {
  state.tree.add({ ...data, role: "user" });
}

/** A reply the page learns of from an event; shown at the end of the branch. */
function addReply(data) {
  if (!state.tree.get(data.id)) {
    const parent = data.parent || state.leaf;
    state.tree.add({ created_at: new Date().toISOString(), ...data, parent, role: "assistant" });
  }
  const reply = viewOf(data.id);
  if (state.leaf !== data.id) {
    state.leaf = data.id;
    showBranch();
  }
  return reply;
}

function showTranscript(items) {
  state.tree = new MessageTree(items);
  state.replies.clear();
  state.userMessages.clear();
  const shown = items.filter((item) => item.shown !== false);
  const leaf = shown[shown.length - 1] || state.tree.newest();
  state.leaf = leaf ? leaf.id : null;
  showBranch();
  scrollToBottom();
}

/** Show another version of a message (and the newest messages below it). */
function switchTo(id) {
  if (!state.tree.get(id) || state.generating || state.pending) return;
  const path = state.tree.branchThrough(id);
  state.leaf = path[path.length - 1];
  showBranch();
  // The server remembers the branch: a reload shows it and the next turn follows
  // it. Until it says so, the switch is resent after each reconnect.
  state.unsyncedLeaf = state.leaf;
  socket.send({ type: "switch", conversation: state.conversation, leaf: state.leaf });
  announce(`Showing version ${state.tree.siblings(id).indexOf(id) + 1} of ${state.tree.siblings(id).length}`);
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
  const chosen = state.conversation ? null : newChatSettings();
  if (chosen) frame.settings = chosen;
  state.pending = frame;
  socket.send(frame); // if closed, onOpen sends it after reconnecting
  updateComposer();
  refreshFooters();
}

/** Send a frame that starts a turn about an existing message (regenerate, continue). */
function sendTurnFrame(frame) {
  if (!state.conversation || state.generating || state.pending) return;
  showComposerError("");
  if (!socket.send(frame)) {
    showComposerError("Not connected. Try again in a moment.");
    return;
  }
  state.regenerating = true;
  for (const button of messagesEl.querySelectorAll('[data-action="regenerate"], [data-action="continue"]')) {
    button.disabled = true;
  }
}

function regenerate(replyId) {
  sendTurnFrame({ type: "regenerate", conversation: state.conversation, reply: replyId, client_id: uuid() });
}

function continueReply(replyId) {
  sendTurnFrame({ type: "continue", conversation: state.conversation, reply: replyId });
}

/** Save & send an edited message: a new version beside it, answered anew. */
function sendEdit(message, content) {
  if (!content.trim() || state.pending || state.generating) return;
  if (content.trim() === message.content.trim()) {
    message.closeEditor();
    return;
  }
  if (content.length > MAX_CHARS) {
    showComposerError(`Your message is too long (${numberFormat.format(content.length)} characters; the limit is ${numberFormat.format(MAX_CHARS)}).`);
    return;
  }
  showComposerError("");
  const frame = { type: "edit", conversation: state.conversation, message: message.id, content, client_id: uuid() };
  state.pending = frame;
  socket.send(frame); // if closed, onOpen sends it after reconnecting
  updateComposer();
}

async function sendFeedback(reply, rating, comment) {
  const url = root.dataset.feedbackUrl
    .replace(PLACEHOLDER_ID, state.conversation)
    .replace(PLACEHOLDER_MESSAGE_ID, reply.id);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    body: JSON.stringify({ rating, comment }),
  });
  if (!response.ok) throw new Error(`feedback: HTTP ${response.status}`);
  const saved = await response.json();
  reply.rating = saved.rating;
  reply.feedbackComment = saved.comment;
}

function rate(reply, rating) {
  const next = reply.rating === rating ? null : rating; // pressing it again takes it back
  const before = reply.rating;
  reply.rating = next;
  reply.commentForm = null;
  sendFeedback(reply, next, reply.feedbackComment).then(
    () => {
      announce(next === null ? "Rating removed" : "Thanks for the feedback");
      if (next === -1) reply.openCommentForm();
      else reply.renderFooter(reply === lastReply());
    },
    () => {
      reply.rating = before;
      reply.renderFooter(reply === lastReply());
      showComposerError("Your feedback could not be saved. Try again in a moment.");
    },
  );
  reply.renderFooter(reply === lastReply());
}

function submitComment(reply, form) {
  const comment = form.querySelector("textarea").value;
  sendFeedback(reply, reply.rating, comment).then(
    () => {
      reply.commentForm = null;
      reply.renderFooter(reply === lastReply());
      announce("Thanks for the feedback");
    },
    () => showComposerError("Your feedback could not be saved. Try again in a moment."),
  );
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

installShortcuts({
  stop() {
    if (!state.generating) return false;
    stop();
    return true;
  },
  focusComposer: () => textarea.focus(),
  newChatUrl: root.dataset.homeUrl,
});

messagesEl.addEventListener("click", (event) => {
  if (handleMarkdownClick(event)) return;
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const id = button.closest("article")?.dataset.id;
  const reply = state.replies.get(id);
  const message = state.userMessages.get(id);
  switch (button.dataset.action) {
    case "regenerate":
      regenerate(id);
      break;
    case "continue":
      continueReply(id);
      break;
    case "version":
      switchTo(button.dataset.target);
      break;
    case "edit":
      if (message && !state.generating && !state.pending) message.openEditor();
      break;
    case "cancel-edit":
      message?.closeEditor();
      break;
    case "rate":
      if (reply) rate(reply, Number(button.dataset.rating));
      break;
    case "close-feedback":
      if (reply) {
        reply.commentForm = null;
        reply.renderFooter(reply === lastReply());
      }
      break;
    case "copy-reply":
    case "copy-message":
      copyText((reply || message)?.content ?? "").then(
        () => flash(button, "Copied"),
        () => flash(button, "Copy failed"),
      );
      break;
  }
});

messagesEl.addEventListener("submit", (event) => {
  const form = event.target.closest(".feedback-form");
  if (!form) return;
  event.preventDefault();
  const reply = state.replies.get(form.closest("article").dataset.id);
  if (reply) submitComment(reply, form);
});

// --- protocol events ---------------------------------------------------------

/** A continued reply's tokens: the earlier part's plus this request's. */
function withPriorUsage(prior, usage) {
  if (!prior || !usage) return usage;
  const sum = (key) => (prior[key] ?? 0) + (usage[key] ?? 0);
  return {
    prompt_tokens: sum("prompt_tokens"),
    completion_tokens: sum("completion_tokens"),
    total_tokens: sum("total_tokens"),
    estimated: Boolean(prior.estimated || usage.estimated),
  };
}

const handlers = {
  // A generated title (sidebar.js shows it in the list and, for this chat, the topbar).
  title(event) {
    renameInSidebar(event.conversation, event.title);
  },
  start(event) {
    const mine = state.pending && event.user_message?.client_id === state.pending.client_id;
    if (mine && state.conversation === null) {
      state.conversation = event.conversation;
      history.replaceState(null, "", conversationUrl(event.conversation));
      setCurrentConversation(event.conversation);
      conversationCreated(event.conversation, event.model);
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
      if (state.pending.type === "send" && textarea.value === state.pending.content) {
        textarea.value = "";
        autoGrow();
      }
      if (state.pending.type === "edit") state.userMessages.get(state.pending.message)?.closeEditor();
      saveDraft();
      state.pending = null;
      showComposerError("");
    }
    state.regenerating = false;
    // A new version (edit, regenerate) becomes the branch shown; the earlier
    // ones stay a click away behind "‹ n/m ›".
    if (event.user_message) addUserMessage(event.user_message);
    const reply = addReply({
      id: event.reply,
      parent: event.parent,
      status: "streaming",
      model: event.model,
      context_left_out: event.context_left_out,
    });
    reply.contextLeftOut = event.context_left_out || 0;
    if (event.continued) {
      // The same reply goes on from its text: numbering starts again at this start.
      reply.seq = 0;
      reply.status = "streaming";
      reply.finishReason = "";
      reply.priorUsage = reply.usage;
      reply.render();
    } else {
      reply.seq = Math.max(reply.seq, event.seq || 0);
    }
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
    const reply =
      state.replies.get(event.reply) ||
      addReply({ id: event.reply, parent: event.parent, status: "streaming", model: event.model });
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
      reply.usage = withPriorUsage(reply.priorUsage, event.usage || null);
      reply.priorUsage = null;
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
    if (event.fields) showSettingsErrors(event.fields);
    updateComposer();
    refreshFooters();
  },

  switched(event) {
    if (event.conversation !== state.conversation) return;
    if (state.unsyncedLeaf === event.leaf || state.tree.branchThrough(event.leaf).includes(state.unsyncedLeaf)) {
      state.unsyncedLeaf = null;
    }
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
    if (state.unsyncedLeaf) socket.send({ type: "switch", conversation: state.conversation, leaf: state.unsyncedLeaf });
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
keepTimesFresh(messagesEl);
installAnnouncements();
restoreDraft();
updateComposer();
autoGrow();
socket.connect();
// Tests and scripts can tell the page is live (the Send button is disabled until then).
root.dataset.ready = "true";
