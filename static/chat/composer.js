// The composer: the message box, Send/Stop, its error line, drafts.
import { numberFormat, state } from "./state.js";

const $ = (id) => document.getElementById(id);
const composer = $("composer");
const textarea = $("message");
const sendButton = $("send");
const stopButton = $("stop");
const composerError = $("composer-error");
const charCount = $("char-count");

export const MAX_CHARS = Number($("chat").dataset.maxChars) || 100000;

/** The error to show for a message too long to send, or "". */
export function tooLongError(content) {
  if (content.length <= MAX_CHARS) return "";
  return `Your message is too long (${numberFormat.format(content.length)} characters; the limit is ${numberFormat.format(MAX_CHARS)}).`;
}

export function showComposerError(message) {
  composerError.textContent = message;
  composerError.hidden = !message;
}

export function updateComposer() {
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

export function autoGrow() {
  // Setting style from script is allowed under style-src 'self' (CSSOM, not markup).
  textarea.style.height = "auto";
  textarea.style.height = `${textarea.scrollHeight + 2}px`;
}

// Drafts survive a reload or a detour through the login page (per tab only:
// sessionStorage, so nothing lingers on a shared computer).
function draftKey() {
  return `glmweb:draft:${state.conversation || "new"}`;
}

export function saveDraft() {
  try {
    if (textarea.value) sessionStorage.setItem(draftKey(), textarea.value);
    else sessionStorage.removeItem(draftKey());
  } catch {
    // Storage full or disabled: drafts just aren't kept.
  }
}

export function restoreDraft() {
  try {
    const draft = sessionStorage.getItem(draftKey());
    if (draft && !textarea.value) textarea.value = draft;
  } catch {
    // As above.
  }
}
