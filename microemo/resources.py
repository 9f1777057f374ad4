"""Files that ship inside the package (the demo's configs and data, accelerate configs, sample clips, templates),
found the same way in a repository checkout (editable install) and in an installed wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_folder(package: str) -> Path:
    """The folder of an installed (sub-)package, e.g. ``microemo.training`` or ``microemo.samples`` (the sample
    clips; a data-only package without ``__init__.py``)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{package}: not installed with this microemo (reinstall it: pip install microemo)")
    return Path(next(iter(spec.submodule_search_locations)))


def training_file(*parts: str) -> Path:
    """A file under ``training/`` (``sft.py``, ``configs/...``, ``accelerate/...``)."""
    return package_folder("microemo.training").joinpath(*parts)


def sample_clips() -> Path:
    """The folder of the sample clips and their subtitles (``tests/assets`` in the repository)."""
    return package_folder("microemo.samples")
