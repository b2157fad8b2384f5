"""README.md and docs/*.md name only commands, flags and Python names that exist.

A renamed option or function leaves guides that a new user copies and that then fail; this scans every
code block and inline code span for ``netsculpt COMMAND --flag``, ``ns.NAME``, ``from netsculpt.X import
Y`` and dotted ``netsculpt.X.Y`` and lists every mention the code no longer has.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

import netsculpt as ns
from netsculpt.cli import build_parser
from netsculpt.cli.reference import commands, options

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_PYTHON = {"netsculpt.json", "netsculpt.packed", "netsculpt.sha256"}  # file names and header keys
MISSING = object()


def _code(text: str) -> list[str]:
    """Fenced blocks (backslash continuations joined) and inline code spans, in order."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    spans = re.findall(r"`([^`\n]+(?:\n[^`\n]+){0,3})`", prose)  # a span may wrap over a few lines
    return [re.sub(r"\\\n\s*", " ", b) for b in blocks] + [" ".join(s.split()) for s in spans]


def _flags() -> dict[str, set[str]]:
    parser = build_parser()
    shared = {s for a in parser._actions for s in a.option_strings}
    own = {
        name: {s for a in options(command) for s in a.option_strings}
        for name, command in commands(parser).items()
    }
    return {name: shared | flags for name, flags in own.items()}


def _resolve(dotted: str) -> object:
    """The object ``netsculpt.a.b.c`` names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            obj = getattr(obj, part, MISSING)
            if obj is MISSING:
                return MISSING
        return obj
    return MISSING


def _stale_in(code: str, flags: dict[str, set[str]]) -> list[str]:
    stale = []
    for line in code.splitlines():
        # a command line: `netsculpt` first on the line or after bin/, -m, &&, $ (not "import netsculpt as")
        for cmd, rest in re.findall(r"(?:^\s*|bin/|-m |&& |\$ )netsculpt ([a-z][a-z_]*)\b([^\n]*)", line):
            if cmd not in flags:
                stale.append(f"netsculpt {cmd} (no such command)")
                continue
            rest = re.split(r"\||;|&&|\bnetsculpt\b", rest)[0]  # the next command's flags are its own
            used = re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest)
            stale += [f"netsculpt {cmd} {flag}" for flag in used if flag not in flags[cmd]]
    for chain in re.findall(r"(?<![\w.])ns\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)", code):
        obj: object = ns
        for part in chain.split("."):
            obj = getattr(obj, part, MISSING)
            if obj is MISSING:
                stale.append(f"ns.{chain}")
                break
            if not isinstance(obj, ModuleType):
                break  # a method of a returned object is not netsculpt's namespace
    for module, names in re.findall(r"\bfrom (netsculpt[\w.]*) import \(?([\w ,\n]+)\)?", code):
        for name in filter(None, (n.split(" as ")[0].strip() for n in names.split("\n")[0].split(","))):
            if _resolve(f"{module}.{name}") is MISSING:
                stale.append(f"from {module} import {name}")
    for dotted in re.findall(r"(?<![\w./-])(netsculpt(?:\.[A-Za-z_]\w*)+)", code):
        if dotted not in NOT_PYTHON and _resolve(dotted) is MISSING:
            stale.append(dotted)
    return stale


def test_docs_name_only_commands_flags_and_python_names_that_exist() -> None:
    flags = _flags()
    stale = sorted(
        {
            f"{doc.relative_to(ROOT)}: {mention}"
            for doc in DOCS
            if doc.name != "cli.md"  # generated from the parsers and checked by tests/cli/test_reference.py
            for code in _code(doc.read_text())
            for mention in _stale_in(code, flags)
        }
    )
    assert not stale, "stale mentions in the docs (fix the docs or the code):\n  " + "\n  ".join(stale)


def test_the_scan_sees_stale_mentions() -> None:
    """The scanner itself: each kind of stale mention is caught, and real ones pass."""
    code = (
        "bin/netsculpt prune lenet5 --ratio 0.5 --no-such-flag   # --out runs/x\n"
        "netsculpt frobnicate lenet5\n"
        "from netsculpt.weights import DKMConfig, NoSuchConfig\n"
        "small = ns.prune(model, x); ns.no_such_fn(model); ns.importance.no_such\n"
        "netsculpt.measure.NoSuchModel, netsculpt.measure.LatencyModel\n"
    )
    assert sorted(_stale_in(code, _flags())) == [
        "from netsculpt.weights import NoSuchConfig",
        "netsculpt frobnicate (no such command)",
        "netsculpt prune --no-such-flag",
        "netsculpt.measure.NoSuchModel",
        "ns.importance.no_such",
        "ns.no_such_fn",
    ]
