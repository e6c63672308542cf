"""``--emit-r``: the R script crev writes refits the same model with metafor / clubSandwich and
reproduces crev's numbers (every coefficient, SE, df, the omnibus test, PI, profile CIs) to 1e-6.
The tests that run R skip, saying why, where Rscript (or metafor / clubSandwich / jsonlite) is absent;
CI installs them (.ci/run)."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crev_cli import app
from metaanalysis.rscript import compare_results

HERE = Path(__file__).parent / "data" / "metafor"
runner = CliRunner()


def _r_ready() -> str | None:
    if shutil.which("Rscript") is None:
        return "Rscript is not installed (CI installs r-cran-metafor, r-cran-clubsandwich, r-cran-jsonlite)"
    probe = subprocess.run(["Rscript", "-e", "for (p in c('metafor', 'clubSandwich', 'jsonlite')) library(p, character.only = TRUE)"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"R lacks metafor, clubSandwich or jsonlite: {probe.stderr.strip()[-200:]}"


R_MISSING = _r_ready()
needs_r = pytest.mark.skipif(R_MISSING is not None, reason=R_MISSING or "")


def run_r(script: Path) -> dict:
    done = subprocess.run(["Rscript", str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((script.parent / "r_results.json").read_text())


def emit(tmp_path, name, args) -> tuple[dict, Path]:
    out = tmp_path / name
    r = runner.invoke(app, ["meta", "run", *args, "--json", "--emit-r", str(out)])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout), out


def unseen_data(seed: int = 7) -> pd.DataFrame:
    """Simulated effects no reference file holds: 16 studies, 1-4 clusters each, a three-level factor
    and a numeric moderator, unequal cluster sizes."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(16):
        u = rng.normal(0, 0.4)
        arm = ["pgd", "fgsm", "aa"][s % 3]
        for c in range(int(rng.integers(1, 5))):
            w = rng.normal(0, 0.2)
            for _ in range(int(rng.integers(1, 6))):
                x = rng.uniform(0, 1)
                vi = rng.uniform(0.01, 0.1)
                yi = 0.1 + {"pgd": 0.0, "fgsm": 0.3, "aa": -0.2}[arm] - 0.5 * x + u + w + rng.normal(0, np.sqrt(vi))
                rows.append({"paper": f"P{s:02d}", "model": f"m{c}", "attack": arm, "x": x, "yi": yi, "vi": vi})
    return pd.DataFrame(rows)


CSV_CASES = {
    # name: (csv under tests/data/metafor/data or None for the unseen data, options)
    "uni_reml_knha": ("bcg_rr.csv", ["--knha"]),
    "uni_dl_z": ("normand1999_md.csv", ["--method", "DL"]),
    "uni_reml_knha_mods": ("bcg_rr.csv", ["--knha", "--mods", "ablat + year"]),
    "three_level_mods_contain": ("assink2016_deltype.csv", ["--random", "study/esid", "--mods", "deltype + year", "--robust", "none"]),
    "three_level_profile_pi": ("konstantopoulos2011.csv", ["--random", "district/school", "--robust", "none", "--profile-ci"]),
    "four_level_mods_cr2_htz": ("nested4.csv", ["--random", "study/lab/cluster/es", "--mods", "g + x"]),
    "unseen_cr2_htz_m3": (None, ["--study", "paper", "--cluster", "model", "--mods", "attack + x", "--robust", "paper"]),
}


def _input(tmp_path, csv):
    if csv is None:
        p = tmp_path / "unseen.csv"
        unseen_data().to_csv(p, index=False)
        return p
    return HERE / "data" / csv


def test_emit_r_writes_the_rows_the_script_and_crevs_numbers_without_r(tmp_path):
    crev, out = emit(tmp_path, "e", ["--input", str(_input(tmp_path, None)), "--study", "paper", "--cluster", "model", "--mods", "attack + x",
                                     "--robust", "paper"])
    script = (out / "analysis.R").read_text()
    assert "# crev version:" in script and "# evidence: input file unseen.csv (sha256 " in script
    assert "# command: crev meta run --input" in script and "--mods 'attack + x'" in script
    assert 'dat$`attack` <- factor(dat$`attack`, levels = c("aa", "fgsm", "pgd"))' in script  # crev's reference level, stated
    assert "random = ~ 1 | `paper`/`model`" in script and 'Wald_test(fit, constraints = constrain_zero(c(2, 3, 4))' in script
    assert 'test = "HTZ"' in script and "coef_test(fit, vcov = \"CR2\"" in script
    table = pd.read_csv(out / "effects.csv")
    assert list(table.columns) == ["paper", "model", "attack", "x", "yi", "vi"] and len(table) == crev["k"]
    assert json.loads((out / "crev_results.json").read_text())["qm_test"] == "HTZ"


