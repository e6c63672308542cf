"""Why studies disagree: each contradicting pair judged on its own evidence.

For every pair of studies whose coded claims on one of the disputed questions
(:class:`evidence.vocab.Question`) point different ways (up vs down: "opposite"; a direction vs
"no change": "direction vs no change"), the report gives:

1. what each study reports: its own pooled effect where the database holds its numbers for the
   question (its clusters as random effects), its coded claim otherwise;
2. the candidate moderators on which the two differ, each study's value and where it comes from
   (its data, the claim's coding, the study's coding);
3. for each such moderator, a meta-regression on every effect in the question's scope (the
   multilevel model, CR2 cluster-robust inference by study): the predicted effect at each
   study's value with its CI, and the predicted difference between them with its test; and, as
   an out-of-sample check, the difference predicted by the other studies alone (the pair's own
   effects left out), so a reader sees whether the "explanation" is more than the pair itself.

A moderator *predicts the disagreement* when the predicted difference has the claimed sign and
its test survives the multiple-testing correction, and the predicted effect at each study's value
has that study's claimed direction (above or below 0 for "up"/"down"; a CI containing 0 for
"no change"). Verdicts (issue 14):

- ``explained``: both studies have numbers in the database, a moderator differs between them and
  predicts the disagreement;
- ``consistent with``: a moderator predicts it, but one or both studies have no numbers (their
  side rests on a coded claim);
- ``unexplained``: moderators on which the pair differs were tested and none predicts it;
- ``not assessable``: nothing to test (the pair differs on no codable moderator, or no moderator
  on which it differs can be estimated from the database).

Every pair lists the evidence it used. All tests of the report (each moderator's omnibus test and
each distinct pair contrast, plus any tests passed in by a larger report) are corrected together
with statsmodels' ``multipletests`` (Holm by default; Benjamini–Hochberg with the false discovery
rate stated); the count and the method are part of the report.

A contrast between two non-reference levels of a factor uses the smaller of the two coefficients'
Satterthwaite df (conservative); a prediction at a value uses the smallest df among the
coefficients it combines.

References: Viechtbauer W (2010) metafor ``rma.mv`` and ``robust(clubSandwich = TRUE)``;
Pustejovsky JE, Tipton E (2018) CR2; Holm S (1979) Scand J Stat 6:65-70; Benjamini Y, Hochberg Y
(1995) JRSS B 57:289-300; Thompson SG, Higgins JPT (2002) on between-study moderators confounded
with everything else that differs between studies.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from evidence.vocab import Question

from .analysis import AnalysisSpec, StudyEstimate, run_analysis, study_estimate
from .effects import EffectTable
from .models.results import MetaResult, clean
from .scope import question_rows
from .models.uni import MetaInputError

__all__ = ["PairVerdict", "Candidate", "CANDIDATES", "CORRECTIONS", "NamedTest", "StudyEvidence", "ModeratorFit", "PairCheck", "PairReport",
           "ContradictionReport", "contradiction_report", "question_scope"]

CORRECTIONS = {"holm": "Holm (family-wise error rate)", "fdr_bh": "Benjamini-Hochberg (false discovery rate)"}
SIGN = {"up": 1, "down": -1, "neutral": 0}
KIND = {frozenset({"up", "down"}): "opposite", frozenset({"up", "neutral"}): "direction vs no change",
        frozenset({"down", "neutral"}): "direction vs no change"}


class PairVerdict(StrEnum):
    explained = "explained"
    consistent_with = "consistent with"
    unexplained = "unexplained"
    not_assessable = "not assessable"


@dataclass(frozen=True)
class Candidate:
    label: str
    column: str
    form: str  # "factor" | "linear"
    claim_field: str | None = None  # the claim's coded field that gives a study's value without numbers
    study_field: str | None = None  # the study's coded field (after the claim's)


CANDIDATES: tuple[Candidate, ...] = (
    Candidate("adversarial training", "adversarial_training", "factor", "adversarial_training", "adversarial_training"),
    Candidate("compression family", "compression_family", "factor", "compression_family", "compression_kind"),
    Candidate("threat model", "threat_model", "factor", "threat_model"),
    Candidate("attack strength (epsilon)", "epsilon", "linear"),
    Candidate("sparsity level", "sparsity", "linear"),
    Candidate("evaluation rigour (high-risk result)", "high_risk", "factor"),
)
_UNKNOWN = {"", "unknown", "none", "nan", "both", "other", "mixed"}
_KIND_TO_FAMILY = {"quantization": "quantization"}  # "pruning" names no single family (structured or not)


@dataclass(frozen=True)
class NamedTest:
    """A p-value that joins the report's multiple-testing family (e.g. a bias test)."""

    name: str
    pval: float


