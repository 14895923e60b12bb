// Keyboard shortcuts of the chat page and the dialog that lists them.
//
//   Ctrl/⌘+Shift+O  new chat          Shift+Esc or /  focus the message box
//   Ctrl/⌘+Shift+S  toggle sidebar    Esc             stop the reply / close the sidebar
//   Ctrl/⌘+/        this list
import { closeSidebar, setSidebar, sidebarShown } from "./sidebar.js";

const narrow = window.matchMedia("(max-width: 52rem)");
const isMac = /Mac|iPhone|iPad/.test(navigator.userAgentData?.platform || navigator.platform || "");

function isTyping(target) {
  return target instanceof Element && (target.isContentEditable || target.matches("input, textarea, select"));
}

/**
 * Wire the shortcuts. The page passes what it owns: `stop()` (true if a reply
 * was being generated), `focusComposer()`, and `newChatUrl`.
 */
export function installShortcuts({ stop, focusComposer, newChatUrl }) {
  const layout = document.getElementById("layout");
  const openButton = document.getElementById("sidebar-open");
  const dialog = document.getElementById("shortcuts-dialog");
  let returnFocus = null;

  if (isMac) {
    for (const key of document.querySelectorAll("kbd.mod-key")) key.textContent = "⌘";
  }

  function openHelp() {
    if (dialog.open) return;
    returnFocus = document.activeElement;
    dialog.showModal();
  }

  dialog.addEventListener("close", () => {
    returnFocus?.focus?.();
    returnFocus = null;
  });
  dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
  // A click on the backdrop (outside the dialog's box) closes it too.
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();
  });
  document.getElementById("shortcuts-open").addEventListener("click", openHelp);

  /** Wide screens collapse the sidebar in place; narrow ones slide it over. */
  function toggleSidebar() {
    if (narrow.matches) {
      if (sidebarShown()) closeSidebar();
      else setSidebar(true);
      return;
    }
    const collapsed = layout.classList.contains("sidebar-collapsed") && !sidebarShown();
    setSidebar(false);
    layout.classList.toggle("sidebar-collapsed", !collapsed);
    openButton.setAttribute("aria-expanded", String(collapsed));
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing || dialog.open) return; // the dialog handles its own Esc
    const mod = event.ctrlKey || event.metaKey;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    let handled = true;
    if (mod && event.shiftKey && key === "o") location.assign(newChatUrl);
    else if (mod && event.shiftKey && key === "s") toggleSidebar();
    else if (mod && (key === "/" || key === "?")) openHelp();
    else if (key === "Escape" && event.shiftKey) focusComposer();
    else if (key === "/" && !mod && !event.altKey && !isTyping(event.target)) focusComposer();
    else if (key === "Escape" && sidebarShown()) closeSidebar();
    else if (key === "Escape") handled = stop();
    else handled = false;
    if (handled) event.preventDefault();
  });
}
