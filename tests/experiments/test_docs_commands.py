"""Every `rlfarm COMMAND --flag` that the README and docs/ cite is a flag that command takes:
a user who copies one never meets "unrecognized arguments"."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from rlfarm.experiments.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
CITED = re.compile(r"(?:^|`|\$ )(rlfarm [a-z][^`\n]*)", re.M)


def _subparser(parser: argparse.ArgumentParser, words: list[str]) -> argparse.ArgumentParser:
    """The deepest subparser that `words` name (rlfarm envs check ..., rlfarm jobs logs ...)."""
    for word in words:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions or word not in actions[0].choices:
            break
        parser = actions[0].choices[word]
    return parser


def _citations(doc: Path) -> list[str]:
    """The `rlfarm COMMAND ...` lines of `doc` whose COMMAND exists (not prose such as "rlfarm is")."""
    commands = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)][0].choices
    return [m.group(1).strip() for m in CITED.finditer(doc.read_text()) if m.group(1).split()[1] in commands]


def test_the_docs_cite_commands_with_flags():
    assert sum("--" in line for doc in DOCS for line in _citations(doc)) > 20


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_cited_flag_exists(doc):
    wrong = []
    for line in _citations(doc):
        words = line.split()
        parser = _subparser(build_parser(), [w for w in words[1:] if not w.startswith("-")][:2])
        known = {option for action in parser._actions for option in action.option_strings}
        for flag in (w.split("=")[0].rstrip(",.;:)") for w in words if w.startswith("--")):
            if re.fullmatch(r"--[a-z][a-z0-9-]*", flag) and flag not in known:
                wrong.append(f"`{line}` cites {flag}, which `{' '.join(words[:2])}` does not take")
    assert not wrong, "\n".join(wrong)
