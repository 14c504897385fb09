"""The README's engine table is generated from the catalogue and must be current."""

from __future__ import annotations

from runners.engines import ADAPTERS
from runners.engines.table import BEGIN, END, README, markdown, render_readme


def test_readme_engine_table_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text
    assert render_readme(text) == text, "stale: run python -m runners.engines.table"


def test_table_lists_every_engine_and_setting() -> None:
    table = markdown()
    for name, adapter in ADAPTERS.items():
        assert f"**{name}**" in table
        for info in adapter.catalogue():
            assert f"| `{info.name}` |" in table
    assert "| `swap-space` | flag `--swap-space` | float | 4.0 |" in table
    assert "env var `VLLM_ATTENTION_BACKEND`" in table
    assert "config key `BackendConfig.ScheduleConfig.maxBatchSize`" in table
