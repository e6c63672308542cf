"""The ``crev`` command: lazy sub-commands, what each one imports, and errors that keep their hint."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import crev_cli
from crev_cli import SUBCOMMANDS, app, load_subcommand

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("evidence", "metaanalysis", "replicate", "torch", "torchattacks", "plotly", "matplotlib", "sqlalchemy", "sqlmodel", "streamlit")

# Runs crev in a fresh interpreter and prints, on stderr's last line, which heavy top-level modules it imported.
PROBE = """
import atexit, json, sys
block = {block!r}
for name in block:
    sys.modules[name] = None  # an import of it fails as if it were not installed
heavy = {heavy!r}
atexit.register(lambda: print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy and sys.modules[m] is not None}})), file=sys.stderr))
import crev_cli
sys.argv = ['crev', *{argv!r}]
crev_cli.main()
"""


def _crev(*argv: str, block: tuple[str, ...] = ()) -> tuple[int, str, str, set[str]]:
    code = PROBE.format(block=list(block), heavy=list(HEAVY), argv=list(argv))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    *err, last = proc.stderr.rstrip("\n").split("\n")
    return proc.returncode, proc.stdout, "\n".join(err), set(json.loads(last))


def test_help_lists_every_engine_with_its_help_and_imports_none_of_them():
    code, out, err, imported = _crev("--help")
    assert code == 0, err
    for name, sub in SUBCOMMANDS.items():
        assert name in out
        assert sub.help.split()[0] in out
    assert "app" in out and "Start the Streamlit app" in out
    assert imported == set(), f"crev --help imported {imported}"


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_declared_help_is_the_engine_apps_own_help(name):
    module = importlib.import_module(SUBCOMMANDS[name].module)
    assert module.app.info.help == SUBCOMMANDS[name].help


def test_meta_run_on_a_csv_imports_neither_the_store_nor_torch_nor_plotting(tmp_path):
    csv = tmp_path / "effects.csv"
    csv.write_text("yi,vi\n0.1,0.01\n0.3,0.02\n-0.1,0.015\n0.2,0.03\n", encoding="utf-8")
    code, out, err, imported = _crev("meta", "run", "--input", str(csv), "--method", "DL")
    assert code == 0, err
    assert "k = 4" in out
    assert imported == {"metaanalysis"}, f"crev meta run --input imported {imported}"


def test_meta_run_reports_a_bad_csv_in_one_line(tmp_path):
    csv = tmp_path / "effects.csv"
    csv.write_text("yi,vi\n0.1,0.01\nabc,0.02\n", encoding="utf-8")
    code, out, err, _ = _crev("meta", "run", "--input", str(csv))
    assert code == 2
    assert err.strip() == f"error: {csv}: column yi is not numeric (row 2: 'abc')"


@pytest.mark.parametrize("text, message", [
    ("yi,vi\n0.1,0.01\n0.2,\n", "column vi must be positive numbers (row 2: empty)"),
    ("yi,vi\n0.1,0.01\n0.2,-0.5\n", "column vi must be positive numbers (row 2: -0.5)"),
    ("yi,vi\n0.1,0.01,5\n0.2,0.02\n", "not a readable CSV file (CSV parse error"),
    ("", "not a readable CSV file (Empty CSV file)"),
    ("yi;vi\n0.1;0.01\n", "missing column(s) yi, vi (have yi;vi)"),
], ids=["empty-cell", "negative-variance", "ragged", "empty-file", "wrong-delimiter"])
def test_meta_run_names_the_row_and_the_reason_and_exits_2(tmp_path, text, message):
    csv = tmp_path / "effects.csv"
    csv.write_text(text, encoding="utf-8")
    res = CliRunner().invoke(app, ["meta", "run", "--input", str(csv)])
    assert res.exit_code == 2
    assert f"error: {csv}: {message}" in res.stderr


def test_replicate_without_torchattacks_prints_the_install_hint_not_no_such_command():
    code, out, err, _ = _crev("replicate", "claims", block=("torchattacks",))
    assert code == 2
    assert "error: crev replicate cannot start: torchattacks is not installed" in err
    assert "pip install --no-deps torchattacks==3.5.1" in err
    assert "No such command" not in err + out


def test_a_missing_third_party_module_names_it_and_says_how_to_install(monkeypatch):
    monkeypatch.setitem(SUBCOMMANDS, "broken", crev_cli.SubCommand("crev_no_such_engine_module", "x"))
    res = CliRunner().invoke(app, ["broken", "--help"])
    assert res.exit_code == 2
    assert "error: crev broken cannot start: No module named 'crev_no_such_engine_module'" in res.output
    assert "make install" in res.output


def test_an_import_error_inside_crev_itself_is_not_hidden(monkeypatch):
    monkeypatch.setitem(SUBCOMMANDS, "broken", crev_cli.SubCommand("metaanalysis.no_such_module", "x"))
    with pytest.raises(ModuleNotFoundError) as info:
        load_subcommand("broken")
    assert info.value.name == "metaanalysis.no_such_module"


def test_unknown_command_is_still_a_usage_error():
    res = CliRunner().invoke(app, ["bogus"])
    assert res.exit_code == 2
    assert "No such command 'bogus'" in res.output


def test_a_mistyped_engine_name_gets_a_suggestion():
    res = CliRunner().invoke(app, ["evidnce", "stats"])
    assert res.exit_code == 2
    assert "No such command 'evidnce'. Did you mean 'evidence'?" in res.output


def test_sub_commands_run_through_the_lazy_group(tmp_path):
    res = CliRunner().invoke(app, ["evidence", "--help"])
    assert res.exit_code == 0 and "init" in res.output and "--install-completion" not in res.output
    res = CliRunner().invoke(app, ["meta", "run", "--help"])
    assert res.exit_code == 0 and "--input" in res.output
