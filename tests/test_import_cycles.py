"""No import cycles in f0mesh/: imports inside functions count too, since hiding a cycle there only
postpones it to the first call."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "f0mesh"


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(target: str, modules: set[str]) -> str | None:
    """The f0mesh module an import names, or the package holding the name imported from it."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def import_graph(root: Path = PACKAGE) -> nx.DiGraph:
    """Module -> modules it imports, anywhere in its body (module level, functions, TYPE_CHECKING
    blocks excluded: those never run)."""
    files = {_module_name(path, root): path for path in root.rglob("*.py")}
    modules = set(files)
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(_without_type_checking(tree)):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
            for target in targets:
                found = _resolve(target, modules)
                if found and found != name and not name.startswith(f"{found}."):
                    graph.add_edge(name, found)
    return graph


def _without_type_checking(tree: ast.Module) -> ast.Module:
    class Strip(ast.NodeTransformer):
        def visit_If(self, node: ast.If) -> ast.AST | None:
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            return None if name == "TYPE_CHECKING" else self.generic_visit(node)

    return Strip().visit(tree)


def test_f0mesh_has_no_import_cycle() -> None:
    cycles = sorted(" -> ".join([*c, c[0]]) for c in nx.simple_cycles(import_graph()))
    assert not cycles, "import cycles:\n" + "\n".join(cycles[:20])


def test_the_check_sees_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    package = tmp_path / "f0mesh"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from f0mesh.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from f0mesh import a\n    return a\n")
    hints = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from f0mesh import a\n"
    (package / "c.py").write_text(hints)
    graph = import_graph(package)
    assert list(nx.simple_cycles(graph)) and graph.has_edge("f0mesh.b", "f0mesh.a")
    assert not graph.has_edge("f0mesh.c", "f0mesh.a")
