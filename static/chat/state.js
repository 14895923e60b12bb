// What the chat page knows: the message tree, the views shown, what is running.
import { MessageTree } from "./tree.js";

export const state = {
  conversation: document.getElementById("chat").dataset.conversation || null,
  /** Every message of every branch; the page shows the branch ending at `leaf`. */
  tree: new MessageTree(),
  leaf: null,
  // A branch chosen here that the server hasn't confirmed yet (see switchTo).
  unsyncedLeaf: null,
  /** Reply views by id (messages.js). */
  replies: new Map(),
  /** UserMessage views by id. */
  userMessages: new Map(),
  // Id of the reply being generated here; `true` while joined says one is but
  // its snapshot hasn't arrived yet.
  generating: null,
  // The send frame awaiting its `start`; resent after a reconnect (the server
  // dedupes on client_id, so a resend never makes a second turn).
  pending: null,
  regenerating: false,
};

/** Nothing generating or waiting to start: actions that start a turn may be offered. */
export function isIdle() {
  return !state.generating && !state.pending;
}

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

let numbers = null;
// Made when first used: the page's first Intl object loads ICU's data, a cost opening shouldn't pay up front.
export const numberFormat = { format: (n) => (numbers ??= new Intl.NumberFormat()).format(n) };

export function formatDuration(ms) {
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

const announcer = el("div", "visually-hidden");
announcer.setAttribute("aria-live", "polite");
document.body.append(announcer);

/** Say something to screen readers (a copy, a rating, a version shown). */
export function announce(text) {
  announcer.textContent = text;
}