@dataclass(frozen=True)
class StudyEvidence:
    study: str
    direction: str
    position: str
    has_numbers: bool
    k: int
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    model: str
    values: dict[str, str]  # candidate column -> "value (source)"


@dataclass
class ModeratorFit:
    """One candidate's meta-regression over a question's scope (CR2 by study)."""

    question: str
    label: str
    column: str
    testable: bool
    reason: str = ""
    k: int = 0
    n_studies: int = 0
    n_studies_varying: int = 0  # studies within which the moderator takes more than one value
    stat: float | None = None
    df: tuple[float, float] | None = None
    pval: float | None = None
    pval_adjusted: float | None = None
    coefficients: list[dict] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)  # a factor's levels among the effects, reference first
    fit: MetaResult | None = field(default=None, repr=False)


@dataclass
class PairCheck:
    label: str
    column: str
    value_a: str
    value_b: str
    testable: bool
    reason: str = ""
    predicted_a: tuple[float, float, float] | None = None  # estimate, CI low, CI high
    predicted_b: tuple[float, float, float] | None = None
    difference: tuple[float, float, float] | None = None  # a - b
    df: float | None = None
    pval: float | None = None
    pval_adjusted: float | None = None
    predicts: bool | None = None
    status: str = ""
    n_studies: int = 0  # studies whose effects estimated the moderator
    n_studies_varying: int = 0  # of them, those within which it varies (0: a purely between-study contrast)
    # the same prediction with the moderator estimated from the other studies only (out of sample for the pair)
    difference_without_pair: tuple[float, float, float] | None = None
    without_pair: str = ""


@dataclass
class PairReport:
    question: str
    kind: str
    a: StudyEvidence
    b: StudyEvidence
    checks: list[PairCheck]
    verdict: PairVerdict
    verdict_text: str
    evidence_used: list[str]

    def to_dict(self) -> dict:
        return clean(asdict(self) | {"verdict": self.verdict.value})


@dataclass
class ContradictionReport:
    pairs: list[PairReport]
    fits: list[ModeratorFit]
    correction: str
    alpha: float
    n_tests: int
    other_tests: list[NamedTest]
    effect_notes: list[str]

    def counts(self) -> dict[str, int]:
        return {v.value: sum(p.verdict == v for p in self.pairs) for v in PairVerdict}

    def correction_text(self) -> str:
        rate = "family-wise error rate" if self.correction == "holm" else "false discovery rate"
        return (f"{self.n_tests} tests in this report, corrected together by {CORRECTIONS[self.correction]} "
                f"({rate} {self.alpha:g}; statsmodels multipletests)")

    def summary(self) -> str:
        c = self.counts()
        return (f"{len(self.pairs)} contradicting pairs of claims: " + ", ".join(f"{n} {v}" for v, n in c.items())
                + f". {self.correction_text()}.")

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "question": p.question, "kind": p.kind, "study_a": p.a.study, "direction_a": p.a.direction, "numbers_a": p.a.has_numbers,
            "study_b": p.b.study, "direction_b": p.b.direction, "numbers_b": p.b.has_numbers, "verdict": p.verdict.value,
            "because": p.verdict_text,
        } for p in self.pairs])

    def tests_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{k: v for k, v in asdict(f).items() if k not in ("coefficients", "fit")} for f in self.fits])

    def to_dict(self) -> dict:
        return clean({
            "summary": self.summary(), "correction": self.correction, "alpha": self.alpha, "n_tests": self.n_tests,
            "verdict_counts": self.counts(), "n_pairs": len(self.pairs),
            "pairs": [p.to_dict() for p in self.pairs],
            "moderator_fits": [{k: v for k, v in asdict(f).items() if k != "fit"} for f in self.fits],
            "other_tests": [asdict(t) for t in self.other_tests], "effect_notes": self.effect_notes,
        })

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def to_markdown(self) -> str:
        from .report import contradictions_markdown

        return contradictions_markdown(self)


