// Markdown of a reply while it streams.
//
// Finished blocks are rendered once; only the open block at the end is redone
// per frame, and of a long paragraph only its last piece. The open block's
// half-written syntax (`**bold`, `` `code``, `[link`, `$math`, a fence being
// typed) is held back until it closes, so raw markers never flash on screen.
import { lexBlocks, renderFragment, renderInlineFragment } from "./markdown.js";

const streams = new WeakMap();
// Blocks rendered apart can't see each other's [reference]: definitions.
const REFERENCE_DEFINITION = /^ {0,3}\[[^\]]+\]:/m;
// A paragraph in progress is frozen in pieces of about this many characters:
// re-rendering all of a long paragraph every frame is what made long replies stutter.
const PARAGRAPH_PIECE = 1200;
// An opener still unclosed after this many characters is taken for a literal
// character (a stray `*` or `[`) and shown.
const HOLD_MAX = 400;
// Work per frame, and how much finished markdown goes to marked at a time.
const FRAME_BUDGET_MS = 6;
const BATCH_CHARS = 400;
// How much of the unrendered text is lexed at a time to find finished blocks.
const LEX_WINDOW = 4096;
const CHUNK_BLOCKS = 40;
// A last line that may be the start of a block (a list item, a heading, a fence,
// a setext underline that would turn the paragraph into a heading) waits for more.
const PARTIAL_BLOCK_LINE = /(^|\n) {0,3}([-*+=#>|`~]+|\d{1,9}[.)]?)[ \t]*$/;
const PARTIAL_FENCE_LINE = /\n {0,3}(`+|~+)[ \t]*$/;
const LETTER = /\p{L}/u;
const WORD = /[\p{L}\p{N}]/u;
const SPACE = /\s/;

function runLength(text, i) {
  let end = i;
  while (text[end] === text[i]) end += 1;
  return end - i;
}

/** Index of the `)` closing a link destination that starts at `from`, or -1. */
function closingParen(text, from) {
  let depth = 0;
  for (let i = from; i < text.length; i += 1) {
    const c = text[i];
    if (c === "\\") i += 1;
    else if (c === "(") depth += 1;
    else if (c === ")" && depth-- === 0) return i;
    else if (c === "\n" && text[i + 1] === "\n") return -1;
  }
  return -1;
}

/**
 * Scan inline markdown for syntax still open at its end. Returns `hold`, where
 * the shown part must stop, and `safe`, the last place (before a letter, after
 * a space, nothing open) where the text can be cut and both halves render as
 * the whole would.
 */
export function scanOpenSyntax(text) {
  let open = []; // emphasis runs and `[`, oldest first: { kind, pos }
  let code = null; // { pos, len } of an open backtick run
  let math = null; // { pos, len } of an open $ or $$
  let safe = 0;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text[i];
    if (c === "\n" && text[i + 1] === "\n") {
      open = []; // nothing inline spans a blank line
      code = null;
      math = null;
      i += 2;
      continue;
    }
    if (c === "\\") {
      i += 2;
      continue;
    }
    if (c === "`") {
      const len = runLength(text, i);
      if (!code) code = { pos: i, len };
      else if (code.len === len) code = null;
      i += len;
      continue;
    }
    if (code) {
      if (i - code.pos > HOLD_MAX) code = null; // a stray backtick, shown as one
      i += 1;
      continue;
    }
    if (c === "$") {
      const len = Math.min(runLength(text, i), 2);
      const next = text[i + len];
      if (math && math.len === len && !SPACE.test(text[i - 1] || " ")) math = null;
      else if (!math && (next === undefined || !/[\s\d]/.test(next))) math = { pos: i, len };
      i += runLength(text, i);
      continue;
    }
    if (math) {
      if (i - math.pos > HOLD_MAX) math = null;
      i += 1;
      continue;
    }
    if (c === "[") {
      open.push({ kind: "[", pos: text[i - 1] === "!" ? i - 1 : i });
    } else if (c === "]") {
      let at = open.length - 1;
      while (at >= 0 && open[at].kind !== "[") at -= 1;
      if (at >= 0) {
        if (text[i + 1] === "(") {
          const close = closingParen(text, i + 2);
          if (close < 0) break; // the destination is still being written: hold from `[`
          open.splice(at);
          i = close + 1;
          continue;
        }
        // `[text]` at the very end may still become a link; otherwise it is just brackets.
        if (i + 1 < n) open.splice(at);
      }
    } else if (c === "*" || c === "_" || c === "~") {
      const len = runLength(text, i);
      const before = text[i - 1] ?? " ";
      const after = text[i + len];
      let at = open.length - 1;
      while (at >= 0 && open[at].kind !== c) at -= 1;
      const right = !SPACE.test(before);
      if (after === undefined) {
        // At the very end: a whole closing run closes; anything else may still open.
        if (right && at >= 0 && len >= open[at].len) open.splice(at);
        else open.push({ kind: c, pos: i, len });
        i += len;
        continue;
      }
      const left = !SPACE.test(after);
      const inWord = WORD.test(before) && WORD.test(after);
      const canClose = right && !(c === "_" && left && WORD.test(after));
      const canOpen = left && !inWord && !(c === "_" && right && WORD.test(before));
      if (canClose && at >= 0) open.splice(at);
      else if (canOpen) open.push({ kind: c, pos: i, len });
      i += len;
      continue;
    } else if (c === " " && LETTER.test(text[i + 1] || "")) {
      while (open.length && i - open[0].pos > HOLD_MAX) open.shift();
      if (!open.length) safe = i + 1;
    }
    i += 1;
  }
  let hold = n;
  for (const item of [...open, code, math]) {
    if (item && n - item.pos <= HOLD_MAX) hold = Math.min(hold, item.pos);
  }
  return { hold, safe };
}

