"""Every example in docs/ runs, so none rots.

- Each ```python block of a page runs, in page order, in one namespace per page (a later block may use
  what an earlier one made), against embedded servers started here. The pages use the ports a reader
  would (1978, 1979 and 1980 for Kyoto Tycoon servers, 11211 for memcached): each is replaced by the
  port of an embedded server standing in for it. Databases are cleared before each page.
- Each ``kyototycoon ...`` line of a ```sh block is parsed by the command line's own parser, so every
  command and option the pages show exists.
"""

from __future__ import annotations

import re
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kyototycoon import KyotoTycoon
from kyototycoon.cli import build_parser
from kyototycoon.server import EmbeddedServer

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ ]*$",
                   re.MULTILINE | re.DOTALL)
#: what every example page may assume: the servers a reader would have at these ports
MAIN_PORT, SECOND_PORT, THIRD_PORT, MEMCACHE_PORT = 1978, 1979, 1980, 11211
#: a page that runs longer than this is too slow for the suite (all pages together stay well under 30 s)
PAGE_BUDGET = 10.0


@dataclass
class Block:
    page: str
    line: int
    lang: str
    code: str


def blocks(page: str) -> Iterator[Block]:
    text = (DOCS / page).read_text(encoding="utf-8")
    for match in FENCE.finditer(text):
        indent = len(match["indent"])
        code = "\n".join(line[indent:] for line in match["body"].splitlines())
        yield Block(page, text.count("\n", 0, match.start()) + 2, match["lang"], code)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, int]]:
    """Embedded servers standing in for the ports the pages name: ``{page port: real port}``."""
    ulog = tmp_path_factory.mktemp("ulog")
    with EmbeddedServer(["%", "cache"], memcache_port=0, ulog=str(ulog), ulog_sync="never") as main, \
            EmbeddedServer() as second, EmbeddedServer() as third:
        assert main.memcache_port is not None
        yield {MAIN_PORT: main.port, SECOND_PORT: second.port, THIRD_PORT: third.port,
               MEMCACHE_PORT: main.memcache_port}


def localize(code: str, ports: dict[int, int]) -> str:
    """The page's ports replaced by the servers' (a port is a whole number: timestamps are untouched)."""
    return re.sub(r"(?<![\w.])(1978|1979|1980|11211)(?![\w.])", lambda m: str(ports[int(m[1])]), code)


def clear_all(ports: dict[int, int]) -> None:
    for page_port, databases in ((MAIN_PORT, (0, 1)), (SECOND_PORT, (0,)), (THIRD_PORT, (0,))):
        with KyotoTycoon() as kt:
            kt.open("127.0.0.1", ports[page_port], timeout=5)
            for db in databases:
                kt.clear(db=db)


def python_pages() -> list[str]:
    return [p for p in PAGES if any(b.lang == "python" for b in blocks(p))]


@pytest.mark.parametrize("page", python_pages())
def test_python_examples_run(page: str, servers: dict[int, int]) -> None:
    clear_all(servers)
    namespace: dict[str, object] = {"__name__": f"docs_{Path(page).stem}"}
    started = time.monotonic()
    ran = 0
    for block in blocks(page):
        if block.lang != "python":
            continue
        source = localize(block.code, servers)
        try:
            exec(compile(source, f"docs/{page}:{block.line}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"the example at docs/{page}:{block.line} failed: {exc!r}") from exc
        ran += 1
    assert ran, f"docs/{page} has python blocks but none ran"
    elapsed = time.monotonic() - started
    assert elapsed < PAGE_BUDGET, f"docs/{page}'s examples took {elapsed:.1f} s"


def command_lines() -> list[tuple[str, int, str]]:
    found = []
    for page in PAGES:
        for block in blocks(page):
            if block.lang != "sh":
                continue
            for offset, line in enumerate(block.code.replace("\\\n", " ").splitlines()):
                for command in re.split(r"\s*(?:;|&&|\|(?!\|))\s*", line.split(" #")[0].strip()):
                    words = shlex.split(command.rstrip("& "))
                    redirect = next((i for i, w in enumerate(words) if w in (">", ">>", "<", "2>")), None)
                    words = words[:redirect]
                    while words and ("=" in words[0] and not words[0].startswith("-")):
                        words.pop(0)  # VAR=value prefixes
                    if words[:3] == ["python", "-m", "kyototycoon"]:
                        words = ["kyototycoon", *words[3:]]
                    if words and words[0] == "kyototycoon" and len(words) > 1:
                        found.append((page, block.line + offset, " ".join(words[1:])))
    return found


@pytest.mark.parametrize(("page", "line", "command"), command_lines(),
                         ids=[f"{p}:{n}" for p, n, _ in command_lines()])
def test_command_lines_parse(page: str, line: int, command: str) -> None:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(shlex.split(command))
    except SystemExit as exc:  # argparse's way of saying no
        raise AssertionError(f"docs/{page}:{line}: `kyototycoon {command}` does not parse") from exc
    assert not extra or args.command_spec.delegates, f"docs/{page}:{line}: unknown {extra}"


def test_the_pages_are_found() -> None:
    assert {"index.md", "getting-started.md", "migrate-from-ng.md", "migrate-from-ukt.md"} <= set(PAGES)
    assert command_lines(), "no command line found in the pages' sh blocks"


def test_the_ng_migration_guide_lists_every_deliberate_difference() -> None:
    # README.md's table is held to tests/test_compat_differential.py's DELIBERATE rows there
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (.+?) \| .+\|$", readme.split("The differences left are deliberate", 1)[1]
                      .split("\n\n", 2)[1], re.MULTILINE)
    guide = (DOCS / "migrate-from-ng.md").read_text(encoding="utf-8")
    assert len(rows) > 10
    assert [row for row in rows if f"| {row} |" not in guide] == []


def test_the_readme_links_every_page() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    guides = [p for p in PAGES if not p.startswith("reference/") or p == "reference/client.md"]
    assert [p for p in guides if p != "index.md" and f"(docs/{p})" not in readme] == []


def test_localize_replaces_whole_port_numbers_only() -> None:
    ports = {MAIN_PORT: 40001, SECOND_PORT: 40002, THIRD_PORT: 40003, MEMCACHE_PORT: 40004}
    code = 'kt.open("127.0.0.1", 1978); Memcache(("127.0.0.1", 11211)); since(1796198610272000000); x = 19780'
    assert localize(code, ports) == ('kt.open("127.0.0.1", 40001); Memcache(("127.0.0.1", 40004)); '
                                     'since(1796198610272000000); x = 19780')


def test_blocks_are_found_with_their_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = "# t\n\n```python\nx = 1\n```\n\n- item\n\n  ```sh\n  kyototycoon get k\n  ```\n"
    (tmp_path / "page.md").write_text(page)
    monkeypatch.setattr(sys.modules[__name__], "DOCS", tmp_path)
    found = [(b.lang, b.line, b.code) for b in blocks("page.md")]
    assert found == [("python", 4, "x = 1"), ("sh", 10, "kyototycoon get k")]  # indented blocks too
