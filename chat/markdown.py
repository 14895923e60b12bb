"""Markdown to safe HTML on the server, for pages that show model output without script.

The chat page renders in the browser (marked + DOMPurify); the admin's
transcript renders here the same way: markdown-it (CommonMark, tables,
strikethrough, raw HTML off) and then nh3, an allow-list sanitizer, because
model output is untrusted input.
"""

from __future__ import annotations

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

_parser = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])

# No images: they would load from wherever the model points (and leak that the
# page was opened); the CSP blocks them anyway.
ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}, "ol": {"start"}}


def render(text: str) -> SafeString:
    html = nh3.clean(
        _parser.render(text),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(html)