/** The part of the open block at the end of a streaming reply that can be shown now. */
export function shownPart(source, token) {
  if (token && token.type === "code") {
    return source.replace(PARTIAL_FENCE_LINE, "\n"); // a closing fence being typed
  }
  let text = source.slice(0, scanOpenSyntax(source).hold);
  const partial = PARTIAL_BLOCK_LINE.exec(text);
  if (partial) text = text.slice(0, partial.index);
  return text;
}

function newStream(target) {
  // stable: the source shown for good; queue: finished blocks lexed, not yet shown.
  const stream = { stable: "", nodes: 0, paragraph: null, queue: [], chunk: null };
  streams.set(target, stream);
  target.replaceChildren();
  return stream;
}

/** Remove what the last frame showed of the open block. */
function dropLiveNodes(target, stream) {
  const keep = stream.nodes;
  while (target.childNodes.length > keep) target.lastChild.remove();
  const paragraph = stream.paragraph;
  if (paragraph) {
    while (paragraph.el.childNodes.length > paragraph.nodes) paragraph.el.lastChild.remove();
  }
}

function commit(target, stream, source) {
  stream.stable += source;
  stream.nodes = target.childNodes.length;
}

/**
 * Finished blocks go into chunks of a few dozen, streamed or not (so a reply
 * streamed ends up as a reload renders it): appending to a container of
 * thousands of blocks costs the browser a walk over all of them every frame,
 * and a chunk off-screen is skipped by layout and paint (messages.css).
 */
function appendFinished(target, stream, fragment) {
  for (const node of [...fragment.childNodes]) {
    const full = !stream.chunk || stream.chunk.childElementCount >= CHUNK_BLOCKS;
    if (full && (node.nodeType === Node.ELEMENT_NODE || !stream.chunk)) {
      stream.chunk = document.createElement("div");
      stream.chunk.className = "md-chunk";
      target.append(stream.chunk);
    }
    stream.chunk.append(node);
  }
}

/** `source` rendered whole, its blocks in chunks as a streamed reply's are. */
function renderChunked(source) {
  const fragment = document.createDocumentFragment();
  appendFinished(fragment, { chunk: null }, renderFragment(source));
  return fragment;
}

/**
 * Freeze pieces of a long paragraph in progress while the frame's budget lasts,
 * then show its open end, held. Each piece is its own block box, so the
 * browser lays out only the newest line, not the whole paragraph, per frame.
 * True when it caught up with `text`.
 */
function growParagraph(paragraph, text, { final, partial, deadline }) {
  while (text.length > PARAGRAPH_PIECE * 2) {
    const { safe } = scanOpenSyntax(text.slice(0, PARAGRAPH_PIECE * 2));
    if (safe < PARAGRAPH_PIECE / 2) break; // nowhere to cut (a very long link): show it whole
    const piece = document.createElement("span");
    piece.className = "md-piece";
    piece.append(renderInlineFragment(text.slice(0, safe)));
    paragraph.el.append(piece);
    paragraph.text += text.slice(0, safe);
    paragraph.nodes = paragraph.el.childNodes.length;
    text = text.slice(safe);
    if (performance.now() > deadline) return false;
  }
  if (partial) return false; // `text` is the start of more: its end is no end
  paragraph.el.append(renderInlineFragment(final ? text : shownPart(text)));
  return true;
}

/**
 * Go on with a paragraph being frozen. "open": still growing (`caughtUp` says
 * whether it is shown to its end); "closed": done, go on after it; "lost".
 */
