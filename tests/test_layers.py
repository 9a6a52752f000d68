"""The project's layers, checked on its source: an import scan (module level and inside functions) of every module.

focus_common is the ground (it imports nothing of the project), the schema stands on it alone, the tools and
the dataset script on those, the harness on all of them, the metric on nothing; no module imports, directly or
through others, one that imports it back; the pass loop imports no command-line module; no module grows past
650 lines.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 650
# The command lines: argparse and the console scripts' main. Nothing below them may need them.
COMMAND_LINE_MODULES = {"harness.run", "harness.probe", "harness.gradcam", "harness.options", "harness.leaderboard.cli",
                        "harness.leaderboard.__main__", "focus_tools.cli", "focus_tools.__main__"}


def project_modules() -> dict[str, Path]:
    files = [REPO / "focus_dataset.py", *REPO.glob("focus_common/**/*.py"), *REPO.glob("focus_tools/**/*.py"),
             *REPO.glob("harness/**/*.py"), *REPO.glob("metrics/**/*.py")]
    modules = {}
    for path in files:
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = project_modules()


def _known(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """The project modules `module` imports anywhere in its source (a function's imports too)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {_known(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                found.add(_known(f"{base}.{alias.name}") if f"{base}.{alias.name}" in MODULES else _known(base))
    return found - {None, module}


GRAPH = {module: imports_of(module) for module in MODULES}


def reachable(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for imported in GRAPH[todo.pop()] - seen:
            seen.add(imported)
            todo.append(imported)
    return seen


def test_no_module_imports_itself_through_others():
    cycles = sorted(module for module in MODULES if module in reachable(module))
    assert cycles == [], f"modules in import cycles: {cycles}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_longer_than_650_lines(module):
    assert len(MODULES[module].read_text().splitlines()) <= MAX_LINES


def test_the_ground_imports_nothing_of_the_project_and_the_schema_only_the_ground():
    assert all(not GRAPH[m] - {n for n in MODULES if n.startswith("focus_common")} for m in MODULES
               if m.startswith("focus_common"))
    assert GRAPH["focus_tools.schema"] <= {"focus_common.inputs", "focus_common.messages"}


def test_the_metric_stands_alone():
    assert all(imported.startswith("metrics.") for m in MODULES if m.startswith("metrics") for imported in GRAPH[m])


def test_the_tools_never_import_the_harness_and_the_dataset_script_only_what_its_builder_and_loader_need():
    assert not {imported for m in MODULES if m.startswith("focus_tools") for imported in GRAPH[m]
                if imported.startswith(("harness", "focus_dataset"))}
    assert GRAPH["focus_dataset"] - {"focus_common.messages", "focus_common.network", "focus_tools"} == {
        "focus_tools.schema", "focus_tools.release", "focus_tools.parquet"}


def test_the_pass_loop_imports_no_command_line_module():
    assert not reachable("harness.passes") & COMMAND_LINE_MODULES


def test_the_library_layer_imports_no_command_line_module():
    library = ("harness.evaluation", "harness.analysis", "harness.artifacts", "harness.models.preparation",
               "harness.distributed", "harness.scoring", "harness.probe_features", "harness.probe_cells")
    assert {module: sorted(reachable(module) & COMMAND_LINE_MODULES) for module in library} == {
        module: [] for module in library}
