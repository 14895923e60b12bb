// The sidebar: conversations by date, their ⋯ menu (rename, pin, archive,
// delete, export), search, the archived view, import, and the topbar title and
// delete button that act on the conversation shown.
import { handleMenuKeys } from "./menus.js";

const $ = (id) => document.getElementById(id);
const root = $("chat");
const sidebar = $("sidebar");
const groupsEl = $("conversation-groups");
const titleEl = $("conversation-title");
const deleteForm = $("delete-form");
const layout = $("layout");
const backdrop = $("sidebar-backdrop");
const openButton = $("sidebar-open");
const searchInput = $("conversation-search");
const searchResults = $("search-results");
const showMoreButton = $("show-more");
const archivedButton = $("archived-toggle");
const sidebarStatus = $("sidebar-status");
const confirmDialog = $("confirm-delete");
const importInput = $("import-file");

const PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000";
const SEARCH_DELAY_MS = 250;
const UNTITLED = "Untitled chat";

let current = root.dataset.conversation || null;
let showingArchived = false;

function url(name, id) {
  const template = sidebar.dataset[`${name}Url`];
  return id ? template.replace(PLACEHOLDER_ID, id) : template;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function csrfToken() {
  const cookie = document.cookie.split("; ").find((part) => part.startsWith("csrftoken="));
  return cookie ? decodeURIComponent(cookie.slice("csrftoken=".length)) : document.querySelector("meta[name=csrf-token]")?.content ?? "";
}

async function post(target, fields = {}) {
  // No body at all when there is nothing to send: Django refuses an empty multipart one.
  let body;
  if (Object.keys(fields).length) {
    body = new FormData();
    for (const [name, value] of Object.entries(fields)) body.append(name, value);
  }
  const response = await fetch(target, {
    method: "POST",
    body,
    headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `The server answered ${response.status}.`);
  return data;
}

function say(text, isError = false) {
  sidebarStatus.textContent = text;
  sidebarStatus.classList.toggle("error", isError);
  sidebarStatus.hidden = !text;
}

// --- items -------------------------------------------------------------------

function itemFor(id) {
  return groupsEl.querySelector(`li[data-id="${CSS.escape(id)}"]`);
}

// The same markup as templates/chat/_sidebar.html.
function makeItem(conv) {
  const item = el("li", "conv-item");
  item.dataset.id = conv.id;
  const link = el("a", "conv-link");
  link.href = url("conversation", conv.id);
  const menuButton = el("button", "conv-menu-button", "⋯");
  menuButton.type = "button";
  menuButton.setAttribute("aria-haspopup", "menu");
  menuButton.setAttribute("aria-expanded", "false");
  item.append(link, menuButton);
  fillItem(item, conv);
  return item;
}

function fillItem(item, conv) {
  const title = conv.title || UNTITLED;
  const link = item.querySelector(".conv-link");
  link.textContent = title;
  link.title = title;
  item.dataset.pinned = String(Boolean(conv.pinned));
  item.dataset.archived = String(Boolean(conv.archived));
  item.querySelector(".conv-menu-button").setAttribute("aria-label", `Options for ${title}`);
  if (item.dataset.id === current) link.setAttribute("aria-current", "page");
  else link.removeAttribute("aria-current");
}

function groupList(label) {
  let section = [...groupsEl.querySelectorAll(".conv-group")].find((s) => s.dataset.group === label);
  if (!section) {
    section = el("section", "conv-group");
    section.dataset.group = label;
    const heading = el("h3", "sidebar-heading", label);
    heading.id = `group-${Math.random().toString(36).slice(2)}`;
    const list = el("ul");
    list.setAttribute("aria-labelledby", heading.id);
    section.append(heading, list);
    // Pinned, then Today, come first; later groups arrive in order from the server.
    const before = label === "Pinned" ? groupsEl.firstElementChild
      : label === "Today" ? groupsEl.querySelector('.conv-group:not([data-group="Pinned"])')
      : null;
    groupsEl.insertBefore(section, before);
  }
  return section.querySelector("ul");
}

function dropEmptyGroups() {
  for (const section of groupsEl.querySelectorAll(".conv-group")) {
    if (!section.querySelector("li")) section.remove();
  }
  $("conversation-list-empty").hidden = Boolean(groupsEl.querySelector("li"));
}

function place(item, group, { first = true } = {}) {
  const list = groupList(group);
  if (first) list.prepend(item);
  else list.append(item);
  dropEmptyGroups();
}

// A conversation with new activity: to the top of Today (or stays among the pinned).
export function upsertSidebar(id, title) {
  if (showingArchived) return;
  let item = itemFor(id);
  if (!item) item = makeItem({ id, title });
  else fillItem(item, { id, title, pinned: item.dataset.pinned === "true" });
  place(item, item.dataset.pinned === "true" ? "Pinned" : "Today");
}

export function renameInSidebar(id, title) {
  const item = itemFor(id);
  if (item) fillItem(item, { id, title, pinned: item.dataset.pinned === "true", archived: item.dataset.archived === "true" });
  if (id === current) setTitle(title);
}

export function setTitle(title) {
  titleEl.textContent = title || "New chat";
  document.title = `${title || "New chat"} · GLM chat`;
}

export function setCurrentConversation(id) {
  current = id;
  deleteForm.action = url("delete", id);
  deleteForm.hidden = false;
  for (const link of groupsEl.querySelectorAll(".conv-link")) {
    if (link.closest("li").dataset.id === id) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// --- open / close (phones) -------------------------------------------------------

export function setSidebar(open) {
  layout.classList.toggle("sidebar-shown", open);
  backdrop.hidden = !open;
  openButton.setAttribute("aria-expanded", String(open));
  if (open) sidebar.querySelector(".new-chat").focus();
}

export function sidebarShown() {
  return layout.classList.contains("sidebar-shown");
}

export function closeSidebar() {
  setSidebar(false);
  openButton.focus();
}

openButton.addEventListener("click", () => setSidebar(true));
$("sidebar-close").addEventListener("click", closeSidebar);
backdrop.addEventListener("click", () => setSidebar(false));

// --- the ⋯ menu ------------------------------------------------------------------

const menu = $("conversation-menu");
let menuItem = null;

function openMenu(item, button) {
  closeMenu();
  menuItem = item;
  const pinned = item.dataset.pinned === "true";
  const archived = item.dataset.archived === "true";
  menu.querySelector('[data-action="pin"]').textContent = pinned ? "Unpin" : "Pin";
  menu.querySelector('[data-action="archive"]').textContent = archived ? "Unarchive" : "Archive";
  menu.querySelector('[data-action="export-md"]').href = url("exportMd", item.dataset.id);
  menu.querySelector('[data-action="export-json"]').href = url("exportJson", item.dataset.id);
  item.append(menu);
  menu.hidden = false;
  button.setAttribute("aria-expanded", "true");
  menu.querySelector('[role="menuitem"]').focus();
}

function closeMenu({ focusButton = false } = {}) {
  if (!menuItem) return;
  const button = menuItem.querySelector(".conv-menu-button");
  button.setAttribute("aria-expanded", "false");
  menu.hidden = true;
  sidebar.append(menu);
  if (focusButton) button.focus();
  menuItem = null;
}

function menuEntries() {
  return [...menu.querySelectorAll('[role="menuitem"]')];
}

handleMenuKeys(menu, menuEntries, closeMenu);

menu.addEventListener("click", (event) => {
  const entry = event.target.closest("[data-action]");
  if (!entry || !menuItem) return;
  const item = menuItem;
  const action = entry.dataset.action;
  if (action.startsWith("export")) {
    setTimeout(closeMenu); // after the link has started its download
    return;
  }
  event.preventDefault();
  closeMenu();
  if (action === "rename") startRename(item);
  else if (action === "pin") setFlag(item, "pin", item.dataset.pinned !== "true");
  else if (action === "archive") setFlag(item, "archive", item.dataset.archived !== "true");
  else if (action === "delete") askToDelete(item.dataset.id, item.querySelector(".conv-link").textContent, item.querySelector(".conv-menu-button"));
});

document.addEventListener("click", (event) => {
  if (menuItem && !menu.contains(event.target) && !event.target.closest(".conv-menu-button")) closeMenu();
});

groupsEl.addEventListener("click", (event) => {
  const button = event.target.closest(".conv-menu-button");
  if (!button) return;
  const item = button.closest("li");
  if (menuItem === item) closeMenu();
  else openMenu(item, button);
});
searchResults.addEventListener("click", (event) => event.stopPropagation());

// --- rename ------------------------------------------------------------------------

function startRename(item) {
  const link = item.querySelector(".conv-link");
  const old = link.textContent;
  const input = el("input", "conv-rename");
  input.type = "text";
  input.value = old === UNTITLED ? "" : old;
  input.maxLength = 200;
  input.setAttribute("aria-label", "New title");
  link.hidden = true;
  item.prepend(input);
  input.focus();
  input.select();
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    input.remove();
    link.hidden = false;
    link.focus();
    if (!save || !title || title === old) return;
    try {
      const data = await post(url("rename", item.dataset.id), { title });
      renameInSidebar(data.id, data.title);
    } catch (error) {
      say(error.message, true);
    }
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      finish(false);
    }
  });
  input.addEventListener("blur", () => finish(true));
}

// --- pin / archive -----------------------------------------------------------------

async function setFlag(item, action, on) {
  try {
    const data = await post(url(action, item.dataset.id), { value: on ? "true" : "false" });
    const conv = data.conversation;
    if ((conv.archived && !showingArchived) || (!conv.archived && showingArchived)) {
      item.remove();
      dropEmptyGroups();
      say(conv.archived ? `Archived “${conv.title || UNTITLED}”.` : `Moved “${conv.title || UNTITLED}” back to chats.`);
      return;
    }
    fillItem(item, conv);
    place(item, conv.group, { first: true });
  } catch (error) {
    say(error.message, true);
  }
}

// --- delete, with a real dialog --------------------------------------------------------

let pendingDelete = null;

function askToDelete(id, title, returnFocusTo) {
  pendingDelete = { id, returnFocusTo };
  $("confirm-delete-title").textContent = title || UNTITLED;
  confirmDialog.showModal();
  confirmDialog.querySelector("[data-cancel]").focus();
}

confirmDialog.addEventListener("close", async () => {
  const chosen = confirmDialog.returnValue;
  const target = pendingDelete;
  pendingDelete = null;
  confirmDialog.returnValue = "";
  if (!target) return;
  if (chosen !== "delete") {
    // The row may have been drawn anew while the dialog was open: find its button again.
    const button = itemFor(target.id)?.querySelector(".conv-menu-button");
    (button && target.returnFocusTo?.classList.contains("conv-menu-button") ? button : target.returnFocusTo)?.focus();
    return;
  }
  try {
    await post(url("delete", target.id));
  } catch (error) {
    say(error.message, true);
    return;
  }
  if (target.id === current) {
    location.assign(root.dataset.homeUrl);
    return;
  }
  itemFor(target.id)?.remove();
  dropEmptyGroups();
  say("Chat deleted.");
  sidebar.querySelector(".new-chat").focus();
});

deleteForm.addEventListener("submit", (event) => {
  event.preventDefault();
  askToDelete(current, titleEl.textContent, deleteForm.querySelector("button"));
});

// --- show more, archived -------------------------------------------------------------

function addPage(data) {
  for (const conv of data.conversations) {
    if (!itemFor(conv.id)) place(makeItem(conv), conv.group, { first: false });
  }
  showMoreButton.dataset.next = data.next || "";
  showMoreButton.hidden = !data.next;
}

async function fetchPage(params) {
  const target = new URL(url("list"), location.href);
  for (const [name, value] of Object.entries(params)) if (value) target.searchParams.set(name, value);
  const response = await fetch(target, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!response.ok) throw new Error(`The server answered ${response.status}.`);
  return response.json();
}

showMoreButton.addEventListener("click", async () => {
  try {
    addPage(await fetchPage({ offset: showMoreButton.dataset.next, archived: showingArchived ? "1" : "" }));
  } catch (error) {
    say(error.message, true);
  }
});

archivedButton.addEventListener("click", async () => {
  showingArchived = !showingArchived;
  archivedButton.setAttribute("aria-pressed", String(showingArchived));
  archivedButton.textContent = showingArchived ? "Back to chats" : "Archived chats";
  const heading = $("conversations-heading");
  // The view's own title, not styled as a date group: a group heading with no chat
  // right under it read as an empty group.
  heading.textContent = showingArchived ? "Archived chats" : "Chats";
  heading.classList.toggle("visually-hidden", !showingArchived);
  heading.classList.toggle("sidebar-heading", !showingArchived);
  heading.classList.toggle("sidebar-view-title", showingArchived);
  groupsEl.replaceChildren();
  try {
    addPage(await fetchPage({ archived: showingArchived ? "1" : "" }));
  } catch (error) {
    say(error.message, true);
  }
  dropEmptyGroups();
  $("conversation-list-empty").textContent = showingArchived ? "No archived chats." : "No chats yet.";
});

// --- search ------------------------------------------------------------------------------

let searchTimer = null;
let searchSerial = 0;

function highlighted(text, query) {
  const fragment = document.createDocumentFragment();
  const lower = text.toLowerCase();
  const needle = query.toLowerCase();
  let at = 0;
  for (let found = lower.indexOf(needle); needle && found !== -1; found = lower.indexOf(needle, at)) {
    fragment.append(text.slice(at, found), el("mark", "", text.slice(found, found + needle.length)));
    at = found + needle.length;
  }
  fragment.append(text.slice(at));
  return fragment;
}

function showResults(query, results) {
  searchResults.replaceChildren();
  for (const result of results) {
    const item = el("li", "search-result");
    const link = el("a", "search-link");
    link.href = url("conversation", result.id);
    const title = el("span", "search-title");
    title.append(highlighted(result.title || UNTITLED, query));
    link.append(title);
    if (result.snippet) {
      const snippet = el("span", "search-snippet");
      snippet.append(highlighted(result.snippet, query));
      link.append(snippet);
    }
    if (result.archived) link.append(el("span", "search-badge", "Archived"));
    item.append(link);
    searchResults.append(item);
  }
  if (!results.length) searchResults.append(el("li", "search-empty", "No chats match."));
  say(`${results.length} ${results.length === 1 ? "chat matches" : "chats match"}.`);
}

function setSearching(on) {
  searchResults.hidden = !on;
  groupsEl.hidden = on;
  showMoreButton.hidden = on || !showMoreButton.dataset.next;
}

async function runSearch(query) {
  const serial = ++searchSerial;
  const target = new URL(url("search"), location.href);
  target.searchParams.set("q", query);
  try {
    const response = await fetch(target, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`The server answered ${response.status}.`);
    const data = await response.json();
    // An older search answering late must not replace a newer one's results.
    if (serial === searchSerial && searchInput.value.trim() === query) showResults(query, data.results);
  } catch (error) {
    if (serial === searchSerial) say(error.message, true);
  }
}

function clearSearch() {
  clearTimeout(searchTimer);
  searchSerial++;
  searchInput.value = "";
  searchResults.replaceChildren();
  setSearching(false);
  say("");
}

searchInput.addEventListener("input", () => {
  clearTimeout(searchTimer);
  const query = searchInput.value.trim();
  if (!query) {
    clearSearch();
    return;
  }
  setSearching(true);
  searchTimer = setTimeout(() => runSearch(query), SEARCH_DELAY_MS);
});

searchInput.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  event.preventDefault();
  event.stopPropagation();
  clearSearch();
});

// --- import ---------------------------------------------------------------------------------

$("import-button").addEventListener("click", () => importInput.click());

importInput.addEventListener("change", async () => {
  const file = importInput.files[0];
  if (!file) return;
  importInput.closest("details").open = false;
  say(`Importing ${file.name}…`);
  try {
    const data = await post(url("import"), { file });
    const count = data.imported;
    say(`Imported ${count} ${count === 1 ? "conversation" : "conversations"}.`);
    if (!showingArchived) {
      const page = await fetchPage({});
      groupsEl.replaceChildren();
      addPage(page);
      dropEmptyGroups();
    }
  } catch (error) {
    say(`Import failed: ${error.message}`, true);
  } finally {
    importInput.value = "";
  }
});
