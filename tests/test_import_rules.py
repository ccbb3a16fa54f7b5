"""The planes' import rules (jobs/__init__.py states them), checked on every module's imports, function-level too."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import jobs

ROOT = Path(__file__).resolve().parents[1]
PLANES = ("orchestrator", "jobs", "analysis")
CORE = ("jobs.optim", "jobs.curvature")
CORE_EXCEPTIONS = ("jobs.optim.registry",)  # config names → classes: the config side of the core
NUMERICS = ("torch", "numpy", "scipy")


def modules() -> dict[str, Path]:
    found = {}
    for plane in PLANES:
        for path in (ROOT / plane).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


MODULES = modules()


def imported(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports at run time (in functions too; ``if TYPE_CHECKING:`` blocks aside)."""
    tree = ast.parse(path.read_text())
    checking = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
                for n in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in checking:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES}
    return found


IMPORTS = {name: imported(name, path) for name, path in MODULES.items()}


def ours(module: str) -> str | None:
    """The project module ``module`` names (its longest known prefix), or None for another package."""
    while module and module not in MODULES:
        module = module.rpartition(".")[0]
    return module or None


def test_jobs_imports_neither_orchestrator_nor_analysis():
    bad = {(m, i) for m, deps in IMPORTS.items() if m.startswith("jobs") for i in deps
           if i.split(".")[0] in ("orchestrator", "analysis")}
    assert not bad


def test_analysis_never_imports_orchestrator():
    bad = {(m, i) for m, deps in IMPORTS.items() if m.startswith("analysis") for i in deps
           if i.split(".")[0] == "orchestrator"}
    assert not bad


def test_the_optimizer_core_imports_only_torch_numerics_the_standard_library_and_itself():
    stdlib = sys.stdlib_module_names
    bad = set()
    for module, deps in IMPORTS.items():
        if not module.startswith(CORE) or module in CORE_EXCEPTIONS:
            continue
        for dep in deps:
            top = dep.split(".")[0]
            if top in stdlib or top in NUMERICS or top == "__future__" or dep.startswith(CORE) or dep == "jobs":
                continue
            bad.add((module, dep))
    assert not bad


def test_the_other_planes_use_only_the_interface_of_jobs_that_its_docstring_lists():
    listed = set(re.findall(r"^- ``(jobs[\w.]*)``", jobs.__doc__, flags=re.MULTILINE))
    listed |= set(re.findall(r"and ``(jobs[\w.]*)``:", jobs.__doc__))
    used = {ours(dep) for module, deps in IMPORTS.items() if not module.startswith("jobs") for dep in deps
            if dep.startswith("jobs")}
    assert used - {"jobs"} <= listed, sorted(used - {"jobs"} - listed)
    assert listed <= used, f"listed but unused: {sorted(listed - used)}"


def test_the_import_graph_has_no_cycle():
    graph = {m: {d for d in map(ours, deps) if d and d != m} for m, deps in IMPORTS.items()}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles


def test_the_rules_see_imports_inside_functions():
    """A rule a function-level import could dodge would be no rule."""
    assert "orchestrator.reconcile" in IMPORTS["orchestrator.tune"]  # imported inside after_first_stage
    assert "jobs.spec" in IMPORTS["jobs.run_folder"]  # imported inside read_sweep_runs
