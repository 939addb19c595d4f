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
    skipped = ""
    if dags_folder:
        found = _contracts_in(Path(dags_folder))
        candidates = [p for p in found if not _inside(p, package_root, cwd)]
        if candidates:
            return _one(candidates, f"AIRFLOW__CORE__DAGS_FOLDER={dags_folder}")
        skipped = f": {_why_none(Path(dags_folder), found, package_root)}"
    also = (
        f" and in AIRFLOW__CORE__DAGS_FOLDER={dags_folder}{skipped}"
        if dags_folder
        else " (AIRFLOW__CORE__DAGS_FOLDER is unset)"
    )
    raise ContractError(
        f"no pipeline.yaml found: looked for dags/*/pipeline.yaml in {cwd} and its parents{also}. "
        "Pass --pipeline PATH, run the command from your project, or create one with `airflow-ml init NAME`."
    )


def _why_none(dags: Path, found: list[Path], package_root: Path) -> str:
    """Why the DAGs folder gave no contract: what was there and why each candidate was skipped."""
    if not dags.exists():
        return "that folder does not exist"
    if not dags.is_dir():
        return "that is not a folder"
    if found:  # every one is in the package's checkout
        names = ", ".join(str(p) for p in found)
        return (
            f"skipped {names}: in airflow-ml-provider's own checkout ({package_root.resolve()}), whose reference "
            "contract is used only when the command runs inside that checkout (pass --pipeline to use it anyway)"
        )
    misplaced = sorted(dags.glob("pipeline.yaml")) + sorted(dags.glob("*/*/pipeline.yaml"))
    if misplaced:
        names = ", ".join(str(p) for p in misplaced[:3]) + (", ..." if len(misplaced) > 3 else "")
        return f"skipped {names}: a contract must be exactly one folder down, {dags}/NAME/pipeline.yaml"
    return "it has no NAME/pipeline.yaml"


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
