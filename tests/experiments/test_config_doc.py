"""docs/config.md, the config reference, is generated from the config dataclasses' field
docstrings and fails here when it is stale; `rlfarm config show` prints a resolved config with
each field's meaning."""
from __future__ import annotations

import dataclasses

import yaml

from rlfarm.experiments.cli import main
from rlfarm.experiments.config_docs import field_docs, section_classes

from .conftest import CONFIG_DIR, load_tool

gen_config_doc = load_tool("gen_config_doc")


def test_docs_config_md_matches_the_dataclasses():
    assert gen_config_doc.DOC.read_text() == gen_config_doc.render(), \
        "docs/config.md is stale: run python experiments/tools/gen_config_doc.py"


def test_every_field_of_every_section_has_a_meaning_on_the_page():
    page = gen_config_doc.render()
    for section, cls in section_classes().items():
        docs = field_docs(cls)
        for field in dataclasses.fields(cls):
            if section == "" and field.name in section_classes():
                continue  # the sections themselves
            assert docs[field.name], f"{cls.__name__}.{field.name} has no docstring"
            assert f"| `{field.name}` |" in page


def test_check_fails_on_a_stale_page(tmp_path, capsys):
    page = tmp_path / "config.md"
    page.write_text(gen_config_doc.render().replace("`clip_coef`", "`old_name`"))
    assert gen_config_doc.main(["--check", "--output", str(page)]) == 1
    assert "stale" in capsys.readouterr().err
    assert gen_config_doc.main(["--output", str(page)]) == 0
    assert gen_config_doc.main(["--check", "--output", str(page)]) == 0


def test_config_show_prints_the_resolved_config_with_meanings(capsys):
    assert main(["config", "show", str(CONFIG_DIR / "cartpole_ppo.yaml"), "--set", "farm.runner_slots=8"]) == 0
    out = capsys.readouterr().out
    resolved = yaml.safe_load(out)  # the comments aside, it is the config as it resolves
    written = yaml.safe_load((CONFIG_DIR / "cartpole_ppo.yaml").read_text())
    copies = written["farm"]["num_runners"] * written["env"]["envs_per_runner"]
    assert resolved["farm"]["num_runners"] == 8 and resolved["env"]["envs_per_runner"] == copies // 8
    assert resolved["farm"]["batch_size"] == copies * written["farm"]["fragment_length"]
    assert "  clip_coef: 0.2   # PPO ratio clip range" in out


def test_config_show_names_a_bad_field_in_one_line(capsys):
    assert main(["config", "show", "--set", "algo.lrr=1e-3"]) == 2
    assert capsys.readouterr().err.strip() == "rlfarm config: error: algo.lrr: unknown key; did you mean 'lr'?"
