// Markdown → sanitized DOM for model output.
//
// Model output is untrusted: marked turns it into HTML, DOMPurify cleans that,
// and only then do we add our own UI (code headers, copy buttons, image
// placeholders), syntax highlighting and math, working on the sanitized DOM so
// the model can't forge any of it.
import { Marked } from "../vendor/marked-18.2.1.esm.js";
import DOMPurify from "../vendor/dompurify-3.5.0.es.js";

// Loaded when the first code block is rendered, like KaTeX for math: most of
// a page's opening is spent otherwise in registering hljs's grammars.
const HIGHLIGHT_URL = "../vendor/highlight-11.12.0.min.js";
const KATEX_URL = "../vendor/katex-0.19.1/katex.mjs";

function escapeHtml(text) {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

// --- math: $…$, \(…\), $$…$$, \[…\] and ```math ------------------------------
//
// The tokenizers only mark math as <code class="language-math-…">; it passes
// DOMPurify as text and is typeset afterwards, straight into DOM nodes.

// A "$" opens math only before a non-space and closes only after one, and not
// before a digit: "$5 and $10" stays prose.
const INLINE_MATH = [
  { pattern: /^\$\$(?!\s)((?:\\.|[^\\$])+?)\$\$/, display: true },
  { pattern: /^\$(?![\s$])((?:\\.|[^\\$\n])+?)(?<!\s)\$(?!\d)/, display: false },
  { pattern: /^\\\(((?:\\.|[^\\])+?)\\\)/, display: false },
];
const BLOCK_MATH = [/^ {0,3}\$\$([\s\S]+?)\$\$[ \t]*(?:\n|$)/, /^ {0,3}\\\[([\s\S]+?)\\\][ \t]*(?:\n|$)/];

function mathCode(tex, display) {
  const kind = display ? "display" : "inline";
  return `<code class="language-math-${kind}">${escapeHtml(tex.trim())}</code>`;
}

const mathExtensions = [
  {
    name: "blockMath",
    level: "block",
    start: (src) => src.match(/^ {0,3}(\$\$|\\\[)/m)?.index,
    tokenizer(src) {
      for (const pattern of BLOCK_MATH) {
        const match = pattern.exec(src);
        if (match) return { type: "blockMath", raw: match[0], tex: match[1] };
      }
      return undefined;
    },
    renderer: (token) => `<pre>${mathCode(token.tex, true)}</pre>\n`,
  },
  {
    name: "inlineMath",
    level: "inline",
    start: (src) => src.match(/\$|\\\(/)?.index,
    tokenizer(src) {
      for (const { pattern, display } of INLINE_MATH) {
        const match = pattern.exec(src);
        if (match) return { type: "inlineMath", raw: match[0], tex: match[1], display };
      }
      return undefined;
    },
    renderer: (token) => mathCode(token.tex, token.display),
  },
];

// --- images: a placeholder, loaded on request --------------------------------

// Images in a reply are not fetched by themselves: the URL could carry the
// conversation to a stranger's server. The renderer leaves a link whose
// fragment holds this page's secret; after sanitizing, such links (and only
// those: the model can't guess the secret) become "Load image" buttons.
const IMAGE_MARK = `#glmweb-image-${crypto.getRandomValues(new Uint32Array(2)).join("")}-`;
let imagesInRender = [];
/** URLs the person chose to load: shown as images from then on. */
const loadedImages = new Set();

const marked = new Marked({
  gfm: true,
  breaks: false,
  extensions: mathExtensions,
  renderer: {
    // Raw HTML in a reply is shown as text: models mention tags in prose far
    // more often than they mean to lay out a page, and silently dropping them
    // (which is all sanitizing could do) loses words.
    html({ text }) {
      return escapeHtml(text);
    },
    image({ href, text }) {
      imagesInRender.push({ href: href || "", alt: text || "" });
      return `<a href="${IMAGE_MARK}${imagesInRender.length - 1}">${escapeHtml(text || "image")}</a>`;
    },
  },
});

function isExternal(href) {
  try {
    return new URL(href, location.href).origin !== location.origin;
  } catch {
    return true;
  }
}

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  // Classes are ours to give: the model's could borrow the page's styles and
  // pass as our UI. Keep only marked's `language-…` on code.
  if (node.hasAttribute("class")) {
    const keep = node.tagName === "CODE" && /^language-[\w+#.-]+$/.test(node.getAttribute("class"));
    if (!keep) node.removeAttribute("class");
  }
  if (node.tagName === "A" && node.hasAttribute("href")) {
    if (isExternal(node.getAttribute("href"))) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    } else {
      node.removeAttribute("target");
    }
  }
});

const PURIFY_CONFIG = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "img", "video", "audio"],
  FORBID_ATTR: ["style", "id", "name"],
  ALLOW_DATA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};
