"""The documentation matches the code: every log event is in docs/events.md (and nothing
else is), the README's module list is the package, its links lead somewhere, and no
comment points at a file or a numbered guarantee the repository does not have.

Event names are found by reading the source, not by running it:

- Python (``rrdsync/**/*.py`` and the image's Python programs): a call to any function
  or method defined in ``rrdsync`` with a parameter named ``event`` (``LOG.info(...)``,
  ``LOG.log(level, ...)``, ``logwrap.render(...)``, ``receiver._error(...)``), with a
  string literal in that position; an f-string there is expanded with
  :data:`FSTRING_VALUES`. Plus the tables :mod:`rrdsync.logwrap` turns other programs'
  lines with (``(re.compile(...), "event")`` pairs, the ``event`` element of a parser's
  ``Line``, ``event, fields = ... or ("event", {})`` fallbacks) and module constants
  named ``*_EVENT``.
- Shell (``entrypoint/*``, ``image/*``, ``demo/*``): the helpers ``log LEVEL EVENT ...``,
  ``logwrap emit [--logger L] LEVEL EVENT ...`` and ``say EVENT ...``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVENTS_MD = ROOT / "docs" / "events.md"
README = ROOT / "README.md"
PACKAGE = ROOT / "rrdsync"

EVENT = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
# Placeholders of f-string event names, and the values they take (server.py's endpoints).
FSTRING_VALUES = {"endpoint": ("healthz", "readyz")}
LEVELS = "DEBUG|INFO|WARNING|ERROR|CRITICAL"
SHELL_EMITTERS = re.compile(
    rf"(?<![\w.-])(?:log|emit(?:\s+--\S+\s+\S+)*)\s+(?:{LEVELS})\s+(?P<event>[a-z][a-z0-9_]*)\b"
    r"|(?<![\w.-])say\s+(?P<said>[a-z][a-z0-9_]*)\b")


# --- where events are emitted ---------------------------------------------------------


def _python_sources() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    for f in sorted((ROOT / "image").iterdir()):
        first = f.read_text(errors="replace").partition("\n")[0] if f.is_file() else ""
        if first.startswith("#!") and "python" in first:
            files.append(f)
    return files


def _shell_sources() -> list[Path]:
    out = []
    for d in ("entrypoint", "image", "demo"):
        for f in sorted((ROOT / d).iterdir()):
            if f.is_file():
                first = f.read_text(errors="replace").partition("\n")[0]
                if first.startswith("#!") and ("bash" in first or first.endswith("sh")):
                    out.append(f)
    return out


def _emitters() -> dict[str, set[int]]:
    """Function name -> positions of its ``event`` argument in a call (``self`` dropped
    for methods), over every function rrdsync defines."""
    found: dict[str, set[int]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            names = [a.arg for a in node.args.posonlyargs + node.args.args]
            if "event" not in names:
                continue
            index = names.index("event")
            if names and names[0] in ("self", "cls"):
                index -= 1
            found.setdefault(node.name, set()).add(index)
    # watchdog's handler methods take an event object, never a name
    for name in ("on_event", "on_any_event", "dispatch"):
        found.pop(name, None)
    return found


def _names(node: ast.expr, where: str) -> Iterator[str]:
    """The event names a literal argument stands for."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.JoinedStr):
        variants = [""]
        for part in node.values:
            if isinstance(part, ast.Constant):
                variants = [v + str(part.value) for v in variants]
                continue
            assert isinstance(part, ast.FormattedValue)
            name = ast.unparse(part.value)
            assert name in FSTRING_VALUES, (
                f"{where}: event name {ast.unparse(node)} uses {{{name}}}: add the values it "
                "takes to FSTRING_VALUES in tests/unit/test_docs.py (or use literal names)")
            variants = [v + value for v in variants for value in FSTRING_VALUES[name]]
        yield from variants


