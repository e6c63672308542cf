"""The contradiction report as a document: Markdown, JSON and HTML with its plots inline.

Every sentence in the report is built from a number of a typed result (the contradiction report,
the bias assessments, the multiverse); nothing is written that a result does not hold. All
p-values of one report form one multiple-testing family (contradiction tests and bias tests
together), corrected by statsmodels' ``multipletests``; the report states the count and the method.

The section "What the evidence cannot tell yet" lists the studies whose claims have no numbers in
the database and, for each pair that is not explained, the replication that would settle it: an
entry of the replication catalogue (``replicate/catalogue/*.toml``, read as data files; this
package does not import ``replicate``) whose claim is on the pair's question and names one of the
two studies, else one on the same question, else none (said so).
"""

from __future__ import annotations

import base64
import html
import io
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .contradictions import ContradictionReport, NamedTest, PairReport, PairVerdict, contradiction_report
from .models.results import clean

__all__ = ["CatalogueEntry", "read_catalogue", "Settlement", "ReportDocument", "build_report", "contradictions_markdown", "CATALOGUE_DIR"]

CATALOGUE_DIR = Path(__file__).resolve().parents[1] / "replicate" / "catalogue"


@dataclass(frozen=True)
class CatalogueEntry:
    """One replication-catalogue spec, as data: its id, title, and the claim it re-runs."""

    id: str
    title: str
    question_id: str
    study: str
    compare: tuple[str, ...]
    path: str


def read_catalogue(directory: Path | str | None = None) -> list[CatalogueEntry]:
    """Every ``*.toml`` under the catalogue directory (none when it does not exist)."""
    d = Path(directory) if directory else CATALOGUE_DIR
    out = []
    for p in sorted(d.glob("*.toml")) if d.is_dir() else []:
        with open(p, "rb") as fh:
            spec = tomllib.load(fh)
        claim = spec.get("claim", {})
        out.append(CatalogueEntry(str(spec.get("id", p.stem)), str(spec.get("title", "")), str(claim.get("question_id", "")),
                                  str(claim.get("study", "")), tuple(claim.get("compare", ())), str(p)))
    return out


@dataclass(frozen=True)
class Settlement:
    """What would settle one pair: the studies lacking numbers and the catalogue entry to run."""

    question: str
    study_a: str
    study_b: str
    verdict: str
    missing_numbers: tuple[str, ...]
    catalogue_id: str | None
    catalogue_title: str
    match: str  # "names a study of the pair" | "same question" | "none"
    text: str


def _settle(p: PairReport, cat: list[CatalogueEntry]) -> Settlement:
    missing = tuple(s.study for s in (p.a, p.b) if not s.has_numbers)
    pair = {p.a.study, p.b.study}
    named = [e for e in cat if e.question_id == p.question and pair & ({e.study} | set(e.compare))]
    same_q = [e for e in cat if e.question_id == p.question]
    e, match = (named[0], "names a study of the pair") if named else (same_q[0], "same question") if same_q else (None, "none")
    need = (f"numbers for {' and '.join(missing)}" if missing else "a within-study comparison of the conditions on which the two differ")
    if e is None:
        text = f"no catalogue entry covers question '{p.question}': a replication giving {need} is needed"
    else:
        text = f"run `crev replicate run {e.id}` ({e.title}; {match}) to obtain {need}"
    return Settlement(p.question, p.a.study, p.b.study, p.verdict.value, missing, e.id if e else None, e.title if e else "", match, text)


