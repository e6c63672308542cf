"""``crev meta``: meta-analysis over the evidence database or over any effect table (CSV)."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Optional

import pandas as pd
import typer

# Only what `run --input FILE.csv` needs is imported here; the database commands import the
# evidence store, the analyses and the plots inside their bodies (issue 13: a CSV fit never waits
# for sqlalchemy or plotly; check with `python -X importtime -m crev_cli meta run --input ...`).
from .models.design import design_matrix
from .models.multilevel import MULTILEVEL_METHODS, rma_mv
from .models.robust import robust
from .models.structure import DEFAULT_RANDOM, EFFECT_LEVEL, parse_random, random_structure
from .models.uni import METHODS, MetaInputError, rma_uni

__all__ = ["app"]

app = typer.Typer(help="Meta-analysis: pooled effects, heterogeneity, moderators, bias, contradictions.", no_args_is_help=True)


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def _assume_n(text: str):
    if text in ("none", ""):
        return None
    if text == "dataset":
        return "dataset"
    try:
        return int(text)
    except ValueError:
        _fail(f"--assume-n must be none, dataset or a whole number, not {text!r}")


class _Opts:
    """The options every database command shares (filters and effect settings). The filter, the
    settings and the database are built on first use, so `run --input` opens no database."""

    def __init__(self, db, study, dataset, family, threat, adv, attack, eps_min, eps_max, sparsity_min, sparsity_max, bits_min, bits_max,
                 effect, assume_n, correlation, release=None):
        self.db, self.study = db, list(study)
        self.release, self.release_package = release, None
        self._filter_args = dict(study_ids=study, datasets=dataset, families=family, threat_models=threat, adversarial_training=adv,
                                 attacks=attack, eps_min=eps_min, eps_max=eps_max, sparsity_min=sparsity_min, sparsity_max=sparsity_max,
                                 bits_min=bits_min, bits_max=bits_max)
        self._settings_args = dict(measure=effect, correlation=correlation, assume_n=_assume_n(assume_n))

    @functools.cached_property
    def filt(self):
        from evidence import ResultFilter

        return ResultFilter(**self._filter_args)

    @functools.cached_property
    def settings(self):
        from .effects import EffectSettings

        return EffectSettings(**self._settings_args)

    @functools.cached_property
    def engine(self):
        from evidence import get_engine, upgrade_schema

        _ = (self.filt, self.settings)  # bad filters or settings fail before the database is touched
        if self.release:  # pinned: an in-memory database holding exactly the release's rows
            from evidence.releases import release_engine

            engine, self.release_package = release_engine(self.release)
            return engine
        engine = get_engine(self.db)
        upgrade_schema(engine)
        return engine

    def evidence_used(self) -> dict:
        """Which evidence a command read: the pinned release and its content hash, or the live database."""
        pinned = self.release_package
        if pinned is not None:
            return {"release": pinned.version, "content_hash": pinned.content_hash}
        return {"release": None, "database": "live database (not pinned to a release)"}

    def evidence_line(self) -> str:
        used = self.evidence_used()
        if used["release"]:
            return f"evidence: release {used['release']} ({used['content_hash']})"
        return "evidence: the live database (not pinned to a release; see --release)"

    def snapshot(self):
        from .data import load_snapshot

        return load_snapshot(self.engine, self.filt)

    def table(self):
        from .effects import compute_effects

        t = compute_effects(self.snapshot().results, self.settings)
        if len(t) < 2:
            _fail(f"{len(t)} effect(s) after filtering ({len(t.excluded)} rows excluded: "
                  + ("; ".join(f"{r} ×{n}" for r, n in t.excluded['reason'].value_counts().items()) or "none") + ")")
        return t


def _db_options(fn):
    """Decorator adding the shared filter and effect options to a command."""
    import inspect

    extra = [
        ("db", Optional[str], typer.Option(None, "--db", help="Database URL (default: $CREV_DB or the SQLite file).")),
        ("study", list[str], typer.Option([], "--study", help="Study id (repeatable).")),
        ("dataset", list[str], typer.Option([], "--dataset")),
        ("family", list[str], typer.Option([], "--family", help="unstructured_pruning, structured_pruning, quantization, ...")),
        ("threat", list[str], typer.Option([], "--threat", help="white_box, transfer, black_box_query, certified")),
        ("adv", list[str], typer.Option([], "--adv", help="Adversarial training: yes, no, both, unknown")),
        ("attack", list[str], typer.Option([], "--attack")),
        ("eps_min", Optional[float], typer.Option(None, "--eps-min")),
        ("eps_max", Optional[float], typer.Option(None, "--eps-max")),
        ("sparsity_min", Optional[float], typer.Option(None, "--sparsity-min")),
        ("sparsity_max", Optional[float], typer.Option(None, "--sparsity-max")),
        ("bits_min", Optional[int], typer.Option(None, "--bits-min")),
        ("bits_max", Optional[int], typer.Option(None, "--bits-max")),
        ("effect", str, typer.Option("delta_robust", "--effect", help="delta_robust, log_odds_ratio or delta_retention")),
        ("assume_n", str, typer.Option("none", "--assume-n", help="n_test where missing: none (exclude), dataset, or a number (flagged)")),
        ("correlation", float, typer.Option(0.0, "--correlation", help="Correlation of dense and compressed accuracies (default 0, conservative)")),
        ("release", Optional[str], typer.Option(None, "--release", help="Pin the analysis to an evidence release (version or folder; see "
                                                "`crev evidence release`) instead of the live database.")),
    ]
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.name != "opts"]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a) for n, a, d in extra]

    @functools.wraps(fn)
    def wrapper(**kw):
        shared = {n: kw.pop(n) for n, _, _ in extra}
        try:
            return fn(opts=_Opts(**shared), **kw)
        except Exception as exc:
            if isinstance(exc, MetaInputError) or _is_evidence_error(exc):  # what the user can fix: one line, exit 2
                _fail(str(exc))
            raise  # anything else (a ValueError from numpy, pandas or torch) is a bug: its traceback is shown

    wrapper.__signature__ = sig.replace(parameters=params)
    return wrapper


def _is_evidence_error(exc: Exception) -> bool:
    """Whether exc is one of the evidence store's errors (only possible once the store is imported)."""
    errors = sys.modules.get("evidence.errors")
    return errors is not None and isinstance(exc, errors.EvidenceError)


