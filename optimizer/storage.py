"""Where studies live: the default SQLite file under studies/, or any URL Optuna accepts.

The default is ``sqlite:///studies/<study-name>.db`` relative to the working directory, so
running the same command again finds the same study. Opening storage is the first thing that
writes anything, and it happens only after the space file has been validated.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import RDBStorage

from runners.errors import ServingOptimizerError

STUDIES_DIR = Path("studies")


class StudyError(ServingOptimizerError):
    """A study that cannot be opened, created or resumed."""


def default_storage_url(study_name: str, studies_dir: Path = STUDIES_DIR) -> str:
    return f"sqlite:///{studies_dir / f'{study_name}.db'}"


def open_storage(url: str) -> RDBStorage:
    """Open (creating if needed) the RDB storage at `url`; `StudyError` when it cannot be used."""
    if "://" not in url:
        raise StudyError(
            f"--storage {url!r} is not a database URL; use e.g. sqlite:///studies/x.db or "
            "postgresql://user:password@host/db"
        )
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        return RDBStorage(url)
    except Exception as exc:  # sqlalchemy raises many types; the user needs the message
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(f"cannot open storage {url!r}: {first_line}") from None


def load_or_create(
    storage: RDBStorage, study_name: str, sampler: optuna.samplers.BaseSampler
) -> optuna.Study:
    """Load the study if it exists (resume), otherwise create it with our two directions."""
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            sampler=sampler,
            directions=["maximize", "minimize"],
            load_if_exists=True,
        )
    except ValueError as exc:
        raise StudyError(f"study {study_name!r} cannot be used: {exc}") from None
    if [d.name for d in study.directions] != ["MAXIMIZE", "MINIMIZE"]:
        raise StudyError(
            f"study {study_name!r} already exists in this storage with directions "
            f"{[d.name.lower() for d in study.directions]}; use another --study-name"
        )
    return study
