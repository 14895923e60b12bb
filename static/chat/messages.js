// One message on the page: a reply (markdown, thinking, how it ended, actions)
// or a person's message (text, inline editor, actions).
//
// A message is first shown as its plain text, which is cheap and enough for
// the browser's find; `hydrate` renders it fully when it nears the viewport.
import { icon, iconButton } from "./icons.js";
import { renderMarkdown } from "./markdown-stream.js";
import { modelTag } from "./header.js";
import { el, formatDuration, isIdle, numberFormat, state } from "./state.js";
import { timeElement, versionNav } from "./tree.js";

/** The block a streaming reply's text ends in (inside the chunks of finished ones). */
function lastBlock(body) {
  let block = body.lastElementChild;
  while (block?.classList.contains("md-chunk")) block = block.lastElementChild;
  return block;
}

/** How long the model thought, as a person would say it. */
export function thoughtFor(ms) {
  if (ms < 1000) return "thought briefly";
  return ms < 60000 ? `thought for ${Math.round(ms / 1000)} s` : `thought for ${formatDuration(ms)}`;
}

export function actionButton(className, text, action, label) {
  const button = el("button", className, text);
  button.type = "button";
  button.dataset.action = action;
  if (label) button.setAttribute("aria-label", label);
  return button;
}

class MessageView {
  constructor(data, role) {
    this.id = data.id;
    this.content = data.content || "";
    this.createdAt = data.created_at || new Date().toISOString();
    this.hydrated = false;
    this.footerStale = true;
    this.el = el("article", `msg msg-${role} lazy`);
    this.el.dataset.id = this.id;
    this.el.dataset.role = role;
  }

  get isLast() {
    return this.el.isConnected && this.el.nextElementSibling === null;
  }

  /** Render fully (markdown, footer): once, when it nears the viewport or is new. */
  hydrate() {
    if (this.hydrated) return;
    this.hydrated = true;
    this.el.classList.remove("lazy");
    this.render();
    this.renderFooter();
  }

  render() {}
}

/**
 * One assistant message. Text accumulates here; the DOM is re-rendered from it
 * at most once per animation frame (transcript.js schedules it).
 */
export class Reply extends MessageView {
  constructor(data) {
    super(data, "assistant");
    this.reasoning = data.reasoning || "";
    this.status = data.status || "streaming";
    this.finishReason = data.finish_reason || "";
    this.errorMessage = data.error_message || "";
    this.usage = data.usage || null;
    this.ttftMs = data.ttft_ms ?? null;
    this.durationMs = data.duration_ms ?? null;
    this.model = data.model || "";
    this.contextLeftOut = data.context_left_out || 0;
    this.rating = data.rating ?? null;
    this.feedbackComment = data.feedback_comment || "";
    this.commentForm = null;
    this.seq = 0;
    this.dirty = false;
    this.thinkingAutoOpened = false;
    this.thinkingStarted = null;
    this.thinkingMs = null;
    this.body = el("div", "md reply-body", this.content);
    this.el.append(this.body);
    this.built = false;
    this.cursorAt = null;
  }

  get streaming() {
    return this.status === "streaming";
  }

  /** The parts around the body, made when first rendered (most messages of a long chat never are). */
  build() {
    if (this.built) return;
    this.built = true;
    this.thinking = el("details", "thinking");
    this.thinking.hidden = true;
    const summary = el("summary");
    this.thinkingLabel = el("span", "thinking-label", "Thinking");
    this.thinkingMeta = el("span", "thinking-meta");
    summary.append(this.thinkingLabel, this.thinkingMeta);
    this.thinkingBody = el("div", "thinking-body md");
    this.thinking.append(summary, this.thinkingBody);
    this.typing = el("div", "typing");
    this.typing.setAttribute("aria-hidden", "true");
    this.typing.append(el("span"), el("span"), el("span"));
    this.footer = el("div", "reply-footer");
    this.contextNote = el("p", "context-note");
    this.contextNote.hidden = true;
    this.body.replaceChildren();
    this.el.replaceChildren(this.contextNote, this.thinking, this.body, this.typing, this.footer);
    this.thinking.addEventListener("toggle", () => {
      if (this.thinking.open) renderMarkdown(this.thinkingBody, this.reasoning, { streaming: this.streaming });
    });
  }

