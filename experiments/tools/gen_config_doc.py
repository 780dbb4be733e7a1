"""Write docs/config.md, the config reference, from the config dataclasses' field docstrings.

    python experiments/tools/gen_config_doc.py            # rewrite docs/config.md
    python experiments/tools/gen_config_doc.py --check    # exit 1 if it is stale

The fields' meanings live once, in each layer's config dataclass; this page is generated so
that it cannot drift from them (tests/experiments/test_config_doc.py fails when it is stale).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def render() -> str:
    from rlfarm.experiments.config_docs import render_reference

    return render_reference()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale, write nothing")
    parser.add_argument("--output", default=str(DOC), help="the page (default: docs/config.md)")
    args = parser.parse_args(argv)
    page = render()
    path = Path(args.output)
    if args.check:
        if not path.exists() or path.read_text() != page:
            print(f"{path} is stale: run python experiments/tools/gen_config_doc.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(page)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