def _read_table(path: Path, cols: list[str]) -> pd.DataFrame:
    import pyarrow
    import pyarrow.csv

    if not path.exists():
        _fail(f"{path}: no such file")
    try:
        # Arrow's CSV reader, serially on this thread: faster than pandas' C engine on 1,000,000 rows,
        # and no reader thread is left running when a malformed file ends the program (pandas'
        # threaded engine="pyarrow" then aborts the interpreter at exit, status 134, about 1 run in 60).
        df = pyarrow.csv.read_csv(path, read_options=pyarrow.csv.ReadOptions(use_threads=False)).to_pandas()
    except (pyarrow.ArrowException, UnicodeDecodeError) as exc:
        _fail(f"{path}: not a readable CSV file ({exc})")
    missing = [c for c in cols if c and c not in df.columns]
    if missing:
        _fail(f"{path}: missing column(s) {', '.join(missing)} (have {', '.join(df.columns)})")
    return df


def _cell(value) -> str:
    """A cell as an error message shows it: ``empty``, or its value as written (no numpy repr)."""
    if pd.isna(value):
        return "empty"
    return repr(value.item() if hasattr(value, "item") else value)


def _robust_choice(text: str | None) -> str | None:
    return "auto" if text in (None, "", "auto") else None if text == "none" else text