def _n(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def contradictions_markdown(rep: ContradictionReport) -> str:
    """The contradiction report as Markdown: summary, moderator fits, then every pair with the evidence it used."""
    out = ["# Contradiction report", "", rep.summary(), ""]
    out += [f"- {n}" for n in rep.effect_notes] + [""]
    out += ["## Moderator fits (multilevel meta-regression over each question's scope, CR2 by study)", "",
            "| question | moderator | k | studies | varies within | F | df | p | adjusted p | note |", "|---|---|---|---|---|---|---|---|---|---|"]
    for f in rep.fits:
        if f.testable:
            out.append(f"| {f.question} | {f.label} | {f.k} | {f.n_studies} | {f.n_studies_varying} | {f.stat:.2f} | {f.df[0]:g}, {f.df[1]:.1f} "
                       f"| {f.pval:.3g} | {f.pval_adjusted:.3g} | |")
        else:
            out.append(f"| {f.question} | {f.label} | {f.k} | {f.n_studies} | – | – | – | – | – | {f.reason} |")
    out.append("")
    for q in sorted({p.question for p in rep.pairs}):
        out.append(f"## Question `{q}`")
        out.append("")
        for p in [p for p in rep.pairs if p.question == q]:
            out.append(f"### {p.a.study} ({p.a.direction}) vs {p.b.study} ({p.b.direction}): {p.kind}")
            out.append(f"- **verdict: {p.verdict.value}**: {p.verdict_text}")
            out.append(f"- {p.a.study}: “{p.a.position}”; {p.b.study}: “{p.b.position}”")
            out.append("- evidence used:")
            out += [f"  - {line}" for line in p.evidence_used]
            out.append("")
    return "\n".join(out)


@dataclass
class ReportDocument:
    """The full report: contradictions, bias per question, the multiverse, what cannot be told yet."""

    contradictions: ContradictionReport
    bias: dict[str, object]  # question -> BiasReport
    settlements: list[Settlement]
    studies_without_numbers: list[str]
    multiverse: object | None = None  # MultiverseResult
    notes: list[str] = field(default_factory=list)
    results_without_effects: dict[str, str] = field(default_factory=dict)  # study -> why its results give no effect

    def to_dict(self) -> dict:
        return clean({
            "contradictions": self.contradictions.to_dict(),
            "bias": {q: b.to_dict() for q, b in self.bias.items()},
            "multiverse": self.multiverse.to_dict() if self.multiverse is not None else None,
            "cannot_tell_yet": {"studies_without_numbers": self.studies_without_numbers,
                                "settlements": [s.__dict__ for s in self.settlements]},
            "notes": self.notes,
        })

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def _cannot_tell(self) -> list[str]:
        n_claims = len(self.studies_without_numbers)
        out = ["## What the evidence cannot tell yet", "",
               f"{_n(n_claims, 'study', 'studies')} with coded claims have no effect sizes in the database: "
               + (", ".join(self.studies_without_numbers) or "none") + ".", ""]
        for s, why in self.results_without_effects.items():
            out.append(f"- {s} has results in the database, but none gives an effect size: {why}")
        if self.results_without_effects:
            out.append("")
        todo = [s for s in self.settlements if s.verdict != PairVerdict.explained.value]
        out.append(f"{len(todo)} pair(s) are not explained by the database's numbers. The replication that would settle each:")
        out.append("")
        out += [f"- `{s.question}` {s.study_a} vs {s.study_b} ({s.verdict}): {s.text}" for s in todo]
        return out + [""]

    def _bias_md(self) -> list[str]:
        out = ["## Publication bias, per question (methods for dependent effects)", ""]
        for q, b in self.bias.items():
            out.append(f"### `{q}`: {_n(b.k, 'effect', 'effects')} from {_n(b.n_studies, 'study', 'studies')}")
            out += [f"- {a.method}: {a.verdict}" for a in b.assessments]
            out.append("")
        return out

    def _multiverse_md(self) -> list[str]:
        m = self.multiverse
        if m is None:
            return []
        return ["## Multiverse (specification curve)", "", m.summary(), ""]

    def to_markdown(self) -> str:
        md = contradictions_markdown(self.contradictions).split("\n")
        cut = md.index("## Moderator fits (multilevel meta-regression over each question's scope, CR2 by study)")
        return "\n".join(md[:cut] + self._cannot_tell() + self._bias_md() + self._multiverse_md() + md[cut:] + [f"- note: {n}" for n in self.notes])

    def to_html(self) -> str:
        """A self-contained HTML page: the Markdown's content with the plots as inline PNG images."""
        body = []
        for line in self.to_markdown().split("\n"):
            t = html.escape(line)
            if line.startswith("### "):
                body.append(f"<h3>{t[4:]}</h3>")
            elif line.startswith("## "):
                body.append(f"<h2>{t[3:]}</h2>")
                if line.startswith("## Multiverse") and self.multiverse is not None:
                    body.append(f'<img alt="specification curve" src="data:image/png;base64,{_png(self.multiverse.figure())}">')
                if line.startswith("## What the evidence") and self.contradictions.pairs:
                    body.append(f'<img alt="verdicts per question" src="data:image/png;base64,{_png(_verdict_figure(self.contradictions))}">')
            elif line.startswith("# "):
                body.append(f"<h1>{t[2:]}</h1>")
            elif line.lstrip().startswith("- "):
                body.append(f"<li style='margin-left:{(len(line) - len(line.lstrip())) * 0.6 + 1}em'>{t.lstrip()[2:]}</li>")
            elif line.startswith("|") and not set(line) <= set("|-"):
                cells = [c.strip() for c in line.strip("|").split("|")]
                body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            elif line.strip() and not set(line) <= set("|-"):
                body.append(f"<p>{t}</p>")
        out, in_table = [], False  # consecutive table rows go into one table
        for b in body:
            if b.startswith("<tr>") and not in_table:
                out.append("<table border='1' cellspacing='0' cellpadding='3'>")
                in_table = True
            elif not b.startswith("<tr>") and in_table:
                out.append("</table>")
                in_table = False
            out.append(b)
        if in_table:
            out.append("</table>")
        return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>crev contradiction report</title>"
                "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}img{max-width:100%}td{font-size:90%}</style></head><body>"
                + "\n".join(out) + "</body></html>")


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _verdict_figure(rep: ContradictionReport):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = rep.to_frame()
    tab = pd.crosstab(df["question"], df["verdict"]).reindex(columns=[v.value for v in PairVerdict], fill_value=0)
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(tab) + 1.5))
    left = pd.Series(0, index=tab.index)
    colors = {"explained": "#1b7837", "consistent with": "#7fbf7b", "unexplained": "#d6604d", "not assessable": "#bababa"}
    for v in tab.columns:
        ax.barh(tab.index, tab[v], left=left, color=colors[v], label=f"{v} ({int(tab[v].sum())})")
        left = left + tab[v]
    ax.set_xlabel("contradicting pairs (count)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Verdict of each contradicting pair, per question")
    return fig