// Parsed once: a streaming reply sanitizes a piece every frame.
DOMPurify.setConfig(PURIFY_CONFIG);

function imageHost(href) {
  try {
    const url = new URL(href, location.href);
    return url.protocol === "https:" || url.protocol === "http:" ? url.host : null;
  } catch {
    return null;
  }
}

export function imageElement(href, alt) {
  const image = document.createElement("img");
  image.alt = alt;
  image.referrerPolicy = "no-referrer";
  image.decoding = "async";
  image.src = href;
  image.addEventListener("error", () => {
    const failed = document.createElement("span");
    failed.className = "image-blocked";
    failed.textContent = `Image could not be loaded: ${alt || href}`;
    image.replaceWith(failed);
  });
  return image;
}

// A picture outline drawn in the text's colour: an emoji shows as a box where no
// emoji font is installed.
function imageIcon() {
  const svgElement = (name, attributes) => {
    const element = document.createElementNS("http://www.w3.org/2000/svg", name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
    return element;
  };
  const svg = svgElement("svg", { class: "image-load-icon", viewBox: "0 0 24 24", width: "16", height: "16", "aria-hidden": "true" });
  svg.append(
    svgElement("rect", { x: "3", y: "4", width: "18", height: "16", rx: "2" }),
    svgElement("circle", { cx: "9", cy: "10", r: "1.75" }),
    svgElement("path", { d: "M4 18l5.5-5.5 3.5 3.5 2.5-2.5L20 18" }),
  );
  return svg;
}

function imagePlaceholder({ href, alt }) {
  const host = imageHost(href);
  if (!host) {
    const blocked = document.createElement("span");
    blocked.className = "image-blocked";
    const what = href.startsWith("data:") ? "embedded image not shown" : "image not shown";
    blocked.textContent = `[${alt ? `${alt}: ` : ""}${what}]`;
    return blocked;
  }
  if (loadedImages.has(href)) return imageElement(href, alt);
  const button = document.createElement("button");
  button.type = "button";
  button.className = "image-load";
  button.dataset.src = href;
  button.dataset.alt = alt;
  button.title = href;
  const label = document.createElement("span");
  label.className = "image-load-label";
  label.append(imageIcon(), `Load image from ${host}`);
  button.append(label);
  if (alt) {
    const caption = document.createElement("span");
    caption.className = "image-alt";
    caption.textContent = alt;
    button.append(caption);
  }
  return button;
}

function replaceImages(fragment, images) {
  for (const link of fragment.querySelectorAll(`a[href^="${IMAGE_MARK}"]`)) {
    const image = images[Number(link.getAttribute("href").slice(IMAGE_MARK.length))];
    if (image) link.replaceWith(imagePlaceholder(image));
  }
}

// --- code --------------------------------------------------------------------

// Finished code blocks don't change while the reply grows: highlight each once.
const highlightCache = new Map();
const HIGHLIGHT_CACHE_MAX = 200;
// A code block still being written is highlighted again on every frame: only
// while it is short, and never by guessing its language (highlightAuto tries
// every grammar).
const LIVE_HIGHLIGHT_MAX = 4000;

let hljs = null;
let hljsLoading = null;

function loadHighlighter() {
  hljsLoading ??= import(HIGHLIGHT_URL).then((module) => {
    hljs = module.default;
    for (const code of document.querySelectorAll("code.highlight-pending")) {
      code.innerHTML = highlight(code.textContent, code.dataset.lang, false);
      code.classList.remove("highlight-pending");
      delete code.dataset.lang;
    }
  });
  return hljsLoading;
}

function highlight(code, lang, live) {
  const known = lang && hljs.getLanguage(lang);
  if (live && (!known || code.length > LIVE_HIGHLIGHT_MAX)) return escapeHtml(code);
  const key = `${lang}\u0000${code}`;
  let html = highlightCache.get(key);
  if (html === undefined) {
    if (known) {
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

function decorateCodeBlocks(fragment, live) {
  for (const pre of fragment.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    if (!code) continue;
    const match = /^language-(\S+)$/.exec(code.className);
    const lang = match ? match[1].toLowerCase() : "";
    code.className = "hljs";
    if (hljs) {
      code.innerHTML = highlight(code.textContent, lang, live); // hljs escapes its input
    } else {
      // Shown as plain text until the highlighter arrives.
      code.classList.add("highlight-pending");
      code.dataset.lang = lang;
      loadHighlighter();
    }
    pre.tabIndex = 0; // it may scroll sideways: reachable by keyboard

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

function wrapTables(fragment) {
  for (const table of fragment.querySelectorAll("table")) {
    const wrap = document.createElement("div");
    wrap.className = "table-wrap";
    wrap.tabIndex = 0; // it may scroll sideways: reachable by keyboard
    table.replaceWith(wrap);
    wrap.append(table);
  }
}

// --- math typesetting ----------------------------------------------------------

let katex = null;
let katexLoading = null;

function loadKatex() {
  katexLoading ??= import(KATEX_URL).then((module) => {
    katex = module.default;
    for (const node of document.querySelectorAll(".math-pending")) typeset(node);
  });
  return katexLoading;
}

const KATEX_OPTIONS = { throwOnError: true, trust: false, strict: "ignore", maxSize: 50, maxExpand: 1000 };

/** Typeset `node` (its text is the TeX) in place; failures show the source. */
function typeset(node) {
  const tex = node.textContent;
  const display = node.classList.contains("math-display");
  node.classList.remove("math-pending");
  try {
    // katex.render builds DOM nodes itself (no HTML parsing), with `trust`
    // off so \href, \url and \html… stay out.
    katex.render(tex, node, { ...KATEX_OPTIONS, displayMode: display });
  } catch (error) {
    node.classList.add("math-error");
    node.textContent = display ? `$$${tex}$$` : `$${tex}$`;
    node.title = String(error.message || error);
  }
}

function renderMath(fragment) {
  for (const code of fragment.querySelectorAll('code[class^="language-math"]')) {
    const display = code.className !== "language-math-inline";
    const holder = document.createElement(display ? "div" : "span");
    holder.className = display ? "math-display" : "math-inline";
    holder.textContent = code.textContent;
    (display && code.parentElement?.tagName === "PRE" ? code.parentElement : code).replaceWith(holder);
    if (katex) {
      typeset(holder);
    } else {
      holder.classList.add("math-pending");
      loadKatex();
    }
  }
}

// --- rendering -----------------------------------------------------------------

export function renderFragment(source, live = false) {
  imagesInRender = [];
  const html = marked.parse(source, { async: false });
  const images = imagesInRender;
  const fragment = DOMPurify.sanitize(html);
  replaceImages(fragment, images);
  renderMath(fragment);
  decorateCodeBlocks(fragment, live);
  wrapTables(fragment);
  return fragment;
}

/** One paragraph's inline markdown (a piece of it while it streams), sanitized. */
export function renderInlineFragment(source) {
  imagesInRender = [];
  const html = marked.parseInline(source, { async: false });
  const images = imagesInRender;
  const fragment = DOMPurify.sanitize(html);
  replaceImages(fragment, images);
  renderMath(fragment);
  return fragment;
}

/** The block tokens of `source` (markdown-stream.js splits a growing reply with them). */
export function lexBlocks(source) {
  return marked.lexer(source);
}

// --- clicks inside rendered markdown ---------------------------------------------

/** Copy buttons and image placeholders (event delegation); true if handled. */
export function handleMarkdownClick(event) {
  const load = event.target.closest(".image-load");
  if (load) {
    loadedImages.add(load.dataset.src);
    load.replaceWith(imageElement(load.dataset.src, load.dataset.alt));
    return true;
  }
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
