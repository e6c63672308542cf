"""The bad-input corpus: generated hostile files and databases, tried through the real ``crev`` CLI.

Every bad input must end in a clear error (exit 2, a message naming the file or database and the
reason, no traceback) and change nothing; every valid edge case must be accepted. The figures are
printed: bad inputs tried, clear errors, rows changed, tracebacks, valid inputs accepted.

File inputs run through the CLI's Typer app in this process (the same code as the ``crev``
command, much faster than a process per file); the database faults, which are about what the
command does at start-up, run ``python -m crev_cli`` in real subprocesses.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import sqlalchemy as sa
from typer.testing import CliRunner

from evidence.cli import app
from evidence.rows import RESULT_COLUMNS
from tests.helpers import result_row, write_rows

ROOT = Path(__file__).resolve().parent.parent
SEEDED_STUDY = "sehwag_2020_hydra"
TABLES = ("study", "claim", "result", "submission")
_OWN = itertools.count(1)


@dataclass
class Case:
    """One input: how to make it (in a folder), the CLI arguments, and what its message must say."""

    name: str
    make: Callable[[Path], list[str]]
    expect: tuple[str, ...] = ()  # fragments the error output must contain (case-insensitive)
    valid: bool = False
    rows_added: int = 0  # for valid imports: result rows the submission must hold
    env: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- builders


def _csv(rows: list[dict] | None = None, **over) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        path = write_rows(d / "in.csv", rows if rows is not None else [result_row(**over)])
        return ["import", str(path)]

    return make


def _columns(columns: list[str], **over) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        return ["import", str(write_rows(d / "in.csv", [result_row(**over)], columns=columns))]

    return make


def _raw_csv(text: str | bytes, name: str = "in.csv") -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        path = d / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        return ["import", str(path)]

    return make


def _csv_text(rows: list[dict], sep: str = ",") -> str:
    header = sep.join(RESULT_COLUMNS)
    lines = [header] + [sep.join(_q(r.get(c, "")) for c in RESULT_COLUMNS) for r in rows]
    return "\n".join(lines) + "\n"


def _q(v: str) -> str:
    v = str(v)
    return '"' + v.replace('"', '""') + '"' if any(ch in v for ch in ',"\n') else v


def _study(payload, name: str = "study.json", *, raw: str | bytes | None = None) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        path = d / name
        if raw is not None:
            path.write_bytes(raw if isinstance(raw, bytes) else raw.encode("utf-8"))
        else:
            path.write_text(json.dumps(payload), encoding="utf-8")
        return ["add-study", str(path)]

    return make


def _good_study(**over) -> dict:
    study = {"study_id": "doe_2026_corpus", "title": "A corpus study", "year": 2026, "main_direction": "down"}
    study.update(over)
    return {"study": study, "claims": [{"question_id": "quantization", "direction": "down", "position": "4-bit hurts"}]}


def _with_claims(claims) -> dict:
    payload = _good_study()
    payload["claims"] = claims
    return payload


def _unclosed_quote_rows() -> str:
    # Row 2's notes open a quote that is never closed: a lax reader swallows row 3 into that cell.
    r1, r2, r3 = (result_row(source_location=f"T{i}", robust_acc_compressed=f"4{i}.0") for i in range(3))
    text = _csv_text([r1])
    line2 = _csv_text([r2]).splitlines()[1]
    line2 = line2[: -len(",")] + ',"unclosed note'
    line3 = _csv_text([r3]).splitlines()[1]
    return text + line2 + "\n" + line3 + "\n"


def _duplicated_header() -> str:
    text = _csv_text([result_row()])
    header, row = text.splitlines()
    return header + ",epsilon\n" + row + ",0.5\n"


_RB_ENTRY = {"link": "https://arxiv.org/abs/2002.10509", "name": "HYDRA: Pruning Adversarially Robust Neural Networks",
             "authors": "Sehwag et al.", "dataset": "cifar10", "venue": "NeurIPS 2020", "architecture": "WideResNet-28-10",
             "eps": "8/255", "clean_acc": "88.98", "reported": "62.24", "autoattack_acc": "57.14"}


def _rb(write: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    """A RobustBench model_info folder holding one ``cifar10/Linf/x.json`` made by ``write``."""
    def make(d: Path) -> list[str]:
        folder = d / "model_info" / "cifar10" / "Linf"
        folder.mkdir(parents=True)
        write(folder / "x.json")
        return ["import-robustbench", str(d / "model_info")]

    return make


def _fifo(name: str, command: str) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        os.mkfifo(d / name)  # no writer ever opens it: a blocking read would wait forever
        return [command, str(d / name)]

    return make


BAD_FILES: list[Case] = [
    # --- issue 23: files that hung, exhausted memory or crashed
    Case("study file that is a FIFO", _fifo("study.json", "add-study"), ("study.json", "fifo")),
    Case("csv that is a FIFO", _fifo("in.csv", "import"), ("in.csv", "fifo")),
    Case("BibTeX file that is a FIFO", _fifo("refs.bib", "import-bibtex"), ("refs.bib", "fifo")),
    Case("RobustBench x.json that is a FIFO", _rb(lambda p: os.mkfifo(p)), ("x.json", "fifo")),
    Case("RobustBench x.json linked to /dev/zero", _rb(lambda p: p.symlink_to("/dev/zero")), ("x.json", "character device")),
    Case("RobustBench number of 400 digits", _rb(lambda p: p.write_text(json.dumps(_RB_ENTRY)[:-1] + ', "n": ' + "9" * 400 + "}")), ("x.json", "400 digits")),
    Case("RobustBench JSON 100,000 deep", _rb(lambda p: p.write_text("[" * 100_000 + "]" * 100_000)), ("x.json", "nested too deeply")),
    Case("study JSON 100,000 deep", _study(None, raw="[" * 100_000 + "]" * 100_000), ("study.json", "nested")),
    # issue 23: stored wrongly without a word
    Case("study JSON with title twice", _study(None, raw='{"study": {"study_id": "dup_2026_keys", "title": "A", "title": "B"}}'), ("title", "twice")),
    Case("NUL in a study title", _study(_good_study(title="A\x00B")), ("study.title", "nul")),
    Case("the same claim twice", _study(_with_claims([{"question_id": "quantization", "direction": "down", "position": "4-bit hurts"}] * 2)), ("same claim",)),
    Case("a 10,012-character DOI", _study(_good_study(identifier="10.1/" + "x" * 10_007)), ("identifier", "10,012")),
    Case("epsilon 1e-400 (would be stored as 0)", _csv(epsilon="1e-400"), ("epsilon", "too small")),
    Case("RobustBench accuracy 8_8.98", _rb(lambda p: p.write_text(json.dumps({**_RB_ENTRY, "clean_acc": "8_8.98", "reported": "6_2.24", "autoattack_acc": "5_7.14"}))), ("8_8.98", "separators")),
    Case("RobustBench accuracy as a fraction 0.811", _rb(lambda p: p.write_text(json.dumps({**_RB_ENTRY, "clean_acc": "0.811", "reported": "0.62", "autoattack_acc": "0.57"}))), ("0.811", "fraction")),
    # --- CSV structure
    Case("csv unclosed quote swallows next row", _raw_csv(_unclosed_quote_rows()), ("unclosed quote",)),
    Case("csv unclosed quote at end of file", _raw_csv(_csv_text([result_row()]) + 'x,"open\n'), ("unclosed quote",)),
    Case("csv unclosed quote before a row with quotes", _raw_csv(_unclosed_quote_rows().rstrip("\n") + "\n" + _csv_text([result_row(notes='Table 3, "as printed"', robust_acc_compressed="44.0")]).splitlines()[1] + "\n"), ("in.csv",)),
    Case("csv path is a device (link to /dev/zero)", lambda d: (d / "zero.csv").symlink_to("/dev/zero") or ["import", str(d / "zero.csv")], ("zero.csv", "not a regular file")),
    Case("csv header with a control character", _raw_csv(_csv_text([result_row()]).replace("notes", "notes\x1b[31m", 1)), ("unknown column", "\\x1b")),
    Case("csv duplicated header column", _raw_csv(_duplicated_header()), ("epsilon", "twice")),
    Case("csv text after closing quote", _raw_csv(_csv_text([result_row()]).replace("Table 9 (test)", '"Table" 9')), ("not a valid csv",)),
    Case("csv missing column", _columns([c for c in RESULT_COLUMNS if c != "epsilon"]), ("epsilon", "missing")),
    Case("csv unknown column", _columns([*RESULT_COLUMNS, "colour"], colour="red"), ("colour", "unknown column")),
    Case("csv row with an extra cell", _raw_csv(_csv_text([result_row()]).rstrip("\n") + ",extra\n"), ("more than the header",)),
    Case("csv row with a cell missing", _raw_csv(_csv_text([result_row()]).rstrip("\n").rsplit(",", 1)[0] + "\n"), ("fewer than the header",)),
    Case("csv zero-byte file", _raw_csv(b""), ("empty",)),
    Case("csv header only", _raw_csv(_csv_text([])), ("no rows",)),
    Case("csv blank lines only", _raw_csv("\n\n\n"), ("empty",)),
    Case("csv binary content", _raw_csv(b"\x00\x01\x02PK\x03\x04" * 50), ("binary",)),
    Case("csv latin-1 encoded", _raw_csv(_csv_text([result_row(notes="café")]).encode("latin-1")), ("in.csv", "utf-8")),
    Case("csv utf-16 encoded", _raw_csv(_csv_text([result_row()]).encode("utf-16")), ("in.csv",)),
    Case("csv path is a directory", lambda d: (d / "dir.csv").mkdir() or ["import", str(d / "dir.csv")], ("dir.csv", "directory")),
    Case("csv path does not exist", lambda d: ["import", str(d / "nope.csv")], ("nope.csv", "no such file")),
    Case("csv wrong extension", _raw_csv(_csv_text([result_row()]), name="in.txt"), ("in.txt", "csv")),
    # --- numbers
    Case("epsilon 1e999 (infinity)", _csv(epsilon="1e999"), ("epsilon", "finite")),
    Case("epsilon 1e999/1e999 (NaN)", _csv(epsilon="1e999/1e999"), ("epsilon", "finite")),
    Case("epsilon negative", _csv(epsilon="-0.1"), ("epsilon", "negative")),
    Case("epsilon divides by zero", _csv(epsilon="8/0"), ("epsilon", "zero")),
    Case("epsilon not a number", _csv(epsilon="abc"), ("epsilon",)),
    Case("bits 3,000,000,000", _csv(compression_level="3000000000-bit", compression_method="quantization"), ("compression_level", "64")),
    Case("bits beyond 2^63", _csv(compression_level="99999999999999999999999-bit", compression_method="quantization"), ("compression_level",)),
    Case("bits zero", _csv(compression_level="0-bit", compression_method="quantization"), ("compression_level",)),
    Case("sparsity 1.5", _csv(compression_level="1.5"), ("compression_level", "outside")),
    Case("sparsity 150%", _csv(compression_level="150%"), ("compression_level", "outside")),
    Case("sparsity 1e999%", _csv(compression_level="1e999%"), ("compression_level",)),
    Case("n_test above 2^63", _csv(n_test="99999999999999999999"), ("n_test",)),
    Case("n_test 3e9 (beyond INTEGER)", _csv(n_test="3e9"), ("n_test",)),
    Case("n_test zero", _csv(n_test="0"), ("n_test",)),
    Case("n_test negative", _csv(n_test="-3"), ("n_test",)),
    Case("n_test fraction", _csv(n_test="100.5"), ("n_test",)),
    Case("attack steps 1e30", _csv(attack_steps="1e30"), ("attack_steps",)),
    Case("attack steps beyond 2^63", _csv(attack_steps="99999999999999999999"), ("attack_steps",)),
    Case("attack steps negative", _csv(attack_steps="-5"), ("attack_steps",)),
    Case("accuracy 1e999", _csv(robust_acc_compressed="1e999"), ("robust_acc_compressed",)),
    Case("accuracy nan", _csv(robust_acc_compressed="nan"), ("robust_acc_compressed",)),
    Case("accuracy inf", _csv(clean_acc_dense="inf"), ("clean_acc_dense",)),
    Case("accuracy negative", _csv(clean_acc_dense="-5"), ("clean_acc_dense",)),
    Case("accuracy above 100", _csv(clean_acc_dense="100.5"), ("clean_acc_dense",)),
    Case("accuracy as text", _csv(robust_acc_dense="high"), ("robust_acc_dense",)),
    # --- text and references
    Case("dataset longer than 120 characters", _csv(dataset="C" * 200), ("dataset", "120")),
    Case("cluster longer than 255 characters", _columns([*RESULT_COLUMNS, "cluster"], cluster="k" * 300), ("cluster", "255")),
    Case("submitter name longer than 120 characters", lambda d: ["import", str(write_rows(d / "in.csv", [result_row(robust_acc_compressed="17.5")])), "--by", "n" * 200], ("submitted_by", "120")),
    Case("unknown study id", _csv(study_id="nobody_2099_ghost"), ("study_id", "unknown study")),
    Case("required field empty", _csv(url_or_path=""), ("url_or_path", "required")),
    Case("verbatim_check not yes/no", _csv(verbatim_check="perhaps"), ("verbatim_check",)),
    Case("duplicate rows within the file", _csv([result_row(), result_row()]), ("duplicate",)),
    # issue 23: the same row again after normalisation (NFKC, format characters removed) is a duplicate
    Case("duplicate after normalisation: zero-width space", _csv([result_row(), result_row(dataset="CIFAR-10\u200b")]), ("duplicate",)),
    Case("duplicate after normalisation: fullwidth, soft hyphen", _csv([result_row(), result_row(dataset="\uff23IFAR-10", architecture="VGG\u00ad-16")]), ("duplicate",)),
    Case("duplicate after normalisation: NFD method", _csv([result_row(compression_method="pruning (Hoefler é)"), result_row(compression_method="pruning (Hoefler e\u0301)")]), ("duplicate",)),
    Case("25,000 bad rows (output capped)", _csv([result_row(source_location=f"r{i}", epsilon="1e999") for i in range(25_000)]), ("by column", "epsilon")),
    # --- study files
    Case("study slug with spaces and punctuation", _study(_good_study(study_id="Doe 2026 Bad Slug!")), ("study.study_id", "pattern")),
    Case("study title as a list", _study(_good_study(title=["a", "list"])), ("study.title", "not a list")),
    Case("study title as a table", _study(_good_study(title={"en": "x"})), ("study.title", "not a table")),
    Case("study year as a list", _study(_good_study(year=[2026])), ("study.year",)),
    Case("study year NaN", _study(None, raw='{"study": {"study_id": "doe_2026_nan", "title": "t", "year": NaN}}'), ("study.year", "finite")),
    Case("study year 10^30", _study(_good_study(year=10**30)), ("study.year",)),
    Case("study id longer than 120", _study(_good_study(study_id="a" * 200)), ("study.study_id", "120")),
    Case("study title empty", _study(_good_study(title="")), ("study.title",)),
    Case("study already exists", _study(_good_study(study_id=SEEDED_STUDY)), ("already exists",)),
    Case("claims are numbers", _study(_with_claims([1, 2])), ("claims", "table")),
    Case("claims not a list", _study(_with_claims("all of them")), ("claims", "list")),
    Case("claim attached to another (approved) study", _study(_with_claims([{"study_id": SEEDED_STUDY, "question_id": "quantization", "direction": "up"}])), ("claims.study_id", SEEDED_STUDY)),
    Case("claim attached to a nonexistent study", _study(_with_claims([{"study_id": "ghost_2099_x", "question_id": "quantization", "direction": "up"}])), ("claims.study_id", "ghost_2099_x")),
    Case("claim with a bad compression_family", _study(_with_claims([{"question_id": "quantization", "direction": "up", "compression_family": "origami"}])), ("claims.compression_family",)),
    Case("claim with a bad direction", _study(_with_claims([{"question_id": "quantization", "direction": "sideways"}])), ("claims.direction",)),
    Case("claim question_id longer than 80", _study(_with_claims([{"question_id": "q" * 100, "direction": "up"}])), ("claims.question_id", "80")),
    Case("study file is a JSON list", _study([1, 2, 3]), ("study",)),
    Case("study file without a study table", _study({"claims": []}), ("study",)),
    Case("study table is text", _study({"study": "doe_2026_x"}), ("study",)),
    Case("study JSON nested 100,000 deep", _study(None, raw="[" * 100_000 + "]" * 100_000), ("study.json", "nested")),
    Case("study JSON nested 30 deep", _study(None, raw='{"study": ' + "[" * 30 + "]" * 30 + "}"), ("study.json", "nested")),
    Case("study TOML nested 100,000 deep", _study(None, "study.toml", raw="a = " + "[" * 100_000 + "]" * 100_000 + "\n"), ("study.toml",)),
    Case("study JSON invalid", _study(None, raw='{"study": {"study_id": '), ("study.json", "not valid json")),
    Case("study TOML invalid", _study(None, "study.toml", raw="[study\nstudy_id = "), ("study.toml", "not valid toml")),
    Case("study file latin-1", _study(None, raw='{"study": {"study_id": "doe_2026_l", "title": "caf\xe9"}}'.encode("latin-1")), ("study.json", "utf-8")),
    Case("study file zero bytes", _study(None, raw=b""), ("study.json",)),
    Case("study file binary", _study(None, raw=b"\x00\xff" * 40), ("study.json", "binary")),
    Case("study file is a directory", lambda d: (d / "s.json").mkdir() or ["add-study", str(d / "s.json")], ("s.json", "directory")),
    Case("study file does not exist", lambda d: ["add-study", str(d / "none.json")], ("none.json", "no such file")),
    Case("study file with a .yaml name", _study(_good_study(), "study.yaml"), ("study.yaml", ".json or .toml")),
    # --- review and correction commands
    Case("approve a submission that does not exist", lambda d: ["approve", "999999", "--by", "carol"], ("999999",)),
    Case("approve one's own submission", lambda d: ["approve", "__OWN__", "--by", "alice"], ("cannot approve",)),
    # issue 23 item 4: a look-alike of alice's name is alice (TR39 canonical form), an invisible name is no one
    *(Case(f"approve one's own submission as {label}", lambda d, n=name: ["approve", "__OWN__", "--by", n], ("cannot approve",))
      for label, name in (("ali\\u200bce (zero-width space)", "ali\u200bce"), ("Cyrillic а", "\u0430lice"),
                          ("fullwidth ａｌｉｃｅ", "\uff41\uff4c\uff49\uff43\uff45"), ("ali\\u00adce (soft hyphen)", "ali\u00adce"),
                          ("dotted İ", "al\u0130ce"), ("upper case ALİCE", "AL\u0130CE"))),
    Case("approve as an invisible name", lambda d: ["approve", "__OWN__", "--by", "\u200b"], ("invisible",)),
    Case("reject as an invisible name", lambda d: ["reject", "__OWN__", "--reason", "no", "--by", "\u2060\u00ad"], ("invisible",)),
    Case("import under an invisible name", _csv(), ("invisible",), env={"CREV_USER": "\u200b\u200c"}),
    Case("reject without a reason", lambda d: ["reject", "__OWN__", "--reason", " ", "--by", "carol"], ("reason",)),
    Case("correct an unknown field", lambda d: ["correct", "result", "__UID__", "--set", "colour=red", "--by", "bob"], ("colour",)),
    Case("correct epsilon to 1e999", lambda d: ["correct", "result", "__UID__", "--set", "epsilon=1e999", "--by", "bob"], ("epsilon", "finite")),
    Case("correct bits to 3e9", lambda d: ["correct", "result", "__UID__", "--set", "bits=3000000000", "--by", "bob"], ("64",)),
    Case("correct an entry that does not exist", lambda d: ["correct", "result", "nouid", "--set", "notes=x", "--by", "bob"], ("nouid",)),
    Case("export in an unknown format", lambda d: ["export", "--format", "xml"], ("xml",)),
]


def _valid_csv(name: str, text: str, rows: int, filename: str = "ok.csv", raw: bytes | None = None) -> Case:
    return Case(name, _raw_csv(raw if raw is not None else text, filename), valid=True, rows_added=rows)


def _vrow(i: int, **over) -> dict:
    return result_row(source_location=f"valid {i}", robust_acc_compressed=f"{30 + i}.5", **over)


VALID: list[Case] = [
    _valid_csv("header with spaces after commas", ", ".join(RESULT_COLUMNS) + "\n" + _csv_text([_vrow(1)]).split("\n", 1)[1], 1),
    _valid_csv("csv with a UTF-8 byte-order mark", "", 1, raw=b"\xef\xbb\xbf" + _csv_text([_vrow(2)]).encode()),
    _valid_csv("csv with CRLF line endings", _csv_text([_vrow(3), _vrow(4)]).replace("\n", "\r\n"), 2),
    _valid_csv("quoted notes spanning two lines", _csv_text([_vrow(5, notes="first line\nsecond line")]), 1),
    _valid_csv("quoted notes with commas and quotes", _csv_text([_vrow(6, notes='Table 3, "as printed", p. 7')]), 1),
    _valid_csv("notes starting with = (kept as text)", _csv_text([_vrow(7, notes="=HYPERLINK(\"http://x\")")]), 1),
    _valid_csv("unicode notes", _csv_text([_vrow(8, notes="ε = 8/255 · 東京 · ✓")]), 1),
    _valid_csv("trailing blank lines", _csv_text([_vrow(9)]) + "\n\n", 1),
    _valid_csv("4-bit quantization level", _csv_text([_vrow(10, compression_level="4-bit", compression_method="uniform quantization")]), 1),
    _valid_csv("64-bit level (the limit)", _csv_text([_vrow(11, compression_level="64-bit", compression_method="quantization")]), 1),
    _valid_csv("n_test 2147483647 (the limit)", _csv_text([_vrow(12, n_test="2147483647")]), 1),
    _valid_csv("optional cells empty", _csv_text([_vrow(13, clean_acc_dense="", robust_acc_dense="", n_test="", attack_steps="")]), 1),
    _valid_csv("epsilon zero", _csv_text([_vrow(14, epsilon="0")]), 1),
    _valid_csv("dataset of exactly 120 characters", _csv_text([_vrow(15, dataset="D" * 120)]), 1),
    _valid_csv("descriptive attack steps kept as text", _csv_text([_vrow(16, attack_steps="until convergence")]), 1),
    Case("JSON study with a byte-order mark", _study(None, raw=b"\xef\xbb\xbf" + json.dumps(_good_study(study_id="bom_2026_json")).encode()), valid=True),
    Case("TOML study with a byte-order mark", _study(None, "study.toml", raw=b"\xef\xbb\xbf" + b'[study]\nstudy_id = "bom_2026_toml"\ntitle = "T"\nyear = 2026\n\n[[claims]]\nquestion_id = "transfer"\ndirection = "neutral"\n'), valid=True),
    Case("claim naming its own study", _study({"study": {"study_id": "own_2026_claim", "title": "T"}, "claims": [{"study_id": "own_2026_claim", "question_id": "transfer", "direction": "up"}]}), valid=True),
    Case("study with unicode title and no claims", _study({"study": {"study_id": "uni_2026_title", "title": "Robustheit ≠ Genauigkeit"}}), valid=True),
    Case("approve another's submission", lambda d: ["approve", "__OWN__", "--by", "carol"], valid=True),
    Case("spreadsheet export", lambda d: ["export", "--spreadsheet", "--study", SEEDED_STUDY], valid=True),
]


# --------------------------------------------------------------------------- running


def _counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        out = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
        out["current"] = conn.execute(sa.text("SELECT count(*) FROM result WHERE current")).scalar_one()
    return out


@dataclass
class Outcome:
    exit_code: int
    output: str
    traceback: bool


def _invoke(runner: CliRunner, args: list[str], url: str, env: dict) -> Outcome:
    res = runner.invoke(app, [*args, "--db", url], env={"CREV_USER": "alice", **env})
    crashed = res.exception is not None and not isinstance(res.exception, SystemExit)
    return Outcome(res.exit_code, (res.stdout or "") + (res.stderr or ""), crashed)


def _placeholders(args: list[str], engine, runner, url, d: Path) -> list[str]:
    """``__OWN__``: a pending submission by alice; ``__UID__``: a current result's uid."""
    out = []
    for a in args:
        if a == "__OWN__":
            n = next(_OWN)
            path = write_rows(d / f"own{n}.csv", [result_row(source_location=f"own {n}", robust_acc_compressed=f"{10 + n / 10:.1f}")])
            res = runner.invoke(app, ["import", str(path), "--db", url, "--by", "alice", "--json"])
            assert res.exit_code == 0, res.output
            a = str(json.loads(res.stdout)["submission_id"])
        elif a == "__UID__":
            with engine.connect() as conn:
                a = conn.execute(sa.text(f"SELECT uid FROM result WHERE current AND study_id = '{SEEDED_STUDY}' ORDER BY id LIMIT 1")).scalar_one()
        out.append(a)
    return out