  /** Show the reply as it stands; false while its markdown is still catching up (call again next frame). */
  render() {
    this.build();
    this.hydrated = true;
    this.el.classList.remove("lazy");
    this.dirty = false;
    const hasReasoning = this.reasoning.length > 0;
    this.thinking.hidden = !hasReasoning;
    let complete = hasReasoning ? this.renderThinking() : true;
    complete = renderMarkdown(this.body, this.content, { streaming: this.streaming }) && complete;
    const leftOut = this.contextLeftOut;
    this.contextNote.hidden = !leftOut;
    if (leftOut) {
      const messages = leftOut === 1 ? "1 earlier message was" : `${numberFormat.format(leftOut)} earlier messages were`;
      this.contextNote.textContent = `${messages} left out to fit ${this.model || "the model"}'s context.`;
    }
    this.typing.hidden = !(this.streaming && !this.content && !(hasReasoning && this.thinking.open));
    this.el.classList.toggle("streaming", this.streaming);
    this.placeCursor(this.streaming ? lastBlock(this.body) : null);
    return complete;
  }

  /**
   * The blinking cursor marks the last block while the reply streams. It is a
   * class on that block alone: a rule hanging off the article's `streaming`
   * class made ending a long reply restyle all of it.
   */
  placeCursor(block) {
    const old = this.cursorAt;
    if (old === block) return;
    if (old) {
      old.classList.remove("stream-cursor");
      if (!old.classList.length) old.removeAttribute("class"); // as a reload renders it
    }
    block?.classList.add("stream-cursor");
    this.cursorAt = block;
  }

  renderThinking() {
    const thinkingNow = this.streaming && !this.content;
    this.thinking.classList.toggle("active", thinkingNow);
    if (thinkingNow && !this.thinkingAutoOpened) {
      this.thinkingAutoOpened = true;
      this.thinkingStarted = performance.now();
      this.thinking.open = true;
    }
    if (!thinkingNow && this.thinkingStarted !== null && this.thinkingMs === null) {
      this.thinkingMs = performance.now() - this.thinkingStarted;
      this.thinking.open = false; // the answer has started: fold the thinking away
    }
    const chars = `${numberFormat.format(this.reasoning.length)} chars`;
    if (thinkingNow) this.thinkingMeta.textContent = ` · ${chars} so far…`;
    else if (this.thinkingMs !== null) this.thinkingMeta.textContent = ` · ${thoughtFor(this.thinkingMs)} · ${chars}`;
    else this.thinkingMeta.textContent = ` · ${chars}`;
    // Rendering the (often long) thinking is wasted work while it's folded.
    if (this.thinking.open || !this.streaming) {
      return renderMarkdown(this.thinkingBody, this.reasoning, { streaming: this.streaming });
    }
    return true;
  }

  renderFooter(isLast = this.isLast) {
    if (!this.hydrated) return;
    this.footerStale = false;
    const footer = this.footer;
    footer.replaceChildren();
    if (this.streaming) return;
    const idle = isIdle();
    const notice = this.endNotice();
    // A failed reply offers what applies to it: Retry (in the notice, always in
    // the same place) and Copy if some text came; no Regenerate, no thumbs.
    const failed = notice?.action === "retry";
    if (notice) {
      const alert = el("div", `alert reply-notice reply-notice-${notice.kind}`);
      alert.setAttribute("role", notice.kind === "error" ? "alert" : "status");
      alert.append(el("p", "", notice.text));
      if (notice.action === "continue" && isLast) {
        const more = actionButton("btn btn-small", "Continue", "continue", "Continue this reply");
        more.disabled = !idle;
        alert.append(more);
      }
      if (failed) {
        const retry = actionButton("btn btn-small", "", "regenerate", "Retry this reply");
        retry.append(icon("retry"), el("span", "", "Retry"));
        retry.disabled = !idle;
        alert.append(retry);
      }
      footer.append(alert);
    }

    const actions = el("div", "reply-actions");
    const versions = versionNav(state.tree, this.id, !idle);
    if (versions) actions.append(versions);
    if (!failed || this.content.trim()) actions.append(iconButton("copy", "Copy reply", "copy-reply"));
    if (!failed) {
      if (idle) actions.append(iconButton("regenerate", "Regenerate reply", "regenerate"));
      actions.append(this.thumb(1, "Good reply"), this.thumb(-1, "Bad reply"));
    }
    footer.append(actions, this.meta());
    if (this.commentForm) footer.append(this.commentForm);
    else if (this.feedbackComment) footer.append(el("p", "feedback-comment", `Your feedback: ${this.feedbackComment}`));
  }

  /** How the reply ended, when a person should know: cut, blocked, failed. */
  endNotice() {
    if (this.status === "error" || this.status === "interrupted") {
      const fallback =
        this.status === "interrupted"
          ? "The reply was interrupted. The text so far is kept."
          : "Something went wrong while writing this reply.";
      return { kind: "error", text: this.errorMessage || fallback, action: "retry" };
    }
    if (this.status !== "complete") return null;
    switch (this.finishReason) {
      case "":
      case "stop":
        return null;
      case "length":
        return {
          kind: "warning",
          text: "The reply was cut off: it reached the length limit (max tokens).",
          action: "continue",
        };
      case "content_filter":
      case "sensitive":
        return { kind: "warning", text: "The provider's content filter blocked the rest of this reply." };
      case "network_error":
        return {
          kind: "error",
          text: "The provider had a network error while writing this reply. The text so far is kept.",
          action: "retry",
        };
      default:
        return { kind: "warning", text: `The reply ended early (${this.finishReason}).`, action: "retry" };
    }
  }

