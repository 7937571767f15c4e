"""The shape docs/ARCHITECTURE.md describes: no import cycle among the app's modules,
layers that only import downwards, a workflow free of Flask's request and of views,
and every reaction subscribed by workflow/wiring.py alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from app import create_app
from workflow import events, wiring

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("workflow", "models", "views", "integrations")
TOP_MODULES = ("app", "config", "extensions")
# The workflow's layers, lowest first: a module may import its own layer and below.
WORKFLOW_LAYERS = (
    ("workflow", "workflow.errors", "workflow.times", "workflow.access_log",
     "workflow.events"),
    ("workflow.accounts",),
    ("workflow.referrals",),
    ("workflow.paging",),
    ("workflow.imaging",),
    ("workflow.audit",),
    ("workflow.wiring", "workflow.scheduler", "workflow.seed", "workflow.readiness",
     "workflow.demo_history"),
)


def app_modules() -> dict[str, Path]:
    """Module name -> file, for every module of the app's packages and top modules."""
    found = {name: ROOT / f"{name}.py" for name in TOP_MODULES}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The app modules ``name`` imports anywhere in its file, functions included."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in known else base)
    return {t for t in targets if t in known and t != name}


def import_graph(modules: dict[str, Path] | None = None) -> dict[str, set[str]]:
    modules = modules or app_modules()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str) -> int | None:
    for rank, layer in enumerate(WORKFLOW_LAYERS):
        if any(module == m or module.startswith(m + ".") and m != "workflow"
               for m in layer):
            return rank
    return None


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def later():\n    from c import x\n")
    (tmp_path / "c.py").write_text("from a import y\n")
    (tmp_path / "d.py").write_text("import a\n")
    modules = {name: tmp_path / f"{name}.py" for name in "abcd"}
    assert cycles(import_graph(modules)) == [["a", "b", "c"]]


def test_the_apps_modules_import_each_other_without_a_cycle():
    graph = import_graph()
    assert len(graph) > 80 and graph["workflow.paging.sweep"]
    assert cycles(graph) == []


def test_no_workflow_module_imports_upward():
    upward = []
    for module, targets in import_graph().items():
        here = layer_of(module)
        if here is None:
            continue
        for target in targets:
            there = layer_of(target)
            if there is not None and there > here:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_every_workflow_module_has_a_layer():
    assert [m for m in app_modules() if m.startswith("workflow") and layer_of(m) is None] == []


def test_models_and_integrations_know_nothing_of_workflow_or_views():
    above = ("workflow", "views", "app")
    found = [f"{m} -> {t}" for m, targets in import_graph().items()
             if m.startswith(("models", "integrations")) for t in targets
             if t.startswith(above)]
    assert found == []


def test_workflow_never_touches_the_request_or_the_views():
    found = []
    for name, path in app_modules().items():
        if not name.startswith("workflow"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "flask" and \
                    any(a.name == "request" for a in node.names):
                found.append(f"{name}: from flask import request")
            if isinstance(node, ast.Attribute) and node.attr == "request" and \
                    isinstance(node.value, ast.Name) and node.value.id == "flask":
                found.append(f"{name}: flask.request")
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) \
                    else [a.name for a in node.names]
                found += [f"{name}: imports {n}" for n in names if n.split(".")[0] == "views"]
    assert found == []


def test_making_the_app_subscribes_exactly_what_wiring_lists(tmp_path):
    events.replace(())
    create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/app.sqlite3",
                "SECRET_KEY": "x" * 40})
    assert events.subscriptions() == wiring.SUBSCRIPTIONS
    create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/app.sqlite3",
                "SECRET_KEY": "x" * 40})
    assert events.subscriptions() == wiring.SUBSCRIPTIONS  # a second app adds nothing


def test_importing_every_module_subscribes_nothing():
    modules = sorted(m for m in app_modules() if m not in ("app", "workflow.wiring"))
    script = (f"import importlib\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
              "from workflow import events\nprint(len(events.subscriptions()))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


def test_only_wiring_subscribes():
    found = []
    for name, path in app_modules().items():
        if name in ("workflow.wiring", "workflow.events"):
            continue
        text = path.read_text(encoding="utf-8")
        if "events.replace(" in text or "Subscription(" in text:
            found.append(name)
    assert found == []
