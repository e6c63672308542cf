"""The answer per disputed question and per evaluation kind, never one number for incomparable things.

For each of the six questions (:class:`evidence.vocab.Question`, whose scope says which results
bear on it) the effects are split by evaluation kind — threat model × adversarial training ×
attack family (:class:`metaanalysis.rigour.AttackFamily`) — because an untargeted PGD loss, a
universal perturbation, a certified bound and a transfer attack measure different things. Within a
kind the default model is fitted (multilevel study / cluster / effect by REML, CR2 by study: see
:mod:`metaanalysis.analysis`), with its CI and t-based prediction interval, and leave-one-study-out
refits (metafor's ``leave1out`` at the study level). A kind with fewer than 3 studies, or whose
pooled sign flips when one study is left out, is "not estimable as one number": its per-study
estimates are given instead.

Each kind also counts its effects that rest on a high-risk evaluation (``high_risk`` of
:func:`metaanalysis.rigour.rigour_scores`: weak or unknown attack, epsilon not stated, robust above
clean, or possible gradient masking), and where the kind has a pooled number and high-risk effects,
refits it without them (the sensitivity analysis of :func:`metaanalysis.rigour_sensitivity`, per
kind) when at least :data:`MIN_STUDIES` studies keep a low-risk effect.

References: Viechtbauer W, Cheung MW-L (2010), outlier and influence diagnostics for meta-analysis
(leave-one-out); Carlini N et al. (2019), On evaluating adversarial robustness, arXiv:1902.06705
(what makes an evaluation high-risk); IntHout J, Ioannidis JPA, Rovers MM, Goeman JJ (2016), plea for routinely
presenting prediction intervals in meta-analysis, BMJ Open 6:e010247.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd

from evidence.vocab import Question

from .analysis import AnalysisSpec, StudyEstimate, run_analysis, study_estimate
from .effects import EffectMeasure, EffectTable
from .models.results import clean
from .rigour import attack_family
from .scope import question_rows
from .models.uni import MetaInputError

__all__ = ["MIN_STUDIES", "HIGH_RISK_MEANS", "share", "EvaluationKind", "LowRiskEstimate", "KindAnswer", "QuestionAnswer", "Answers", "answer"]

MIN_STUDIES = 3  # fewer studies: no pooled number (a between-study variance from 2 studies is noise)
HIGH_RISK_MEANS = "weak or unknown attack, epsilon not stated, robust above clean, or possible gradient masking"


def share(n: int, total: int) -> str:
    """``n`` of ``total`` as a whole percentage that never rounds to 0% or 100% unless it is."""
    r = n / total
    if 0 < r < 0.01:
        return "< 1%"
    if 0.99 < r < 1:
        return "> 99%"
    return f"{r:.0%}"


def _high_risk_sentence(n_high: int, k: int) -> str:
    return f"{n_high:,} of {k:,} effects ({share(n_high, k)}) rest on high-risk evaluations ({HIGH_RISK_MEANS})"


@dataclass(frozen=True)
class EvaluationKind:
    """What was measured: threat model × adversarial training × attack family."""

    threat_model: str
    adversarial_training: str
    attack_family: str

    @property
    def label(self) -> str:
        at = {"yes": "with adversarial training", "no": "without adversarial training"}.get(self.adversarial_training,
                                                                                             f"adversarial training: {self.adversarial_training}")
        return f"{self.threat_model.replace('_', '-')}, {self.attack_family}, {at}"


@dataclass(frozen=True)
class LowRiskEstimate:
    """A kind's pooled effect refitted on its low-risk effects only (same model as the kind's own fit)."""

    k: int
    n_studies: int
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    pval: float | None = None
    df: float | None = None
    test: str | None = None


@dataclass(frozen=True)
class KindAnswer:
    """The pooled effect of one evaluation kind under one question, or why there is none."""

    kind: EvaluationKind
    k: int
    n_studies: int
    estimable: bool
    verdict: str
    unit: str
    estimate: float | None = None
    se: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    pi_low: float | None = None
    pi_high: float | None = None
    pval: float | None = None
    df: float | None = None
    test: str | None = None
    loo_low: float | None = None  # leave-one-study-out range of the pooled estimate
    loo_high: float | None = None
    loo_sign_flip: bool = False
    per_study: tuple[StudyEstimate, ...] = ()
    notes: tuple[str, ...] = ()
    n_high_risk: int | None = None  # effects from a high-risk evaluation; None: the table has no rigour column
    without_high_risk: LowRiskEstimate | None = None  # the pooled effect on the low-risk effects alone
    without_high_risk_note: str | None = None  # why there is no such refit, where the kind has a pooled number and high-risk effects

    @property
    def share_high_risk(self) -> float | None:
        """The fraction of the kind's effects that rest on high-risk evaluations (derived from the counts)."""
        return None if self.n_high_risk is None or not self.k else self.n_high_risk / self.k

    @property
    def high_risk_text(self) -> str | None:
        """"12 of 40 effects (30%) rest on high-risk evaluations (...)", or None where unknown."""
        return None if self.n_high_risk is None or not self.k else _high_risk_sentence(self.n_high_risk, self.k)

    @property
    def without_high_risk_text(self) -> str | None:
        """The refit without the high-risk effects, or why there is none (None where nothing is to say)."""
        w = self.without_high_risk
        if w is None:
            return self.without_high_risk_note and f"no pooled number without them: {self.without_high_risk_note}"
        return (f"without them: {_fmt(w.estimate, self.unit)} (95% CI {_fmt(w.ci_low, self.unit)} to {_fmt(w.ci_high, self.unit)}; "
                f"k = {w.k:,}, {w.n_studies} studies)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kind"] = {**asdict(self.kind), "label": self.kind.label}
        d["per_study"] = [s.to_dict() for s in self.per_study]
        return clean(d)


