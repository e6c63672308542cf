"""The methods paragraph is generated from the objects that ran the fit: changing the spec, the data,
the rules or the bias analysis changes its part of the text (no template that can drift)."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crev_cli import app
from metaanalysis import answers, methods
from metaanalysis.analysis import AnalysisSpec, run_analysis
from metaanalysis.effects import EffectSettings, EffectTable
from metaanalysis.methods import REFERENCES, methods_text
from metaanalysis.rscript import Provenance

runner = CliRunner()


def _table(seed=1, n_studies=8):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_studies):
        for c in range(2):
            for i in range(3):
                rows.append({"study": f"s{s}", "cluster": f"s{s}-{c}", "yi": rng.normal(-2, 2), "vi": rng.uniform(0.5, 2),
                             "compression_family": ["quantization", "unstructured_pruning", "structured_pruning"][s % 3], "sparsity": rng.uniform(0, 1)})
    return EffectTable(pd.DataFrame(rows), pd.DataFrame(columns=["reason"]), EffectSettings())


PROV = Provenance("release 2026.11 (content hash sha256:abc)", "crev meta run", "families = quantization")
BASE = AnalysisSpec(component_tests=False)


def text_of(spec=BASE, prov=PROV, settings=EffectSettings(), bias=None, table=None):
    return methods_text(run_analysis(table or _table(), spec), prov, settings, bias=bias)


def test_each_part_changes_with_what_ran(monkeypatch):
    base = text_of()
    assert "release 2026.11 (content hash sha256:abc)" in base.data and "48 effects from 8 studies" in base.data
    assert "rma.mv, random = ~ 1 | study/cluster/es" in base.model and "REML" in base.model
    assert "CR2" in base.inference and "8 clusters (study)" in base.inference and "Satterthwaite" in base.inference
    assert "at least 3 studies" in base.estimability and "below 4" in base.estimability
    # data: the evidence, the filters and the n_test assumption
    assert text_of(prov=Provenance("live database (not pinned to a release)", "c", "none")).data != base.data
    assert "n = 10000 was assumed" in text_of(settings=EffectSettings(assume_n=10000)).data
    # model: estimator, random structure, moderators with their coding
    assert "estimated by ML" in text_of(BASE.replace(method="ML")).model
    mods = text_of(BASE.replace(mods="compression_family + sparsity"))
    assert "compression_family (treatment coding against 'quantization')" in mods.model and "sparsity (as a number)" in mods.model
    assert text_of(BASE.replace(model="random")).model.startswith("Effects were pooled with a random-effects model (metafor rma.uni)")
    # inference: the df rule and the joint test
    assert "approximate Hotelling T² test (HTZ)" in mods.inference and REFERENCES["HTZ"] in mods.references
    naive = text_of(BASE.replace(mods="compression_family + sparsity", omnibus="naive-F"))
    assert "naive F(m, J − p)" in naive.inference and REFERENCES["HTZ"] not in naive.references
    knha = text_of(BASE.replace(model="random", knha=True, robust=None))
    assert "Knapp–Hartung" in knha.inference and REFERENCES["knha"] in knha.references and REFERENCES["CR2"] not in knha.references
    assert "'contain' degrees of freedom" in text_of(BASE.replace(robust=None)).inference
    # estimability: the rules in force
    monkeypatch.setattr(answers, "MIN_STUDIES", 5)
    assert "at least 5 studies" in text_of().estimability
    # sensitivity: the bias analyses that ran
    from metaanalysis.bias.pubbias import bias_report

    table = _table(n_studies=12)
    with_bias = text_of(bias=bias_report(table), table=table)
    assert "Publication bias on 72 effects from 12 studies: ran multilevel Egger" in with_bias.sensitivity
    assert REFERENCES["egger"] in with_bias.references and REFERENCES["egger"] not in base.references
    assert "No publication-bias" in base.sensitivity
    # software: the versions that ran
    monkeypatch.setattr(methods, "crev_version", lambda: "9.9.9")
    assert "crev 9.9.9" in text_of().software
    assert base.text().startswith(base.data) and "References\n- Viechtbauer W (2010)" in base.text()


def test_cli_meta_methods_names_the_release_hash_model_df_rule_minimums_and_references(seeded, tmp_path):
    from evidence.releases import write_release

    info = write_release(seeded, "2026.11", tmp_path / "rel", curator="ann")
    r = runner.invoke(app, ["meta", "methods", "--release", str(info.path), "--assume-n", "dataset", "--no-bias", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert f"release 2026.11 (content hash {info.content_hash})" in out["data"]
    assert "rma.mv" in out["model"] and "Satterthwaite" in out["inference"] and "at least 3 studies" in out["estimability"]
    assert any(ref.startswith("Viechtbauer W (2010)") for ref in out["references"])
    assert "command: " not in out["text"] and out["text"].startswith("Data: release 2026.11")


def test_meta_report_carries_the_methods_paragraph_and_emits_its_r_script(seeded_url, tmp_path):
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    r = runner.invoke(app, ["meta", "report", "--db", seeded_url, "--out", str(md), "--emit-r", str(tmp_path / "R")])
    assert r.exit_code == 0, r.output
    text = md.read_text()
    assert "## Methods" in text and "Data: live database (not pinned to a release)" in text and "**References**" in text
    assert (tmp_path / "R" / "analysis.R").exists() and "# command: crev meta run" in (tmp_path / "R" / "analysis.R").read_text()
    r = runner.invoke(app, ["meta", "report", "--db", seeded_url, "--out", str(js)])
    assert r.exit_code == 0, r.output
    assert json.loads(js.read_text())["methods"]["model"].startswith("Effects were pooled")