def _run_input(input_: Path, yi: str, vi: str, random_text, study, cluster, mods, method, knha, test, robust_col, robust_kind, as_json,
               profile_ci=False, omnibus="HTZ", emit_dir: Path | None = None):
    command = _input_command(input_, yi, vi, random_text, study, cluster, mods, method, knha, test, robust_col, robust_kind, profile_ci, omnibus)
    robust_col = _robust_choice(robust_col)
    if random_text:
        levels = parse_random(random_text)
    elif study:
        levels = (study,) + ((cluster,) if cluster else ())
    else:
        if cluster:
            _fail("--cluster needs --study (the model is random = ~ 1 | study/cluster); or give --random a/b/c")
        levels = ()
    df = _read_table(input_, [yi, vi, *(c for c in levels if c != EFFECT_LEVEL), robust_col if robust_col not in (None, "auto") else ""])
    y = pd.to_numeric(df[yi], errors="coerce")
    if y.isna().any():
        bad = int(y.isna().idxmax()) + 1
        _fail(f"{input_}: column {yi} is not numeric (row {bad}: {_cell(df[yi].iloc[bad - 1])})")
    v = pd.to_numeric(df[vi], errors="coerce")
    if v.isna().any() or (v <= 0).any():
        bad = int((v.isna() | (v <= 0)).idxmax()) + 1
        _fail(f"{input_}: column {vi} must be positive numbers (row {bad}: {_cell(df[vi].iloc[bad - 1])})")
    if len(df) < 2:
        _fail(f"{input_}: need at least 2 effects, have {len(df)}")
    design = design_matrix(df, mods)
    if design.dropped_reason:
        _fail(f"{input_}: {design.dropped_reason} in {int((~design.rows).sum())} row(s)")
    y, v = y.to_numpy(float), v.to_numpy(float)
    if levels:
        if method.upper() not in MULTILEVEL_METHODS:
            _fail(f"the multilevel model (--random/--study) is fitted by {' or '.join(MULTILEVEL_METHODS)}")
        df, levels, _ = random_structure(df, levels, simplify=False)
        outer = levels[0]
        if robust_col == "auto":
            robust_col = outer if df[outer].nunique() > design.X.shape[1] else None
        t = "t" if (knha or test in ("auto", "t")) else "z"
        fit = rma_mv(y, v, X=design.X, names=design.names, random=[df[c] for c in levels], random_names=list(levels), method=method,
                     test="z" if robust_col else t, dfs="contain", component_tests=True, profile_ci=profile_ci)
    else:
        robust_col = None if robust_col == "auto" else robust_col
        fit = rma_uni(y, v, design.X, design.names, method=method, knha=knha or test == "t")
    if robust_col:
        fit = robust(fit, y, v, design.X, df[robust_col], kind=robust_kind, omnibus=omnibus)
    if emit_dir is not None:
        mv_test = "t" if (knha or test in ("auto", "t")) else "z"
        _emit_input(emit_dir, input_, fit, df, design, tuple(levels), command, method=method, test=mv_test if levels else ("knha" if knha or test == "t" else "z"),
                    robust_col=robust_col, omnibus=omnibus, yi=yi, vi=vi)
    typer.echo(fit.to_json() if as_json else fit.summary())


def _input_command(input_, yi, vi, random_text, study, cluster, mods, method, knha, test, robust_col, robust_kind, profile_ci, omnibus) -> str:
    """The ``crev meta run --input ...`` command of a table fit (the options given, not their defaults)."""
    import shlex

    args = ["crev", "meta", "run", "--input", str(input_)]
    for opt, value, default in (("--yi", yi, "yi"), ("--vi", vi, "vi"), ("--random", random_text, None), ("--study", study, None),
                                ("--cluster", cluster, None), ("--mods", mods, None), ("--method", method, "REML"), ("--test", test, "auto"),
                                ("--robust", robust_col, None), ("--robust-kind", robust_kind, "CR2"), ("--omnibus", omnibus, "HTZ")):
        if value is not None and value != default:
            args += [opt, str(value)]
    args += [flag for flag, on in (("--knha", knha), ("--profile-ci", profile_ci)) if on]
    return shlex.join(args)


def _emit_input(emit_dir: Path, input_: Path, fit, df, design, levels, command: str, *, method, test, robust_col, omnibus, yi, vi) -> None:
    """--emit-r for a fit of an input table: the rows it used, analysis.R and crev's numbers."""
    import hashlib

    from .rscript import Provenance, emit_r, recipe_for

    digest = hashlib.sha256(input_.read_bytes()).hexdigest()
    recipe = recipe_for(fit, df, design, levels, method=method, test=test, robust_cluster=robust_col, omnibus=omnibus, yi=yi, vi=vi)
    out = emit_r(recipe, Provenance(f"input file {input_.name} (sha256 {digest})", command), emit_dir)
    typer.echo(f"wrote {out.script} and {out.data}: run `Rscript {out.script}`", err=True)