def test_bad_input_corpus_is_refused_cleanly_and_valid_edge_cases_are_accepted(seeded, tmp_path, capsys):
    seeded_url = seeded.url.render_as_string(hide_password=False)
    runner = CliRunner()
    tried = clear = tracebacks = changed = 0
    failures: list[str] = []
    for i, case in enumerate(BAD_FILES):
        d = tmp_path / f"bad{i}"
        d.mkdir()
        args = _placeholders(case.make(d), seeded, runner, seeded_url, d)
        before = _counts(seeded)
        out = _invoke(runner, args, seeded_url, case.env)
        after = _counts(seeded)
        tried += 1
        tracebacks += out.traceback
        if before != after:
            changed += 1
            failures.append(f"{case.name}: rows changed {before} -> {after}")
        text = out.output.lower()
        ok = out.exit_code == 2 and "error:" in text and "traceback" not in text and all(e.lower() in text for e in case.expect)
        if ok:
            clear += 1
        else:
            failures.append(f"{case.name}: exit {out.exit_code}, output {out.output[:400]!r}")
        if case.name.startswith("25,000"):
            lines = out.output.strip().splitlines()
            if len(lines) > 40:
                failures.append(f"{case.name}: {len(lines)} lines of errors (must be capped)")
    accepted = 0
    for i, case in enumerate(VALID):
        d = tmp_path / f"ok{i}"
        d.mkdir()
        args = _placeholders(case.make(d), seeded, runner, seeded_url, d)
        before = _counts(seeded)
        out = _invoke(runner, args, seeded_url, case.env)
        after = _counts(seeded)
        tracebacks += out.traceback
        if out.exit_code == 0 and (args[0] != "import" or after["result"] - before["result"] == case.rows_added):
            accepted += 1
        else:
            failures.append(f"valid {case.name}: exit {out.exit_code}, rows {before} -> {after}, output {out.output[:400]!r}")
    with capsys.disabled():
        print(
            f"\nbad-input corpus ({seeded.dialect.name}): {tried} bad inputs tried, {clear} clear errors, {changed} changed rows, "
            f"{tracebacks} tracebacks; valid inputs accepted: {accepted} of {len(VALID)}"
        )
    assert not failures, "\n".join(failures)
    assert (clear, changed, tracebacks, accepted) == (tried, 0, 0, len(VALID))


