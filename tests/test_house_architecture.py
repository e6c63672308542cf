"""The import rules of ARCHITECTURE.md, read from the source (ast), so a violation fails here.

- ``evidence`` imports none of ``metaanalysis``, ``replicate``, ``ui``, the app or streamlit;
- ``metaanalysis`` and ``replicate`` import ``evidence`` only, never each other, ``ui`` or streamlit;
- only ``app.py`` and ``ui/`` import streamlit; no engine imports the app, ``ui`` or the CLI root;
- no module imports another module's ``_private`` name, or reads one off an imported module
  (a package's own private modules, such as ``replicate._deps``, are its business).
Imports inside functions count as much as those at the top.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("evidence", "metaanalysis", "replicate", "ui")
TOP_MODULES = ("app.py", "crev_cli.py")
PROJECT = {*PACKAGES, "app", "crev_cli"}

# part -> the project parts and third-party top-level modules it must never import
FORBIDDEN = {
    "evidence": {"metaanalysis", "replicate", "ui", "app", "crev_cli", "streamlit"},
    "metaanalysis": {"replicate", "ui", "app", "crev_cli", "streamlit"},
    "replicate": {"metaanalysis", "ui", "app", "crev_cli", "streamlit"},
    "ui": {"app", "crev_cli"},
    "crev_cli": {"streamlit", "ui", "app"},
}


@dataclass(frozen=True)
class Import:
    file: str
    line: int
    module: str  # absolute dotted module
    names: tuple[str, ...]  # names imported from it ("" for `import module`)

    def __str__(self) -> str:
        what = f"from {self.module} import {', '.join(self.names)}" if self.names != ("",) else f"import {self.module}"
        return f"{self.file}:{self.line}: {what}"


def _source_files() -> list[Path]:
    files = [ROOT / m for m in TOP_MODULES]
    for pkg in PACKAGES:
        files += sorted((ROOT / pkg).rglob("*.py"))
    return [f for f in files if f.exists()]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[Import]:
    mod = _module_name(path)
    is_pkg = path.name == "__init__.py"
    package = mod if is_pkg else mod.rpartition(".")[0]
    rel = str(path.relative_to(ROOT))
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=rel)):
        if isinstance(node, ast.Import):
            out += [Import(rel, node.lineno, a.name, ("",)) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            out.append(Import(rel, node.lineno, target, tuple(a.name for a in node.names)))
    return out


def _part(path: Path) -> str:
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


ALL = {f: _imports(f) for f in _source_files()}


def test_the_source_files_were_found():
    parts = {_part(f) for f in ALL}
    assert parts >= {"evidence", "metaanalysis", "replicate", "ui", "app", "crev_cli"}
    assert sum(len(v) for v in ALL.values()) > 100


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_imports_run_one_way(part):
    bad = [str(i) for f, imps in ALL.items() if _part(f) == part for i in imps
           if i.module.split(".")[0] in FORBIDDEN[part] and i.module.split(".")[0] != part]
    assert not bad, f"{part} must not import {sorted(FORBIDDEN[part])}:\n" + "\n".join(bad)


def test_only_the_app_imports_streamlit():
    bad = [str(i) for f, imps in ALL.items() if _part(f) not in ("app", "ui") for i in imps if i.module.split(".")[0] == "streamlit"]
    assert not bad, "\n".join(bad)


def _private_imports(path: Path, imps: list[Import]) -> list[str]:
    """`from m import _x` where m is another module (not the file's own package's private module)."""
    own = _module_name(path)
    bad = []
    for i in imps:
        if i.module.split(".")[0] not in PROJECT:
            continue
        for name in i.names:
            if name.startswith("_") and not name.startswith("__") and i.module != own:
                # importing a private *module* of one's own package (from . import _deps) is allowed
                candidate = ROOT / Path(*i.module.split("."), f"{name}.py")
                same_package = i.module.split(".")[0] == own.split(".")[0]
                if not (candidate.exists() and same_package):
                    bad.append(str(i))
        private_modules = [p for p in i.module.split(".")[1:] if p.startswith("_") and not p.startswith("__")]
        if private_modules and i.module.split(".")[0] != own.split(".")[0]:
            bad.append(f"{i} (a private module of another package)")
    return bad


def _private_attribute_reads(path: Path) -> list[str]:
    """`mod._x` where `mod` was bound by importing a project module (``from ui import state; state._fkey``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = _module_name(path)
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PROJECT and a.name != own:
                    modules.add(a.asname or a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] in PROJECT):
            for a in node.names:
                base = (node.module or "").split(".") + [a.name]
                target = ROOT / Path(*[p for p in base if p])
                if (target.with_suffix(".py").exists() or (target / "__init__.py").exists()) or (node.level and (path.parent / f"{a.name}.py").exists()):
                    modules.add(a.asname or a.name)
    rel = str(path.relative_to(ROOT))
    return [f"{rel}:{n.lineno}: {n.value.id}.{n.attr}" for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in modules
            and n.attr.startswith("_") and not n.attr.startswith("__")]


def test_no_private_name_is_imported_across_modules():
    bad = [b for f, imps in ALL.items() for b in _private_imports(f, imps)]
    assert not bad, "\n".join(bad)


def test_no_private_name_is_read_off_another_module():
    bad = [b for f in ALL for b in _private_attribute_reads(f)]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_violation(tmp_path):
    """The rules above are only as good as the parser: it must catch each kind of violation."""
    probe = ROOT / "evidence" / "_house_probe_not_committed.py"
    assert not probe.exists()
    try:
        probe.write_text("def f():\n    from metaanalysis.models.uni import _private_helper\n    import streamlit as st\n"
                         "    from ..replicate import jobs\n    from ui import state\n    return state._results\n", encoding="utf-8")
        imps = _imports(probe)
        assert {i.module for i in imps} == {"metaanalysis.models.uni", "streamlit", "replicate", "ui"}
        assert _private_imports(probe, imps) == ["evidence/_house_probe_not_committed.py:2: from metaanalysis.models.uni import _private_helper"]
        assert _private_attribute_reads(probe) == ["evidence/_house_probe_not_committed.py:6: state._results"]
    finally:
        probe.unlink()


def _doc_references() -> tuple[list[str], list[str]]:
    """The dotted project names and the repository paths that ARCHITECTURE.md names in `code`."""
    import re

    spans = re.findall(r"`([^`\n]+)`", (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    files = {s for s in spans if re.fullmatch(r"[\w./-]+\.(py|md|R|toml)|[\w.-]+(/[\w.-]*)+", s)}
    names = sorted({s for s in spans if re.fullmatch(r"[A-Za-z_][\w.]*", s) and s.split(".")[0] in PROJECT and "." in s} - files)
    return names, sorted(files)


def _resolve(dotted: str):
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_architecture_md_names_only_what_exists():
    """ARCHITECTURE.md stays true: every module, class, function and path it names is there."""
    names, paths = _doc_references()
    assert len(names) > 30 and len(paths) > 10
    missing = []
    for name in names:
        try:
            _resolve(name)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{name}: {exc}")
    missing += [f"{p}: no such path" for p in paths if not (ROOT / p).exists()]
    assert not missing, "\n".join(missing)
