"""docs/metrics.md is generated from experiments/report/tags.py's TAGS and fails here when it is stale."""
from __future__ import annotations

from rlfarm.experiments.report.monitor import TAGS, TEXT_TAGS

from .conftest import load_tool

gen_metrics_doc = load_tool("gen_metrics_doc")


def test_docs_metrics_md_matches_the_tags_in_the_code():
    assert gen_metrics_doc.DOC.read_text() == gen_metrics_doc.render(), \
        "docs/metrics.md is stale: run python experiments/tools/gen_metrics_doc.py"


def test_every_tag_is_on_the_page_with_its_meaning():
    page = gen_metrics_doc.render()
    for tag, meaning in {**TAGS, **TEXT_TAGS}.items():
        assert f"| `{tag}` | {meaning.replace('|', chr(92) + '|')} |" in page


def test_check_fails_on_a_stale_page_and_passes_once_rewritten(tmp_path, capsys):
    page = tmp_path / "metrics.md"
    page.write_text(gen_metrics_doc.render().replace("`losses/value`", "`losses/old_name`"))
    assert gen_metrics_doc.main(["--check", "--output", str(page)]) == 1
    assert "stale" in capsys.readouterr().err
    assert gen_metrics_doc.main(["--output", str(page)]) == 0
    assert gen_metrics_doc.main(["--check", "--output", str(page)]) == 0