def _called(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _python_events(path: Path, emitters: dict[str, set[int]]) -> Iterator[tuple[str, str]]:
    tree = ast.parse(path.read_text())
    rel = path.relative_to(ROOT)
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call):
            for index in emitters.get(_called(node) or "", ()):
                if index < len(node.args):
                    for name in _names(node.args[index], where):
                        yield name, where
            for kw in node.keywords:
                if kw.arg == "event" and _called(node) in emitters:
                    for name in _names(kw.value, where):
                        yield name, where
        elif isinstance(node, ast.Tuple):
            # (re.compile(...), "event"): logwrap's tables for supervisord's and sshd's lines
            if any(isinstance(e, ast.Call) and _called(e) == "compile" for e in node.elts):
                for e in node.elts:
                    if isinstance(e, ast.Constant) and isinstance(e.value, str):
                        yield e.value, where
        elif isinstance(node, ast.FunctionDef) and node.returns is not None \
                and ast.unparse(node.returns) == "Line":
            # logwrap's parsers return (logger, level, event, message, fields)
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Tuple) \
                        and len(ret.value.elts) == 5:
                    yield from ((n, where) for n in _names(ret.value.elts[2], where))
        elif isinstance(node, ast.Assign):
            target = node.targets[0]
            if isinstance(target, ast.Tuple) and any(
                    isinstance(t, ast.Name) and t.id == "event" for t in target.elts):
                index = [getattr(t, "id", None) for t in target.elts].index("event")
                # event, fields = _match(...) or ("fallback_event", {})
                for sub in ast.walk(node.value):
                    if isinstance(sub, ast.Tuple) and len(sub.elts) == len(target.elts):
                        yield from ((n, where) for n in _names(sub.elts[index], where))
            elif isinstance(target, ast.Name) and target.id.endswith("_EVENT"):
                yield from ((n, where) for n in _names(node.value, where))


def emitted() -> dict[str, list[str]]:
    """Every event name in the source, with where it is emitted."""
    out: dict[str, list[str]] = {}
    emitters = _emitters()
    for path in _python_sources():
        for name, where in _python_events(path, emitters):
            out.setdefault(name, []).append(where)
    for path in _shell_sources():
        text = path.read_text(errors="replace")
        for m in SHELL_EMITTERS.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            name = m.group("event") or m.group("said")
            out.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{line}")
    return out


# --- what docs/events.md lists --------------------------------------------------------


def documented() -> dict[str, int]:
    """Event name -> how many rows of docs/events.md's event tables list it."""
    out: dict[str, int] = {}
    header: list[str] | None = None
    for line in EVENTS_MD.read_text().splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if header[0] != "event" or set(line) <= set("|-: "):
            continue
        m = re.fullmatch(r"`([^`]+)`", cells[0])
        assert m, f"docs/events.md: a row's first cell is not one `event_name`: {line}"
        out[m.group(1)] = out.get(m.group(1), 0) + 1
    return out


def test_the_source_is_read():
    """The scanner finds events of every kind of emitter (so an empty scan cannot pass)."""
    found = emitted()
    for name in ("batch_sent", "send_failed", "reconcile_started", "healthz_failing",
                 "readyz_ok", "program_spawned", "program_output", "program_traceback",
                 "supervisord_log", "ssh_login_failed", "config_error", "container_start",
                 "container_stopping", "library_log", "sshd_missing", "keys_created"):
        assert name in found, f"the scanner no longer sees {name}: fix test_docs.py"


def test_every_event_name_is_snake_case():
    bad = {n: w for n, w in emitted().items() if not EVENT.match(n)}
    assert not bad, f"event names must be snake_case without dots: {bad}"


def test_every_emitted_event_is_documented():
    docs = documented()
    missing = {n: w for n, w in sorted(emitted().items()) if n not in docs}
    assert not missing, (
        "docs/events.md lacks these events (add a row with level, logger, meaning and "
        "fields):\n" + "\n".join(f"  {n}  (emitted at {', '.join(w)})"
                                 for n, w in missing.items()))


def test_every_documented_event_is_emitted():
    found = emitted()
    stale = sorted(n for n in documented() if n not in found)
    assert not stale, ("docs/events.md lists events nothing emits any more (remove or "
                       f"rename their rows): {stale}")


def test_each_event_is_documented_once():
    twice = sorted(n for n, count in documented().items() if count > 1)
    assert not twice, f"docs/events.md lists these events more than once: {twice}"