# --------------------------------------------------------------------------- damaged databases (real processes)


def _crev(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "CREV_DB"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "crev_cli", "evidence", *args], capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=120)


def _db_cases(tmp_path: Path, seeded_template: Path) -> list[tuple[str, str, str]]:
    zero = tmp_path / "zero.db"
    zero.write_bytes(b"")
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(8192))
    truncated = tmp_path / "truncated.db"
    data = seeded_template.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    header_only = tmp_path / "header.db"
    header_only.write_bytes(data[:100])
    folder = tmp_path / "folder.db"
    folder.mkdir()
    newer = tmp_path / "newer.db"
    newer.write_bytes(data)
    import sqlite3

    con = sqlite3.connect(newer)  # a database a later crev wrote; closed, so nothing is left in its WAL
    con.execute("UPDATE alembic_version SET version_num = '0999'")
    con.commit()
    con.close()
    return [
        ("database from a newer schema", f"sqlite:///{newer}", "newer than this crev knows"),
        ("zero-byte SQLite file", f"sqlite:///{zero}", "0-byte"),
        ("random bytes as SQLite file", f"sqlite:///{junk}", "not an sqlite database"),
        ("truncated SQLite file", f"sqlite:///{truncated}", "damaged"),
        ("SQLite header only", f"sqlite:///{header_only}", "damaged"),
        ("directory as database", str(folder), "directory"),
        ("database in a missing folder", str(tmp_path / "no" / "where.db"), "does not exist"),
        ("unknown URL scheme", "mysql://user@host/crev", "unsupported scheme"),
        ("made-up URL scheme", "evidence+magic://x/y", "evidence+magic"),
        ("unreachable PostgreSQL", "postgresql+psycopg://crev:secret@127.0.0.1:1/crev", "cannot connect"),
    ]


