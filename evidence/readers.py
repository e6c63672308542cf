"""Strict readers for the files a user gives: the results CSV and the study file (JSON or TOML).

A reader either returns exactly what the file holds or raises :class:`~evidence.errors.ValidationFailed`
naming the file and the reason; it never guesses. The CSV reader uses a strict dialect (RFC 4180
quoting, Python's ``csv`` with ``strict=True``) and accounts for every physical line, so an unclosed
quote cannot swallow the next row into a cell unnoticed; it refuses duplicated header columns and
rows whose cell count differs from the header's. The study reader accepts a UTF-8 byte-order mark
(as written by Windows editors), refuses nesting deeper than any study file needs, and checks that
every field holds a scalar of the right kind (a title given as a list is refused, not turned into
the text ``"['a', 'list']"``) and that every claim belongs to the study in the file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tomllib
from pathlib import Path
from typing import IO

from .errors import Problem, ValidationFailed
from .identity import normal_text
from .files import MAX_FILE_BYTES, MAX_SMALL_FILE_BYTES, FileRefused, read_regular_file
from .rows import OPTIONAL_COLUMNS, RESULT_COLUMNS

__all__ = ["read_text_file", "read_results_csv", "parse_results_csv", "read_study_file", "check_study_payload", "MAX_NESTING", "MAX_IDENTIFIER_LENGTH"]

MAX_NESTING = 20  # a study file is two levels deep; anything far deeper is not a study file


class _Strict(csv.Dialect):
    delimiter = ","
    quotechar = '"'
    doublequote = True
    skipinitialspace = True  # "a, b" is a common hand-written header; the spaces are not part of the name
    lineterminator = "\n"
    quoting = csv.QUOTE_MINIMAL
    strict = True


def _fail(name: str, reason: str, row: int | None = None, column: str | None = None) -> ValidationFailed:
    return ValidationFailed([Problem(name, row, column, reason)])


def read_text_file(path: str | Path, *, kind: str, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of ``path`` (a byte-order mark is dropped); every failure names the file.

    Read by :func:`evidence.files.read_regular_file`: a FIFO, device or socket is refused without
    blocking, and a file over ``limit`` bytes is refused after ``limit + 1`` bytes.
    """
    name = str(path)
    try:
        data = read_regular_file(path, limit=limit, what=f"{kind} file")
    except FileRefused as exc:
        raise _fail(name, str(exc).removeprefix(f"{name}: ")) from None
    return decode_text(data, name, kind=kind)


