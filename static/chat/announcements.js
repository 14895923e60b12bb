// Announcement banners (templates/chat/_announcements.html): a person dismisses
// one and the server remembers it for them, so it stays closed after a reload
// and on their other devices.

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]').content;
}

async function dismiss(banner, button) {
  // aria-disabled, not disabled: a disabled button would drop the focus to the page.
  button.setAttribute("aria-disabled", "true");
  banner.querySelector(".announcement-error")?.remove();
  try {
    const response = await fetch(button.dataset.dismissUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken() },
    });
    // A lapsed session answers with the login page (a redirect fetch follows): not dismissed.
    if (response.status !== 204) throw new Error(`dismiss: HTTP ${response.status}`);
  } catch {
    button.removeAttribute("aria-disabled");
    const error = document.createElement("p");
    error.className = "announcement-error";
    error.setAttribute("role", "alert");
    error.textContent = "This announcement could not be dismissed. Try again in a moment.";
    banner.querySelector(".announcement-text").append(error);
    return;
  }
  const list = banner.parentElement;
  const hadFocus = banner.contains(document.activeElement);
  banner.remove();
  const next = list.querySelector(".announcement-dismiss");
  if (!next) list.remove();
  // Focus stays in the banners while there are some; then goes to the message box.
  if (hadFocus) (next ?? document.getElementById("message"))?.focus();
}

/** Wire the dismiss buttons of the banners the page was served with. */
export function installAnnouncements() {
  const list = document.getElementById("announcements");
  if (!list) return;
  list.addEventListener("click", (event) => {
    const button = event.target.closest(".announcement-dismiss");
    if (button && button.getAttribute("aria-disabled") !== "true") dismiss(button.closest(".announcement"), button);
  });
}
