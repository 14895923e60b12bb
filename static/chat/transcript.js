// The transcript shown: the branch ending at `state.leaf`, one view per message.
//
// A long conversation opens fast because its messages go in as plain text
// (all of it there for the browser's find; the last few before the first frame,
// the rest just after it) and are rendered (markdown, code, math, actions) in
// small slices as they near the viewport; off-screen ones cost no layout
// (`content-visibility: auto` in messages.css). A streaming reply is
// re-rendered at most once per animation frame, and while it keeps up with the
// text, at most once per REDRAW_MS.
import { Follower } from "./follow.js";
import { Reply, UserMessage } from "./messages.js";
import { state } from "./state.js";
import { MessageTree } from "./tree.js";

const messagesEl = document.getElementById("messages");
const scroller = document.getElementById("scroller");
const emptyState = document.getElementById("empty-state");

// Rendered at once when a conversation opens: what the first screen shows.
const RENDER_AT_ONCE = 4;
// Put in the page before a conversation's first frame (as plain text); older ones follow.
const PLACE_AT_OPENING = 12;
// Work per slice of lazy rendering, so no task keeps the page from responding.
const SLICE_MS = 8;

export const follower = new Follower(scroller, document.getElementById("jump-latest"), () =>
  document.getElementById("message").focus(),
);

/** The ids of the branch shown, oldest first. */
export function shownPath() {
  return state.leaf ? state.tree.branchThrough(state.leaf) : [];
}

function viewById(id) {
  return state.replies.get(id) || state.userMessages.get(id) || null;
}

export function lastReply() {
  const path = shownPath();
  const last = path[path.length - 1];
  return last ? state.replies.get(last) || null : null;
}

// --- rendering as messages near the viewport -----------------------------------

const near = new Set(); // views within the observer's margin of the viewport
const queue = new Set(); // views to render or whose footer is out of date
let sliceScheduled = false;

const observer = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      const view = viewById(entry.target.dataset.id);
      if (!view) continue;
      if (entry.isIntersecting) {
        near.add(view);
        if (!view.hydrated || view.footerStale) queue.add(view);
      } else {
        near.delete(view);
      }
    }
    scheduleSlice();
  },
  { root: scroller, rootMargin: "1500px 0px" },
);

function scheduleSlice() {
  if (sliceScheduled || !queue.size) return;
  sliceScheduled = true;
  setTimeout(runSlice, 0);
}

function runSlice() {
  sliceScheduled = false;
  const started = performance.now();
  // Newest first: a conversation opens at its end.
  const views = [...queue].reverse();
  for (const view of views) {
    if (performance.now() - started > SLICE_MS) break;
    queue.delete(view);
    if (!view.el.isConnected) continue;
    if (!view.hydrated) view.hydrate();
    else if (view.footerStale) view.renderFooter();
  }
  settleNextFrame();
  scheduleSlice();
}

let settleScheduled = false;

/** Keep to the bottom in the next frame: reading the height now would lay out the page twice. */
function settleNextFrame() {
  if (settleScheduled) return;
  settleScheduled = true;
  requestAnimationFrame(() => {
    settleScheduled = false;
    follower.settle();
  });
}

/** The view of one message, made (as plain text) the first time it is shown. */
export function viewOf(id) {
  const data = state.tree.get(id);
  if (data.role === "user") {
    if (!state.userMessages.has(id)) state.userMessages.set(id, new UserMessage(data));
    return state.userMessages.get(id);
  }
  let reply = state.replies.get(id);
  if (!reply) {
    reply = new Reply(data);
    state.replies.set(id, reply);
  }
  return reply;
}

/** Footers depend on which reply is last and on whether anything is running. */
export function refreshFooters() {
  const path = shownPath();
  const last = path[path.length - 1];
  for (const id of path) {
    const view = viewById(id);
    if (!view || !view.hydrated) continue;
    if (id === last || near.has(view)) view.renderFooter();
    else view.footerStale = true; // redone when it nears the viewport
  }
}

let placing = 0; // which showBranch the older messages being placed belong to

/**
 * Show the branch ending at `state.leaf`. Opening a conversation (at its end)
 * puts only its last `placeNow` messages in before the first frame.
 */