def decode_text(data: bytes, name: str, *, kind: str) -> str:
    """Decode UTF-8 (with or without a byte-order mark); refuse binary content, naming the byte."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _fail(name, f"not a {kind} file (UTF-16 text; save it as UTF-8)")
    if b"\x00" in data[:65536]:
        raise _fail(name, f"not a {kind} file (binary content)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _fail(name, f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}); save the file as UTF-8") from None


# --------------------------------------------------------------------------- results CSV


def read_results_csv(source: str | Path | IO[str] | bytes, *, name: str | None = None) -> tuple[str, list[dict]]:
    """Read a results CSV (a path, bytes of an upload, or a text stream) into one dict per data row."""
    if isinstance(source, (str, Path)):
        name = name or str(source)
        if Path(source).suffix.lower() != ".csv" and not Path(source).is_dir():
            raise _fail(name, "not a CSV file (the name must end in .csv)")
        text = read_text_file(source, kind="CSV")
    elif isinstance(source, (bytes, bytearray)):
        name = name or "upload.csv"
        text = decode_text(bytes(source), name, kind="CSV")
    else:
        name = name or getattr(source, "name", "input.csv")
        text = source.read()
        if isinstance(text, bytes):
            text = decode_text(text, name, kind="CSV")
        elif text.startswith("\ufeff"):
            text = text[1:]
    return name, parse_results_csv(text, name)


def parse_results_csv(text: str, name: str) -> list[dict]:
    """Parse CSV text strictly; each row maps the (stripped) header names to the row's cells.

    Every physical line is accounted for: a line is the header, a data row, a blank line, or the
    continuation of a quoted cell. A quoted cell that spans lines and whose continuation holds as many
    commas as a whole row is refused as an unclosed quote (it would otherwise swallow the next row).
    """
    if "\x00" in text:
        raise _fail(name, "not a CSV file (binary content)")
    reader = csv.reader(io.StringIO(text, newline=""), dialect=_Strict)
    records: list[tuple[int, int, list[str]]] = []  # (first line, last line, cells)
    start = 1
    try:
        for cells in reader:
            records.append((start, reader.line_num, cells))
            start = reader.line_num + 1
    except csv.Error as exc:
        reason = str(exc)
        if "unexpected end of data" in reason or "EOF" in reason:
            reason = f"unclosed quote: the quoted cell starting on line {start} never ends"
        elif "expected after" in reason:
            reason += f" (a quote opened in the row starting on line {start} may not be closed)"
        raise _fail(name, f"not a valid CSV file at line {reader.line_num}: {reason}") from None
    records = [r for r in records if any(c.strip() for c in r[2])]
    if not records:
        raise _fail(name, "the file is empty (no header row)")
    _, _, header_cells = records[0]
    header = [h.strip() for h in header_cells]
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    header = [h if h.isprintable() else repr(h) for h in header]  # no control characters echoed to a terminal
    for pos, h in enumerate(header, start=1):
        if h in seen:
            problems.append(Problem(name, 0, h, f"column appears twice (positions {seen[h]} and {pos}); keep one"))
        seen.setdefault(h, pos)
    missing = [c for c in RESULT_COLUMNS if c not in seen]
    extra = [c for c in seen if c not in RESULT_COLUMNS and c not in OPTIONAL_COLUMNS]
    problems += [Problem(name, 0, c, "required column is missing") for c in missing]
    problems += [Problem(name, 0, c or "(empty)", "unknown column (see `crev evidence template`)") for c in extra]
    if problems:
        raise ValidationFailed(problems)
    width = len(header)
    rows: list[dict] = []
    for i, (first, last, cells) in enumerate(records[1:], start=1):
        if len(cells) != width:
            more = "more" if len(cells) > width else "fewer"
            problems.append(Problem(name, i, None, f"row has {len(cells)} cells, {more} than the header's {width} columns (line {first})"))
            continue
        if last > first:
            for col, cell in zip(header, cells):
                tail = cell.split("\n", 1)[1] if "\n" in cell else ""
                if tail and any(line.count(",") >= width - 1 for line in tail.splitlines()):
                    problems.append(Problem(
                        name, i, col,
                        f"cell spans lines {first}-{last} and holds what looks like another row: an unclosed quote?",
                    ))
                    break
        rows.append(dict(zip(header, cells)))
    if problems:
        raise ValidationFailed(problems)
    return rows


# --------------------------------------------------------------------------- study files


def _depth(value, limit: int, level: int = 0) -> int:
    if level > limit:
        return level
    if isinstance(value, dict):
        return max([_depth(v, limit, level + 1) for v in value.values()] or [level + 1])
    if isinstance(value, list):
        return max([_depth(v, limit, level + 1) for v in value] or [level + 1])
    return level


MAX_IDENTIFIER_LENGTH = 2048  # a DOI, arXiv id or URL; 10,000 characters is not one


class _RepeatedKey(ValueError):
    pass


def _no_repeated_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object, refusing a key given twice (``json`` would silently keep the last; TOML refuses it too)."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _RepeatedKey(key)
        out[key] = value
    return out


def read_study_file(path: str | Path) -> dict:
    """A study with its claims from a JSON or TOML file (``{"study": {...}, "claims": [...]}``), checked."""
    path = Path(path)
    name = str(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml") and not path.is_dir():
        raise _fail(name, "a study file must end in .json or .toml")
    text = read_text_file(path, kind="study", limit=MAX_SMALL_FILE_BYTES)
    kind = "JSON" if suffix == ".json" else "TOML"
    if not text.strip():
        raise _fail(name, "the file is empty")
    try:
        data = json.loads(text, object_pairs_hook=_no_repeated_keys) if suffix == ".json" else tomllib.loads(text)
    except _RepeatedKey as exc:
        raise _fail(name, f"key {exc.args[0]!r} appears twice in one object: cannot tell which value is meant") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise _fail(name, f"not valid {kind}: {exc}") from None
    except RecursionError:
        raise _fail(name, f"not a study file: {kind} nested too deeply") from None
    if _depth(data, MAX_NESTING) > MAX_NESTING:
        raise _fail(name, f"not a study file: nested more than {MAX_NESTING} levels deep")
    check_study_payload(data, file=name)
    return data


_SCALAR_TYPES = (str, int, float, bool)


def check_study_payload(payload, *, file: str = "input") -> None:
    """Refuse a study payload whose shape or value types are wrong, naming each field.

    ``{"study": {...}, "claims": [{...}, ...]}`` (or a bare study with ``study_id``): every value a
    scalar (text, number, true/false) or empty; every claim a table whose ``study_id``, if given, is
    the study's own. Values are never converted from a wrong type.
    """
    if not isinstance(payload, dict):
        raise _fail(file, "the file must hold an object with a 'study' table")
    study = payload.get("study", payload if "study_id" in payload else None)
    if not isinstance(study, dict):
        raise _fail(file, "required table 'study' is missing" if study is None else "'study' must be a table of fields", column="study")
    problems: list[Problem] = []
    claims = payload.get("claims", study.get("claims", [])) if "study" in payload else study.get("claims", [])
    for key, value in study.items():
        if key == "claims":
            continue
        if value is not None and not isinstance(value, _SCALAR_TYPES):
            problems.append(Problem(file, None, f"study.{key}", f"must be text or a number, not {_kind(value)}"))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(Problem(file, None, f"study.{key}", f"{value} is not a finite number"))
        elif isinstance(value, str) and "\x00" in value:  # SQLite would store it, PostgreSQL refuse it
            problems.append(Problem(file, None, f"study.{key}", "contains a NUL character (\\x00)"))
        elif key == "identifier" and isinstance(value, str) and len(value) > MAX_IDENTIFIER_LENGTH:
            problems.append(Problem(file, None, "study.identifier", f"is {len(value):,} characters long; a DOI or URL is at most {MAX_IDENTIFIER_LENGTH}"))
    sid = study.get("study_id")
    if claims is None:
        claims = []
    if not isinstance(claims, list):
        problems.append(Problem(file, None, "claims", f"must be a list of tables, not {_kind(claims)}"))
        claims = []
    seen_claims: dict[str, int] = {}
    for i, claim in enumerate(claims, start=1):
        if not isinstance(claim, dict):
            problems.append(Problem(file, i, "claims", f"each claim must be a table of fields, not {_kind(claim)}"))
            continue
        for key, value in claim.items():
            if value is not None and not isinstance(value, _SCALAR_TYPES):
                problems.append(Problem(file, i, f"claims.{key}", f"must be text or a number, not {_kind(value)}"))
            elif isinstance(value, float) and not math.isfinite(value):
                problems.append(Problem(file, i, f"claims.{key}", f"{value} is not a finite number"))
            elif isinstance(value, str) and "\x00" in value:
                problems.append(Problem(file, i, f"claims.{key}", "contains a NUL character (\\x00)"))
        same = json.dumps({k: normal_text(str(v)).strip().lower() for k, v in sorted(claim.items()) if v not in (None, "")})
        if same in seen_claims:
            problems.append(Problem(file, i, "claims", f"the same claim as claim {seen_claims[same]} (stored twice it would count twice)"))
        seen_claims.setdefault(same, i)
        own = claim.get("study_id")
        if own not in (None, "") and str(own).strip() != str(sid or "").strip():
            problems.append(Problem(
                file, i, "claims.study_id",
                f"claim names study {own!r}, but this file adds study {sid!r}; claims of another study are added with that study",
            ))
    if problems:
        raise ValidationFailed(problems)


def _kind(value) -> str:
    return {dict: "a table", list: "a list"}.get(type(value), type(value).__name__)