def test_a_large_cluster_makes_the_script_say_crev_used_the_o_k_form(tmp_path):
    from metaanalysis.analysis import AnalysisSpec, run_analysis
    from metaanalysis.rscript import Provenance, recipe_from_analysis, render_r

    rng = np.random.default_rng(3)
    sizes = [1600, 3, 4, 2, 5]
    d = pd.DataFrame({"study": np.repeat([f"s{i}" for i in range(5)], sizes), "yi": rng.normal(0, 1, sum(sizes)), "vi": 0.5})
    d["cluster"] = d["study"] + "-" + (np.arange(len(d)) % 7).astype(str)
    an = run_analysis(d, AnalysisSpec(component_tests=False))
    assert an.fit.extra["cr2_form"] == "symmetric"
    text = render_r(recipe_from_analysis(an), Provenance("live database", "crev meta run"))
    assert "1,600 effects (> 1,500): crev used its O(k) symmetric-root" in text and "clubSandwich's exact form" in text


@needs_r
@pytest.mark.parametrize("name", list(CSV_CASES))
def test_r_reproduces_crev_to_1e6(tmp_path, name):
    csv, args = CSV_CASES[name]
    crev, out = emit(tmp_path, name, ["--input", str(_input(tmp_path, csv)), *args])
    r = run_r(out / "analysis.R")
    assert compare_results(crev, r, tol=1e-6) == []
    if "coefficients" in crev:
        assert len(r["coefficients"]) == len(crev["coefficients"]) and r["qm_df"] is not None
    if name.endswith("htz") or name.endswith("m3"):
        assert r["qm_test"] == crev["qm_test"] == "HTZ" and r["qm_df"][0] >= 2


@needs_r
def test_a_database_fit_emits_its_evidence_and_filters_and_r_reproduces_it(tmp_path, seeded_url):
    crev, out = emit(tmp_path, "db", ["--db", seeded_url, "--family", "quantization", "--mods", "bits + attack"])
    script = (out / "analysis.R").read_text()
    assert "# evidence: live database (not pinned to a release)" in script
    assert "# filters: families = quantization" in script and "# command: crev meta run --family quantization --mods 'bits + attack'" in script
    table = pd.read_csv(out / "effects.csv")
    assert {"uid", "study", "cluster", "es", "bits", "attack", "yi", "vi"} <= set(table.columns) and len(table) == crev["k"]
    assert compare_results(crev, run_r(out / "analysis.R"), tol=1e-6) == []


@needs_r
@pytest.mark.parametrize("csv, alternative", [("hackshaw1998.csv", "greater"), ("bcg_rr_bias.csv", "less")])
def test_r_reproduces_the_selection_model(tmp_path, csv, alternative):
    from metaanalysis.bias.selection import step_selection_model
    from metaanalysis.rscript import SELECTION_FIELDS, Provenance, emit_selection_r

    d = pd.read_csv(HERE / "data" / csv)
    d["study"] = [f"s{i}" for i in range(len(d))]
    res = step_selection_model(d["yi"], d["vi"], alternative=alternative)
    out = emit_selection_r(d, res, Provenance(f"input file {csv}", "test"), tmp_path / "sel", what="one row per effect")
    assert 'alternative = "' + alternative + '"' in out.script.read_text()
    crev = json.loads(out.crev_results.read_text())
    r = run_r(out.script)
    # metafor's SE of delta comes from a numerical Hessian (numDeriv): it agrees to 1e-6 absolute, not relative
    assert compare_results(crev, r, tol=1e-6, fields=[f for f in SELECTION_FIELDS if f != "se_delta"]) == []
    assert r["se_delta"][0] is None and crev["se_delta"][1] == pytest.approx(r["se_delta"][1], abs=1e-6)


@needs_r
def test_answer_emits_one_script_per_pooled_kind_of_the_shipped_evidence(tmp_path, seeded_url):
    out = tmp_path / "ans"
    r = runner.invoke(app, ["meta", "answer", "--db", seeded_url, "--assume-n", "dataset", "--question", "robust_aware_pruning", "--json",
                            "--emit-r", str(out)])
    assert r.exit_code == 0, r.output
    kinds = {(k["kind"]["threat_model"], k["kind"]["adversarial_training"], k["kind"]["attack_family"]): k
             for q in json.loads(r.stdout)["questions"] for k in q["kinds"]}
    index = (out / "index.md").read_text()
    assert "# command: crev meta answer" not in index and "- command: crev meta answer --assume-n dataset --question robust_aware_pruning" in index
    script = out / "robust_aware_pruning" / "white_box-yes-other" / "analysis.R"
    assert "`robust_aware_pruning/white_box-yes-other/analysis.R`" in index and script.exists()
    assert "question robust_aware_pruning, kind white_box / AT yes / other" in script.read_text()
    crev = json.loads((script.parent / "crev_results.json").read_text())
    assert crev["estimate"] == pytest.approx(kinds[("white_box", "yes", "other")]["estimate"], rel=1e-9)
    assert compare_results(crev, run_r(script), tol=1e-6) == []


