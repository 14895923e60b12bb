// Feedback on a reply: thumbs up or down, and an optional comment.
import { showComposerError } from "./composer.js";
import { announce, state } from "./state.js";

const root = document.getElementById("chat");
const PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000";
const PLACEHOLDER_MESSAGE_ID = "11111111-1111-1111-1111-111111111111";

async function sendFeedback(reply, rating, comment) {
  const url = root.dataset.feedbackUrl
    .replace(PLACEHOLDER_ID, state.conversation)
    .replace(PLACEHOLDER_MESSAGE_ID, reply.id);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    body: JSON.stringify({ rating, comment }),
  });
  if (!response.ok) throw new Error(`feedback: HTTP ${response.status}`);
  const saved = await response.json();
  reply.rating = saved.rating;
  reply.feedbackComment = saved.comment;
}

export function rate(reply, rating) {
  const next = reply.rating === rating ? null : rating; // pressing it again takes it back
  const before = reply.rating;
  reply.rating = next;
  reply.commentForm = null;
  sendFeedback(reply, next, reply.feedbackComment).then(
    () => {
      announce(next === null ? "Rating removed" : "Thanks for the feedback");
      if (next === -1) reply.openCommentForm();
      else reply.renderFooter();
    },
    () => {
      reply.rating = before;
      reply.renderFooter();
      showComposerError("Your feedback could not be saved. Try again in a moment.");
    },
  );
  reply.renderFooter();
}

export function submitComment(reply, form) {
  const comment = form.querySelector("textarea").value;
  sendFeedback(reply, reply.rating, comment).then(
    () => {
      reply.commentForm = null;
      reply.renderFooter();
      announce("Thanks for the feedback");
    },
    () => showComposerError("Your feedback could not be saved. Try again in a moment."),
  );
}
