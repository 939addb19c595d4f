"""Loading the DS-owned ``model.py``: the documented hooks and nothing else.

Documented hooks (both optional):

- ``params(defaults: dict) -> dict``: return the LightGBM parameters to train with,
  starting from the provider's defaults merged with ``model.params`` in pipeline.yaml.
- ``transform(df: pandas.DataFrame) -> pandas.DataFrame``: adjust feature values before
  encoding, at training AND at serving (the file is stored next to the model). It must keep
  every declared feature column.

Any other public function is an error, so a typo (``param`` for ``params``) fails fast.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from airflow_ml_provider.exceptions import ContractError

HOOKS = {"params": "params(defaults: dict) -> dict", "transform": "transform(df: pandas.DataFrame) -> pandas.DataFrame"}


class HooksError(ContractError):
    """model.py is broken, offers undocumented functions or has wrong signatures."""


@dataclass(frozen=True)
class ModelHooks:
    """The hooks of a model.py (identity functions where it does not define one)."""

    params: Callable[[dict[str, Any]], dict[str, Any]]
    transform: Callable[[pd.DataFrame], pd.DataFrame]
    source_sha256: str | None = None
    source: str | None = None


DEFAULT_HOOKS = ModelHooks(params=lambda d: d, transform=lambda df: df)


def load_hooks(path: str | Path | None) -> ModelHooks:
    """Import a model.py by path and check it offers only the documented hooks."""
    if path is None:
        return DEFAULT_HOOKS
    p = Path(path)
    try:
        source = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HooksError(f"{p}: model hooks file not found. Fix model.hooks in pipeline.yaml.") from None
    module = _import(p)
    public = {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isfunction(obj) and obj.__module__ == module.__name__ and not name.startswith("_")
    }
    unknown = sorted(set(public) - set(HOOKS))
    if unknown:
        raise HooksError(
            f"{p}: defines {', '.join(unknown)}, which are not documented hooks. Offer only "
            f"{'; '.join(HOOKS.values())}, and prefix helpers with an underscore."
        )
    for name, fn in public.items():
        params = [
            q
            for q in inspect.signature(fn).parameters.values()
            if q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD)
        ]
        if len(params) != 1:
            raise HooksError(f"{p}: {name} must take exactly one argument: {HOOKS[name]}.")
    return ModelHooks(
        params=_checked(public.get("params", DEFAULT_HOOKS.params), dict, p, "params"),
        transform=_keeps_columns(
            _checked(public.get("transform", DEFAULT_HOOKS.transform), pd.DataFrame, p, "transform"), p
        ),
        source_sha256=hashlib.sha256(source.encode()).hexdigest(),
        source=source,
    )


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"airflow_ml_model_hooks_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise HooksError(f"{path}: cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise HooksError(f"{path}: fails to import: {type(err).__name__}: {err}. Fix model.py.") from err
    return module


def _checked(fn: Callable[[Any], Any], kind: type, path: Path, name: str) -> Callable[[Any], Any]:
    """Wrap a hook so a wrong return type is a clear error, not a LightGBM crash later."""

    def wrapper(arg: Any) -> Any:
        try:
            result = fn(arg)
        except Exception as err:
            raise HooksError(f"{path}: {name}() raised {type(err).__name__}: {err}") from err
        if not isinstance(result, kind):
            raise HooksError(f"{path}: {name}() must return a {kind.__name__}, got {type(result).__name__}.")
        return result

    return wrapper


Frames = Callable[[pd.DataFrame], pd.DataFrame]


def _keeps_columns(transform: Frames, path: Path) -> Frames:
    """Wrap ``transform`` so dropping or renaming a column it was given blames transform() and names them."""

    def wrapper(df: pd.DataFrame) -> pd.DataFrame:
        given = list(df.columns)  # read first: transform may edit df in place
        result = transform(df)
        missing = [c for c in given if c not in result.columns]
        if missing:
            added = [c for c in result.columns if c not in given]
            renamed = f"; it returned new column(s) {', '.join(added)} instead" if added else ""
            raise HooksError(
                f"{path}: transform() dropped or renamed column(s) {', '.join(missing)}{renamed}. transform() must "
                "return every column it is given (the declared features, keys and label); add new columns "
                "beside them, or remove a feature from `features:` in pipeline.yaml."
            )
        return result

    return wrapper


_EMPTY_DTYPES = {"STRING": "object", "INT64": "Int64", "FLOAT64": "float64", "BOOL": "boolean", "DATE": "object"}


def check_hooks(path: str | Path | None, columns: dict[str, str]) -> ModelHooks:
    """Import model.py and run transform() on an empty frame of ``columns`` (name -> GoogleSQL type).

    Called before any data is exported, so a broken model.py fails in seconds with its own error.
    """
    hooks = load_hooks(path)
    if path is not None:
        empty = pd.DataFrame({name: pd.Series(dtype=_EMPTY_DTYPES.get(t, "object")) for name, t in columns.items()})
        hooks.transform(empty)
    return hooks
