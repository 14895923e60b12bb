// A new chat's example prompts (the admin's ExamplePrompt rows): a click puts
// the prompt in the message box, ready to edit or send; it sends nothing.
const box = document.getElementById("message");

document.getElementById("empty-state")?.addEventListener("click", (event) => {
  const example = event.target.closest(".example");
  if (!example) return;
  box.value = example.dataset.prompt;
  // As if typed: the draft is kept, the box grows, Send is enabled (app.js).
  box.dispatchEvent(new Event("input", { bubbles: true }));
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
});
