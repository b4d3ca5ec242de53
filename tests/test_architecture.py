"""Imports flow one way: ``jobs`` and ``serve`` use ``cluster``; ``cluster`` uses neither;
``jobs`` and ``serve`` never import each other; nothing imports an entrypoint."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENTRYPOINTS = {
    "jobs.pull_model",
    "jobs.finetune",
    "jobs.evaluate",
    "jobs.bench_serve",
    "jobs.cost_report",
    "jobs.tune",
    "jobs.preference",
    "serve.scale",
    "serve.status",
    "cluster.__main__",
}
FORBIDDEN = {"cluster": ("jobs", "serve"), "jobs": ("serve",), "serve": ("jobs",)}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def modules() -> list[tuple[str, Path]]:
    out = []
    for package in FORBIDDEN:
        for path in sorted((REPO / package).rglob("*.py")):
            out.append((package, path))
    return out


def test_imports_flow_one_way():
    bad = []
    for package, path in modules():
        for name in imports(path):
            top = name.split(".")[0]
            if top in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    assert not bad, "\n".join(bad)


def test_nothing_imports_an_entrypoint():
    """Library code never imports an entrypoint (tests may call an entrypoint's main())."""
    bad = []
    for _, path in modules():
        for name in imports(path):
            if name in ENTRYPOINTS:
                bad.append(f"{path.relative_to(REPO)} imports the entrypoint {name}")
    assert not bad, "\n".join(bad)


def test_every_entrypoint_exists_and_documents_how_to_run_it():
    for name in ENTRYPOINTS:
        path = REPO / (name.replace(".", "/") + ".py")
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        command = name.removesuffix(".__main__")
        assert f"python -m {command}" in doc, f"{path} docstring should show how to run it"