def question_scope(effects: pd.DataFrame, q: Question, *, baseline: bool = True) -> pd.DataFrame | None:
    """The effects that bear on question ``q`` (its scope in :class:`evidence.vocab.Question`);
    ``baseline=False`` leaves out the comparison results (white-box beside transfer)."""
    if not q.scope.measurable:
        return None
    return question_rows(effects, q, baseline=baseline).reset_index(drop=True)


def _known(x) -> str | None:
    s = "" if x is None or (isinstance(x, float) and np.isnan(x)) else str(x).strip()
    return None if s.lower() in _UNKNOWN else s


def _value(c: Candidate, data: pd.DataFrame, claim: pd.Series, study: pd.Series) -> tuple[str | float | None, str]:
    """A study's value of a candidate: from its data (a single level, or the median), else codings."""
    if len(data) and c.column in data:
        col = data[c.column].dropna()
        if c.form == "factor":
            col = col[~col.astype(str).str.lower().isin(_UNKNOWN)]
        if len(col):
            if c.form == "linear":
                return float(col.astype(float).median()), "its data (median)"
            levels = sorted(col.astype(str).unique())
            return (levels[0], "its data") if len(levels) == 1 else (None, f"its data hold several levels ({', '.join(levels)})")
    if c.claim_field and _known(claim.get(c.claim_field)):
        return _known(claim.get(c.claim_field)), "the claim's coding"
    if c.study_field and _known(study.get(c.study_field)):
        v = _known(study.get(c.study_field))
        if c.column == "compression_family":
            v = _KIND_TO_FAMILY.get(v)
            if v is None:
                return None, "the study's coding names no single compression family"
        return v, "the study's coding"
    return None, "not reported"


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _fit_moderator(scope: pd.DataFrame, q: str, c: Candidate, spec: AnalysisSpec) -> ModeratorFit:
    sub = scope[scope[c.column].notna()] if c.column in scope else scope.iloc[0:0]
    if c.form == "factor" and len(sub):
        sub = sub[~sub[c.column].astype(str).str.lower().isin(_UNKNOWN)]  # "unknown" is missing, not a level
    out = ModeratorFit(q, c.label, c.column, False, k=len(sub), n_studies=int(sub["study"].nunique()) if len(sub) else 0)
    if out.n_studies < 2:
        out.reason = f"the effects that report it come from {out.n_studies} stud{'y' if out.n_studies == 1 else 'ies'}: CR2 by study needs 2 or more"
        return out
    vals = sub[c.column].astype(float) if c.form == "linear" else sub[c.column].astype(str)
    if vals.nunique() < 2:
        out.reason = f"no variation among the effects (all {vals.iloc[0]})"
        return out
    out.n_studies_varying = int((vals.groupby(sub["study"]).nunique() > 1).sum())
    df = sub.assign(**{c.column: vals}).reset_index(drop=True)
    try:
        an = run_analysis(df, spec.replace(mods=c.column, robust="CR2", robust_cluster="study", component_tests=False))
    except (MetaInputError, np.linalg.LinAlgError) as exc:
        out.reason = str(exc)
        return out
    f = an.fit
    out.testable, out.fit = True, f
    out.levels = sorted(vals.unique()) if c.form == "factor" else []
    out.stat, out.df, out.pval = f.qm, tuple(float(x) for x in f.qm_df), f.qm_pval
    out.coefficients = [{"name": x.name, "estimate": x.estimate, "se": x.se, "df": x.df, "pval": x.pval} for x in f.coefficients]
    return out