function continueParagraph(target, stream, source, final, deadline) {
  const paragraph = stream.paragraph;
  const rest = source.slice(stream.stable.length + paragraph.text.length);
  if (!rest) return { status: "open", caughtUp: true };
  // Lex no further than where the paragraph may end, nor more than a window.
  const end = rest.search(/\n[ \t]*\n/);
  const limit = end < 0 ? rest.length : end + 2;
  const windowed = limit > LEX_WINDOW;
  const tokens = lexBlocks(rest.slice(0, windowed ? LEX_WINDOW : limit));
  const first = tokens[0];
  if (!first || first.type !== "paragraph" || !rest.startsWith(first.text)) {
    // The rest no longer continues it (a setext underline, say): render it anew.
    paragraph.el.remove();
    stream.paragraph = null;
    return { status: "lost" };
  }
  const ended = end >= 0 || tokens.length > 1;
  if (windowed && !(ended && tokens.length > 1)) {
    growParagraph(paragraph, first.text, { partial: true, deadline });
    return { status: "open", caughtUp: false };
  }
  if (!ended) {
    const caughtUp = growParagraph(paragraph, first.text, { final, deadline });
    if (!final || !caughtUp) return { status: "open", caughtUp };
    stream.paragraph = null;
    commit(target, stream, paragraph.text + rest);
    return { status: "closed" };
  }
  if (!growParagraph(paragraph, first.text, { final: true, deadline })) return { status: "open", caughtUp: false };
  stream.paragraph = null;
  commit(target, stream, paragraph.text + first.raw);
  return { status: "closed" };
}

/** Block tokens of the start of `tail`: enough of it for at least one finished block. */
function lexStart(tail) {
  let size = LEX_WINDOW;
  for (;;) {
    const windowed = tail.length > size;
    const tokens = lexBlocks(windowed ? tail.slice(0, size) : tail);
    if (!windowed || tokens.filter((token) => token.type !== "space").length > 1) return { tokens, windowed };
    size *= 2;
  }
}

/** One frame's rendering; true when it caught up with `source`. */
function renderStep(target, source, final) {
  const deadline = performance.now() + FRAME_BUDGET_MS;
  let stream = streams.get(target);
  const paragraph = stream?.paragraph;
  if (
    !stream ||
    !source.startsWith(stream.stable) ||
    (paragraph && !source.startsWith(paragraph.text, stream.stable.length))
  ) {
    stream = newStream(target);
  }
  dropLiveNodes(target, stream);
  if (stream.paragraph) {
    const step = continueParagraph(target, stream, source, final, deadline);
    if (step.status === "open") return step.caughtUp;
  }
  for (;;) {
    // Finished blocks, a few at a time so that no frame takes long.
    while (stream.queue.length) {
      let batch = "";
      while (stream.queue.length && batch.length < BATCH_CHARS) batch += stream.queue.shift();
      if (!source.startsWith(batch, stream.stable.length)) {
        stream.queue = [];
        break;
      }
      appendFinished(target, stream, renderFragment(batch));
      commit(target, stream, batch);
      if (performance.now() > deadline) return false;
    }
    const tail = source.slice(stream.stable.length);
    if (!tail) return true;
    const { tokens, windowed } = lexStart(tail);
    let last = tokens.length - 1;
    while (last > 0 && tokens[last].type === "space") last -= 1;
    if (last > 0) {
      // Lexed once: what is finished stays finished, whatever follows.
      stream.queue = tokens.slice(0, last).map((token) => token.raw);
      continue;
    }
    if (windowed) return false; // (lexStart gives a window at least one finished block)
    const open = tail;
    const token = tokens[last];
    if (token?.type === "paragraph" && open.length > PARAGRAPH_PIECE * 2 && open.startsWith(token.text)) {
      const el = document.createElement("p");
      const holder = document.createDocumentFragment();
      holder.append(el);
      appendFinished(target, stream, holder);
      stream.nodes = target.childNodes.length; // the paragraph's chunk stays
      stream.paragraph = { el, text: "", nodes: 0 };
      const step = continueParagraph(target, stream, source, final, deadline);
      return step.status === "open" ? step.caughtUp : false;
    }
    if (final) {
      appendFinished(target, stream, renderFragment(open));
      commit(target, stream, open);
      return true;
    }
    target.append(renderFragment(shownPart(open, token), true));
    return true;
  }
}

/**
 * Render untrusted markdown into `target`, replacing its children. With
 * `streaming`, `source` is expected to grow between calls and only its end is
 * redone; the calls without it after the last one finish the job. Returns
 * false while a streamed text is not all shown yet: call again next frame.
 */
export function renderMarkdown(target, source, { streaming = false } = {}) {
  source ||= "";
  if (streaming) return renderStep(target, source, false);
  const stream = streams.get(target);
  if (stream && !REFERENCE_DEFINITION.test(source)) {
    if (!renderStep(target, source, true)) return false;
    // Finished, it is the DOM a reload renders: the pieces of long paragraphs were for streaming.
    for (const piece of target.querySelectorAll(":scope > .md-chunk > p > .md-piece")) {
      piece.replaceWith(...piece.childNodes);
    }
  } else {
    target.replaceChildren(renderChunked(source));
  }
  streams.delete(target);
  return true;
}
