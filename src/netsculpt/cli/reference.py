"""docs/cli.md, written from the argparse parsers themselves, so the reference cannot fall behind them.

``python -m netsculpt.cli.reference`` rewrites docs/cli.md; ``tests/cli/test_reference.py`` fails when
a command's option is missing from it or the file differs from what the parsers give. Options that many
commands share with the same meaning (the model, data and global options) are listed once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from netsculpt.cli.common import shown_default

DOC = Path(__file__).resolve().parents[3] / "docs" / "cli.md"
SHARED_BY = 3  # an option with one help and default in this many commands is listed once, as shared
HEADER = """# Command-line reference

Every `netsculpt` command and every option it takes, with its default, generated from the parsers
(`python -m netsculpt.cli.reference` rewrites this file; `tests/cli/test_reference.py` fails when it
falls behind them). `netsculpt COMMAND --help` prints the same, defaults included. The guides say what
the commands are for: [pipeline](pipeline.md) (`compress`), [engine](engine.md) (`prune`),
[search](search.md), [training](training.md) (`train`, `distill`), [weights](weights.md) (`cluster`,
`quantize`), [sparsity](sparsity.md), [adder](adder.md), [depth](depth.md) (`fold`, `triage`),
[gpp](gpp.md) (`grow`), [explain](explain.md), [report](report.md), [measure](measure.md) (`analyze`,
`bench`).

A default of "—" means the option is unset unless given; its description says what is used then (the
training preset's value, the model's own, ...).
"""


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def options(command: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """The command's arguments as a user gives them (``--help`` left out)."""
    return (a for a in command._actions if not isinstance(a, argparse._HelpAction))


def name_of(action: argparse.Action) -> str:
    """``--round-to N`` / ``-o, --out OUT`` / ``model``: the option as its help line starts."""
    if not action.option_strings:
        return action.metavar or action.dest
    takes = action.nargs != 0
    metavar = action.metavar or (
        "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper()
    )
    shown = " ".join(metavar) if isinstance(metavar, tuple) else metavar
    return ", ".join(action.option_strings) + (f" {shown}" if takes else "")


def describe(action: argparse.Action) -> str:
    text = (action.help or "") % {**vars(action), "prog": ""} if action.help else ""
    return _cell(" ".join(text.split()))


def _key(action: argparse.Action) -> tuple[str, str, str | None]:
    return name_of(action), describe(action), shown_default(action)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a table cell, code spans included (GitHub splits on any bare |)


def _row(action: argparse.Action) -> str:
    return f"| `{_cell(name_of(action))}` | {_cell(shown_default(action) or '—')} | {describe(action)} |"


def reference(parser: argparse.ArgumentParser) -> str:
    """The whole of docs/cli.md for ``parser`` (netsculpt's: :func:`netsculpt.cli.build_parser`)."""
    cmds = commands(parser)
    takers: dict[tuple, list[str]] = {}
    for name, command in cmds.items():
        for action in options(command):
            takers.setdefault(_key(action), []).append(name)
    shared = {key for key, names in takers.items() if len(names) >= SHARED_BY}
    lines = [HEADER]
    for name, command in cmds.items():
        about = " ".join((command.description or _help_of(parser, name)).split())
        lines += [f"## `netsculpt {name}`", "", about]
        own = [a for a in options(command) if _key(a) not in shared]
        lines += ["", "| option | default | what |", "| --- | --- | --- |", *map(_row, own)]
        common = [f"`{_key(a)[0].split(' ')[0]}`" for a in options(command) if _key(a) in shared]
        if common:
            lines += ["", f"Shared options it takes (listed below): {', '.join(common)}."]
        lines.append("")
    lines += ["## Shared options", "", "| option | default | what | commands |", "| --- | --- | --- | --- |"]
    for key, names in takers.items():
        if key in shared:
            option, what, default = key
            lines.append(f"| `{_cell(option)}` | {_cell(default or '—')} | {what} | {', '.join(names)} |")
    return "\n".join(lines) + "\n"


def _help_of(parser: argparse.ArgumentParser, name: str) -> str:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return next((c.help or "" for c in sub._choices_actions if c.dest == name), "")


def main() -> None:
    """Rewrite docs/cli.md (``--check``: exit 1 when it is out of date instead)."""
    from netsculpt.cli import build_parser

    text = reference(build_parser())
    if "--check" in sys.argv[1:]:
        raise SystemExit(0 if DOC.read_text() == text else 1)
    DOC.write_text(text)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
