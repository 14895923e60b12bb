// The keyboard of a menu (role="menu" with role="menuitem" entries), as WAI-ARIA's
// menu pattern has it: arrows move between entries, Escape closes and returns
// focus to the button that opened it, Tab closes and moves on.

/**
 * @param {HTMLElement} menu
 * @param {() => HTMLElement[]} entries the entries shown now, in order
 * @param {(options?: {focusButton?: boolean}) => void} close
 */
export function handleMenuKeys(menu, entries, close) {
  menu.addEventListener("keydown", (event) => {
    const shown = entries();
    const at = shown.indexOf(document.activeElement);
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      close({ focusButton: true });
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      shown[(at + step + shown.length) % shown.length].focus();
    } else if (event.key === "Tab") {
      close();
    }
  });
}