# Run as real ``crev`` processes (start-up is what is tested); the other cases run in-process.
_IN_SUBPROCESS = ("zero-byte SQLite file", "truncated SQLite file", "unknown URL scheme", "database from a newer schema")


def test_damaged_or_unreachable_databases_give_one_line_errors(seeded_template, tmp_path):
    tried = clear = 0
    failures = []
    runner = CliRunner()
    for name, url, expect in _db_cases(tmp_path, seeded_template):
        before = Path(url.removeprefix("sqlite:///")).read_bytes() if url.startswith("sqlite:///") and Path(url.removeprefix("sqlite:///")).is_file() else None
        if name in _IN_SUBPROCESS:
            proc = _crev("stats", "--db", url)
            code, err = proc.returncode, proc.stderr.strip()
        else:
            res = runner.invoke(app, ["stats", "--db", url])
            code, err = res.exit_code, (res.stderr or "").strip()
            if res.exception is not None and not isinstance(res.exception, SystemExit):
                err += f"\nTraceback: {res.exception!r}"
        tried += 1
        after = Path(url.removeprefix("sqlite:///")).read_bytes() if before is not None else None
        if code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and expect.lower() in err.lower() and "Traceback" not in err and before == after and "secret" not in err:
            clear += 1
        else:
            failures.append(f"{name}: exit {code}, stderr {err[:500]!r}")
    print(f"\ndamaged databases: {tried} tried, {clear} one-line errors")
    assert not failures, "\n".join(failures)
    # the zero-byte file stayed zero bytes: it was not made into an empty database
    assert (tmp_path / "zero.db").stat().st_size == 0


