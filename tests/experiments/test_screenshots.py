"""docs/monitoring.md's TensorBoard screenshots re-taken with headless Chromium (skipped without it)."""
from __future__ import annotations

import pytest

from .conftest import load_tool, only_run_dir

screenshots = load_tool("screenshots")


@pytest.mark.slow
@pytest.mark.skipif(screenshots.chromium() is None,
                    reason="chromium is not installed (Debian: apt-get install chromium)")
def test_screenshots_of_a_cartpole_run(write_config, runs_dir, train, tmp_path):
    assert train(write_config({"stop": {"env_steps": 4096}})) == 0
    only_run_dir(runs_dir)
    paths = screenshots.take(str(runs_dir), str(tmp_path / "shots"), "cartpole")
    assert len(paths) == len(screenshots.PAGES)
    for path in paths:
        with open(path, "rb") as stream:
            data = stream.read()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000  # a page, not a blank
