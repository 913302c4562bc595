"""The layout rules of ``app/``, checked by reading every module's imports with ``ast``.

Every ``import`` counts: at module level, inside functions and under ``TYPE_CHECKING``. A
cycle is a cycle even when Python happens to tolerate it at run time, because it means two
modules cannot be read, tested or replaced one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
#: Modules allowed directly in ``app/locations/`` (not counting ``__init__.py``): the
#: interface and its records, names, options, spec parsing, the registry of kinds and one
#: spare. Everything a single kind needs lives in that kind's package.
MAX_LOCATION_MODULES = 7


def _module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(APP.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``app`` modules ``name`` imports: ``from pkg import sub`` counts as ``pkg.sub``."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_checker_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles_in_app() -> None:
    assert _cycles(_graph()) == []


def test_locations_know_nothing_about_watching() -> None:
    offenders = {
        f"{name} -> {dep}"
        for name, deps in _graph().items()
        if name.startswith("app.locations")
        for dep in deps
        if dep == "app.watch" or dep.startswith("app.watch.")
    }
    assert offenders == set()


def test_backends_do_not_import_their_package() -> None:
    """A module inside a package never imports that package (or a parent) by its ``__init__``.

    The top package ``app`` only holds the version, which anything may read.
    """
    offenders = {
        f"{name} -> {dep}"
        for name, deps in _graph().items()
        for dep in deps
        if dep != "app" and name.startswith(f"{dep}.") and _modules()[dep].name == "__init__.py"
    }
    assert offenders == set()


def _kind_words() -> set[str]:
    from app.locations.registry import KINDS

    return {word for kind in KINDS for word in (kind.name, *kind.prefixes, *kind.url_schemes)}


def test_only_app_locations_names_a_kind() -> None:
    """Outside ``app/locations/`` a kind is known only through the registry.

    A string constant equal to a kind's name or prefix (``"zip"``, ``"ftps"``) or starting
    with ``"kind:"`` (``"folder:/x"``) means some module tests for a kind by itself.
    """
    words = _kind_words()
    prefixes = tuple(f"{word}:" for word in words)
    offenders = set()
    for name, path in _modules().items():
        if name.startswith("app.locations"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if text in words or text.startswith(prefixes):
                    offenders.add(f"{name}:{node.lineno}: {text!r}")
    assert sorted(offenders) == []


def test_locations_folder_holds_only_shared_modules() -> None:
    direct = sorted(p.name for p in (APP / "locations").glob("*.py") if p.name != "__init__.py")
    assert len(direct) <= MAX_LOCATION_MODULES, direct
