"""``crev meta answer --emit-r DIR``: one R script per estimable (question, evaluation kind), and an index.

Each pooled answer is the default model (:func:`~metaanalysis.analysis.run_analysis`) over the
question's scope and one evaluation kind (threat model × adversarial training × attack family). The
rows are rebuilt from the effect table exactly as :func:`metaanalysis.answers.answer` selects them,
refitted with the answer's own spec, and the refit must give the answer's estimate and SE (else
emission stops, naming the kind): the script is the fit the answer printed, not a look-alike.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pandas as pd

from ..analysis import AnalysisSpec, run_analysis
from ..models.uni import MetaInputError
from ..rigour import attack_family
from .emit import emit_r
from .recipe import Provenance, recipe_from_analysis

__all__ = ["ANSWER_INDEX", "kind_rows", "emit_answers_r"]

ANSWER_INDEX = "index.md"


def kind_rows(effects: pd.DataFrame, question, kind) -> pd.DataFrame:
    """The effects of ``question``'s scope and evaluation ``kind`` (as :func:`metaanalysis.answers.answer` groups them)."""
    df = effects.assign(attack_family=attack_family(effects["attack"]))
    sc = question.scope
    mask = pd.Series(True, index=df.index)
    for col, values in (("compression_family", sc.families), ("adversarial_training", sc.adversarial_training),
                        ("threat_model", sc.result_threat_models())):
        if values:
            mask &= df[col].astype(str).isin([str(v) for v in values])
    mask &= (df["threat_model"].astype(str) == kind.threat_model) & (df["adversarial_training"].astype(str) == kind.adversarial_training)
    mask &= df["attack_family"].astype(str) == kind.attack_family
    return df[mask]


def _one_question(command: str, question: str) -> str:
    """The answer command narrowed to one question: a kind's script comes from ``--question`` that question."""
    args = shlex.split(command)
    kept = [a for i, a in enumerate(args) if a != "--question" and (i == 0 or args[i - 1] != "--question")]
    return shlex.join([*kept, "--question", question])


def _slug(*parts) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", str(p)) for p in parts)


def emit_answers_r(table, answers, provenance: Provenance, out_dir: str | Path, spec: AnalysisSpec | None = None) -> Path:
    """Write ``<question>/<kind>/analysis.R`` (+ table and crev's numbers) for every kind with a pooled
    number, and ``index.md`` saying, for every kind, where its script is or why it has none."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = (spec or AnalysisSpec()).replace(component_tests=False, mods=None)
    lines = ["# R scripts of `crev meta answer`", "", *(f"- {x}" for x in provenance.lines()), ""]
    for qa in answers.questions:
        lines.append(f"## {qa.question.value}: {qa.text}")
        if not qa.kinds:
            lines.append("- not measurable with the evidence's fields, or no effects in scope")
        for k in qa.kinds:
            label = f"{k.kind.threat_model} / AT {k.kind.adversarial_training} / {k.kind.attack_family}"
            if k.estimate is None:
                lines.append(f"- {label}: no pooled number ({k.verdict}); no script")
                continue
            g = kind_rows(table.effects, qa.question, k.kind).reset_index(drop=True)
            an = run_analysis(g, spec)
            c = an.fit.coefficients[0]
            if abs(c.estimate - k.estimate) > 1e-9 * max(1.0, abs(k.estimate)) or abs(c.se - k.se) > 1e-9 * max(1.0, k.se):
                raise MetaInputError(f"cannot rebuild the rows of {qa.question.value} / {label}: the refit gives {c.estimate!r} "
                                     f"(SE {c.se!r}), the answer {k.estimate!r} (SE {k.se!r})")
            sub = Path(_slug(qa.question.value)) / _slug(k.kind.threat_model, k.kind.adversarial_training, k.kind.attack_family)
            prov = Provenance(provenance.evidence, _one_question(provenance.command, qa.question.value),
                              f"{provenance.filters}; question {qa.question.value}, kind {label}", provenance.crev)
            emit_r(recipe_from_analysis(an), prov, out / sub)
            state = "estimable" if k.estimable else "pooled but not called estimable"
            lines.append(f"- {label}: `{sub / 'analysis.R'}` ({state}; k = {k.k}, {k.n_studies} studies)")
        lines.append("")
    (out / ANSWER_INDEX).write_text("\n".join(lines))
    return out / ANSWER_INDEX