def _with_methods(text: str, suffix: str, table, opts, emit_dir: Path | None) -> str:
    """The report with the methods paragraph of its pooled model (the default analysis) added; --emit-r writes that model's R script."""
    import html as _html

    from .analysis import AnalysisSpec, run_analysis
    from .methods import methods_text
    from .rscript import command_for

    try:
        an = run_analysis(table, AnalysisSpec(component_tests=False))
    except MetaInputError as exc:
        note = f"no pooled model, so no methods paragraph: {exc}"
        return json.dumps({**json.loads(text), "methods": None, "methods_note": note}, indent=1) if suffix == ".json" else text
    if emit_dir is not None:
        _emit_analysis(emit_dir, an, opts)
    m = methods_text(an, _provenance(opts, command_for("run", an.spec, opts.filt, opts.settings, opts.release)), opts.settings)
    if suffix == ".json":
        return json.dumps({**json.loads(text), "methods": m.to_dict()}, indent=1)
    if suffix == ".md":
        return text.rstrip("\n") + "\n\n## Methods\n\n" + m.text().replace("References\n", "**References**\n\n") + "\n"
    block = "<h2>Methods</h2>\n<p>" + _html.escape(" ".join(getattr(m, p) for p in m.PARTS)) + "</p>\n<ul>" + "".join(
        f"<li>{_html.escape(r)}</li>" for r in m.references) + "</ul>\n"
    return text.replace("</body>", block + "</body>", 1) if "</body>" in text else text + block


def _provenance(opts, command: str):
    from .rscript import Provenance, describe_filters, evidence_text

    used = opts.evidence_used()
    return Provenance(evidence_text(used["release"], used.get("content_hash")), command, describe_filters(opts.filt, opts.settings))


def _emit_answers(emit_dir: Path, table, ans, opts, questions) -> None:
    """--emit-r for `meta answer`: a script per pooled answer and an index."""
    import shlex

    from .rscript import command_for
    from .rscript.answers import emit_answers_r

    command = command_for("answer", None, opts.filt, opts.settings, opts.release)
    command += "".join(f" --question {shlex.quote(q)}" for q in questions)
    index = emit_answers_r(table, ans, _provenance(opts, command), emit_dir)
    typer.echo(f"wrote {index} and one analysis.R per pooled answer", err=True)


def _emit_bias(emit_dir: Path, table, rep, opts) -> None:
    """--emit-r for `meta bias`: the selection model's script where it ran, and an index of what has none."""
    from .bias.pubbias import study_aggregates
    from .bias.selection import SelectionModelResult
    from .rscript import command_for, emit_selection_r

    emit_dir.mkdir(parents=True, exist_ok=True)
    prov = _provenance(opts, command_for("bias", None, opts.filt, opts.settings, opts.release))
    lines = ["# R scripts of `crev meta bias`", "", *(f"- {x}" for x in prov.lines()), ""]
    for a in rep.assessments:
        if isinstance(a.result, SelectionModelResult):
            emit_selection_r(study_aggregates(table), a.result, prov, emit_dir / "selection_model")
            lines.append(f"- {a.method}: `selection_model/analysis.R`")
        else:
            lines.append(f"- {a.method}: " + ("no R script from crev yet" if a.assessable else f"not assessable ({a.verdict}); no script"))
    (emit_dir / "index.md").write_text("\n".join(lines) + "\n")
    typer.echo(f"wrote {emit_dir / 'index.md'}", err=True)


def _emit_analysis(emit_dir: Path, an, opts, subcommand: str = "run") -> None:
    """--emit-r for a database fit: the effect table it used, analysis.R and crev's numbers."""
    from .rscript import command_for, emit_r, recipe_from_analysis

    prov = _provenance(opts, command_for(subcommand, an.spec, opts.filt, opts.settings, opts.release))
    out = emit_r(recipe_from_analysis(an), prov, emit_dir)
    typer.echo(f"wrote {out.script} and {out.data}: run `Rscript {out.script}`", err=True)