def test_spreadsheet_export_escapes_formula_cells_and_plain_export_keeps_them(seeded_url, tmp_path):
    runner = CliRunner()
    path = write_rows(tmp_path / "f.csv", [result_row(notes='=HYPERLINK("http://evil.example","x")', source_location="+1 formula", robust_acc_compressed="11.5")])
    res = runner.invoke(app, ["import", str(path), "--db", seeded_url, "--by", "alice", "--json"])
    sub = json.loads(res.stdout)["submission_id"]
    assert runner.invoke(app, ["approve", str(sub), "--db", seeded_url, "--by", "carol"]).exit_code == 0
    sheet = runner.invoke(app, ["export", "--spreadsheet", "--study", SEEDED_STUDY, "--db", seeded_url]).stdout
    plain = runner.invoke(app, ["export", "--study", SEEDED_STUDY, "--db", seeded_url]).stdout
    assert "'=HYPERLINK" in sheet and "'+1 formula" in sheet
    assert '"=HYPERLINK' in plain and "'=HYPERLINK" not in plain


# --------------------------------------------------------------------------- tampered releases (issue 23)


def _retamper(folder: Path, edit: Callable[[dict, Path], None], *, rehash: bool = True) -> None:
    """Edit a release's datapackage.json (and files) and, like a careful forger, re-record the hashes."""
    import hashlib

    desc_path = folder / "datapackage.json"
    desc = json.loads(desc_path.read_text(encoding="utf-8"))
    edit(desc, folder)
    if rehash and isinstance(desc, dict):
        for res in desc.get("resources") or []:
            target = (folder / res.get("path", "")) if isinstance(res, dict) else None
            if target is not None and target.is_file():
                res["hash"] = "sha256:" + hashlib.sha256(target.read_bytes()).hexdigest()
    desc_path.write_text(json.dumps(desc), encoding="utf-8")


