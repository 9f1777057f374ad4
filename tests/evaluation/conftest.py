"""Fixtures of the evaluation tests: a dummy API key and a private judge cache."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def judge_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A dummy key in the environment and a private cache file; returns the cache path."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return tmp_path / "judge-cache.sqlite"
