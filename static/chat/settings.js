// The settings panel: a conversation's model, system prompt and sampling
// parameters, and the person's presets. The server checks every value
// (chat/params.py) and answers a message per field, shown next to the field.
//
// On a new chat there is no conversation to save to yet: the chosen settings
// are checked, kept here, and go with the first `send` frame (app.js asks
// newChatSettings()).
//
// Whenever the settings change, a "glmweb:settings" event on the document says
// so ({model, custom}); the header (header.js) shows them.

const $ = (id) => document.getElementById(id);
const root = $("chat");
const dialog = $("settings-dialog");
const form = $("settings-form");
/** Disabled until the dialog has the saved settings, so nothing typed is overwritten by them. */
const fields = $("settings-fields");
const modelSelect = $("settings-model");
const alertBox = $("settings-alert");
const presetSelect = $("preset-select");
const presetName = $("preset-name");
const presetStatus = $("preset-status");
const FIELDS = ["model", "system_prompt", "temperature", "top_p", "max_tokens", "stop", "thinking", "name"];
const PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000";

let conversation = root.dataset.conversation || null;
/** The settings the page was drawn with (a new chat's: the defaults), and the models offered. */
const pageSettings = JSON.parse($("chat-settings").textContent);
const pageModels = JSON.parse($("chat-models").textContent);
/** What the server last sent: {settings, models, presets, limits}. */
let panel = null;
/** Settings chosen for a new chat, not yet sent; kept for the tab like a draft. */
let chosenForNewChat = null;
const NEW_CHAT_KEY = "glmweb:settings:new";
let returnFocus = null;

/** Settings to send with a new chat's first message (null: the defaults). */
export function newChatSettings() {
  return chosenForNewChat;
}

/** The first message created the conversation: from now on settings save to it. */
export function conversationCreated(id, model) {
  conversation = id;
  keepForNewChat(null);
  if (model) changed({ model });
}

/** The header's model picker: change the model alone, keeping the other settings. */
export async function chooseModel(name) {
  return conversation ? chooseConversationModel(name) : chooseNewChatModel(name);
}

/** A new chat's model is chosen at once (a send right after takes it), then checked. */
async function chooseNewChatModel(name) {
  const before = chosenForNewChat;
  const base = before || pageSettings;
  const params = { ...base.params };
  if (!pageModels.find((model) => model.name === name)?.thinking) delete params.thinking;
  chosenForNewChat = { ...base, model: name, params };
  const { ok, data } = await request(settingsUrl(), chosenForNewChat);
  if (conversation) return ok; // sent meanwhile: the conversation has it
  if (!ok) {
    chosenForNewChat = before;
    showSettingsErrors(data.errors || { settings: data.error });
    return false;
  }
  keepForNewChat(data.settings, data.custom);
  changed({ model: data.settings.model, custom: data.custom });
  return true;
}

/** A new chat's choice outlives a reload of the tab, as its draft does. */
function keepForNewChat(settings, custom) {
  chosenForNewChat = settings;
  try {
    if (settings) sessionStorage.setItem(NEW_CHAT_KEY, JSON.stringify({ settings, custom }));
    else sessionStorage.removeItem(NEW_CHAT_KEY);
  } catch {
    // Storage full or disabled: the choice lasts until the tab reloads.
  }
}

/** On a new chat's page: the settings chosen before a reload, if their model is still offered. */
export function restoreNewChatSettings() {
  if (conversation) return;
  let kept = null;
  try {
    kept = JSON.parse(sessionStorage.getItem(NEW_CHAT_KEY) || "null");
  } catch {
    return;
  }
  if (!kept?.settings || !pageModels.some((model) => model.name === kept.settings.model)) return;
  chosenForNewChat = kept.settings;
  changed({ model: kept.settings.model, custom: kept.custom });
}

async function chooseConversationModel(name) {
  const current = await request(settingsUrl());
  if (!current.ok) {
    showSettingsErrors({ settings: current.data.error });
    return false;
  }
  panel = current.data;
  const settings = current.data.settings;
  const params = { ...settings.params };
  if (!modelInfo(name)?.thinking) delete params.thinking; // a switch only some models take
  const { ok, data } = await request(settingsUrl(), { ...settings, model: name, params });
  if (!ok) {
    showSettingsErrors(data.errors || { settings: data.error });
    return false;
  }
  changed({ model: data.settings.model, custom: data.custom });
  return true;
}