def _row(fit: ModeratorFit, c: Candidate, value) -> np.ndarray | None:
    """The model-matrix row of a study's value (None where the scope holds no effect at that level)."""
    names = [x.name for x in fit.fit.coefficients]
    r = np.zeros(len(names))
    r[0] = 1.0
    if c.form == "linear":
        r[names.index(c.column)] = float(value)
        return r
    if str(value) not in fit.levels:
        return None
    if str(value) != fit.levels[0]:  # the first level (alphabetical, as design_matrix) is the reference
        r[names.index(f"{c.column}[{value}]")] = 1.0
    return r


def _predict(fit: MetaResult, row: np.ndarray, level: float):
    b = np.array([x.estimate for x in fit.coefficients])
    dfs = [x.df for i, x in enumerate(fit.coefficients) if row[i] != 0 and x.df is not None]
    df = min(dfs) if dfs else None
    est = float(row @ b)
    se = float(np.sqrt(row @ fit.vcov @ row))
    crit = stats.t.isf((1 - level) / 2, df) if df else stats.norm.isf((1 - level) / 2)
    p = float(2 * (stats.t.sf(abs(est / se), df) if df else stats.norm.sf(abs(est / se)))) if se > 0 else 1.0
    return est, est - crit * se, est + crit * se, df, p


def _check(c: Candidate, fit: ModeratorFit | None, va, vb, level: float) -> PairCheck:
    chk = PairCheck(c.label, c.column, _fmt(va), _fmt(vb), False)
    if fit is None or not fit.testable:
        chk.reason = f"not estimable: {fit.reason if fit else 'no effects in the question scope'}"
        return chk
    ra, rb = _row(fit, c, va), _row(fit, c, vb)
    if ra is None or rb is None:
        missing = va if ra is None else vb
        chk.reason = f"not estimable: no effect in the question's scope has {c.column} = {missing}"
        return chk
    pa, pb = _predict(fit.fit, ra, level), _predict(fit.fit, rb, level)
    d = _predict(fit.fit, ra - rb, level) if c.form == "factor" else None
    if c.form == "linear":
        coef = fit.fit.coef(c.column)
        est = coef.estimate * (float(va) - float(vb))
        se = abs(coef.se * (float(va) - float(vb)))
        crit = stats.t.isf((1 - level) / 2, coef.df) if coef.df else stats.norm.isf((1 - level) / 2)
        d = (est, est - crit * se, est + crit * se, coef.df, coef.pval)
    chk.testable = True
    chk.n_studies, chk.n_studies_varying = fit.n_studies, fit.n_studies_varying
    chk.predicted_a, chk.predicted_b = pa[:3], pb[:3]
    chk.difference, chk.df, chk.pval = d[:3], d[3], d[4]
    return chk


def _out_of_sample(chk: PairCheck, c: Candidate, scope: pd.DataFrame, qid: str, pair: tuple[str, str], va, vb, spec: AnalysisSpec,
                   level: float) -> None:
    """Refit the moderator without the pair's own effects: does the rest of the evidence predict the same ordering?"""
    rest = scope[~scope["study"].isin(pair)]
    if rest["study"].nunique() < 2:
        chk.without_pair = "not estimable without the pair's own effects (fewer than 2 other studies)"
        return
    other = _check(c, _fit_moderator(rest, qid, c, spec), va, vb, level)
    if not other.testable:
        chk.without_pair = f"without the pair's own effects: {other.reason}"
        return
    d = other.difference
    chk.difference_without_pair = d
    same = np.sign(d[0]) == np.sign(chk.difference[0])
    chk.without_pair = (f"from the other {other.n_studies} studies alone: predicted difference {d[0]:+.3g} [{d[1]:+.3g}, {d[2]:+.3g}] "
                        f"({'same' if same else 'opposite'} ordering)")


def _direction_ok(direction: str, pred: tuple[float, float, float]) -> bool:
    if direction == "up":
        return pred[0] > 0
    if direction == "down":
        return pred[0] < 0
    return pred[1] <= 0 <= pred[2]