@app.command()
@_db_options
def run(
    input_: Optional[Path] = typer.Option(None, "--input", help="Fit an effect table (CSV) instead of the database."),
    yi: str = typer.Option("yi", "--yi"),
    vi: str = typer.Option("vi", "--vi"),
    random_text: Optional[str] = typer.Option(None, "--random", help='Nested random effects, outer to inner, e.g. "study/cluster/es" '
                                              '(es: one unit per effect, added when missing). Database default: study/cluster/es.'),
    cluster: Optional[str] = typer.Option(None, "--cluster", help="Shorthand: with --input, --study COL --cluster COL is --random COL/COL. "
                                          "Database: the inner level column (random study/COL/es; 'none' for study/es)."),
    mods: Optional[str] = typer.Option(None, "--mods", help='Moderators, e.g. "family + sparsity + sparsity^2".'),
    method: str = typer.Option("REML", "--method", help=f"One of {', '.join(METHODS)} (multilevel: {' or '.join(MULTILEVEL_METHODS)})."),
    model: str = typer.Option("multilevel", "--model", help="Database: multilevel (default), random, common."),
    knha: bool = typer.Option(False, "--knha", help="t tests: Knapp-Hartung (rma.uni), df from the studies (multilevel, dfs='contain')."),
    test: str = typer.Option("auto", "--test", help="auto (t with study-based df on multilevel models), t, or z."),
    robust_col: Optional[str] = typer.Option(None, "--robust", help="Cluster-robust inference over this column; 'none' to turn off. "
                                             "Default: CR2 by study (outermost level) for a multilevel model with >= 2 studies."),
    robust_kind: str = typer.Option("CR2", "--robust-kind", help="CR2 (clubSandwich, default), CR1 or CR0."),
    as_json: bool = typer.Option(False, "--json"),
    effects_out: Optional[Path] = typer.Option(None, "--effects-out", help="Also write the effect table (CSV, metafor-ready)."),
    profile_ci: bool = typer.Option(False, "--profile-ci", help="Multilevel: profile-likelihood CI of each sigma^2 (metafor confint)."),
    emit_r: Optional[Path] = typer.Option(None, "--emit-r", help="Also write DIR/analysis.R (the same fit in R's metafor/clubSandwich), "
                                          "DIR/effects.csv (the rows it used) and DIR/crev_results.json; needs no R."),
    omnibus: str = typer.Option("HTZ", "--omnibus", help="CR2 test of several moderators: HTZ (clubSandwich, default) or naive-F "
                                "(F(m, J - p), over-rejects with few clusters)."),
    opts=None,
):
    """Fit a model: over the database (filters as options) or over --input FILE.csv."""
    if omnibus not in ("HTZ", "naive-F"):
        _fail(f"--omnibus is HTZ or naive-F, not {omnibus!r}")
    if input_ is not None:
        # with --input, --study names the study column of the file
        study = opts.study[0] if opts.study else None  # the raw option: opts.filt would import the evidence store
        _run_input(input_, yi, vi, random_text, study, cluster, mods, method, knha, test, robust_col, robust_kind, as_json, profile_ci, omnibus,
                   emit_r)
        return
    from .analysis import AnalysisSpec, run_analysis

    table = opts.table()
    if random_text:
        levels = parse_random(random_text)
    elif cluster == "none":
        levels = ("study", EFFECT_LEVEL)
    elif cluster:
        levels = ("study", cluster, EFFECT_LEVEL)
    else:
        levels = DEFAULT_RANDOM
    choice = _robust_choice(robust_col)
    spec = AnalysisSpec(model=model, method=method, mods=mods, knha=knha, test=test, random=levels, profile_ci=profile_ci, omnibus=omnibus,
                        robust=robust_kind if choice not in (None, "auto") else choice, robust_cluster=choice if choice not in (None, "auto") else "study")
    an = run_analysis(table, spec)
    if emit_r is not None:
        _emit_analysis(emit_r, an, opts)
    if effects_out:
        table.to_csv(effects_out)
    if as_json:
        typer.echo(json.dumps({**an.to_dict(), "evidence": opts.evidence_used()}, indent=1))
    else:
        typer.echo(opts.evidence_line() + "\n" + an.summary() + "\n\n" + table.summary())