def test_bias_emit_r_indexes_every_method_and_says_which_have_no_script(tmp_path, seeded_url):
    out = tmp_path / "bias"
    r = runner.invoke(app, ["meta", "bias", "--db", seeded_url, "--emit-r", str(out)])
    assert r.exit_code == 0, r.output
    index = (out / "index.md").read_text()
    assert "- command: crev meta bias" in index
    assert "selection model (3PSM)" in index and ("selection_model/analysis.R" in index) == (out / "selection_model" / "analysis.R").exists()


def _unzip(data: bytes) -> dict[str, bytes]:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_the_apps_download_is_the_same_script_as_the_cli(tmp_path, seeded_url):
    """The Meta-analysis page's bundle for a spec equals `crev meta run --emit-r` for the command its header names."""
    import shlex

    from evidence import ResultFilter, get_engine
    from metaanalysis.analysis import AnalysisSpec, run_analysis
    from metaanalysis.data import load_snapshot
    from metaanalysis.effects import EffectSettings, compute_effects
    from metaanalysis.rscript import app_provenance, run_bundle

    f, settings = ResultFilter(families=["quantization"]), EffectSettings()
    spec = AnalysisSpec(mods="bits + attack", robust="CR2")  # what the page builds from its controls
    table = compute_effects(load_snapshot(get_engine(seeded_url), f).results, settings)
    prov = app_provenance("run", spec, f, settings)
    app_files = _unzip(run_bundle(run_analysis(table, spec), prov))
    assert set(app_files) == {"analysis.R", "effects.csv", "crev_results.json"}
    args = shlex.split(prov.command)[3:]  # the header's own command, run by the CLI
    r = runner.invoke(app, ["meta", "run", *args, "--db", seeded_url, "--json", "--emit-r", str(tmp_path / "cli")])
    assert r.exit_code == 0, r.output
    for name, content in app_files.items():
        assert (tmp_path / "cli" / name).read_bytes() == content, name


def test_the_overview_download_is_the_cli_answer_emission(tmp_path, seeded_url):
    from evidence import ResultFilter, get_engine
    from metaanalysis import answer
    from metaanalysis.data import load_snapshot
    from metaanalysis.effects import EffectSettings, compute_effects
    from metaanalysis.rscript import answers_bundle, app_provenance

    settings = EffectSettings(assume_n="dataset")
    table = compute_effects(load_snapshot(get_engine(seeded_url), ResultFilter()).results, settings)
    ans = answer(table, questions=["robust_aware_pruning"])
    files = _unzip(answers_bundle(table, ans, app_provenance("answer", None, ResultFilter(), settings)))
    r = runner.invoke(app, ["meta", "answer", "--db", seeded_url, "--assume-n", "dataset", "--question", "robust_aware_pruning",
                            "--emit-r", str(tmp_path / "cli")])
    assert r.exit_code == 0, r.output
    cli = {str(p.relative_to(tmp_path / "cli")): p.read_bytes() for p in (tmp_path / "cli").rglob("*") if p.is_file()}
    assert set(files) == set(cli) and "robust_aware_pruning/white_box-yes-other/analysis.R" in files
    for name in files:
        if name != "index.md":  # the CLI's index also names its --question option
            assert files[name] == cli[name], name


def test_the_meta_analysis_and_overview_pages_offer_the_r_script_and_the_methods_text(seeded_url, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CREV_DB", seeded_url)
    monkeypatch.setenv("CREV_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CREV_APP_PRECOMPUTE", "0")
    monkeypatch.setattr("ui.state.PRECOMPUTE", False, raising=False)
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("ui/meta.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    buttons = [b for b in at.get("download_button") if b.label == "Download R script"]
    assert len(buttons) == 1 and "crev meta run --assume-n dataset --robust none --emit-r DIR" in buttons[0].help  # the app defaults
    codes = [c.value for c in at.code]
    assert any(c.startswith("Data: live database (not pinned to a release)") and "References" in c for c in codes)
    at.switch_page("ui/overview.py")
    at.run()
    assert not [b for b in at.get("download_button") if b.key == "ov_rscript"]  # no answers yet, no script
    at.button(key="ov_answers").click().run()
    assert not at.exception, [e.value for e in at.exception]
    ov = [b for b in at.get("download_button") if b.key == "ov_rscript"]
    assert len(ov) == 1 and ov[0].label == "Download R script" and "crev meta answer --assume-n dataset --emit-r DIR" in ov[0].help