def build_report(table, studies: pd.DataFrame, claims: pd.DataFrame, spec=None, *, correction: str = "holm", alpha: float = 0.05,
                 multiverse=None, catalogue_dir: Path | str | None = None) -> ReportDocument:
    """Bias per question, then the contradiction report with every test of the document in one family."""
    from evidence.vocab import Question

    from .contradictions import question_scope
    from .bias.pubbias import bias_report

    effects = table.effects
    bias = {}
    for q in Question:
        scope = question_scope(effects, q, baseline=False)  # a question's own results (bias acts on what was published about it)
        if scope is None or len(scope) == 0:
            continue
        bias[q.value] = bias_report(scope, spec)
    others = [NamedTest(f"bias:{q}:{a.method}", a.pval) for q, b in bias.items() for a in b.assessments if a.pval is not None]
    rep = contradiction_report(table, studies, claims, spec, correction=correction, alpha=alpha, other_tests=others)
    with_numbers = set(effects["study"].unique())
    without = sorted(set(claims["study_id"]) - with_numbers)
    cat = read_catalogue(catalogue_dir)
    settle = [_settle(p, cat) for p in rep.pairs]
    notes = [] if cat else [f"no replication catalogue found at {catalogue_dir or CATALOGUE_DIR}"]
    excl = table.excluded
    no_effects = {}
    if len(excl) and "study_id" in excl:
        for s, g in excl[~excl["study_id"].isin(with_numbers)].groupby("study_id"):
            no_effects[str(s)] = "; ".join(f"{r} ({n} rows)" for r, n in g["reason"].value_counts().items())
    return ReportDocument(rep, bias, settle, without, multiverse, notes, no_effects)