@app.command()
@_db_options
def methods(mods: Optional[str] = typer.Option(None, "--mods", help='Moderators, e.g. "family + sparsity".'),
            method: str = typer.Option("REML", "--method"),
            model: str = typer.Option("multilevel", "--model", help="multilevel (default), random, common."),
            random_text: Optional[str] = typer.Option(None, "--random", help="Nested random effects, outer to inner (default study/cluster/es)."),
            knha: bool = typer.Option(False, "--knha"),
            robust_col: Optional[str] = typer.Option(None, "--robust", help="Cluster column, or 'none'; default CR2 by study."),
            robust_kind: str = typer.Option("CR2", "--robust-kind"),
            omnibus: str = typer.Option("HTZ", "--omnibus", help="HTZ (default) or naive-F."),
            with_bias: bool = typer.Option(True, "--bias/--no-bias", help="Run the publication-bias methods and describe them."),
            as_json: bool = typer.Option(False, "--json"), opts=None):
    """The methods paragraph of the analysis `meta run` would fit with these options (data, model, inference,
    estimability rules, bias analyses, software, references), generated from the objects that ran it."""
    from .analysis import AnalysisSpec, run_analysis
    from .methods import methods_text
    from .rscript import command_for

    choice = _robust_choice(robust_col)
    spec = AnalysisSpec(model=model, method=method, mods=mods, knha=knha, random=parse_random(random_text) if random_text else DEFAULT_RANDOM,
                        robust=robust_kind if choice not in (None, "auto") else choice,
                        robust_cluster=choice if choice not in (None, "auto") else "study", omnibus=omnibus)
    table = opts.table()
    an = run_analysis(table, spec)
    rep = None
    if with_bias:
        from .bias.pubbias import bias_report

        rep = bias_report(table, method=method)
    text = methods_text(an, _provenance(opts, command_for("run", spec, opts.filt, opts.settings, opts.release)), opts.settings, bias=rep)
    typer.echo(json.dumps(text.to_dict(), indent=1) if as_json else text.text())


@app.command()
@_db_options
def answer(as_json: bool = typer.Option(False, "--json"), question: list[str] = typer.Option([], "--question", help="Only this question (repeatable)."),
           emit_r: Optional[Path] = typer.Option(None, "--emit-r", help="Also write DIR/<question>/<kind>/analysis.R for every pooled "
                                                 "answer (metafor/clubSandwich) and DIR/index.md; needs no R."),
           opts=None):
    """The answer to each disputed question per evaluation kind (threat model x adversarial training x attack family):
    pooled effect with CI and prediction interval, studies, leave-one-study-out range and a verdict."""
    from .answers import answer as answer_questions

    table = opts.table()
    ans = answer_questions(table, questions=question or None)
    if emit_r is not None:
        _emit_answers(emit_r, table, ans, opts, question)
    typer.echo(json.dumps({**ans.to_dict(), "evidence": opts.evidence_used()}, indent=1) if as_json
               else opts.evidence_line() + "\n" + ans.summary())


@app.command()
@_db_options
def contradictions(as_json: bool = typer.Option(False, "--json"), markdown: bool = typer.Option(False, "--markdown"),
                   out: Optional[Path] = typer.Option(None, "--out"),
                   correction: str = typer.Option("holm", "--correction", help="holm (family-wise) or fdr_bh (false discovery rate)."),
                   alpha: float = typer.Option(0.05, "--alpha", help="Family-wise error rate (holm) or false discovery rate (fdr_bh)."),
                   opts=None):
    """Every pair of contradicting claims judged on its own evidence: explained, consistent with, unexplained, not assessable."""
    from .contradictions import contradiction_report
    from .effects import compute_effects

    snap = opts.snapshot()
    rep = contradiction_report(compute_effects(snap.results, opts.settings), snap.studies, snap.claims, correction=correction, alpha=alpha)
    text = rep.to_json() if as_json else rep.to_markdown() if markdown else rep.summary() + "\n" + rep.to_frame().to_string(index=False)
    if out:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)
    else:
        typer.echo(text)


