"""Marked sections of docs/BENCHMARKS.md, so that `make bench` can rewrite each table.

A bench prints its section between two HTML comments (invisible in the rendered page):

    <!-- bench:load -->
    ...markdown: machine, date, the command that reproduces it, the table...
    <!-- /bench:load -->

`replace_sections(document, output)` puts every section found in ``output`` in place
of the section of the same name in ``document`` (appended at the end if the document
has none yet); the rest of the document is kept byte for byte.
"""

from __future__ import annotations

import re

_SECTION = re.compile(r"<!-- bench:(?P<name>[\w.:-]+) -->\n(?P<body>.*?)<!-- /bench:(?P=name) -->",
                      re.DOTALL)


def section(name: str, body: str) -> str:
    """``body`` between the markers of section ``name``. Raises ValueError for a name
    that is not letters, digits, dots, colons, dashes or underscores."""
    if not re.fullmatch(r"[\w.:-]+", name):
        raise ValueError(f"a bench section name is letters, digits, . : - _, not {name!r}")
    return f"<!-- bench:{name} -->\n{body.rstrip()}\n<!-- /bench:{name} -->"


def sections(output: str) -> dict[str, str]:
    """The sections printed in ``output``: name -> the whole marked block."""
    return {m["name"]: m.group(0) for m in _SECTION.finditer(output)}


def replace_sections(document: str, output: str) -> tuple[str, list[str]]:
    """``document`` with each section of ``output`` in place of its old version (or
    appended); returns the new text and the names rewritten."""
    found = sections(output)
    for name, block in found.items():
        old = re.compile(rf"<!-- bench:{re.escape(name)} -->\n.*?<!-- /bench:{re.escape(name)} -->",
                         re.DOTALL)
        if old.search(document):
            document = old.sub(lambda _m, block=block: block, document, count=1)
        else:
            document = document.rstrip("\n") + "\n\n" + block + "\n"
    return document, list(found)