export function showBranch(placeNow = Infinity) {
  const path = shownPath();
  const split = Math.max(0, path.length - placeNow);
  const views = path.slice(split).map(viewOf);
  observer.disconnect();
  near.clear();
  queue.clear();
  messagesEl.replaceChildren(...views.map((view) => view.el));
  emptyState.hidden = path.length > 0;
  for (const view of views.slice(-RENDER_AT_ONCE)) view.hydrate();
  for (const view of views) observer.observe(view.el);
  refreshFooters();
  placing += 1;
  placeOlder(path.slice(0, split), placing);
}

/**
 * The older messages of a long branch go in after the first frame: made a slice
 * at a time (newest first) off the page, then put in at once, so the browser lays
 * out and observes them once rather than once a slice. Until then the transcript
 * says it is busy.
 */
function placeOlder(ids, run) {
  if (!ids.length) return;
  messagesEl.setAttribute("aria-busy", "true");
  const older = document.createDocumentFragment();
  const placed = [];
  let end = ids.length;
  const makeSlice = () => {
    if (run !== placing) return;
    const started = performance.now();
    while (end > 0 && performance.now() - started < SLICE_MS) {
      const view = viewOf(ids[--end]);
      older.prepend(view.el);
      placed.push(view);
    }
    if (end > 0) {
      setTimeout(makeSlice, 0);
      return;
    }
    messagesEl.prepend(older);
    for (const view of placed) observer.observe(view.el);
    messagesEl.setAttribute("aria-busy", "false");
    settleNextFrame();
  };
  requestAnimationFrame(() => setTimeout(makeSlice, 0));
}

export function addUserMessage(data) {
  state.tree.add({ ...data, role: "user" });
}

/** A reply the page learns of from an event; shown at the end of the branch. */
export function addReply(data) {
  if (!state.tree.get(data.id)) {
    const parent = data.parent || state.leaf;
    state.tree.add({ created_at: new Date().toISOString(), ...data, parent, role: "assistant" });
  }
  const reply = viewOf(data.id);
  if (state.leaf !== data.id) {
    state.leaf = data.id;
    showBranch();
  }
  reply.hydrate();
  return reply;
}

export function showTranscript(items) {
  state.tree = new MessageTree(items);
  state.replies.clear();
  state.userMessages.clear();
  const shown = items.filter((item) => item.shown !== false);
  const leaf = shown[shown.length - 1] || state.tree.newest();
  state.leaf = leaf ? leaf.id : null;
  showBranch(PLACE_AT_OPENING);
  follower.jump();
}

// --- a streaming reply ------------------------------------------------------------

const dirty = new Set();
// A streaming reply is redrawn at most this often: text at a model's pace needs
// no more, and each redraw costs the browser style, layout and paint.
const REDRAW_MS = 50;
let flushPending = false;
let flushTimer = null;
let lastFlush = -Infinity;

export function scheduleRender(reply) {
  reply.dirty = true;
  dirty.add(reply);
  // How a reply ended is shown at once; new text waits for its turn.
  const wait = reply.streaming ? lastFlush + REDRAW_MS - performance.now() : 0;
  if (flushTimer !== null && wait <= 0) {
    clearTimeout(flushTimer);
    flushTimer = null;
    flushPending = false;
  }
  if (flushPending) return;
  flushPending = true;
  if (wait <= 0) {
    requestAnimationFrame(flushRenders);
    return;
  }
  flushTimer = setTimeout(() => {
    flushTimer = null;
    requestAnimationFrame(flushRenders);
  }, wait);
}

function flushRenders() {
  flushPending = false;
  lastFlush = performance.now();
  const replies = [...dirty];
  dirty.clear();
  let behind = false;
  for (const reply of replies) {
    if (!reply.dirty) continue;
    const complete = reply.render();
    reply.el.setAttribute("aria-busy", String(reply.streaming || !complete));
    if (!complete) {
      // Its markdown is behind (a burst of text): it goes on next frame.
      reply.dirty = true;
      dirty.add(reply);
      behind = true;
    }
  }
  if (behind && !flushPending) {
    flushPending = true;
    requestAnimationFrame(flushRenders);
  }
  follower.settle();
}

/** Run a DOM change, then keep to the bottom if following. */
export function keepingBottom(change) {
  change();
  follower.settle();
}