@app.command()
@_db_options
def report(out: Path = typer.Option(..., "--out", help="FILE.html (plots inline), FILE.md or FILE.json"),
           with_multiverse: bool = typer.Option(False, "--multiverse", help="Add the specification curve (all filtered results)."),
           workers: int = typer.Option(2, "--workers", help="Parallel worker processes for the multiverse."),
           correction: str = typer.Option("holm", "--correction", help="holm or fdr_bh, over every test of the report."),
           emit_r: Optional[Path] = typer.Option(None, "--emit-r", help="Also write DIR/analysis.R of the report's pooled model "
                                                 "(metafor/clubSandwich) with its effect table; needs no R."),
           opts=None):
    """The contradiction report with bias per question and what the evidence cannot tell yet (HTML, Markdown or JSON),
    with the methods paragraph of its pooled model."""
    from .effects import compute_effects
    from .report import build_report

    if out.suffix not in (".html", ".md", ".json"):
        _fail(f"{out}: the report is written as .html, .md or .json")
    snap = opts.snapshot()
    mv = None
    if with_multiverse:
        from .multiverse import multiverse as run_multiverse

        mv = run_multiverse(snap.results, workers=workers)
    table = compute_effects(snap.results, opts.settings)
    doc = build_report(table, snap.studies, snap.claims, correction=correction, multiverse=mv)
    text = doc.to_html() if out.suffix == ".html" else doc.to_json() if out.suffix == ".json" else doc.to_markdown()
    text = _with_methods(text, out.suffix, table, opts, emit_r)
    # the document records the evidence it was built from (a pinned release and its hash, or the live database)
    if out.suffix == ".json":
        text = json.dumps({**json.loads(text), "evidence": opts.evidence_used()}, indent=1)
    elif out.suffix == ".md":
        text = f"_{opts.evidence_line()}_\n\n" + text
    elif "<body>" in text:
        import html as _html

        text = text.replace("<body>", f"<body>\n<p><em>{_html.escape(opts.evidence_line())}</em></p>", 1)
    out.write_text(text, encoding="utf-8")
    typer.echo(doc.contradictions.summary())
    typer.echo(f"wrote {out}")


@app.command()
@_db_options
def multiverse(question: Optional[str] = typer.Option(None, "--question", help="Only the results in this question's scope."),
               workers: int = typer.Option(2, "--workers", help="Parallel worker processes (joblib)."),
               as_json: bool = typer.Option(False, "--json"),
               figure: Optional[Path] = typer.Option(None, "--figure", help="Write the specification curve (.png, .svg or .pdf)."),
               csv: Optional[Path] = typer.Option(None, "--csv", help="Write one row per specification."),
               opts=None):
    """The default model under every defensible choice (attack family, epsilon bucket, threat model, assumed n, rho, effect,
    high-risk rows): the specification curve and the share of specifications whose CI excludes zero. The filters apply;
    --effect, --assume-n and --correlation do not (the multiverse varies them)."""
    from .multiverse import multiverse as run_multiverse

    results = opts.snapshot().results
    if question:
        from evidence.vocab import Question

        from .contradictions import question_scope

        try:
            q = Question(question)
        except ValueError:
            _fail(f"--question must be one of {', '.join(x.value for x in Question)}, not {question!r}")
        results = question_scope(results, q)
        if results is None:
            _fail(f"no result in the database measures question {question!r}")
    mv = run_multiverse(results, workers=workers)
    if csv:
        mv.to_frame().to_csv(csv, index=False)
    if figure:
        mv.figure().savefig(figure, dpi=120, bbox_inches="tight")
    typer.echo(json.dumps(mv.to_dict(), indent=1) if as_json else mv.summary())
    for path in (csv, figure):
        if path:
            typer.echo(f"wrote {path}", err=True)


