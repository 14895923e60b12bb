// The chat page: transcript, composer, sidebar; one client of docs/protocol.md.
import { installAnnouncements } from "./announcements.js";
import { autoGrow, restoreDraft, saveDraft, showComposerError, tooLongError, updateComposer } from "./composer.js";
import { rate, submitComment } from "./feedback.js";
import { flashIcon } from "./icons.js";
import { copyText, handleMarkdownClick } from "./markdown.js";
import { installShortcuts } from "./shortcuts.js";
import { ChatSocket } from "./socket.js";
import { announce, isIdle, state } from "./state.js";
import { keepTimesFresh } from "./tree.js";
import {
  addReply,
  addUserMessage,
  follower,
  keepingBottom,
  refreshFooters,
  scheduleRender,
  showBranch,
  showTranscript,
} from "./transcript.js";
import { renameInSidebar, setCurrentConversation, setTitle, upsertSidebar } from "./sidebar.js";
import { conversationCreated, newChatSettings, restoreNewChatSettings, showSettingsErrors } from "./settings.js";
import "./empty.js";

const $ = (id) => document.getElementById(id);
const root = $("chat");
const messagesEl = $("messages");
const composer = $("composer");
const textarea = $("message");
const stopButton = $("stop");
const connStatus = $("conn-status");

const PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000";
const coarsePointer = window.matchMedia("(pointer: coarse)");

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

function conversationUrl(id) {
  return root.dataset.conversationUrl.replace(PLACEHOLDER_ID, id);
}

// --- branches ----------------------------------------------------------------

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

function sendMessage() {
  const content = textarea.value;
  if (!content.trim() || state.pending || state.generating) return;
  if (tooLongError(content)) {
    showComposerError(tooLongError(content));
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
  if (tooLongError(content)) {
    showComposerError(tooLongError(content));
    return;
  }
  showComposerError("");
  const frame = { type: "edit", conversation: state.conversation, message: message.id, content, client_id: uuid() };
  state.pending = frame;
  socket.send(frame); // if closed, onOpen sends it after reconnecting
  updateComposer();
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
      if (message && isIdle()) message.openEditor();
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
        reply.renderFooter();
      }
      break;
    case "copy-reply":
    case "copy-message":
      copyText((reply || message)?.content ?? "").then(
        () => {
          flashIcon(button, "Copied");
          announce("Copied");
        },
        () => flashIcon(button, "Copy failed", "copy"),
      );
      break;
  }
});

messagesEl.addEventListener("submit", (event) => {
  const edit = event.target.closest(".edit-form");
  if (edit) {
    event.preventDefault();
    const message = state.userMessages.get(edit.dataset.message);
    if (message) sendEdit(message, edit.querySelector("textarea").value);
    return;
  }
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
      scheduleRender(reply);
    } else {
      reply.seq = Math.max(reply.seq, event.seq || 0);
    }
    state.generating = event.reply;
    updateComposer();
    refreshFooters();
    follower.jump(); // a new turn: follow it
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
    if (reply) scheduleRender(reply);
    keepingBottom(() => {
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
      if (reply) scheduleRender(reply);
      keepingBottom(() => {
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
restoreNewChatSettings();
updateComposer();
autoGrow();
socket.connect();
// Tests and scripts can tell the page is live (the Send button is disabled until then).
root.dataset.ready = "true";