"""docs/design.md's module table says which of our modules each module may import; this keeps it
true. A module missing from the table, or importing one it does not list, fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DESIGN = (ROOT / "docs" / "design.md").read_text()
ROW = re.compile(r"^\| `([\w/.]+)` \| ([^|]*) \|", re.MULTILINE)


def allowed() -> dict[str, set[str]]:
    section = DESIGN.split("### Modules and their imports", 1)[1].split("\n## ", 1)[0]
    return {name: set(re.findall(r"`([\w.]+)`", imports)) for name, imports in ROW.findall(section)}


def package_modules() -> dict[str, Path]:
    """Every module of the draftline package, by dotted name below it (`store.sqlite`)."""
    files = [*ROOT.glob("*.py"), *ROOT.glob("store/*.py")]
    modules = {}
    for path in files:
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name != "__main__":
            modules[name] = path
    return modules


def our_imports(name: str, path: Path) -> set[str]:
    """The modules of ours that `name` imports (relative imports, resolved)."""
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = [*base, *(node.module.split(".") if node.module else [])]
            if node.module:
                found.add(".".join(target))
            else:  # from . import llm, views
                found.update(".".join([*target, alias.name]) for alias in node.names)
    modules = package_modules()
    # `from . import StorageError` names something in the package, not a module of it
    return {m if m in modules else m.rpartition(".")[0] for m in found if m}


def test_every_module_is_in_the_design_docs_table():
    assert sorted(package_modules()) == sorted(allowed())


@pytest.mark.parametrize("name", sorted(package_modules()))
def test_modules_import_only_what_the_design_doc_allows(name):
    imports = our_imports(name, package_modules()[name])
    assert imports <= allowed().get(name, set()), f"{name} imports {imports - allowed()[name]}"
