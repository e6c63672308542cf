"""The contradiction analysis: which pairs of studies disagree, and which conditions explain it.

1. From the coded claims, every pair of studies whose claims on the same question point opposite
   ways (up vs down), and, as a weaker kind, a directional claim against a "no change" claim.
2. For each question, every candidate explanation is tested on the effects in the question's
   scope with a three-level meta-regression (effects within clusters within studies, REML; Wald
   test QM): adversarial training; attack strength (epsilon); sparsity level as a non-monotone
   (linear + quadratic) term; threat model (white-box vs transfer); compression family; and
   evaluation rigour (high-risk results, :mod:`metaanalysis.rigour`).
3. For each pair: each study's pooled effect where it has numbers, the coded conditions on which
   the two differ, and for each candidate whether the pair differs on it and what the test says.
   A candidate *explains* the contradiction when the pair differs on it (or its coding is unknown
   for one side) and its moderator test is significant at the 5 % level; what no candidate
   explains is reported as unexplained.

With few studies holding numbers, a between-study moderator is confounded with everything else
that differs between those studies; the report says how many studies each test rests on.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .analysis import AnalysisSpec, run_analysis, study_estimate
from .effects import EffectTable
from .results import clean
from .uni import MetaInputError

__all__ = ["QUESTION_SCOPE", "CANDIDATES", "ModeratorTest", "PairReport", "ContradictionReport", "contradiction_report"]

PRUNING = ("unstructured_pruning", "structured_pruning")
QUESTION_SCOPE: dict[str, dict] = {
    "pruning_without_at": {"families": PRUNING, "adversarial_training": ("no",)},
    "sparsity_level": {"families": PRUNING},
    "quantization": {"families": ("quantization", "binarization", "ensemble")},
    "transfer": {"threat_models": ("transfer", "white_box")},
    "robust_aware_pruning": {"families": PRUNING, "adversarial_training": ("yes",)},
    "capacity": None,  # no result in the database measures capacity
}
# (label, column, form)
CANDIDATES: tuple[tuple[str, str, str], ...] = (
    ("adversarial training", "adversarial_training", "factor"),
    ("attack strength (epsilon)", "epsilon", "linear"),
    ("sparsity level (non-monotone)", "sparsity", "quadratic"),
    ("threat model", "threat_model", "factor"),
    ("compression family", "compression_family", "factor"),
    ("evaluation rigour", "high_risk", "factor"),
)
OPPOSITE = {frozenset({"up", "down"}): "opposite", frozenset({"up", "neutral"}): "direction vs no change",
            frozenset({"down", "neutral"}): "direction vs no change"}
ALPHA = 0.05


@dataclass
class ModeratorTest:
    label: str
    column: str
    testable: bool
    reason: str = ""
    k: int = 0
    n_studies: int = 0
    qm: float | None = None
    qm_df: float | None = None
    pval: float | None = None
    coefficients: list[dict] = field(default_factory=list)

    @property
    def significant(self) -> bool:
        return self.testable and self.pval is not None and self.pval < ALPHA


@dataclass
class PairReport:
    question_id: str
    question: str
    kind: str
    study_a: str
    direction_a: str
    position_a: str
    study_b: str
    direction_b: str
    position_b: str
    estimate_a: dict | None
    estimate_b: dict | None
    differences: dict[str, tuple[str, str]]
    explanations: list[dict]
    explained_by: list[str]
    unexplained: bool
    verdict: str


@dataclass
class ContradictionReport:
    pairs: list[PairReport]
    tests: dict[str, list[ModeratorTest]]
    effect_notes: list[str]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "question": p.question_id, "kind": p.kind, "study_a": p.study_a, "direction_a": p.direction_a, "study_b": p.study_b,
            "direction_b": p.direction_b, "explained_by": ", ".join(p.explained_by) or "-", "unexplained": p.unexplained,
            "verdict": p.verdict,
        } for p in self.pairs])

    def tests_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"question": q, **{k: v for k, v in asdict(t).items() if k != "coefficients"}} for q, ts in self.tests.items() for t in ts])

    def to_dict(self) -> dict:
        return clean({
            "pairs": [asdict(p) for p in self.pairs],
            "tests": {q: [asdict(t) | {"significant": t.significant} for t in ts] for q, ts in self.tests.items()},
            "effect_notes": self.effect_notes,
            "n_pairs": len(self.pairs),
            "n_unexplained": sum(p.unexplained for p in self.pairs),
        })

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def summary(self) -> str:
        n_un = sum(p.unexplained for p in self.pairs)
        return f"{len(self.pairs)} contradicting pairs of claims; {len(self.pairs) - n_un} with a tested explanation, {n_un} unexplained"

    def to_markdown(self) -> str:
        out = ["# Contradiction report", "", self.summary(), ""]
        out += [f"- {n}" for n in self.effect_notes] + [""]
        for q, ts in self.tests.items():
            out.append(f"## Question `{q}`: moderator tests (three-level meta-regression)")
            out.append("")
            out.append("| candidate | k | studies | QM | df | p | significant |")
            out.append("|---|---|---|---|---|---|---|")
            for t in ts:
                if t.testable:
                    out.append(f"| {t.label} | {t.k} | {t.n_studies} | {t.qm:.2f} | {t.qm_df:g} | {t.pval:.3g} | {'yes' if t.significant else 'no'} |")
                else:
                    out.append(f"| {t.label} | {t.k} | {t.n_studies} | – | – | – | untestable: {t.reason} |")
            out.append("")
            for p in [p for p in self.pairs if p.question_id == q]:
                out.append(f"### {p.study_a} ({p.direction_a}) vs {p.study_b} ({p.direction_b}) — {p.kind}")
                out.append(f"- {p.study_a}: “{p.position_a}”; {p.study_b}: “{p.position_b}”")
                for s, est in ((p.study_a, p.estimate_a), (p.study_b, p.estimate_b)):
                    out.append(f"- {s}: " + (f"pooled effect {est['estimate']:+.2f} [{est['ci_low']:+.2f}, {est['ci_high']:+.2f}] from {est['k']} effects"
                                             if est else "no numbers in the database"))
                if p.differences:
                    out.append("- differs on: " + "; ".join(f"{k}: {a} vs {b}" for k, (a, b) in p.differences.items()))
                for e in p.explanations:
                    out.append(f"  - {e['candidate']}: {e['status']}" + (f" (p = {e['pval']:.3g})" if e.get("pval") is not None else ""))
                out.append(f"- **verdict**: {p.verdict}")
                out.append("")
        return "\n".join(out)


def _scope(effects: pd.DataFrame, q: str) -> pd.DataFrame | None:
    spec = QUESTION_SCOPE.get(q)
    if spec is None:
        return None
    m = pd.Series(True, index=effects.index)
    if "families" in spec:
        m &= effects["compression_family"].isin(spec["families"])
    if "adversarial_training" in spec:
        m &= effects["adversarial_training"].isin(spec["adversarial_training"])
    if "threat_models" in spec:
        m &= effects["threat_model"].isin(spec["threat_models"])
    return effects[m]


def _test(df: pd.DataFrame, label: str, col: str, form: str, spec: AnalysisSpec) -> ModeratorTest:
    sub = df[df[col].notna()] if col in df else df.iloc[0:0]
    t = ModeratorTest(label, col, False, k=len(sub), n_studies=int(sub["study"].nunique()) if len(sub) else 0)
    if len(sub) < 3:
        t.reason = "fewer than 3 effects report it"
        return t
    values = sub[col].astype(str) if form == "factor" else sub[col].astype(float)
    if values.nunique() < (2 if form != "quadratic" else 3):
        t.reason = f"no variation among the effects (all {values.iloc[0]})"
        return t
    mods = f"{col} + {col}^2" if form == "quadratic" else col
    try:
        an = run_analysis(sub.reset_index(drop=True), AnalysisSpec(**{**spec.__dict__, "mods": mods}))
    except (MetaInputError, np.linalg.LinAlgError) as exc:
        t.reason = str(exc)
        return t
    f = an.fit
    t.testable = True
    t.qm, t.qm_df, t.pval = f.qm, f.qm_df[0], f.qm_pval
    t.coefficients = [{"name": c.name, "estimate": c.estimate, "se": c.se, "pval": c.pval} for c in f.coefficients[1:]]
    return t


def _range(g: pd.DataFrame, col: str) -> str:
    vals = g[col].dropna()
    if vals.empty:
        return "not reported"
    if pd.api.types.is_numeric_dtype(vals) and not pd.api.types.is_bool_dtype(vals):
        return f"{vals.min():.3g}–{vals.max():.3g}"
    return ", ".join(sorted(map(str, vals.unique())))


def _differences(sa: pd.Series, sb: pd.Series, ga: pd.DataFrame, gb: pd.DataFrame) -> dict[str, tuple[str, str]]:
    diffs = {}
    for label, col in (("adversarial training (study)", "adversarial_training"), ("compression kind", "compression_kind"),
                       ("datasets", "datasets"), ("attacks", "attacks"), ("architectures", "architectures")):
        a, b = str(sa.get(col, "")), str(sb.get(col, ""))
        if a != b:
            diffs[label] = (a, b)
    if len(ga) and len(gb):
        for label, col in (("threat model (data)", "threat_model"), ("epsilon (data)", "epsilon"), ("sparsity (data)", "sparsity"),
                           ("compression family (data)", "compression_family"), ("adversarial training (data)", "adversarial_training")):
            a, b = _range(ga, col), _range(gb, col)
            if a != b:
                diffs[label] = (a, b)
    return diffs


def _pair_differs(column: str, sa: pd.Series, sb: pd.Series, ga: pd.DataFrame, gb: pd.DataFrame) -> bool | None:
    """Whether two studies differ on a candidate moderator: from their numbers where both have
    some, else from a typed study-level field; ``None`` where it cannot be told."""
    if len(ga) and len(gb) and column in ga:
        return _range(ga, column) != _range(gb, column)
    if column == "adversarial_training":
        a, b = str(sa.get("adversarial_training", "unknown")), str(sb.get("adversarial_training", "unknown"))
        return None if "unknown" in (a, b) else a != b
    if column == "compression_family":
        a, b = str(sa.get("compression_kind", "other")), str(sb.get("compression_kind", "other"))
        return None if "other" in (a, b) else a != b
    return None


def contradiction_report(table: EffectTable, studies: pd.DataFrame, claims: pd.DataFrame, spec: AnalysisSpec | None = None) -> ContradictionReport:
    """Contradicting claims, the moderator tests per question, and a verdict per pair."""
    spec = spec or AnalysisSpec()
    effects = table.effects
    st = studies.set_index("study_id")
    tests: dict[str, list[ModeratorTest]] = {}
    scopes: dict[str, pd.DataFrame | None] = {}
    for q in sorted(claims["question_id"].unique()):
        scope = _scope(effects, q)
        scopes[q] = scope
        if scope is None or len(scope) == 0:
            tests[q] = [ModeratorTest(lbl, col, False, "no results in the database fall under this question") for lbl, col, _ in CANDIDATES]
        else:
            tests[q] = [_test(scope, lbl, col, form, spec) for lbl, col, form in CANDIDATES]
    pairs: list[PairReport] = []
    estimates: dict[tuple[str, str], dict | None] = {}
    for q, g in claims.groupby("question_id"):
        scope = scopes.get(q)
        for (_, a), (_, b) in itertools.combinations(g.sort_values("study_id").iterrows(), 2):
            kind = OPPOSITE.get(frozenset({a["direction"], b["direction"]}))
            if kind is None or a["study_id"] == b["study_id"]:
                continue
            for s in (a["study_id"], b["study_id"]):
                if (q, s) not in estimates:
                    estimates[(q, s)] = study_estimate(scope, s, spec) if scope is not None and len(scope) else None
            ga = scope[scope["study"] == a["study_id"]] if scope is not None else effects.iloc[0:0]
            gb = scope[scope["study"] == b["study_id"]] if scope is not None else effects.iloc[0:0]
            diffs = _differences(st.loc[a["study_id"]] if a["study_id"] in st.index else pd.Series(dtype=object),
                                 st.loc[b["study_id"]] if b["study_id"] in st.index else pd.Series(dtype=object), ga, gb)
            if len(ga) and len(gb):
                ra, rb = ga["high_risk"].mean(), gb["high_risk"].mean()
                if ra != rb:
                    diffs["share of high-risk results (data)"] = (f"{ra:.0%}", f"{rb:.0%}")
            expl, explained_by = [], []
            sa = st.loc[a["study_id"]] if a["study_id"] in st.index else pd.Series(dtype=object)
            sb = st.loc[b["study_id"]] if b["study_id"] in st.index else pd.Series(dtype=object)
            for t in tests[q]:
                differs = _pair_differs(t.column, sa, sb, ga, gb)
                if not t.testable:
                    status = f"untestable ({t.reason})"
                elif t.significant and differs:
                    status = "explains"
                    explained_by.append(t.label)
                elif t.significant and differs is None:
                    status = "significant moderator; the pair's coding on it is unknown"
                elif t.significant:
                    status = "significant moderator, but the pair does not differ on it"
                else:
                    status = "tested, not significant"
                expl.append({"candidate": t.label, "differs": differs, "status": status, "pval": t.pval if t.testable else None,
                             "n_studies": t.n_studies})
            if explained_by:
                verdict = "explained by " + ", ".join(explained_by)
            elif any(e["status"].startswith("significant moderator; the pair") for e in expl):
                maybe = [e["candidate"] for e in expl if e["status"].startswith("significant moderator; the pair")]
                verdict = f"unexplained: {', '.join(maybe)} could explain it, but the pair's coding on it is unknown"
            else:
                verdict = "unexplained by the tested moderators"
            pairs.append(PairReport(
                q, str(a["question"]), kind, a["study_id"], a["direction"], a["position"], b["study_id"], b["direction"], b["position"],
                estimates[(q, a["study_id"])], estimates[(q, b["study_id"])], diffs, expl, explained_by, not explained_by, verdict,
            ))
    return ContradictionReport(pairs, tests, list(table.notes))