  thumb(rating, label) {
    const button = iconButton("thumb", label, "rate");
    button.classList.add("thumb");
    if (rating < 0) button.firstChild.classList.add("thumb-down");
    button.dataset.rating = String(rating);
    button.setAttribute("aria-pressed", String(this.rating === rating));
    return button;
  }

  meta() {
    const meta = el("span", "reply-meta");
    const bits = [];
    if (this.status === "stopped") bits.push("Stopped");
    if (this.usage && this.usage.completion_tokens != null) {
      const approx = this.usage.estimated ? "≈" : "";
      const tokens = this.usage.completion_tokens;
      bits.push(`${approx}${numberFormat.format(tokens)} ${tokens === 1 ? "token" : "tokens"}`);
      meta.title = [
        `prompt ${this.usage.prompt_tokens ?? "?"}`,
        `completion ${this.usage.completion_tokens}`,
        `total ${this.usage.total_tokens ?? "?"}`,
        this.usage.estimated ? "(estimated)" : "",
        this.ttftMs != null ? `· first token after ${formatDuration(this.ttftMs)}` : "",
        this.model ? `· ${this.model}` : "",
      ]
        .filter(Boolean)
        .join(" ");
    }
    if (this.durationMs != null) bits.push(formatDuration(this.durationMs));
    meta.textContent = bits.length ? `${bits.join(" · ")} · ` : "";
    meta.prepend(...modelTag(this.model));
    meta.append(timeElement(this.createdAt));
    return meta;
  }

  /** The optional comment after a rating; kept across footer re-renders while open. */
  openCommentForm() {
    const form = el("form", "feedback-form");
    const id = `feedback-${this.id}`;
    const label = el("label", "", this.rating === -1 ? "What was wrong with this reply? (optional)" : "Any comment? (optional)");
    label.htmlFor = id;
    const box = el("textarea");
    box.id = id;
    box.rows = 2;
    box.maxLength = 2000;
    box.value = this.feedbackComment;
    const send = actionButton("btn btn-small btn-primary", "Send feedback", "send-feedback");
    send.type = "submit";
    const skip = actionButton("btn btn-small", "Skip", "close-feedback");
    form.append(label, box, el("div", "feedback-buttons"));
    form.lastChild.append(send, skip);
    this.commentForm = form;
    this.renderFooter();
    box.focus();
  }
}

/** One person's message: text, Edit (inline editor), Copy, versions. */
export class UserMessage extends MessageView {
  constructor(data) {
    super(data, "user");
    this.editor = null;
    this.bubble = el("div", "bubble", this.content);
    this.footer = el("div", "user-footer");
    this.el.append(this.bubble, this.footer);
  }

  renderFooter() {
    if (this.editor || !this.hydrated) return;
    this.footerStale = false;
    const idle = isIdle();
    this.footer.replaceChildren();
    const versions = versionNav(state.tree, this.id, !idle);
    if (versions) this.footer.append(versions);
    const actions = el("div", "user-actions");
    const edit = iconButton("edit", "Edit message", "edit");
    edit.disabled = !idle;
    actions.append(edit, iconButton("copy", "Copy message", "copy-message"));
    this.footer.append(actions, timeElement(this.createdAt));
  }

  openEditor() {
    const form = el("form", "edit-form");
    form.dataset.message = this.id;
    const id = `edit-${this.id}`;
    const label = el("label", "visually-hidden", "Edit message");
    label.htmlFor = id;
    const box = el("textarea", "edit-box");
    box.id = id;
    box.value = this.content;
    box.rows = Math.min(12, this.content.split("\n").length + 1);
    const buttons = el("div", "edit-buttons");
    const save = actionButton("btn btn-small btn-primary", "Save & send", "save-edit");
    save.type = "submit";
    buttons.append(save, actionButton("btn btn-small", "Cancel", "cancel-edit"));
    form.append(label, box, buttons);
    box.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation(); // Esc here cancels the edit, nothing else
        this.closeEditor();
      }
    });
    this.editor = form;
    this.bubble.hidden = true;
    this.footer.replaceChildren(form);
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  closeEditor() {
    if (!this.editor) return;
    this.editor = null;
    this.bubble.hidden = false;
    this.renderFooter();
    this.el.querySelector('[data-action="edit"]')?.focus();
  }
}
