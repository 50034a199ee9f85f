"""docs/architecture.md's layer table is true: every module imports only the packages its row lists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "scene_model"
ROW = re.compile(r"^\| `scene_model/(\w+)(?:/|\.py)` \|.*\|\s*([\w, ]*?)\s*\|$")


def claimed_imports() -> dict[str, set[str]]:
    """{layer: the layers it may import} from the table of docs/architecture.md."""
    claims = {}
    for line in (REPO / "docs" / "architecture.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            claims[match.group(1)] = {name.strip() for name in match.group(2).split(",") if name.strip()}
    return claims


def layer_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported_layers(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "scene_model" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_layer_of_the_package_has_a_row():
    layers = {layer_of(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert layers == set(claimed_imports())


def test_no_module_imports_a_layer_its_row_does_not_list():
    claims = claimed_imports()
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = layer_of(path)
        if layer == "__init__":
            continue
        extra = imported_layers(path) - claims[layer] - {layer}
        if extra:
            wrong.append(f"{path.relative_to(REPO)} imports {sorted(extra)}")
    assert not wrong, wrong


def test_the_check_catches_an_arrow_that_runs_back_up(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("from scene_model.runtime.run import train\nimport scene_model.data.types\n")
    assert imported_layers(module) == {"runtime", "data"}
