// Inline SVG icons for message actions (emoji fonts are not everywhere).

const SVG = "http://www.w3.org/2000/svg";

const PATHS = {
  copy: "M9 9h10v12H9zM5 15V3h10",
  check: "M5 12.5l4.5 4.5L19 7.5",
  regenerate: "M20 12a8 8 0 1 1-2.34-5.66M20 4v5h-5",
  edit: "M4 20h4L19 9l-4-4L4 16v4zM13.5 6.5l4 4",
  thumb: "M7 10v11H4V10h3zm0 0 4-7c1.5 0 2.5 1 2.3 2.6L12.8 9H19a2 2 0 0 1 2 2.3l-1.3 7.6A2 2 0 0 1 17.7 21H7",
  retry: "M4 12a8 8 0 1 0 2.34-5.66M4 4v5h5",
  down: "M12 5v14M6 13l6 6 6-6",
};

/** An icon by name, hidden from assistive technology (its button carries the name). */
export function icon(name, { size = 16, className = "" } = {}) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  if (className) svg.setAttribute("class", className);
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", PATHS[name]);
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "1.8");
  path.setAttribute("stroke-linecap", "round");
  path.setAttribute("stroke-linejoin", "round");
  svg.append(path);
  return svg;
}

/** A button showing only an icon; `label` is its accessible name and its tooltip. */
export function iconButton(name, label, action) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "btn-ghost icon-action";
  button.dataset.action = action;
  button.setAttribute("aria-label", label);
  button.title = label;
  button.append(icon(name));
  return button;
}

/** Briefly say what a click did ("Copied") on an icon button, then restore it. */
export function flashIcon(button, label, name = "check") {
  const original = button.dataset.label || button.getAttribute("aria-label");
  const originalIcon = button.dataset.icon || "copy";
  button.dataset.label = original;
  button.dataset.icon = originalIcon;
  button.setAttribute("aria-label", label);
  button.title = label;
  button.replaceChildren(icon(name));
  clearTimeout(button._flashTimer);
  button._flashTimer = setTimeout(() => {
    button.setAttribute("aria-label", original);
    button.title = original;
    button.replaceChildren(icon(originalIcon));
  }, 1500);
}