def _drop_cell(desc: dict, folder: Path) -> None:
    path = folder / desc["resources"][2]["path"]
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = lines[1].rstrip("\r\n").rsplit(",", 1)[0] + "\r\n"  # the first data row loses its last cell
    path.write_text("".join(lines), encoding="utf-8")


def _outside(desc: dict, folder: Path) -> None:
    (folder.parent / "hostname").write_text("not a table\n", encoding="utf-8")
    desc["resources"][0]["path"] = "../hostname"


def _to_zero(desc: dict, folder: Path) -> None:
    (folder / "zero.csv").symlink_to("/dev/zero")
    desc["resources"][0]["path"] = "zero.csv"


def _to_fifo(desc: dict, folder: Path) -> None:
    os.mkfifo(folder / "pipe.csv")
    desc["resources"][0]["path"] = "pipe.csv"


RELEASE_CASES: list[tuple[str, Callable[[dict, Path], None], tuple[str, ...]]] = [
    ("resources not a list", lambda desc, f: desc.__setitem__("resources", None), ("resources",)),
    ("resource without a name", lambda desc, f: desc["resources"][0].pop("name"), ("resource 1", "name")),
    ("resource path outside the release (../hostname, hash matching)", _outside, ("outside the release folder",)),
    ("resource linked to /dev/zero", _to_zero, ("outside the release folder",)),  # the link leaves the folder
    ("resource that is a FIFO", _to_fifo, ("fifo",)),
    ("a row with a missing cell (hashes re-recorded, content hash not)", _drop_cell, ("content hash",)),
]


