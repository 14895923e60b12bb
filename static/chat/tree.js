// The message tree of a conversation (edits and regenerations are sibling
// branches), the "‹ 2/3 ›" version controls, and relative times.

export class MessageTree {
  /** @param {object[]} items  messages oldest first, each with `id` and `parent` */
  constructor(items = []) {
    this.nodes = new Map();
    this.children = new Map();
    for (const item of items) this.add(item);
  }

  /** Add a message (newest last among its siblings); an id already known is kept. */
  add(item) {
    if (this.nodes.has(item.id)) return this.nodes.get(item.id);
    this.nodes.set(item.id, item);
    const key = item.parent || "";
    if (!this.children.has(key)) this.children.set(key, []);
    this.children.get(key).push(item.id);
    return item;
  }

  get(id) {
    return this.nodes.get(id);
  }

  siblings(id) {
    const node = this.nodes.get(id);
    return node ? this.children.get(node.parent || "") || [id] : [];
  }

  /** The branch through `id`: its ancestors, itself, then the newest child down to a leaf. */
  branchThrough(id) {
    if (!this.nodes.has(id)) return [];
    const path = [];
    for (let node = this.nodes.get(id); node; node = node.parent ? this.nodes.get(node.parent) : null) {
      path.unshift(node.id);
    }
    let kids = this.children.get(id);
    while (kids && kids.length) {
      const newest = kids[kids.length - 1];
      path.push(newest);
      kids = this.children.get(newest);
    }
    return path;
  }

  /** The newest message of all: the branch shown when none was chosen. */
  newest() {
    let newest = null;
    for (const node of this.nodes.values()) newest = node;
    return newest;
  }
}

function button(label, text, action) {
  const node = document.createElement("button");
  node.type = "button";
  node.className = "btn-ghost version-btn";
  node.setAttribute("aria-label", label);
  node.title = label;
  node.textContent = text;
  node.dataset.action = action;
  return node;
}

/** "‹ 2/3 ›" for a message with siblings, or null. Buttons carry the sibling to show. */
export function versionNav(tree, id, disabled) {
  const siblings = tree.siblings(id);
  if (siblings.length < 2) return null;
  const index = siblings.indexOf(id);
  const nav = document.createElement("div");
  nav.className = "versions";
  nav.setAttribute("role", "group");
  nav.setAttribute("aria-label", "Versions");
  const previous = button("Previous version", "‹", "version");
  previous.dataset.target = siblings[index - 1] || "";
  previous.disabled = disabled || index === 0;
  const next = button("Next version", "›", "version");
  next.dataset.target = siblings[index + 1] || "";
  next.disabled = disabled || index === siblings.length - 1;
  const count = document.createElement("span");
  count.className = "version-count";
  count.textContent = `${index + 1}/${siblings.length}`;
  count.setAttribute("aria-label", `version ${index + 1} of ${siblings.length}`);
  nav.append(previous, count, next);
  return nav;
}

// --- relative times ----------------------------------------------------------

const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const FORMATS = {
  absolute: { dateStyle: "medium", timeStyle: "short" },
  day: { month: "short", day: "numeric" },
  year: { dateStyle: "medium" },
};
const formats = new Map();

/** Made when first used. */
function dateFormat(name) {
  if (!formats.has(name)) formats.set(name, new Intl.DateTimeFormat(undefined, FORMATS[name]));
  return formats.get(name);
}

function startOfDay(date) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
}

/** "just now", "5 min ago", "3 h ago", "yesterday", "Mar 4", "Mar 4, 2024". */
export function relativeTime(date, now = new Date()) {
  const ago = now - date;
  if (ago < MINUTE) return "just now";
  if (ago < HOUR) return `${Math.floor(ago / MINUTE)} min ago`;
  const days = Math.round((startOfDay(now) - startOfDay(date)) / (24 * HOUR));
  if (days === 0) return `${Math.floor(ago / HOUR)} h ago`;
  if (days === 1) return "yesterday";
  if (days < 7) return `${days} days ago`;
  return date.getFullYear() === now.getFullYear() ? dateFormat("day").format(date) : dateFormat("year").format(date);
}

let firstFrameWork = [];

/** Run `work` just after the page's first frame (at once, later on): what the first screen can show a moment late. */
function afterFirstFrame(work) {
  if (!firstFrameWork) return work();
  if (!firstFrameWork.length) {
    requestAnimationFrame(() =>
      setTimeout(() => {
        const waiting = firstFrameWork;
        firstFrameWork = null;
        for (const each of waiting) each();
      }, 0),
    );
  }
  firstFrameWork.push(work);
}

/** Write a <time>'s relative text and its absolute title. */
function describe(node) {
  const date = new Date(node.dateTime);
  node.title = dateFormat("absolute").format(date);
  node.textContent = relativeTime(date);
}

/** A <time> showing when, relative to now, with the absolute time as its title. */
export function timeElement(iso) {
  const node = document.createElement("time");
  node.className = "msg-time";
  node.dateTime = (iso ? new Date(iso) : new Date()).toISOString();
  // Off the opening's critical path: the first date format costs 0.14 s at 4× throttling.
  afterFirstFrame(() => describe(node));
  return node;
}

/** Keep every <time class="msg-time"> under `root` current (once a minute). */
export function keepTimesFresh(root) {
  setInterval(() => {
    const now = new Date();
    for (const node of root.querySelectorAll("time.msg-time")) {
      node.textContent = relativeTime(new Date(node.dateTime), now);
    }
  }, MINUTE);
}
