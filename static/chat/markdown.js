// Markdown → sanitized DOM for model output.
//
// Model output is untrusted: marked turns it into HTML, DOMPurify cleans that,
// and only then do we add our own UI (code headers, copy buttons) and syntax
// highlighting, working on the sanitized DOM so the model can't forge either.
import { Marked } from "../vendor/marked-18.2.1.esm.js";
import DOMPurify from "../vendor/dompurify-3.5.0.es.js";
import hljs from "../vendor/highlight-11.12.0.min.js";

function escapeHtml(text) {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    // Raw HTML in a reply is shown as text: models mention tags in prose far
    // more often than they mean to lay out a page, and silently dropping them
    // (which is all sanitizing could do) loses words.
    html({ text }) {
      return escapeHtml(text);
    },
    // Images would load from wherever the model points: a tracking pixel, or
    // a way to leak the conversation through a URL. Show them as links.
    image({ href, text }) {
      const label = escapeHtml(text || href || "image");
      if (!href) return label;
      return `<a href="${escapeHtml(href)}">${label}</a>`;
    },
  },
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  // Classes are ours to give: the model's could borrow the page's styles and
  // pass as our UI. Keep only marked's `language-…` on code.
  if (node.hasAttribute("class")) {
    const keep = node.tagName === "CODE" && /^language-[\w+#.-]+$/.test(node.getAttribute("class"));
    if (!keep) node.removeAttribute("class");
  }
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

const PURIFY_CONFIG = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "img", "video", "audio"],
  FORBID_ATTR: ["style", "id", "name"],
  ALLOW_DATA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};

// Finished code blocks don't change while the reply grows: highlight each once.
const highlightCache = new Map();
const HIGHLIGHT_CACHE_MAX = 200;

function highlight(code, lang) {
  const key = `${lang}\u0000${code}`;
  let html = highlightCache.get(key);
  if (html === undefined) {
    if (lang && hljs.getLanguage(lang)) {
      html = hljs.highlight(code, { language: lang, ignoreIllegals: true }).value;
    } else if (code.length < 20000) {
      html = hljs.highlightAuto(code).value;
    } else {
      html = escapeHtml(code);
    }
    if (highlightCache.size >= HIGHLIGHT_CACHE_MAX) {
      highlightCache.delete(highlightCache.keys().next().value);
    }
    highlightCache.set(key, html);
  }
  return html;
}

function decorateCodeBlocks(fragment) {
  for (const pre of fragment.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    if (!code) continue;
    const match = /^language-(\S+)$/.exec(code.className);
    const lang = match ? match[1].toLowerCase() : "";
    const text = code.textContent;
    code.innerHTML = highlight(text, lang); // hljs escapes its input
    code.className = "hljs";

    const block = document.createElement("div");
    block.className = "code-block";
    const head = document.createElement("div");
    head.className = "code-head";
    const label = document.createElement("span");
    label.className = "code-lang";
    label.textContent = lang || "text";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "code-copy";
    copy.textContent = "Copy";
    head.append(label, copy);
    pre.replaceWith(block);
    block.append(head, pre);
  }
}

/** Render untrusted markdown into `target`, replacing its children. */
export function renderMarkdown(target, source) {
  const html = marked.parse(source || "", { async: false });
  const fragment = DOMPurify.sanitize(html, PURIFY_CONFIG);
  decorateCodeBlocks(fragment);
  target.replaceChildren(fragment);
}

/** Copy a code block's text when its Copy button is pressed (event delegation). */
export function handleCopyClick(event) {
  const button = event.target.closest(".code-copy");
  if (!button) return false;
  const code = button.closest(".code-block")?.querySelector("code");
  if (!code) return true;
  copyText(code.textContent).then(
    () => flash(button, "Copied"),
    () => flash(button, "Copy failed"),
  );
  return true;
}

export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain-http deployments have no async clipboard API.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("copy failed");
}

export function flash(button, text) {
  const original = button.dataset.label || button.textContent;
  button.dataset.label = original;
  button.textContent = text;
  clearTimeout(button._flashTimer);
  button._flashTimer = setTimeout(() => {
    button.textContent = original;
  }, 1500);
}