@app.command()
@_db_options
def plot(kind: str = typer.Argument(..., help="forest, funnel, bubble or dose"), out: Path = typer.Option(..., "--out", help="FILE.png, .svg, .pdf or .html"),
         x: str = typer.Option("sparsity", "--x", help="Moderator for bubble and dose plots."), method: str = typer.Option("REML", "--method"),
         opts=None):
    """Draw a plot of the filtered evidence to a file (headless)."""
    from .analysis import AnalysisSpec, per_study, run_analysis
    from .dose import dose_response
    from .bias.funnel import egger_test
    from .plots import StaticExportError, bubble_figure, dose_figure, forest_figure, funnel_figure, save_figure

    table = opts.table()
    unit = "log odds ratio" if opts.settings.measure.value == "log_odds_ratio" else "percentage points"
    spec = AnalysisSpec(method=method)
    if kind == "forest":
        fig = forest_figure(per_study(table, spec), run_analysis(table, spec).fit, unit=unit)
    elif kind == "funnel":
        an = run_analysis(table, spec)
        eg = egger_test(table.effects["yi"], table.effects["vi"], method="FE", model="lm") if len(table) >= 3 else None
        fig = funnel_figure(table.effects["yi"], table.effects["vi"], an.fit.estimate, egger=eg, unit=unit)
    elif kind == "bubble":
        fig = bubble_figure(run_analysis(table, AnalysisSpec(method=method, mods=x)), x, unit=unit)
    elif kind == "dose":
        fig = dose_figure(dose_response(table, x, spec), unit=unit)
    else:
        _fail("plot kind must be forest, funnel, bubble or dose")
    try:
        save_figure(fig, out)
    except StaticExportError as exc:
        _fail(str(exc))
    typer.echo(f"wrote {out}")


@app.command()
@_db_options
def bias(method: str = typer.Option("REML", "--method"),
         row_level: bool = typer.Option(False, "--row-level", help="Also the row-level Egger/Begg/trim-and-fill (assume independent rows)."),
         as_json: bool = typer.Option(False, "--json"),
         emit_r: Optional[Path] = typer.Option(None, "--emit-r", help="Also write DIR/selection_model/analysis.R (metafor selmodel) "
                                               "where the selection model ran, and DIR/index.md; needs no R."),
         opts=None):
    """Publication bias for dependent effects: multilevel Egger (CR2 by study), PET-PEESE and the 3-parameter selection model on
    study aggregates, Mathur-VanderWeele sensitivity; each answers "not assessable with N studies" below its minimum."""
    from .bias.pubbias import bias_report

    table = opts.table()
    rep = bias_report(table, row_level=row_level, method=method)
    if emit_r is not None:
        _emit_bias(emit_r, table, rep, opts)
    typer.echo(json.dumps(rep.to_dict(), indent=1) if as_json else rep.summary())


@app.command()
@_db_options
def sensitivity(opts=None):
    """The default analysis with and without the high-risk results (evaluation rigour), and over the
    assumed correlation of dense and compressed accuracies (rho = 0, 0.5, 0.8, 0.9; exact paired counts kept)."""
    from .sensitivity import correlation_sensitivity, rigour_moderators, rigour_sensitivity
    from .effects import EffectMeasure

    table = opts.table()
    typer.echo(rigour_sensitivity(table).summary())
    typer.echo("\n" + rigour_moderators(table).summary())
    if opts.settings.measure == EffectMeasure.delta_robust:
        typer.echo("\n" + correlation_sensitivity(table).summary())


@app.command()
@_db_options
def votes(opts=None):
    """Vote counting of claimed directions with a sign test (weaker evidence, shown apart)."""
    from .votes import vote_count

    snap = opts.snapshot()
    typer.echo(vote_count(snap.studies, snap.claims).summary())


@app.command()
@_db_options
def reeval(opts=None):
    """How much reported robust accuracy exceeds independent AutoAttack re-evaluations."""
    from .reeval import reevaluation_gaps

    g = reevaluation_gaps(opts.snapshot().results)
    typer.echo(g.summary())
    if len(g.pairs):
        typer.echo(g.pairs[["method", "dataset", "architecture", "sparsity", "original_study", "reported", "reevaluated", "gap"]].to_string(index=False))


@app.command()
@_db_options
def effects(out: Path = typer.Option(..., "--out", help="CSV file (yi, vi, study, cluster, moderators)."), opts=None):
    """Write the effect table, ready for metafor, and list the excluded rows with their reasons."""
    from .effects import compute_effects

    t = compute_effects(opts.snapshot().results, opts.settings)
    t.to_csv(out)
    typer.echo(t.summary())
    typer.echo(f"wrote {out}")
