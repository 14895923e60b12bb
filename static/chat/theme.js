// The colour theme: the system's unless the person chose Light or Dark.
//
// A classic script loaded in <head> without defer, so the choice applies
// before the first paint (no flash of the wrong theme) without inline script.
// It also wires every <input name="theme"> radio on the page.
(() => {
  const KEY = "glmweb:theme";
  const root = document.documentElement;

  function stored() {
    try {
      return localStorage.getItem(KEY);
    } catch {
      return null; // storage disabled: the system's theme
    }
  }

  function apply(choice) {
    if (choice === "light" || choice === "dark") root.dataset.theme = choice;
    else delete root.dataset.theme;
  }

  function syncRadios() {
    const choice = root.dataset.theme || "system";
    for (const radio of document.querySelectorAll('input[name="theme"]')) {
      radio.checked = radio.value === choice;
    }
  }

  function choose(choice) {
    try {
      if (choice === "light" || choice === "dark") localStorage.setItem(KEY, choice);
      else localStorage.removeItem(KEY);
    } catch {
      // Not kept, but still applied to this page.
    }
    apply(choice);
  }

  apply(stored());

  document.addEventListener("DOMContentLoaded", () => {
    syncRadios();
    document.addEventListener("change", (event) => {
      if (event.target.matches('input[name="theme"]')) choose(event.target.value);
    });
  });

  // Another tab changed it.
  window.addEventListener("storage", (event) => {
    if (event.key !== KEY) return;
    apply(event.newValue);
    syncRadios();
  });
})();
