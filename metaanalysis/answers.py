"""The answer per disputed question and per evaluation kind, never one number for incomparable things.

For each of the six questions (:class:`evidence.vocab.Question`, whose scope says which results
bear on it) the effects are split by evaluation kind — threat model × adversarial training ×
attack family (:class:`metaanalysis.rigour.AttackFamily`) — because an untargeted PGD loss, a
universal perturbation, a certified bound and a transfer attack measure different things. Within a
kind the default model is fitted (multilevel study / cluster / effect by REML, CR2 by study: see
:mod:`metaanalysis.analysis`), with its CI and t-based prediction interval, and leave-one-study-out
refits (metafor's ``leave1out`` at the study level).

A kind is "not estimable as one number" — no pooled number, no verdict sentence — where it has
fewer than :data:`MIN_STUDIES` studies, where the inference's own degrees of freedom (CR2
Satterthwaite df, the t test's df) are below :data:`MIN_DF` (Tipton 2015: below 4 the CR2 t test's
type I error is not controlled, so its interval cannot carry a conclusion), or where the pooled
number is unstable: leaving one study out changes whether the CI excludes 0, or moves the estimate
by more than the CI half-width. Such a kind gives its per-study estimates and a sentence of what
they *can* say (:func:`can_be_said`: "no study shows a change larger than about ±6 pp", or how many
studies find robust accuracy lower or higher).

The prediction interval (IntHout et al. 2016) is given only where the pooled number is (df ≥ 4);
for a difference of two percentages it is truncated to [−100, +100] pp with a note, and where it
would pass both bounds it is dropped: heterogeneity is too large to predict a new setting.

Each kind also counts its effects that rest on a high-risk evaluation (``high_risk`` of
:func:`metaanalysis.rigour.rigour_scores`: weak or unknown attack, epsilon not stated, robust above
clean, or possible gradient masking), and where the kind has a pooled number and high-risk effects,
refits it without them (the sensitivity analysis of :func:`metaanalysis.rigour_sensitivity`, per
kind) when at least :data:`MIN_STUDIES` studies keep a low-risk effect.

References: Viechtbauer W, Cheung MW-L (2010), outlier and influence diagnostics for meta-analysis
(leave-one-out); Carlini N et al. (2019), On evaluating adversarial robustness, arXiv:1902.06705
(what makes an evaluation high-risk); IntHout J, Ioannidis JPA, Rovers MM, Goeman JJ (2016), plea for routinely
presenting prediction intervals in meta-analysis, BMJ Open 6:e010247; Tipton E (2015), small-sample
adjustments for robust variance estimation with meta-regression, Psychological Methods 20:375-393
(CR2 df below 4 are untrustworthy).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd

from evidence.vocab import Question

from .analysis import AnalysisSpec, StudyEstimate, run_analysis, study_estimate
from .controlled import ReplicationLine, replication_line
from .effects import EffectMeasure, EffectTable
from .models.results import clean
from .kinds import EvaluationKind, kind_groups, with_families
from .scope import question_rows
from .models.uni import MetaInputError

__all__ = ["MIN_STUDIES", "MIN_DF", "PP_BOUND", "HIGH_RISK_MEANS", "share", "can_be_said", "LowRiskEstimate", "KindAnswer", "QuestionAnswer", "Answers", "answer"]

MIN_STUDIES = 3  # fewer studies: no pooled number (a between-study variance from 2 studies is noise)
MIN_DF = 4.0  # fewer (CR2 Satterthwaite) df: no pooled number (Tipton 2015), as the bias module gates its tests
PP_BOUND = 100.0  # a difference of two percentages lies in [-100, +100] pp
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
    loo_unstable: tuple[str, ...] = ()  # studies whose omission flips "CI excludes 0" or moves the estimate > CI half-width
    can_say: str | None = None  # what the per-study estimates can say where there is no pooled number
    pi_note: str | None = None  # why the prediction interval is truncated or absent
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
    replications: tuple[ReplicationLine, ...] = ()  # the project's controlled replications, beside the literature

    @property
    def scope_note(self) -> str | None:
        """Which results the question reads beside its own and does not pool (its baseline)."""
        base = self.question.scope.baseline_threat_models
        if not base or not self.measurable:
            return None
        return (f"only {', '.join(t.value.replace('_', '-') for t in self.question.scope.threat_models)} evaluations answer this question; "
                f"{', '.join(t.value.replace('_', '-') for t in base)} results on the same models are its baseline, not pooled here")

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
                      "scope_note": self.scope_note,
                      "kinds": [k.to_dict() for k in self.kinds], "controlled_replications": [r.to_dict() for r in self.replications]})


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
            if q.scope_note:
                lines.append(f"  {q.scope_note}")
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
            lines.extend(f"  - {r.text}" for r in q.replications)
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
    if c.df is not None and c.df < MIN_DF:
        return None, f"the low-risk effects give {c.df:.1f} {an.fit.test} df (at least {MIN_DF:.0f} needed)"
    return LowRiskEstimate(len(low), n, c.estimate, c.se, c.ci_low, c.ci_high, c.pval, c.df, an.fit.test), None


def can_be_said(per: tuple[StudyEstimate, ...], unit: str) -> str | None:
    """What per-study estimates say without a pooled number: where every study's CI holds 0, the
    largest change any of them leaves open ("no study shows a change larger than about ±6 pp");
    otherwise how many studies find robust accuracy lower, higher, or not clearly changed."""
    if not per:
        return None
    lower = sum(e.ci_high < 0 for e in per)
    higher = sum(e.ci_low > 0 for e in per)
    n = len(per)
    if n == 1:
        e = per[0]
        ci = f"{_fmt(e.estimate, unit)}, 95% CI {_fmt(e.ci_low, unit)} to {_fmt(e.ci_high, unit)}"
        if lower or higher:
            return f"one study: robust accuracy {'lower' if lower else 'higher'} in its setting ({ci}), not a pooled number"
        return f"one study: no change larger than about \u00b1{_bound(e, unit)} in its setting ({ci}), not a pooled number"
    if not lower and not higher:
        b = max((_bound(e, unit) for e in per), key=lambda t: float(t.split()[0]))
        return (f"no clear change in any of the {n} studies: none shows a change larger than about \u00b1{b} "
                "(the widest bound of a study's 95% CI; a bound for each study's setting, not a pooled number)")
    if lower == n or higher == n:
        lo, hi = min(e.estimate for e in per), max(e.estimate for e in per)
        return f"robust accuracy {'lower' if lower == n else 'higher'} in every one of the {n} studies ({_fmt(lo, unit)} to {_fmt(hi, unit)}), not pooled"
    if not (lower and higher):
        return (f"{lower or higher} of {n} studies find robust accuracy {'lower' if lower else 'higher'}, "
                f"{n - lower - higher} no clear change; no pooled number")
    parts = [f"{lower} lower", f"{higher} higher", f"{n - lower - higher} no clear change" if n - lower - higher else ""]
    return f"the studies disagree ({', '.join(x for x in parts if x)} of {n}); no pooled number"


def _bound(e: StudyEstimate, unit: str) -> str:
    b = max(abs(e.ci_low), abs(e.ci_high))
    return f"{b:.0f} pp" if unit == "pp" else f"{b:.2f}"


def _prediction(lo: float | None, hi: float | None, unit: str) -> tuple[float | None, float | None, str | None]:
    """The prediction interval as shown: within [-100, +100] pp for a difference of percentages."""
    if lo is None or unit != "pp" or (-PP_BOUND <= lo and hi <= PP_BOUND):
        return lo, hi, None
    if lo < -PP_BOUND and hi > PP_BOUND:
        return None, None, (f"no prediction interval: heterogeneity too large to predict a new setting "
                            f"(the interval, {_fmt(lo, unit)} to {_fmt(hi, unit)}, passes both ends of \u00b1100 pp)")
    return (max(lo, -PP_BOUND), min(hi, PP_BOUND),
            f"prediction interval truncated at \u00b1100 pp (a difference of two percentages); untruncated {_fmt(lo, unit)} to {_fmt(hi, unit)}")


def _excludes_zero(lo: float, hi: float) -> bool:
    return lo > 0 or hi < 0


def _not_estimable(kind, g, n, why: str, unit: str, per, **fields) -> KindAnswer:
    said = can_be_said(per, unit)
    verdict = f"not estimable as one number: {why}; see the per-study estimates" + (f". What can be said: {said}" if said else "")
    return KindAnswer(kind, len(g), n, False, verdict, unit, per_study=per, can_say=said, **fields)


def _kind_answer(g: pd.DataFrame, kind: EvaluationKind, fits: _Fits, unit: str) -> KindAnswer:
    studies = sorted(g["study"].unique())
    per = tuple(e for s in studies if (e := fits.study(g, s)) is not None)
    n = len(studies)
    n_high = int(g["high_risk"].astype(bool).sum()) if "high_risk" in g else None
    risk = dict(n_high_risk=n_high)
    if n < MIN_STUDIES:
        return _not_estimable(kind, g, n, f"{n} stud{'y' if n == 1 else 'ies'} (at least {MIN_STUDIES} needed)", unit, per, **risk)
    an = fits.pooled(g)
    if isinstance(an, MetaInputError):
        return _not_estimable(kind, g, n, str(an), unit, per, **risk)
    c = an.fit.coefficients[0]
    if c.df is not None and c.df < MIN_DF:
        return _not_estimable(kind, g, n, f"{n} studies give {c.df:.1f} {an.fit.test} df (at least {MIN_DF:.0f} needed for an interval "
                              "that can carry a conclusion)", unit, per, df=c.df, test=an.fit.test, **risk)
    half = (c.ci_high - c.ci_low) / 2
    loo, unstable = [], []
    for s in studies:
        rest = fits.pooled(g[g["study"] != s], start=an.fit.sigma2)
        if isinstance(rest, MetaInputError):
            continue
        r = rest.fit.coefficients[0]
        loo.append(r.estimate)
        if _excludes_zero(r.ci_low, r.ci_high) != _excludes_zero(c.ci_low, c.ci_high) or abs(r.estimate - c.estimate) > half:
            unstable.append(s)
    loo_range = dict(loo_low=min(loo), loo_high=max(loo)) if loo else {}
    if unstable:
        why = (f"{n} studies ({_fmt(c.estimate, unit)}, 95% CI {_fmt(c.ci_low, unit)} to {_fmt(c.ci_high, unit)}), and leaving out "
               f"{', '.join(unstable)} changes whether the CI excludes 0 or moves the estimate by more than the CI half-width "
               f"(leave-one-out range {_fmt(min(loo), unit)} to {_fmt(max(loo), unit)})")
        return _not_estimable(kind, g, n, why, unit, per, df=c.df, test=an.fit.test, loo_unstable=tuple(unstable), **loo_range, **risk)
    pl, ph, pi_note = _prediction(an.fit.pi_low, an.fit.pi_high, unit)
    common = dict(estimate=c.estimate, se=c.se, ci_low=c.ci_low, ci_high=c.ci_high, pi_low=pl, pi_high=ph, pi_note=pi_note, pval=c.pval,
                  df=c.df, test=an.fit.test, per_study=per, notes=tuple(dict.fromkeys(an.notes + an.fit.notes)), **loo_range, **risk)
    verdict = _sentence(n, c.estimate, c.ci_low, c.ci_high, pl, ph, unit)
    verdict += f"; leave-one-study-out {_fmt(min(loo), unit)} to {_fmt(max(loo), unit)}" if loo else ""
    verdict += f"; {pi_note}" if pi_note else ""
    if n_high:
        low, why = _without_high_risk(g, fits, an.fit.sigma2)
        common.update(without_high_risk=low, without_high_risk_note=why)
    return KindAnswer(kind, len(g), n, True, verdict, unit, **common)


def answer(table: EffectTable, spec: AnalysisSpec | None = None, questions: list[Question | str] | None = None,
           replications: EffectTable | None = None) -> Answers:
    """Answer every question (or ``questions``) per evaluation kind from the effect table; with
    ``replications`` (an effect table of the project's own replication rows) each question also gets
    one controlled-replication line per evaluation kind, never pooled with the literature."""
    spec = (spec or AnalysisSpec()).replace(component_tests=False, mods=None)
    effects = with_families(table.effects)
    unit = "pp" if table.settings.measure != EffectMeasure.log_odds_ratio else "log OR"
    if len(effects):
        # the random levels as categoricals (categories sorted, as the fits order their groups): every
        # subset refit then encodes its groups from integer codes instead of re-hashing the strings
        for col in {"study", "cluster", spec.robust_cluster, *spec.random} & set(effects.columns):
            if effects[col].dtype == object or pd.api.types.is_string_dtype(effects[col]):
                effects[col] = pd.Categorical(effects[col], categories=sorted(effects[col].dropna().unique()))
    reps = with_families(replications.effects) if replications is not None else effects.iloc[:0]
    fits = _Fits(spec)
    out = []
    unknown = [x for x in questions or () if x not in {q.value for q in Question}]
    if unknown:
        raise MetaInputError(f"unknown question(s) {', '.join(map(repr, unknown))}; known: {', '.join(q.value for q in Question)}")
    for q in [Question(x) for x in questions] if questions else list(Question):
        if not q.scope.measurable or not len(effects) and not len(reps):
            out.append(QuestionAnswer(q, q.text, q.scope.measurable, ()))
            continue
        kinds = []
        if len(effects):
            sub = question_rows(effects, q, baseline=False)  # the question's own quantity: a baseline (white-box beside transfer) is not its answer
            kinds = [_kind_answer(g, EvaluationKind(*key), fits, unit) for key, g in kind_groups(sub)]
        lines = ()
        if len(reps):
            rq = question_rows(reps, q, baseline=False)
            lines = tuple(x for key, g in kind_groups(rq) if (x := replication_line(g, EvaluationKind(*key).label, spec, unit)) is not None)
        out.append(QuestionAnswer(q, q.text, True, tuple(kinds), lines))
    notes = tuple(table.notes) + (f"model: {spec.model} ({'/'.join(spec.random)}), {spec.method}; robust: {spec.robust}",)
    return Answers(tuple(out), notes)
