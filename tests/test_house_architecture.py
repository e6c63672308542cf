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


# ---------------------------------------------------------------------------------------------- registries

@dataclass(frozen=True)
class Family:
    """A plugin family: the enum its keys are spelled with in code (if any), the words a variable holding
    one of its keys is named with, and each key's own module (where the member is defined)."""

    name: str
    enum: str | None
    variable_words: tuple[str, ...]  # a string literal counts only when compared with such a variable
    own: dict[str, str]  # key -> repository path of the module that defines its member


def _path_of(obj) -> str:
    import inspect

    return str(Path(inspect.getsourcefile(obj)).resolve().relative_to(ROOT))


def _families() -> list[Family]:
    from metaanalysis.models import TAU2_ESTIMATORS
    from replicate.attacks import ATTACKS
    from replicate.checks import CHECKS
    from replicate.compress import COMPRESSORS

    return [
        Family("compressor", "CompressorKind", ("kind",), {k.value: _path_of(c) for k, c in COMPRESSORS.items()}),
        Family("attack", "AttackName", ("name", "attack"), {k.value: _path_of(type(m)) for k, m in ATTACKS.items()}),
        Family("rigour check", None, ("",), {c.name: _path_of(type(c)) for c in CHECKS}),
        Family("tau2 estimator", None, ("method", "estimator"), {k: _path_of(f) for k, f in TAU2_ESTIMATORS.items()}),
    ]


# (file, function) -> why a comparison with a registry key there is not a dispatch the registry should do
DISPATCH_ALLOWED = {
    ("replicate/jobs/cells.py", "_check_attacks"): "builds the rigour checks' attack set: the checks compare PGD with FGSM, "
                                                   "transfer and Square by name (Carlini et al. 2019 §5)",
    ("metaanalysis/models/multilevel.py", "rma_mv"): "rma.mv has its own two likelihoods (ML, REML), not the rma.uni estimators",
    ("metaanalysis/models/results.py", "summary"): "prints the title metafor prints for a common-effect fit (FE/EE)",
}


def _literals(node: ast.AST):
    """(enum or None, key) for each string constant or ``Enum.member`` in ``node`` (and in its tuple/list/set)."""
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        for e in node.elts:
            yield from _literals(e)
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield None, node.value
    elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        yield node.value.id, node.attr


def _compared(node: ast.Compare) -> list[tuple[ast.AST, ast.AST]]:
    """(variable side, literal side) pairs of a comparison: ``x == k``, ``k != x``, ``x is K.k``, ``x in (k1, k2)``
    (never ``"k" in text``: a substring test on text is not a dispatch)."""
    out = []
    left = node.left
    for op, right in zip(node.ops, node.comparators):
        if isinstance(op, (ast.Eq, ast.NotEq, ast.Is, ast.IsNot)):
            out += [(left, right), (right, left)]
        elif isinstance(op, (ast.In, ast.NotIn)):
            out.append((left, right))
        left = right
    return out


def registry_dispatches(path: Path, families: list[Family]) -> list[str]:
    """Comparisons of a kind/name variable with a registry key outside the key's own module: an
    if-chain beside the registry. ``match``/``case`` on a key counts too."""
    rel = str(path.relative_to(ROOT))
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
    bad = []

    def visit(node, func: str):
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            pairs = []
            if isinstance(child, ast.Compare):
                pairs = _compared(child)
            elif isinstance(child, ast.Match):
                pairs = [(child.subject, c.pattern.value) for c in child.cases if isinstance(c.pattern, ast.MatchValue)]
            for var, lit in pairs:
                if list(_literals(var)) and not isinstance(var, ast.Attribute):
                    continue  # both sides literal
                var_text = ast.unparse(var).lower()
                for enum, key in _literals(lit):
                    for fam in families:
                        string_hit = enum is None and any(w in var_text for w in fam.variable_words)
                        if key in fam.own and (string_hit or enum == fam.enum) and fam.own[key] != rel and (rel, name) not in DISPATCH_ALLOWED:
                            shown = f"{enum}.{key}" if enum else repr(key)
                            bad.append(f"{rel}:{child.lineno}: {ast.unparse(var)} compared with {fam.name} {shown} in {name}() "
                                       f"(only {fam.own[key]} may; elsewhere ask the registry's member)")
            visit(child, name)

    visit(tree, "<module>")
    return bad


def test_each_registry_is_the_only_dispatch_of_its_family():
    families = _families()
    assert all(len(f.own) >= 4 for f in families)
    bad = [b for f in ALL for b in registry_dispatches(f, families)]
    assert not bad, "\n".join(bad)