# --- README ---------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        m = None if in_code else re.match(r"^#{1,6}\s+(.+?)\s*#*$", line)
        if m:
            slug = github_anchor(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def section(markdown: str, title: str) -> str:
    """The body of the section headed ``title``, up to the next heading of its level or
    above (headings inside code blocks do not count)."""
    lines = markdown.splitlines()
    in_code, start, level = False, None, 0
    for i, line in enumerate(lines):
        if line.startswith("```"):
            in_code = not in_code
        m = None if in_code else re.match(r"^(#{1,6})\s+(.+?)\s*$", line)
        if not m:
            continue
        if start is not None and len(m.group(1)) <= level:
            return "\n".join(lines[start:i])
        if start is None and m.group(2) == title:
            start, level = i + 1, len(m.group(1))
    assert start is not None, f"README.md has no section {title!r}"
    return "\n".join(lines[start:])


def test_readme_logs_paragraph_links_the_events_list():
    logs = section(README.read_text(), "Logs")
    assert "(docs/events.md)" in logs, "README's Logs section must link docs/events.md"


def test_readme_module_list_is_the_package():
    """The table under 'The modules' names every module of rrdsync/ once, and no other."""
    table = section(README.read_text(), "The modules")
    listed = re.findall(r"^\| `([\w./]+)` \|", table, re.M)
    package = sorted(
        p.relative_to(PACKAGE).with_suffix("").as_posix()
        for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")
    assert sorted(listed) == package, (
        f"README 'The modules' lists {sorted(set(listed) - set(package))} that do not exist "
        f"and lacks {sorted(set(package) - set(listed))}")
    assert len(listed) == len(set(listed)), "a module is listed twice"


def _links(path: Path) -> Iterator[tuple[str, str]]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
        target = m.group(1)
        if not re.match(r"^[a-z]+:", target):
            yield target, f"{path.relative_to(ROOT)}: ({target})"


def test_relative_links_lead_somewhere():
    """Every relative link of README.md and docs/*.md names a file of the repository, and
    every #anchor a heading of the file it points at."""
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target, where in _links(page):
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                broken.append(f"{where}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
                broken.append(f"{where}: no heading with that anchor")
    assert not broken, "\n".join(broken)


# --- comments ---------------------------------------------------------------------------


def _shipped_text_files() -> Iterator[Path]:
    """Everything that ships or runs, tests excluded (they cite what they test)."""
    for d in ("rrdsync", "image", "entrypoint", "helm", "monitoring", "tools", "demo", "docs"):
        for p in sorted((ROOT / d).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".png", ".tgz"):
                yield p
    for name in ("Dockerfile", "compose.yaml", "run-demo", "run-tests", "pyproject.toml",
                 "README.md", "CHANGELOG.md"):
        yield ROOT / name


def test_no_reference_to_documents_the_repository_does_not_have():
    """Design notes and field notes live outside the repository: nothing shipped may send
    a reader there. A ``*.md`` named anywhere must exist (by name) in the repository."""
    have = {p.name for p in ROOT.rglob("*.md") if ".venv" not in p.parts}
    bad = []
    for path in _shipped_text_files():
        text = path.read_text(errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{n}"
            if re.search(r"FIELD-NOTES|\bDESIGN\b|docs/container\.md", line):
                bad.append(f"{where}: {line.strip()}")
            for name in re.findall(r"([\w.-]+\.md)\b", line):
                if name not in have:
                    bad.append(f"{where}: {name} does not exist")
    assert not bad, "\n".join(bad)


def test_numbered_guarantees_exist_in_the_readme():
    """'guarantee 4' in a comment or test means the README's guarantee 4."""
    readme = README.read_text()
    numbered = set(re.findall(r"^(\d)\. \*\*", section(readme, "What it guarantees"), re.M))
    assert numbered == {"1", "2", "3", "4", "5", "6"}
    cited = []
    for path in [*_shipped_text_files(), *sorted((ROOT / "tests").rglob("*.py"))]:
        for n in re.findall(r"\b[Gg]uarantee (\d+)\b", path.read_text(errors="replace")):
            if n not in numbered:
                cited.append(f"{path.relative_to(ROOT)}: guarantee {n}")
    assert not cited, "\n".join(cited)