def contradiction_report(table: EffectTable, studies: pd.DataFrame, claims: pd.DataFrame, spec: AnalysisSpec | None = None, *,
                         correction: str = "holm", alpha: float = 0.05, other_tests: list[NamedTest] | tuple = ()) -> ContradictionReport:
    """Every contradicting pair with the evidence it used and its verdict (see the module docstring)."""
    if correction not in CORRECTIONS:
        raise MetaInputError(f"the multiple-testing correction is one of {', '.join(CORRECTIONS)}")
    spec = spec or AnalysisSpec()
    effects = table.effects if isinstance(table, EffectTable) else table
    st = studies.set_index("study_id")
    level = spec.level
    scopes: dict[str, pd.DataFrame | None] = {}
    fits: dict[tuple[str, str], ModeratorFit] = {}
    estimates: dict[tuple[str, str], StudyEstimate | None] = {}
    pairs: list[PairReport] = []
    for qid, g in claims.groupby("question_id", sort=True):
        q = Question(qid)
        scope = scopes.setdefault(qid, question_scope(effects, q))
        rows = [r for _, r in g.sort_values("study_id").iterrows() if r["direction"] in SIGN]
        for a, b in itertools.combinations(rows, 2):
            kind = KIND.get(frozenset({a["direction"], b["direction"]}))
            if kind is None or a["study_id"] == b["study_id"]:
                continue
            ev, data = [], []
            for r in (a, b):
                s = r["study_id"]
                d = scope[scope["study"] == s] if scope is not None else effects.iloc[0:0]
                if (qid, s) not in estimates:
                    estimates[(qid, s)] = study_estimate(scope, s, spec) if len(d) else None
                est = estimates[(qid, s)]
                srow = st.loc[s] if s in st.index else pd.Series(dtype=object)
                vals = {c.column: _value(c, d, r, srow) for c in CANDIDATES}
                ev.append(StudyEvidence(s, r["direction"], str(r["position"]), len(d) > 0, int(len(d)),
                                        None if est is None else est.estimate, None if est is None else est.ci_low,
                                        None if est is None else est.ci_high, "no numbers in the database" if est is None else est.model,
                                        {k: (f"{_fmt(v)} ({src})" if v is not None else src) for k, (v, src) in vals.items()}))
                data.append(vals)
            checks = []
            for c in CANDIDATES:
                (va, _), (vb, _) = data[0][c.column], data[1][c.column]
                if va is None or vb is None or va == vb:
                    continue
                if (qid, c.column) not in fits:
                    fits[(qid, c.column)] = (_fit_moderator(scope, qid, c, spec) if scope is not None and len(scope)
                                             else ModeratorFit(qid, c.label, c.column, False, "no results in the database fall under this question"))
                chk = _check(c, fits[(qid, c.column)], va, vb, level)
                if chk.testable:
                    _out_of_sample(chk, c, scope, qid, (a["study_id"], b["study_id"]), va, vb, spec, level)
                checks.append(chk)
            pairs.append(PairReport(qid, kind, ev[0], ev[1], checks, PairVerdict.not_assessable, "", []))
    # one multiple-testing family: every moderator fit's omnibus test, every distinct pair contrast, the tests passed in
    fam: list[tuple[str, float]] = [(f"{f.question}:{f.column}", f.pval) for f in fits.values() if f.testable and f.pval is not None]
    contrast_key = {}
    for p in pairs:
        for chk in p.checks:
            if chk.testable:
                key = (p.question, chk.column, *sorted([chk.value_a, chk.value_b]))
                if key not in contrast_key:
                    contrast_key[key] = len(fam)
                    fam.append((":".join(key), chk.pval))
    fam += [(t.name, t.pval) for t in other_tests]
    adj = multipletests([p for _, p in fam], alpha=alpha, method=correction)[1] if fam else np.array([])
    i = 0
    for f in fits.values():
        if f.testable and f.pval is not None:
            f.pval_adjusted = float(adj[i])
            i += 1
    for p in pairs:
        for chk in p.checks:
            if chk.testable:
                chk.pval_adjusted = float(adj[contrast_key[(p.question, chk.column, *sorted([chk.value_a, chk.value_b]))]])
        _judge(p, alpha)
    notes = list(table.notes) if isinstance(table, EffectTable) else []
    other = claims[~claims["direction"].isin(list(SIGN))]
    if len(other):
        notes.append(f"{len(other)} claims coded 'mixed' or 'unknown' enter no pair (no single direction to contradict): "
                     + ", ".join(f"{r.study_id} ({r.question_id}, {r.direction})" for r in other.itertuples()))
    return ContradictionReport(pairs, list(fits.values()), correction, alpha, len(fam), list(other_tests), notes)


