"""A reference list → study stubs pending review, so a curator starts from it.

Reads BibTeX (``.bib``, parsed with bibtexparser 2) or a DOI list (``.txt``: one DOI a line,
optionally followed by a tab or ``" | "`` and the title). Each reference becomes a study with its
title, authors, year, venue and identifier (DOI, arXiv id or URL), kind ``other`` until a curator
codes it, all in one pending submission. A reference already in the database (same identifier, or
same study id), a BibTeX block that does not parse, and an entry without a title are skipped and
reported. Offline there is no DOI lookup: a DOI given without a title gets the DOI as its title,
and the report says which stubs need their title filled in during review.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pydantic
from sqlalchemy.engine import Connection

from ..models import StudyCreate
from ..parsing import parse_year
from ..rows import pydantic_problems
from ..files import MAX_SMALL_FILE_BYTES
from ..readers import read_text_file
from ..submit import ImportReport, SubmissionCreate, known_study_ids, normalise_identifier, study_identifiers, whoami
from ..vocab import SubmissionKind
from .base import Importer

__all__ = ["BibtexImporter", "study_slug", "clean_bibtex_text"]

_DOI = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)?(10\.\d{4,9}/\S+)$", re.I)


def clean_bibtex_text(text: str) -> str:
    """Braces and runs of white space removed: ``{HYDRA}: Pruning`` → ``HYDRA: Pruning``."""
    return re.sub(r"\s+", " ", text.replace("{", "").replace("}", "")).strip()


def study_slug(authors: str, year: int | None, title: str) -> str:
    """``firstauthor_year_firstword`` in the study-id alphabet (``sehwag_2020_hydra``)."""
    first = authors.split(" and ")[0].strip()
    surname = first.split(",")[0] if "," in first else (first.split()[-1] if first else "anon")
    words = [w for w in re.findall(r"[A-Za-z0-9]+", title) if w.lower() not in {"a", "an", "the", "on", "of", "for", "to", "in", "and"}]
    parts = [surname, str(year) if year else "nd", words[0] if words else "study"]
    ascii_text = unicodedata.normalize("NFKD", "_".join(parts)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9_]+", "", ascii_text.lower())[:120]


class BibtexImporter(Importer):
    """``crev evidence import-bibtex FILE``: a ``.bib`` file or a DOI list → pending study stubs."""

    name = "bibtex"

    def read(self, conn: Connection, source: Path, by: str | None = None) -> tuple[SubmissionCreate, ImportReport]:
        report = ImportReport(source=str(source))
        text = read_text_file(source, kind="BibTeX or DOI list", limit=MAX_SMALL_FILE_BYTES)  # regular file, capped, UTF-8
        refs = self._dois(text, report) if source.suffix.lower() in (".txt", ".lst", ".dois") else self._bibtex(text, report)
        known = known_study_ids(conn)
        by_identifier = study_identifiers(conn)
        studies: dict[str, StudyCreate] = {}
        seen_identifiers: set[str] = set()
        for where, rec in refs:
            report.rows_read += 1
            ident = normalise_identifier(rec["identifier"]) if rec["identifier"] else ""
            if ident and ident in by_identifier:
                report.skipped.append(f"{where}: already in the database as {by_identifier[ident]!r} ({rec['identifier']})")
                continue
            if ident and ident in seen_identifiers:
                report.skipped.append(f"{where}: the same identifier appears earlier in this file ({rec['identifier']})")
                continue
            slug = study_slug(rec["authors"], rec["year"], rec["title"])
            base, n = slug, 2
            while slug in studies or slug in known:
                slug = f"{base}_{n}"[:120]
                n += 1
            try:
                study = StudyCreate.model_validate({**rec, "study_id": slug, "source_of_info": f"reference list {source.name} ({where})"})
            except pydantic.ValidationError as exc:
                report.skipped.append(f"{where}: " + "; ".join(f"{p.column}: {p.reason}" for p in pydantic_problems(exc, file=source.name, row=None)))
                continue
            if ident:
                seen_identifiers.add(ident)
            studies[slug] = study
        report.studies = len(studies)
        report.rows_fully_parsed = len(studies)
        sub = SubmissionCreate(kind=SubmissionKind.bibtex, submitted_by=whoami(by), studies=list(studies.values()), source_file=str(source),
                               summary=f"{len(studies)} study stubs from the reference list {source.name}")
        return sub, report

    def _bibtex(self, text: str, report: ImportReport) -> list[tuple[str, dict]]:
        import bibtexparser

        library = bibtexparser.parse_string(text)
        for block in library.failed_blocks:
            first = str(getattr(block, "raw", "")).strip().splitlines()[0][:80] if getattr(block, "raw", "") else "?"
            report.skipped.append(f"line {block.start_line + 1}: not valid BibTeX ({first!r})")
        out = []
        for e in library.entries:
            f = {k.lower(): clean_bibtex_text(str(v.value)) for k, v in e.fields_dict.items()}
            where = f"@{e.entry_type}{{{e.key}}}"
            if not f.get("title"):
                report.skipped.append(f"{where}: no title")
                continue
            ident = f.get("doi") or (f"arXiv:{f['eprint']}" if f.get("eprint") and "arxiv" in f.get("archiveprefix", "arxiv").lower() else "") or f.get("url", "")
            year_text = f.get("year", "")
            out.append((where, {
                "title": f["title"], "authors": f.get("author", ""), "year": parse_year(year_text), "year_text": year_text,
                "venue": f.get("booktitle") or f.get("journal") or f.get("publisher") or "", "identifier": ident,
            }))
        return out

    def _dois(self, text: str, report: ImportReport) -> list[tuple[str, dict]]:
        out = []
        for i, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = re.split(r"\t| \| ", line, maxsplit=1)
            doi_text, title = parts[0], (parts[1] if len(parts) > 1 else "")
            m = _DOI.match(doi_text.strip())
            if not m:
                report.skipped.append(f"line {i}: {doi_text.strip()!r} is not a DOI (10.<registrant>/<suffix>)")
                continue
            doi = m.group(1)
            title = title.strip()
            if not title:
                report.warnings.append(f"line {i}: no title given for {doi}; the stub's title is the DOI until a curator fills it in")
            out.append((f"line {i}", {"title": title or f"DOI {doi}", "authors": "", "year": None, "year_text": "", "venue": "", "identifier": f"doi:{doi}"}))
        return out