function changed(detail) {
  document.dispatchEvent(new CustomEvent("glmweb:settings", { detail }));
}

/** Settings the socket refused (a new chat's first send): show them in the panel. */
export function showSettingsErrors(fields) {
  open().then(() => showErrors(fields));
}

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]').content;
}

function settingsUrl() {
  return conversation ? dialog.dataset.conversationUrl.replace(PLACEHOLDER_ID, conversation) : dialog.dataset.newUrl;
}

async function request(url, body) {
  const options = { credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.headers["X-CSRFToken"] = csrfToken();
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch {
    return { ok: false, data: { error: "Not connected. Try again in a moment." } };
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok && !data.error) data.error = response.status === 404 ? "Not found." : "Something went wrong. Try again.";
  return { ok: response.ok, status: response.status, data };
}

// --- the form ------------------------------------------------------------------

function modelInfo(name) {
  return panel?.models.find((model) => model.name === name) || null;
}

function fillModels(current) {
  const options = panel.models.map((model) => new Option(model.label || model.name, model.name));
  // Not offered to this person (no longer, or not in their groups): shown, but refused.
  if (current && !modelInfo(current)) options.unshift(new Option(current, current));
  modelSelect.replaceChildren(...options);
  modelSelect.value = current;
}

function describeModel() {
  const info = modelInfo(modelSelect.value);
  const help = $("settings-model-help");
  help.textContent = info
    ? `Context: ${new Intl.NumberFormat().format(info.context_tokens)} tokens${info.thinking ? " · can think before answering" : ""}.`
    : "This model is not offered to you (any more); pick another.";
  // Thinking is a switch only some models take.
  const thinks = Boolean(info?.thinking);
  $("settings-thinking-field").hidden = !thinks;
  if (!thinks) form.elements.thinking.value = "";
}

function fill(settings) {
  const params = settings.params || {};
  fillModels(settings.model);
  form.elements.system_prompt.value = settings.system_prompt || "";
  form.elements.temperature.value = params.temperature ?? "";
  form.elements.top_p.value = params.top_p ?? "";
  form.elements.max_tokens.value = params.max_tokens ?? "";
  const stops = params.stop || [];
  [...form.querySelectorAll('input[name="stop"]')].forEach((input, i) => {
    input.value = stops[i] ?? "";
  });
  form.elements.thinking.value = params.thinking === true ? "on" : params.thinking === false ? "off" : "";
  describeModel();
}

/** A number field's value: empty is "use the default"; anything else the server checks. */
function numberValue(input) {
  const text = input.value.trim();
  if (!text) return input.validity.badInput ? text : null;
  const number = Number(text);
  return Number.isNaN(number) ? text : number;
}

function collect() {
  const params = {};
  for (const name of ["temperature", "top_p", "max_tokens"]) {
    const value = numberValue(form.elements[name]);
    if (value !== null) params[name] = value;
  }
  const stops = [...form.querySelectorAll('input[name="stop"]')].map((input) => input.value).filter((stop) => stop !== "");
  if (stops.length) params.stop = stops;
  const thinking = form.elements.thinking.value;
  if (thinking) params.thinking = thinking === "on";
  return { model: modelSelect.value, system_prompt: form.elements.system_prompt.value, params };
}

function clearErrors() {
  alertBox.hidden = true;
  alertBox.textContent = "";
  for (const field of FIELDS) {
    const error = $(`settings-${field}-error`);
    error.hidden = true;
    error.textContent = "";
    const control = form.querySelector(`[data-field="${field}"]`);
    control?.classList.remove("invalid");
    for (const input of control?.querySelectorAll("input, select, textarea") || []) input.removeAttribute("aria-invalid");
  }
  presetName.classList.remove("invalid");
  presetName.removeAttribute("aria-invalid");
}

function showErrors(errors) {
  let first = null;
  for (const [field, message] of Object.entries(errors || {})) {
    const error = $(`settings-${field}-error`);
    if (!error) {
      // Not a field of the form ("settings", "params"): say it at the top.
      alertBox.textContent = message;
      alertBox.hidden = false;
      continue;
    }
    error.textContent = message;
    error.hidden = false;
    const control = field === "name" ? presetName : form.querySelector(`[data-field="${field}"]`);
    control.classList.add("invalid");
    const input = control.matches("input, select, textarea") ? control : control.querySelector("input, select, textarea");
    input?.setAttribute("aria-invalid", "true");
    if (!first) first = input;
  }
  first?.focus();
}

// --- opening, saving -------------------------------------------------------------

async function open() {
  if (!dialog.open) {
    returnFocus = document.activeElement;
    clearErrors();
    presetStatus.textContent = "";
    $("settings-scope").textContent = conversation
      ? "For this conversation: the next reply uses them."
      : "For the new chat: they apply when you send the first message.";
    fields.disabled = true;
    dialog.showModal();
  }
  const { ok, data } = await request(settingsUrl());
  if (!ok) {
    alertBox.textContent = data.error;
    alertBox.hidden = false;
    return;
  }
  panel = data;
  fill(conversation ? data.settings : chosenForNewChat || data.settings);
  fillPresets();
  fields.disabled = false;
  modelSelect.focus();
}

async function save(settings) {
  clearErrors();
  const { ok, data } = await request(settingsUrl(), settings);
  if (!ok) {
    if (data.errors) showErrors(data.errors);
    else showErrors({ settings: data.error });
    return false;
  }
  if (!conversation) keepForNewChat(data.settings, data.custom);
  changed({ model: data.settings.model, custom: data.custom });
  dialog.close();
  return true;
}

// --- presets ---------------------------------------------------------------------

function fillPresets(selected) {
  const presets = panel.presets;
  presetSelect.replaceChildren(
    ...(presets.length ? presets.map((preset) => new Option(preset.name, String(preset.id))) : [new Option("No presets yet", "")]),
  );
  if (selected) presetSelect.value = String(selected);
  presetSelect.disabled = !presets.length;
  $("preset-apply").disabled = !presets.length;
  $("preset-delete").disabled = !presets.length;
}

function selectedPreset() {
  return panel?.presets.find((preset) => String(preset.id) === presetSelect.value) || null;
}

async function applyPreset() {
  const preset = selectedPreset();
  if (!preset) return;
  fill(preset.settings);
  await save(collect());
}

async function savePreset() {
  clearErrors();
  presetStatus.textContent = "";
  const { ok, data } = await request(dialog.dataset.presetsUrl, { name: presetName.value, settings: collect() });
  if (!ok) {
    showErrors(data.errors || { settings: data.error });
    return;
  }
  panel.presets = [...panel.presets, data.preset].sort((a, b) => a.name.localeCompare(b.name));
  fillPresets(data.preset.id);
  presetName.value = "";
  presetStatus.textContent = `Saved preset “${data.preset.name}”.`;
}

async function deletePreset() {
  const preset = selectedPreset();
  if (!preset) return;
  clearErrors();
  const url = dialog.dataset.presetDeleteUrl.replace("424242", String(preset.id));
  const { ok, data } = await request(url, {});
  if (!ok) {
    showErrors({ settings: data.error });
    return;
  }
  panel.presets = panel.presets.filter((p) => p.id !== preset.id);
  fillPresets();
  presetStatus.textContent = `Deleted preset “${preset.name}”.`;
}

// --- wiring ------------------------------------------------------------------------

$("settings-open").addEventListener("click", () => open());
modelSelect.addEventListener("change", describeModel);
form.addEventListener("submit", (event) => {
  event.preventDefault();
  save(collect());
});
for (const button of dialog.querySelectorAll("[data-close]")) button.addEventListener("click", () => dialog.close());
dialog.addEventListener("click", (event) => {
  if (event.target === dialog) dialog.close();
});
// Esc closes the panel (the dialog does that itself) and nothing else: the
// page's own Esc would stop a reply being written.
dialog.addEventListener("keydown", (event) => {
  if (event.key === "Escape") event.stopPropagation();
});
dialog.addEventListener("close", () => {
  returnFocus?.focus?.();
  returnFocus = null;
});
$("preset-apply").addEventListener("click", applyPreset);
$("preset-save").addEventListener("click", savePreset);
$("preset-delete").addEventListener("click", deletePreset);
presetName.addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    event.preventDefault();
    savePreset();
  }
});