@dataclass(frozen=True)
class QuestionAnswer:
    question: Question
    text: str
    measurable: bool
    kinds: tuple[KindAnswer, ...]

    @property
    def verdict(self) -> str:
        if not self.measurable:
            return "not assessable: no result in the database measures what this question asks"
        if not self.kinds:
            return "no effect sizes bear on this question under the current filters"
        n_est = sum(k.estimable for k in self.kinds)
        return (f"{len(self.kinds)} evaluation kind(s); {n_est} with a pooled number" if n_est
                else f"{len(self.kinds)} evaluation kind(s), none estimable as one number: see the per-study estimates")

    @property
    def k(self) -> int:
        """The question's effects (each belongs to one evaluation kind)."""
        return sum(k.k for k in self.kinds)

    @property
    def n_high_risk(self) -> int | None:
        """The question's effects from high-risk evaluations; None where a kind does not know."""
        counts = [k.n_high_risk for k in self.kinds]
        return None if not counts or None in counts else sum(counts)

    @property
    def high_risk_text(self) -> str | None:
        """How much of the question's evidence rests on high-risk evaluations, as one sentence."""
        n = self.n_high_risk
        return None if n is None or not self.k else _high_risk_sentence(n, self.k)

    def to_dict(self) -> dict:
        return clean({"question": self.question.value, "text": self.text, "measurable": self.measurable, "verdict": self.verdict,
                      "kinds": [k.to_dict() for k in self.kinds]})


