"""docs/cli.md lists every option of every command with its default, and --help shows the defaults."""

from __future__ import annotations

import re

import pytest

from netsculpt.cli import build_parser, main
from netsculpt.cli.reference import DOC, commands, options, reference


def _sections() -> dict[str, str]:
    text = DOC.read_text()
    parts = re.split(r"^## `netsculpt ([a-z_]+)`$", text, flags=re.M)
    return {parts[i]: parts[i + 1].split("\n## ")[0] for i in range(1, len(parts), 2)}


def test_every_option_of_every_command_is_in_docs_cli_md() -> None:
    """Walks the parsers: an option added to a command without a line in docs/cli.md fails here."""
    sections = _sections()
    missing = []
    for name, command in commands(build_parser()).items():
        section = sections.get(name)
        if section is None:
            missing.append(f"netsculpt {name} (no section)")
            continue
        for action in options(command):
            flag = action.option_strings[-1] if action.option_strings else action.metavar or action.dest
            cell = flag.replace("|", "\\|")  # a table cell escapes |
            if f"`{cell}" not in section:
                missing.append(f"netsculpt {name} {flag}")
    assert not missing, f"not in docs/cli.md: {missing}; run `python -m netsculpt.cli.reference`"


def test_docs_cli_md_is_what_the_parsers_give() -> None:
    """Help texts and defaults too: a changed default must not leave the reference saying the old one."""
    assert DOC.read_text() == reference(build_parser()), "run `python -m netsculpt.cli.reference`"


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("cluster", ["(default: dkm)", "(default: 3)"]),
        ("sparsify", ["(default: 4 4)", "(default: magnitude)"]),
    ],
)
def test_help_shows_the_defaults(capsys, command, shown) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(s in text for s in shown), text
    assert "(default: None)" not in text and "(default: False)" not in text
