"""Which pipeline.yaml a command means when ``--pipeline`` is not given: the current project's, never the package's."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from airflow_ml_provider.exceptions import ContractError

#: The package's own source checkout (an editable install) holds a reference contract a
#: user's command must never pick up by accident.
PACKAGE_ROOT = Path(__file__).resolve().parents[3]


def _contracts_in(dags: Path) -> list[Path]:
    return sorted(dags.glob("*/pipeline.yaml")) if dags.is_dir() else []


def find_pipeline(cwd: Path, env: Mapping[str, str], *, package_root: Path = PACKAGE_ROOT) -> tuple[Path, str]:
    """The nearest ``dags/*/pipeline.yaml`` from ``cwd`` up, else under ``AIRFLOW__CORE__DAGS_FOLDER``.

    Returns (path, how it was found). Several contracts in the nearest folder is an error
    naming them; so is none at all. The package's own checkout counts only when ``cwd`` is in it.
    """
    cwd = cwd.resolve()
    for folder in [cwd, *cwd.parents]:
        if (folder / "pipeline.yaml").is_file() and folder.parent.name == "dags":
            return folder / "pipeline.yaml", f"the current folder {folder}"
        candidates = _contracts_in(folder / "dags") or (_contracts_in(folder) if folder.name == "dags" else [])
        if candidates:
            return _one(candidates, f"{candidates[0].parent.parent} (nearest dags/ folder from {cwd})")
    dags_folder = env.get("AIRFLOW__CORE__DAGS_FOLDER")
    if dags_folder:
        candidates = [p for p in _contracts_in(Path(dags_folder)) if not _inside(p, package_root, cwd)]
        if candidates:
            return _one(candidates, f"AIRFLOW__CORE__DAGS_FOLDER={dags_folder}")
    also = (
        f" and in AIRFLOW__CORE__DAGS_FOLDER={dags_folder}" if dags_folder else " (AIRFLOW__CORE__DAGS_FOLDER is unset)"
    )
    raise ContractError(
        f"no pipeline.yaml found: looked for dags/*/pipeline.yaml in {cwd} and its parents{also}. "
        "Pass --pipeline PATH, run the command from your project, or create one with `airflow-ml init NAME`."
    )


def _inside(path: Path, root: Path, cwd: Path) -> bool:
    """``path`` is in the package's checkout while the user works elsewhere."""
    root = root.resolve()
    return path.resolve().is_relative_to(root) and not cwd.is_relative_to(root)


def _one(candidates: list[Path], where: str) -> tuple[Path, str]:
    if len(candidates) > 1:
        names = ", ".join(str(p) for p in candidates)
        raise ContractError(
            f"{len(candidates)} pipelines found in {where}: {names}. Pass --pipeline with the one you mean."
        )
    return candidates[0], where
