"""The public API: `skedulr.__all__` names exist, import, and are documented."""

from __future__ import annotations

import importlib
import inspect
import types
from typing import Any

import pytest

import skedulr
from skedulr import errors

PUBLIC = sorted(skedulr.__all__)
# Classes whose methods users call. (MemoryStorage's methods are the Storage protocol, called by the scheduler.)
USER_FACING_CLASSES = ["Scheduler", "Task", "TaskInfo", "TaskStatus", "JobContext", "Middleware"]


def _own_docstring(obj: Any) -> str | None:
    """The object's own docstring: not inherited, and not the signature line `dataclass` generates."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    if not doc or not doc.strip():
        return None
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return None
    return doc


def test_all_is_sorted_and_unique() -> None:
    assert len(set(skedulr.__all__)) == len(skedulr.__all__)
    assert list(skedulr.__all__) == sorted(skedulr.__all__)


@pytest.mark.parametrize("name", PUBLIC)
def test_name_exists_and_imports(name: str) -> None:
    assert hasattr(skedulr, name)
    module = importlib.import_module("skedulr")
    namespace: dict[str, Any] = {}
    exec(f"from skedulr import {name}", namespace)  # the form users write
    assert namespace[name] is getattr(module, name)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, Any] = {}
    exec("from skedulr import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(skedulr.__all__)


@pytest.mark.parametrize("name", [n for n in PUBLIC if n != "__version__"])
def test_public_object_has_a_docstring(name: str) -> None:
    assert _own_docstring(getattr(skedulr, name)) is not None


@pytest.mark.parametrize(
    ("cls_name", "method"),
    [
        (c, m)
        for c in USER_FACING_CLASSES
        for m, v in sorted(vars(getattr(skedulr, c)).items())
        if not m.startswith("_") and (inspect.isfunction(v) or isinstance(v, property | staticmethod | classmethod))
    ],
)
def test_public_method_has_a_docstring(cls_name: str, method: str) -> None:
    value = vars(getattr(skedulr, cls_name))[method]
    target = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
    assert (target.__doc__ or "").strip()


def test_version_is_a_version_string() -> None:
    assert isinstance(skedulr.__version__, str)
    parts = skedulr.__version__.split(".")
    assert len(parts) >= 2 and all(p.isdigit() for p in parts[:2])


def test_errors_module_is_exported_and_complete() -> None:
    assert skedulr.errors is errors
    assert isinstance(errors, types.ModuleType)
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert _own_docstring(cls) is not None, name


def test_public_modules_declare_all_and_their_names_exist() -> None:
    for module_name in ("skedulr.errors", "skedulr.retry", "skedulr.scheduler", "skedulr.storage", "skedulr.task"):
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None)
        if names is None:
            continue  # not every module needs one; the package's __all__ is the contract
        for name in names:
            assert hasattr(module, name), f"{module_name}.{name}"


@pytest.mark.parametrize("name", [n for n in PUBLIC if inspect.isclass(getattr(skedulr, n))])
def test_exported_classes_live_in_public_modules(name: str) -> None:
    module = getattr(skedulr, name).__module__
    assert module.startswith("skedulr")
    # A class defined in a private module is fine if re-exported, but its __module__ must not leak `_core`.
    assert not module.startswith("skedulr._core")