def _judge(p: PairReport, alpha: float) -> None:
    want = np.sign(SIGN[p.a.direction] - SIGN[p.b.direction])
    for chk in p.checks:
        if not chk.testable:
            chk.predicts, chk.status = None, chk.reason
            continue
        d = chk.difference
        sign_ok = np.sign(d[0]) == want
        sig = chk.pval_adjusted < alpha
        dir_a, dir_b = _direction_ok(p.a.direction, chk.predicted_a), _direction_ok(p.b.direction, chk.predicted_b)
        chk.predicts = bool(sign_ok and sig and dir_a and dir_b)
        if chk.predicts:
            chk.status = "predicts both directions"
        elif not sign_ok:
            chk.status = "predicts the opposite ordering of the two studies"
        elif not sig:
            chk.status = f"predicted difference not significant after correction (adjusted p = {chk.pval_adjusted:.3g})"
        else:
            wrong = [s.study for s, ok in ((p.a, dir_a), (p.b, dir_b)) if not ok]
            chk.status = f"predicts the ordering but not the claimed direction for {', '.join(wrong)}"
    used = [f"{s.study}: " + (f"its numbers ({s.k} effects in the question's scope; pooled {s.estimate:+.2f} [{s.ci_low:+.2f}, {s.ci_high:+.2f}], "
                              f"{s.model})" if s.has_numbers else f"its coded claim only ('{s.direction}': no numbers in the database)")
            for s in (p.a, p.b)]
    for chk in p.checks:
        used.append(f"{chk.label}: {chk.value_a} vs {chk.value_b}; "
                    + (f"meta-regression over the question's scope (CR2 by study, {chk.n_studies} studies), predicted difference "
                       f"{chk.difference[0]:+.3g} [{chk.difference[1]:+.3g}, {chk.difference[2]:+.3g}], adjusted p = {chk.pval_adjusted:.3g}"
                       + ("; a purely between-study contrast, confounded with everything else that differs between the studies"
                          if chk.n_studies_varying == 0 else f"; varies within {chk.n_studies_varying} of the studies")
                       + (f"; {chk.without_pair}" if chk.without_pair else "")
                       if chk.testable else chk.reason))
    p.evidence_used = used
    good = [c for c in p.checks if c.predicts]
    both = p.a.has_numbers and p.b.has_numbers
    if good and both:
        p.verdict = PairVerdict.explained
        p.verdict_text = f"both studies have numbers and {', '.join(c.label for c in good)} predicts both directions"
    elif good:
        missing = [s.study for s in (p.a, p.b) if not s.has_numbers]
        p.verdict = PairVerdict.consistent_with
        p.verdict_text = (f"{', '.join(c.label for c in good)} predicts both directions, but {' and '.join(missing)} "
                          f"{'has' if len(missing) == 1 else 'have'} no numbers in the database (coded claim only)")
    elif any(c.testable for c in p.checks):
        p.verdict = PairVerdict.unexplained
        p.verdict_text = "; ".join(f"{c.label}: {c.status}" for c in p.checks if c.testable)
    else:
        p.verdict = PairVerdict.not_assessable
        p.verdict_text = ("the two studies differ on no moderator that is coded for both" if not p.checks
                          else "; ".join(f"{c.label}: {c.reason}" for c in p.checks))
