// The chat page's header: the model picker (a button and its listbox), the
// marker of a chat's custom instructions or settings, and the "More options"
// menu that holds the settings, shortcuts and delete buttons on a phone. Also
// the model names replies show (modelTag, used by app.js).
import { chooseModel } from "./settings.js";
import { handleMenuKeys } from "./menus.js";

const $ = (id) => document.getElementById(id);
/** The models this person may use: [{name, label, context_tokens, thinking}]. */
const models = JSON.parse($("chat-models")?.textContent || "[]");
const picker = $("model-picker");
const list = $("model-list");
const badge = $("model-badge");
const marker = $("custom-marker");
const moreButton = $("more-open");
const moreMenu = $("more-menu");

/** The name people see for a model: its label when it is offered, else its id. */
export function modelLabel(name) {
  return models.find((model) => model.name === name)?.label || name;
}

/** The start of a reply's meta line: which model wrote it ("GLM-5 · "), or nothing. */
export function modelTag(name) {
  if (!name) return [];
  const tag = document.createElement("span");
  tag.className = "reply-model";
  tag.textContent = modelLabel(name);
  return [tag, " · "];
}

/** A context window in short: 128k, 1M. */
function contextSize(tokens) {
  if (tokens >= 1_000_000) return `${Number((tokens / 1_000_000).toFixed(1))}M`;
  if (tokens >= 1000) return `${Math.round(tokens / 1000)}k`;
  return String(tokens);
}

// --- the model picker ------------------------------------------------------------

function options() {
  return [...list.querySelectorAll('[role="option"]')];
}

function fillList() {
  const current = badge.dataset.model;
  list.replaceChildren(
    ...models.map((model, index) => {
      const option = document.createElement("li");
      option.id = `model-option-${index}`;
      option.setAttribute("role", "option");
      option.tabIndex = -1;
      option.dataset.model = model.name;
      option.setAttribute("aria-selected", String(model.name === current));
      const label = document.createElement("span");
      label.className = "model-option-label";
      label.textContent = model.label;
      const context = document.createElement("span");
      context.className = "model-option-context";
      context.textContent = `${contextSize(model.context_tokens)} context`;
      option.append(label, context);
      return option;
    }),
  );
}

function openList() {
  fillList();
  list.hidden = false;
  picker.setAttribute("aria-expanded", "true");
  const all = options();
  (all.find((option) => option.getAttribute("aria-selected") === "true") || all[0])?.focus();
}

function closeList({ focusButton = false } = {}) {
  if (list.hidden) return;
  list.hidden = true;
  picker.setAttribute("aria-expanded", "false");
  if (focusButton) picker.focus();
}

async function choose(option) {
  closeList({ focusButton: true });
  const name = option.dataset.model;
  if (name === badge.dataset.model) return;
  const before = badge.dataset.model;
  showModel(name); // at once; put back if the server refuses
  if (!(await chooseModel(name))) showModel(before);
}

function showModel(name) {
  badge.dataset.model = name;
  badge.textContent = modelLabel(name);
  $("message").placeholder = `Message ${modelLabel(name)}…`;
}

picker.addEventListener("click", () => (list.hidden ? openList() : closeList({ focusButton: true })));
picker.addEventListener("keydown", (event) => {
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    openList();
  }
});
list.addEventListener("click", (event) => {
  const option = event.target.closest('[role="option"]');
  if (option) choose(option);
});
list.addEventListener("keydown", (event) => {
  const all = options();
  const at = all.indexOf(document.activeElement);
  const moves = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: all.length - 1 };
  if (event.key in moves) {
    event.preventDefault();
    all[Math.min(Math.max(moves[event.key], 0), all.length - 1)]?.focus();
  } else if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    if (at >= 0) choose(all[at]);
  } else if (event.key === "Escape") {
    event.preventDefault();
    event.stopPropagation(); // not the page's Esc, which stops a reply
    closeList({ focusButton: true });
  } else if (event.key === "Tab") {
    closeList();
  }
});

// --- custom instructions and settings ----------------------------------------------

function showCustom(custom) {
  const any = custom.instructions || custom.settings;
  const text = custom.instructions ? "Custom instructions" : "Custom settings";
  marker.hidden = !any;
  $("custom-marker-text").textContent = text;
  $("more-dot").hidden = !any;
  const note = $("more-custom");
  note.hidden = !any;
  note.textContent = text;
}

marker.addEventListener("click", () => $("settings-open").click());

document.addEventListener("glmweb:settings", (event) => {
  if (event.detail.model) showModel(event.detail.model);
  if (event.detail.custom) showCustom(event.detail.custom);
});

// --- "More options" (a phone's header) ----------------------------------------------

function menuEntries() {
  return [...moreMenu.querySelectorAll('[role="menuitem"]')].filter((entry) => !entry.hidden);
}

function openMenu() {
  // Delete only once there is a conversation (the topbar's form says so).
  moreMenu.querySelector('[data-opens="delete"]').hidden = $("delete-form").hidden;
  moreMenu.hidden = false;
  moreButton.setAttribute("aria-expanded", "true");
  menuEntries()[0]?.focus();
}

function closeMenu({ focusButton = false } = {}) {
  if (moreMenu.hidden) return;
  moreMenu.hidden = true;
  moreButton.setAttribute("aria-expanded", "false");
  if (focusButton) moreButton.focus();
}

moreButton.addEventListener("click", () => (moreMenu.hidden ? openMenu() : closeMenu({ focusButton: true })));
handleMenuKeys(moreMenu, menuEntries, closeMenu);
moreMenu.addEventListener("click", (event) => {
  const entry = event.target.closest("[data-opens]");
  if (!entry) return;
  // Focus goes back to "More options" first: the dialogs return it where it was.
  closeMenu({ focusButton: true });
  if (entry.dataset.opens === "delete") {
    // sidebar.js asks first, then gives focus back to the (hidden) delete button.
    $("confirm-delete").addEventListener("close", () => document.activeElement === document.body && moreButton.focus(), { once: true });
    $("delete-form").requestSubmit();
  } else {
    $(entry.dataset.opens).click();
  }
});

document.addEventListener("click", (event) => {
  if (!event.target.closest(".model-picker")) closeList();
  if (!event.target.closest(".topbar-more")) closeMenu();
});