@dataclass(frozen=True)
class Answers:
    """The answers to every question (``crev meta answer``)."""

    questions: tuple[QuestionAnswer, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return clean({"questions": [q.to_dict() for q in self.questions], "notes": list(self.notes)})

    def to_frame(self) -> pd.DataFrame:
        """One row per question × evaluation kind."""
        rows = []
        for q in self.questions:
            for k in q.kinds:
                rows.append({"question": q.question.value, "threat_model": k.kind.threat_model, "adversarial_training": k.kind.adversarial_training,
                             "attack_family": k.kind.attack_family, "k": k.k, "n_studies": k.n_studies, "estimable": k.estimable,
                             "estimate": k.estimate, "ci_low": k.ci_low, "ci_high": k.ci_high, "pi_low": k.pi_low, "pi_high": k.pi_high,
                             "loo_low": k.loo_low, "loo_high": k.loo_high, "n_high_risk": k.n_high_risk,
                             "estimate_without_high_risk": k.without_high_risk.estimate if k.without_high_risk else None, "verdict": k.verdict})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        lines = []
        for q in self.questions:
            lines.append(f"{q.question.value}: {q.text}\n  {q.verdict}")
            if q.high_risk_text:
                lines.append(f"  {q.high_risk_text}")
            for k in q.kinds:
                lines.append(f"  - {k.kind.label} (k = {k.k}, {k.n_studies} stud{'y' if k.n_studies == 1 else 'ies'}): {k.verdict}")
                if k.n_high_risk:  # kinds without a high-risk effect are in the question's count above
                    hr = f"high-risk: {k.n_high_risk:,} of {k.k:,} effects ({share(k.n_high_risk, k.k)})"
                    lines.append(f"      {hr}; {k.without_high_risk_text}" if k.without_high_risk_text else f"      {hr}")
                if not k.estimable:
                    for s in k.per_study:
                        lines.append(f"      {s.study}: {s.estimate:+.1f} {k.unit} [{s.ci_low:+.1f}, {s.ci_high:+.1f}] (k = {s.k})")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _fmt(x: float, unit: str) -> str:
    """Signed, at the precision shown; a value that rounds to zero is "0.0" (never "-0.0")."""
    digits = 1 if unit == "pp" else 2
    r = round(x, digits)
    text = f"{0.0:.{digits}f}" if r == 0 else f"{r:+.{digits}f}"
    return f"{text} {unit}" if unit == "pp" else text


def _sentence(n: int, est: float, lo: float, hi: float, pl: float | None, ph: float | None, unit: str) -> str:
    studies = f"{n} studies"
    word = "lower" if hi < 0 else "higher" if lo > 0 else None
    ci = f"95% CI {_fmt(lo, unit)} to {_fmt(hi, unit)}"
    pi = f"; a new setting: {_fmt(pl, unit)} to {_fmt(ph, unit)}" if pl is not None else ""
    if word is None:
        return f"{studies}: no clear change on average ({_fmt(est, unit)}, {ci}{pi})"
    if pl is not None and pl < 0 < ph:
        return (f"{studies}: robust accuracy {word} on average ({_fmt(est, unit)}, {ci}), but too heterogeneous to say "
                f"which way a new setting goes (prediction interval {_fmt(pl, unit)} to {_fmt(ph, unit)})")
    return f"{studies}: robust accuracy consistently {word} after compression ({_fmt(est, unit)}, {ci}{pi})"


class _Fits:
    """Fits keyed by the rows they use: questions share evaluation kinds and studies, so each
    subset is fitted once per call of :func:`answer`."""

    def __init__(self, spec: AnalysisSpec):
        self.spec, self._cache = spec, {}

    def _key(self, g: pd.DataFrame, what: str):
        return what, hash(g.index.values.tobytes()), len(g)

    def pooled(self, g: pd.DataFrame, start: dict[str, float] | None = None):
        key = self._key(g, "pooled")
        if key not in self._cache:
            try:
                self._cache[key] = run_analysis(g.reset_index(drop=True), self.spec, start=start)
            except MetaInputError as exc:
                self._cache[key] = exc
        return self._cache[key]

    def study(self, g: pd.DataFrame, s: str) -> StudyEstimate | None:
        sub = g[g["study"] == s]
        key = self._key(sub, "study")
        if key not in self._cache:
            self._cache[key] = study_estimate(sub, s, self.spec)
        return self._cache[key]


def _without_high_risk(g: pd.DataFrame, fits: _Fits, start: dict[str, float] | None) -> tuple[LowRiskEstimate | None, str | None]:
    """The kind's pooled effect on its low-risk effects, or why there is none (called where the kind
    has a pooled number and at least one high-risk effect)."""
    low = g[~g["high_risk"].astype(bool)]
    n = low["study"].nunique()
    if not len(low):
        return None, "every effect is high-risk"
    if n < MIN_STUDIES:
        return None, f"{n} stud{'y has' if n == 1 else 'ies have'} a low-risk effect (at least {MIN_STUDIES} needed)"
    an = fits.pooled(low, start=start)
    if isinstance(an, MetaInputError):
        return None, f"the model cannot be fitted ({an})"
    c = an.fit.coefficients[0]
    return LowRiskEstimate(len(low), n, c.estimate, c.se, c.ci_low, c.ci_high, c.pval, c.df, an.fit.test), None


def _kind_answer(g: pd.DataFrame, kind: EvaluationKind, fits: _Fits, unit: str) -> KindAnswer:
    studies = sorted(g["study"].unique())
    per = tuple(e for s in studies if (e := fits.study(g, s)) is not None)
    n = len(studies)
    n_high = int(g["high_risk"].astype(bool).sum()) if "high_risk" in g else None
    risk = dict(n_high_risk=n_high)
    if n < MIN_STUDIES:
        return KindAnswer(kind, len(g), n, False, f"not estimable as one number: {n} stud{'y' if n == 1 else 'ies'} "
                          f"(at least {MIN_STUDIES} needed); see the per-study estimates", unit, per_study=per, **risk)
    an = fits.pooled(g)
    if isinstance(an, MetaInputError):
        return KindAnswer(kind, len(g), n, False, f"not estimable as one number: {an}", unit, per_study=per, **risk)
    c = an.fit.coefficients[0]
    loo = []
    for s in studies:
        rest = fits.pooled(g[g["study"] != s], start=an.fit.sigma2)
        if not isinstance(rest, MetaInputError):
            loo.append((s, rest.fit.estimate))
    flips = [s for s, e in loo if (e > 0) != (c.estimate > 0)]
    values = [e for _, e in loo]
    common = dict(estimate=c.estimate, se=c.se, ci_low=c.ci_low, ci_high=c.ci_high, pi_low=an.fit.pi_low, pi_high=an.fit.pi_high, pval=c.pval,
                  df=c.df, test=an.fit.test, loo_low=min(values) if values else None, loo_high=max(values) if values else None,
                  loo_sign_flip=bool(flips), per_study=per, notes=tuple(dict.fromkeys(an.notes + an.fit.notes)), **risk)
    if flips:
        verdict = (f"not estimable as one number: {n} studies, and leaving out {', '.join(flips)} flips the sign "
                   f"(leave-one-out range {_fmt(min(values), unit)} to {_fmt(max(values), unit)}); see the per-study estimates")
        return KindAnswer(kind, len(g), n, False, verdict, unit, **common)
    verdict = _sentence(n, c.estimate, c.ci_low, c.ci_high, an.fit.pi_low, an.fit.pi_high, unit)
    verdict += f"; leave-one-study-out {_fmt(min(values), unit)} to {_fmt(max(values), unit)}" if values else ""
    if c.df is not None and c.df < 4:
        verdict += f" (only {c.df:.1f} df: read the interval as indicative)"
    if n_high:
        low, why = _without_high_risk(g, fits, an.fit.sigma2)
        common.update(without_high_risk=low, without_high_risk_note=why)
    return KindAnswer(kind, len(g), n, True, verdict, unit, **common)


def answer(table: EffectTable, spec: AnalysisSpec | None = None, questions: list[Question | str] | None = None) -> Answers:
    """Answer every question (or ``questions``) per evaluation kind from the effect table."""
    spec = (spec or AnalysisSpec()).replace(component_tests=False, mods=None)
    effects = table.effects.copy()
    unit = "pp" if table.settings.measure != EffectMeasure.log_odds_ratio else "log OR"
    if len(effects):
        effects["attack_family"] = attack_family(effects["attack"])
        # the random levels as categoricals (categories sorted, as the fits order their groups): every
        # subset refit then encodes its groups from integer codes instead of re-hashing the strings
        for col in {"study", "cluster", spec.robust_cluster, *spec.random} & set(effects.columns):
            if effects[col].dtype == object or pd.api.types.is_string_dtype(effects[col]):
                effects[col] = pd.Categorical(effects[col], categories=sorted(effects[col].dropna().unique()))
    fits = _Fits(spec)
    out = []
    unknown = [x for x in questions or () if x not in {q.value for q in Question}]
    if unknown:
        raise MetaInputError(f"unknown question(s) {', '.join(map(repr, unknown))}; known: {', '.join(q.value for q in Question)}")
    for q in [Question(x) for x in questions] if questions else list(Question):
        if not q.scope.measurable or not len(effects):
            out.append(QuestionAnswer(q, q.text, q.scope.measurable, ()))
            continue
        sub = question_rows(effects, q)
        kinds = []
        for key, g in sub.groupby([sub["threat_model"].astype(str), sub["adversarial_training"].astype(str), sub["attack_family"]], sort=True):
            kinds.append(_kind_answer(g, EvaluationKind(*key), fits, unit))
        out.append(QuestionAnswer(q, q.text, True, tuple(kinds)))
    notes = tuple(table.notes) + (f"model: {spec.model} ({'/'.join(spec.random)}), {spec.method}; robust: {spec.robust}",)
    return Answers(tuple(out), notes)
