"""`python/skedulr/_core.pyi` against the compiled `skedulr._core`: the same public names, the same methods per
class, and the same parameters (names, order, which have defaults). The stub is parsed with `ast`, so this
checks what type checkers read, not what the stub would produce if imported."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

from skedulr import _core

STUB = Path(_core.__file__).with_name("_core.pyi")
TREE = ast.parse(STUB.read_text())
SIMPLE_TYPES = {"int": int, "str": str, "float": float, "bool": bool, "bytes": bytes, "dict": dict, "list": list}
PROTOCOL_DUNDERS = {"__len__", "__contains__", "__iter__", "__getitem__", "__bool__", "__call__", "__enter__"}


def _public(name: str) -> bool:
    return not name.startswith("_")


def _stub_top_level() -> dict[str, ast.AST]:
    """Declarations the stub makes: functions, classes, annotated constants, and plain assignments (aliases)."""
    out: dict[str, ast.AST] = {}
    for node in TREE.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                assert isinstance(target, ast.Name)
                out[target.id] = node
    return out


STUB_NAMES = _stub_top_level()
STUB_RUNTIME_NAMES = {n for n, node in STUB_NAMES.items() if not isinstance(node, ast.Assign)}
STUB_ALIASES = {n for n, node in STUB_NAMES.items() if isinstance(node, ast.Assign) and _public(n)}
STUB_CLASSES = {n: node for n, node in STUB_NAMES.items() if isinstance(node, ast.ClassDef)}
RUNTIME_NAMES = {n for n in dir(_core) if _public(n)}


def _methods(cls_node: ast.ClassDef) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in cls_node.body if isinstance(n, ast.FunctionDef)}


def _decorators(fn: ast.FunctionDef) -> set[str]:
    return {d.id for d in fn.decorator_list if isinstance(d, ast.Name)}


def _stub_params(fn: ast.FunctionDef, *, drop_first: bool) -> list[tuple[str, str, bool]]:
    """[(name, kind, has_default)] with kind one of positional/keyword_only/var_positional/var_keyword."""
    args = fn.args
    positional = [*args.posonlyargs, *args.args]
    defaults = [False] * (len(positional) - len(args.defaults)) + [True] * len(args.defaults)
    out = [(a.arg, "positional", d) for a, d in zip(positional, defaults, strict=True)]
    if drop_first:
        out = out[1:]
    if args.vararg:
        out.append((args.vararg.arg, "var_positional", False))
    out += [(a.arg, "keyword_only", d is not None) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    if args.kwarg:
        out.append((args.kwarg.arg, "var_keyword", False))
    return out


_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: "positional",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional",
    inspect.Parameter.KEYWORD_ONLY: "keyword_only",
    inspect.Parameter.VAR_POSITIONAL: "var_positional",
    inspect.Parameter.VAR_KEYWORD: "var_keyword",
}


def _runtime_params(obj: Any, *, drop_self: bool) -> list[tuple[str, str, bool]]:
    params = list(inspect.signature(obj).parameters.values())
    if drop_self and params and params[0].name == "self":
        params = params[1:]
    return [(p.name, _KINDS[p.kind], p.default is not inspect.Parameter.empty) for p in params]


def test_the_stub_sits_beside_the_module_with_py_typed() -> None:
    assert STUB.is_file()
    assert STUB.with_name("py.typed").is_file()


def test_every_public_runtime_name_is_in_the_stub() -> None:
    assert sorted(RUNTIME_NAMES - STUB_RUNTIME_NAMES) == []


def test_every_name_the_stub_declares_exists_at_runtime() -> None:
    assert sorted(STUB_RUNTIME_NAMES - RUNTIME_NAMES) == []


def test_the_module_all_matches_the_stub() -> None:
    assert set(_core.__all__) == STUB_RUNTIME_NAMES


def test_stub_only_type_aliases_are_private() -> None:
    assert sorted(STUB_ALIASES - RUNTIME_NAMES) == []


def test_stub_aliases_are_type_expressions() -> None:
    # Whatever they are called, the plain assignments in the stub must be aliases, not values.
    for name, node in STUB_NAMES.items():
        if isinstance(node, ast.Assign):
            assert isinstance(node.value, ast.Subscript | ast.BinOp | ast.Name), name


@pytest.mark.parametrize("name", sorted(n for n, node in STUB_NAMES.items() if isinstance(node, ast.AnnAssign)))
def test_constants_have_the_stub_type(name: str) -> None:
    node = STUB_NAMES[name]
    assert isinstance(node, ast.AnnAssign)
    value = getattr(_core, name)
    annotation = node.annotation
    if isinstance(annotation, ast.Subscript):  # e.g. dict[str, str]: check the container and its items
        assert isinstance(annotation.value, ast.Name) and isinstance(annotation.slice, ast.Tuple | ast.Name)
        assert type(value) is SIMPLE_TYPES[annotation.value.id]
        args = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        item_types = [SIMPLE_TYPES[a.id] for a in args if isinstance(a, ast.Name)]
        assert len(item_types) == len(args)
        if isinstance(value, dict):
            assert all(type(k) is item_types[0] and type(v) is item_types[1] for k, v in value.items())
        else:
            assert all(type(v) is item_types[0] for v in value)
    else:
        assert isinstance(annotation, ast.Name)
        assert type(value) is SIMPLE_TYPES[annotation.id]


@pytest.mark.parametrize("name", sorted(n for n, node in STUB_NAMES.items() if isinstance(node, ast.FunctionDef)))
def test_function_signatures_match(name: str) -> None:
    node = STUB_NAMES[name]
    assert isinstance(node, ast.FunctionDef)
    runtime = getattr(_core, name)
    assert callable(runtime) and not inspect.isclass(runtime)
    assert _runtime_params(runtime, drop_self=False) == _stub_params(node, drop_first=False)


@pytest.mark.parametrize("name", sorted(STUB_CLASSES))
def test_class_public_methods_match(name: str) -> None:
    cls = getattr(_core, name)
    assert inspect.isclass(cls)
    stub = {n for n in _methods(STUB_CLASSES[name]) if _public(n)}
    runtime = {n for n in dir(cls) if _public(n)}
    assert sorted(runtime - stub) == [], "in the module, missing from the stub"
    assert sorted(stub - runtime) == [], "in the stub, missing from the module"


@pytest.mark.parametrize("name", sorted(STUB_CLASSES))
def test_class_protocol_methods_match(name: str) -> None:
    cls = getattr(_core, name)
    stub = set(_methods(STUB_CLASSES[name])) & PROTOCOL_DUNDERS
    runtime = set(vars(cls)) & PROTOCOL_DUNDERS
    assert stub == runtime


@pytest.mark.parametrize("name", sorted(STUB_CLASSES))
def test_constructors_match(name: str) -> None:
    cls = getattr(_core, name)
    init = _methods(STUB_CLASSES[name]).get("__init__")
    # A class without a constructor in the stub cannot be built directly (only through static methods).
    assert (init is not None) == ("__new__" in vars(cls))
    if init is not None:
        assert _runtime_params(cls, drop_self=False) == _stub_params(init, drop_first=True)
    else:
        with pytest.raises(TypeError):
            cls()


@pytest.mark.parametrize(
    ("cls_name", "method"),
    sorted(
        (c, m)
        for c, node in STUB_CLASSES.items()
        for m, fn in _methods(node).items()
        if _public(m) and "property" not in _decorators(fn)
    ),
)
def test_method_signatures_match(cls_name: str, method: str) -> None:
    cls = getattr(_core, cls_name)
    fn = _methods(STUB_CLASSES[cls_name])[method]
    static = "staticmethod" in _decorators(fn)
    raw = inspect.getattr_static(cls, method)
    assert isinstance(raw, staticmethod) is static, "staticmethod in one, not in the other"
    assert _runtime_params(getattr(cls, method), drop_self=not static) == _stub_params(fn, drop_first=not static)


@pytest.mark.parametrize(
    ("cls_name", "prop"),
    sorted(
        (c, m) for c, node in STUB_CLASSES.items() for m, fn in _methods(node).items() if "property" in _decorators(fn)
    ),
)
def test_properties_are_data_descriptors(cls_name: str, prop: str) -> None:
    raw = inspect.getattr_static(getattr(_core, cls_name), prop)
    assert inspect.isdatadescriptor(raw)