def test_tampered_releases_are_refused_in_one_line_before_anything_is_parsed(seeded, tmp_path, capsys):
    import shutil

    from evidence.releases import write_release

    good = write_release(seeded, "2026.11", tmp_path / "good", curator="ann").path
    runner = CliRunner()
    tried = clear = tracebacks = 0
    failures = []
    for i, (name, edit, expect) in enumerate(RELEASE_CASES):
        folder = tmp_path / f"t{i}" / "release"
        shutil.copytree(good, folder)
        _retamper(folder, edit)
        res = runner.invoke(app, ["diff-release", str(good), str(folder)])
        tried += 1
        crashed = res.exception is not None and not isinstance(res.exception, SystemExit)
        tracebacks += crashed
        err = (res.stderr or "").strip()
        if res.exit_code == 2 and not crashed and err.startswith("error: ") and len(err.splitlines()) == 1 and all(e in err.lower() for e in expect):
            clear += 1
        else:
            failures.append(f"{name}: exit {res.exit_code}, {res.exception!r}, stderr {err[:300]!r}")
    # the whole list in place of the object
    folder = tmp_path / "list" / "release"
    shutil.copytree(good, folder)
    (folder / "datapackage.json").write_text("[1, 2]", encoding="utf-8")
    res = runner.invoke(app, ["diff-release", str(good), str(folder)])
    tried += 1
    if res.exit_code == 2 and "not a crev data package" in (res.stderr or ""):
        clear += 1
    else:
        failures.append(f"datapackage.json a JSON list: exit {res.exit_code}, {res.exception!r}")
    with capsys.disabled():
        print(f"\ntampered releases: {tried} tried, {clear} one-line errors, {tracebacks} tracebacks")
    assert not failures, "\n".join(failures)