def test_the_dispatch_checker_sees_a_planted_if_chain():
    probe = ROOT / "replicate" / "jobs" / "_house_dispatch_probe_not_committed.py"
    assert not probe.exists()
    try:
        probe.write_text(
            "from ..attacks import AttackName\n"
            "def f(c, spec, method, text, outcome):\n"
            "    if c.kind == 'prune':\n        return 1\n"
            "    if spec.name in (AttackName.fgsm, AttackName.pgd):\n        return 2\n"
            "    if method != 'REML':\n        return 3\n"
            "    if 'pgd' in text or outcome.name == 'iterative_beats_single_step':\n        return 4\n"
            "    match c.kind:\n        case 'hydra':\n            return 5\n"
            "    return spec.threat_model == 'transfer'\n", encoding="utf-8")
        found = registry_dispatches(probe, _families())
        lines = sorted(int(b.split(":")[1]) for b in found)
        assert lines == [3, 5, 5, 7, 9, 11], "\n".join(found)  # not the substring test on text, nor the threat model
        assert "c.kind compared with compressor 'prune' in f() (only replicate/compress/prune.py may" in found[0]
    finally:
        probe.unlink()


WHERE_A_NEW = {  # ARCHITECTURE.md's "Where a new ... goes": each plugin kind, and what its entry must name
    "Compressor": ("replicate/compress/", "replicate.compress.register_compressor"),
    "Attack": ("replicate/attacks/standard.py", "replicate.attacks.register_attack"),
    "Rigour check": ("replicate/checks/attack_strength.py", "replicate.checks.register_check"),
    "Data set": ("replicate/train/datasets.py", "replicate.train.register_dataset"),
    "Estimator": ("metaanalysis/models/uni.py", "metaanalysis.models.TAU2_ESTIMATORS"),
    "Bias method": ("metaanalysis/bias/", "metaanalysis.bias.bias_report"),
    "Importer": ("evidence/importers/", "evidence.importers.IMPORTERS"),
    "Page": ("ui/state.py", "app.py"),
}


def test_architecture_md_says_where_each_new_plugin_goes():
    import re

    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Where a new ... goes", 1)[1].split("\n## ", 1)[0]
    entries = dict(re.findall(r"^- \*\*([^*]+)\*\*[^:]*:(.*?)(?=^- \*\*|\Z)", section, flags=re.S | re.M))
    missing = [k for k in WHERE_A_NEW if k not in entries]
    assert not missing, f"ARCHITECTURE.md does not say where a new {', '.join(missing)} goes"
    for kind, names in WHERE_A_NEW.items():
        for name in names:
            assert f"`{name}`" in entries[kind], f"the entry for a new {kind} does not name `{name}`"


def _readme_layout() -> dict[str, set[str]]:
    """README.md's Layout block: folder -> the names listed for it (continuation lines included)."""
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    layout: dict[str, set[str]] = {}
    folder = None
    for line in block.splitlines():
        head = re.match(r"^([\w./]+/)\s{2,}(.*)$", line)
        if head and head.group(1).split("/")[0] in PACKAGES:
            folder, rest = head.group(1), head.group(2)
        elif folder and line.startswith(" "):
            rest = line
        else:
            folder = None
            continue
        layout.setdefault(folder, set()).update(w.strip().split(" ")[0] for w in re.split(r"[,;:]", rest) if w.strip())
    return layout


def test_readme_layout_lists_every_module_and_only_what_exists():
    layout = _readme_layout()
    packages = sorted({str(p.parent.relative_to(ROOT)) + "/" for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py")
                       if "migrations" not in p.parts and "data" not in p.parts})
    missing_folders = [p for p in packages if p not in layout]
    assert not missing_folders, f"README.md's Layout block has no line for {', '.join(missing_folders)}"
    problems = []
    for folder, names in layout.items():
        modules = {p.stem for p in (ROOT / folder).glob("*.py") if p.stem != "__init__"}
        problems += [f"{folder}{m}.py is not in README.md's Layout block" for m in sorted(modules - names)]
        for name in sorted(names):
            if name.endswith("/"):
                if not (ROOT / folder / name).is_dir():
                    problems.append(f"README.md's Layout names {folder}{name}, which does not exist")
            elif name.isidentifier() and name not in modules and name not in {"the", "pages"}:
                problems.append(f"README.md's Layout names {folder}{name}.py, which does not exist")
    assert not problems, "\n".join(problems)
