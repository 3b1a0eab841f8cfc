"""MkDocs hooks for the documentation site (mkdocs.yml ``hooks:``).

The docstrings use Sphinx roles (:class:`~kyototycoon.errors.ServerError`, :meth:`consume`), which
mkdocstrings leaves as text. Each becomes a cross-reference that mkdocs-autorefs resolves to the API
reference entry, or plain code when the name is not on the site (``optional``: no warning for those).
"""

from __future__ import annotations

import html
import re
from typing import Any

# what python-markdown makes of :role:`target`: the role's text, then the target as <code>
_ROLE = re.compile(r":(?:class|meth|func|data|attr|mod|exc|obj):<code>(?P<target>[^<]+)</code>")


_ANCHOR = re.compile(r'id="(?P<id>kyototycoon(?:\.\w+)+)"')


def _autoref(match: re.Match[str], here: dict[str, str]) -> str:
    target = html.unescape(match["target"])
    short = target.startswith("~")
    identifier = target.lstrip("~.")
    title = identifier.rsplit(".", 1)[-1] if short else identifier
    # a bare or relative name: the entry of that name on this page, when there is exactly one
    identifier = here.get(identifier, identifier)
    return (f'<autoref optional identifier="{html.escape(identifier)}">'
            f"<code>{html.escape(title)}</code></autoref>")


def on_page_content(html_text: str, **kwargs: Any) -> str:
    """Sphinx roles in the rendered page -> autorefs cross-references."""
    by_name: dict[str, list[str]] = {}
    for anchor in set(_ANCHOR.findall(html_text)):
        parts = anchor.split(".")
        for i in range(1, len(parts)):  # "Server", "core.Server", ... -> the full name
            by_name.setdefault(".".join(parts[i:]), []).append(anchor)
    here = {name: ids[0] for name, ids in by_name.items() if len(ids) == 1}
    return _ROLE.sub(lambda m: _autoref(m, here), html_text)
