"""The package reads straight down: every module imports only from its own layer or the layers below
(README, "Architecture"), and no modules import each other in a circle. Imports inside functions
count; imports under ``if TYPE_CHECKING:`` do not, as they never run."""

import ast
from pathlib import Path

import rlff_esc

PACKAGE = Path(rlff_esc.__file__).parent

# Bottom to top; a module belongs to the layer of its longest matching prefix.
LAYERS = [
    ("foundation", ["rlff_esc.errors", "rlff_esc.jsonl", "rlff_esc.stats", "rlff_esc.seeds", "rlff_esc.ladder_replies",
                    "rlff_esc.data.schema", "rlff_esc.data.esconv", "rlff_esc.data.extes",
                    "rlff_esc.data.splits", "rlff_esc.data.contexts", "rlff_esc.data"]),
    ("llm", ["rlff_esc.llm"]),
    ("run", ["rlff_esc.config", "rlff_esc.processes", "rlff_esc.stages", "rlff_esc.manifest", "rlff_esc.data.prepare"]),
    ("models", ["rlff_esc.agents", "rlff_esc.safety", "rlff_esc.reward_model", "rlff_esc.policy.reasoning",
                "rlff_esc.evaluate.planner"]),
    ("stages", ["rlff_esc.simulate", "rlff_esc.policy", "rlff_esc.evaluate", "rlff_esc.serve",
                "rlff_esc.agents.validity", "rlff_esc.agents.seeker_training", "rlff_esc.agents.seeker_comparison"]),
    ("entry", ["rlff_esc.pipeline", "rlff_esc.commands", "rlff_esc.cli", "rlff_esc.__main__", "rlff_esc"]),
]


def layer_of(module: str) -> int:
    best = max(((len(prefix), rank) for rank, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
                if module == prefix or module.startswith(prefix + ".")), default=None)
    assert best is not None, f"{module} is in no layer: add it to LAYERS and to the README"
    return best[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skipped


def imports_of(path: Path) -> set[str]:
    """The package's modules that ``path`` imports, wherever the import statement is."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_only(tree)
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "rlff_esc"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "rlff_esc":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if is_module(f"{node.module}.{a.name}")}
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
            for module, targets in sorted(graph.items()) for target in sorted(targets)
            if layer_of(target) > layer_of(module)]


def circles_in(graph: dict[str, set[str]]) -> list[list[str]]:
    circles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                circles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return circles


def test_every_module_has_a_layer_and_no_import_runs_back_up():
    graph = import_graph()
    assert len(graph) > 50  # the walk found the package
    assert upward_imports(graph) == []


def test_no_import_circle():
    assert circles_in(import_graph()) == []


def test_the_checks_catch_an_upward_import_and_a_circle(tmp_path):
    """A function-level import counts and a TYPE_CHECKING one does not; the circle that existed between
    the planner and the systems, and an llm module reading the config, are both caught."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from rlff_esc.evaluate.systems import build_system\n"
                      "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rlff_esc.cli import main\n")
    assert imports_of(source) == {"rlff_esc.evaluate.systems"}
    old = {"rlff_esc.evaluate.planner": {"rlff_esc.evaluate.systems"},
           "rlff_esc.evaluate.systems": {"rlff_esc.evaluate.planner"}}
    assert circles_in(old) == [["rlff_esc.evaluate.planner", "rlff_esc.evaluate.systems", "rlff_esc.evaluate.planner"]]
    assert upward_imports(old) == ["rlff_esc.evaluate.planner (models) imports rlff_esc.evaluate.systems (stages)"]
    assert upward_imports({"rlff_esc.llm.registry": {"rlff_esc.config"}}) == [
        "rlff_esc.llm.registry (llm) imports rlff_esc.config (run)"]
