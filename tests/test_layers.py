"""The layout is the architecture: the learning core imports no I/O and nothing of the
storage or roles layers, and the engine never imports the API (an AST scan of the sources,
and import-linter's contracts from pyproject.toml)."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE_FORBIDDEN = ("redis", "asyncio", "fastapi", "starlette", "uvicorn", "httpx", "socket", "subprocess",
                  "engine.storage", "engine.roles", "api")


def imports_of(path: Path) -> set[str]:
    """Every module a source file imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names.add(base)
    return names


def offending(names: set[str], forbidden: tuple[str, ...]) -> set[str]:
    return {n for n in names for f in forbidden if n == f or n.startswith(f + ".")}


def test_the_core_imports_no_io_and_no_storage_or_roles():
    files = sorted((ROOT / "engine" / "core").glob("*.py"))
    assert len(files) >= 10
    bad = {str(f.relative_to(ROOT)): offending(imports_of(f), CORE_FORBIDDEN) for f in files}
    assert {f: b for f, b in bad.items() if b} == {}


def test_the_engine_never_imports_the_api():
    files = sorted((ROOT / "engine").rglob("*.py"))
    bad = {str(f.relative_to(ROOT)): offending(imports_of(f), ("api",)) for f in files}
    assert {f: b for f, b in bad.items() if b} == {}


def test_the_scan_sees_a_forbidden_import(tmp_path):
    """The check above can fail: a core module importing redis is reported."""
    (tmp_path / "bad.py").write_text("import numpy\nfrom redis.asyncio import Redis\nimport asyncio\n")
    names = {n for n in ast.walk(ast.parse((tmp_path / "bad.py").read_text()))
             for n in ([a.name for a in n.names] if isinstance(n, ast.Import) else
                       [n.module] if isinstance(n, ast.ImportFrom) else [])}
    assert offending(names, CORE_FORBIDDEN) == {"redis.asyncio", "asyncio"}


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.fail("import-linter is a dev dependency: pip install -e '.[dev]'")
    r = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "3 kept, 0 broken" in r.stdout, r.stdout + r.stderr
