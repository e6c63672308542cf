"""RobustBench model_info import: compressed entries found, two rows each, every skip reported.

The JSON files are written here in RobustBench's published ``model_info`` shape (fields and string
numbers as in the MIT-licensed repository's files, e.g. Kundu2020Tunable.json and Sehwag2020Hydra.json).
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from crev_cli import app
from evidence import ResultFilter, ValidationFailed, count_results, list_studies, query_results
from evidence.importers import IMPORTERS, Importer, RobustBenchImporter
from evidence.importers.robustbench import compression_match

runner = CliRunner()

HYDRA = {
    "link": "https://arxiv.org/abs/2002.10509", "name": "HYDRA: Pruning Adversarially Robust Neural Networks",
    "authors": "Vikash Sehwag, Shiqi Wang, Prateek Mittal, Suman Jana", "additional_data": True, "number_forward_passes": 1,
    "dataset": "cifar10", "venue": "NeurIPS 2020", "architecture": "WideResNet-28-10", "eps": "8/255",
    "clean_acc": "88.98", "reported": "62.24", "autoattack_acc": "57.14",
}
KUNDU_NULL = {
    "link": "https://arxiv.org/abs/2011.03083", "name": "A Tunable Robust Pruning Framework Through Dynamic Network Rewiring of DNNs",
    "authors": "Kundu, Souvik and Nazemi, Mahdi and Beerel, Peter A and Pedram, Massoud", "additional_data": False,
    "number_forward_passes": 1, "dataset": "cifar10", "venue": "ASP-DAC 2021", "architecture": "ResNet-18", "eps": "8/255",
    "clean_acc": "87.32", "reported": "null", "footnote": "Compressed model", "autoattack_acc": "40.41",
}
STANDARD = {"link": "https://github.com/RobustBench/robustbench/", "name": "Standardly trained model", "authors": "Unknown",
            "additional_data": False, "number_forward_passes": 1, "dataset": "cifar10", "venue": "N/A",
            "architecture": "WideResNet-28-10", "eps": "8/255", "clean_acc": "94.78", "reported": "0.0", "autoattack_acc": "0.0"}
MEANSPARSE = {"link": "https://arxiv.org/pdf/2406.05927", "name": "MeanSparse: Post-Training Robustness Enhancement Through Mean-Centered Feature Sparsification",
              "authors": "Sajjad Amini et al.", "additional_data": True, "number_forward_passes": 1, "dataset": "cifar10",
              "venue": "arXiv, Jun 2024", "architecture": "meansparse_ra_wrn70_16", "eps": "8/255", "clean_acc": "93.24",
              "reported": "72.08", "autoattack_acc": "72.08", "footnote": "It adds the MeanSparse operator to the adversarially trained models.",
              "unreliable": False}
DENSE = {"link": "https://arxiv.org/abs/1903.09999", "name": "Adversarial robustness of a dense WRN", "authors": "Roe, Jane",
         "dataset": "cifar10", "venue": "ICML 2019", "architecture": "WideResNet-34-10", "eps": "8/255",
         "clean_acc": "85.00", "reported": "55.00", "autoattack_acc": "50.00"}
PRUNED = {**DENSE, "name": "Adversarial robustness of a dense WRN, 90% channel-pruned", "clean_acc": "84.00", "reported": "53.50",
          "autoattack_acc": "47.25", "footnote": "Compressed version of Roe2019Dense"}


def _write(folder, name: str, entry: dict | str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(entry if isinstance(entry, str) else json.dumps(entry, indent=2))


@pytest.fixture
def model_info(tmp_path):
    root = tmp_path / "model_info"
    linf = root / "cifar10" / "Linf"
    _write(linf, "Sehwag2020Hydra", HYDRA)
    _write(linf, "Kundu2020Tunable", KUNDU_NULL)
    _write(linf, "Standard", STANDARD)
    _write(linf, "Amini2024MeanSparse", MEANSPARSE)
    _write(linf, "Roe2019Dense", DENSE)
    _write(linf, "Roe2019Pruned", PRUNED)
    # duplicated keys: the same value twice is harmless, two different values are not
    _write(linf, "Twice2021Quantized", '{"name": "Low-bit quantized robust nets", "dataset": "cifar10", "eps": "8/255",'
                                       ' "clean_acc": "80.1", "clean_acc": "80.1", "reported": "45.0", "autoattack_acc": "41.0",'
                                       ' "architecture": "ResNet-18", "link": "https://arxiv.org/abs/2101.00001", "authors": "Twice, A."}')
    _write(linf, "Clash2021Binary", '{"name": "Binary robust nets", "dataset": "cifar10", "eps": "8/255", "clean_acc": "70.0",'
                                    ' "autoattack_acc": "30.0", "autoattack_acc": "33.0", "architecture": "ResNet-18"}')
    _write(linf, "Broken2022Prune", '{"name": "Pruned", "clean_acc": "80.0",')
    _write(root / "cifar10" / "L2", "Bnn2020Binarized", {"name": "Binarized networks", "dataset": "cifar10", "eps": "0.5",
                                                           "architecture": "binarized ResNet-18", "clean_acc": "120",
                                                           "reported": "44.4", "autoattack_acc": "abc", "link": "", "authors": "Bnn, B."})
    return root


def test_compressed_entries_are_found_by_keyword_in_name_footnote_or_architecture():
    assert compression_match(HYDRA) == ("pruning", "name", "Prun")
    assert compression_match({"name": "x", "footnote": "Compressed model"}) == ("compressed", "footnote", "Compress")
    assert compression_match({"name": "x", "architecture": "binarized ResNet"})[0] == "binarization"
    assert compression_match({"name": "y", "architecture": "ResNet-18 4-bit"})[0] == "quantization"
    assert compression_match(MEANSPARSE) is None  # feature sparsification is not weight compression
    assert compression_match(STANDARD) is None


def test_importers_share_the_base_class():
    assert set(IMPORTERS) == {"robustbench", "bibtex"}
    assert all(issubclass(cls, Importer) and cls.name for cls in IMPORTERS.values())


def test_import_writes_two_rows_per_compressed_entry_and_reports_every_skip(seeded, model_info):
    before = count_results(seeded)
    report = RobustBenchImporter().run(seeded, model_info, by="curator")
    assert count_results(seeded) == before  # pending until approved
    df = query_results(seeded, ResultFilter(status="pending"))
    hydra = df[df["url_or_path"].str.endswith("Sehwag2020Hydra.json")].set_index("source_location")
    assert set(hydra["study_id"]) == {"sehwag_2020_hydra"}  # matched to the seed's study by its arXiv id
    assert hydra.loc["reported", "robust_acc_compressed"] == 62.24 and hydra.loc["autoattack_acc", "robust_acc_compressed"] == 57.14
    assert hydra.loc["autoattack_acc", "attack"] == "autoattack_standard" and hydra.loc["reported", "attack"] == "other"
    assert hydra.loc["autoattack_acc", "n_test"] == 10000 and hydra["n_test"].isna().sum() == 1
    assert hydra["cluster"].nunique() == 1 and (hydra["clean_acc_compressed"] == 88.98).all()
    assert hydra["robust_acc_dense"].isna().all()  # no dense model named: none paired
    assert hydra.loc["reported", "epsilon"] == pytest.approx(8 / 255)

    kundu = df[df["url_or_path"].str.endswith("Kundu2020Tunable.json")]
    assert list(kundu["source_location"]) == ["autoattack_acc"] and set(kundu["study_id"]) == {"kundu_2021_dnr"}
    # the coverage release holds the same leaderboard numbers: flagged for the curator, not silently doubled
    assert any("Kundu2020Tunable.json (autoattack_acc): same study and accuracies as stored result" in w for w in report.warnings)

    pruned = df[df["url_or_path"].str.endswith("Roe2019Pruned.json")].set_index("source_location")
    assert pruned.loc["reported", "robust_acc_dense"] == 55.0 and pruned.loc["autoattack_acc", "robust_acc_dense"] == 50.0
    assert (pruned["clean_acc_dense"] == 85.0).all() and set(pruned["compression_family"]) == {"structured_pruning"}

    assert "cifar10/Linf/Twice2021Quantized.json: key 'clean_acc' appears twice with the same value (read once)" in report.warnings
    twice = df[df["url_or_path"].str.endswith("Twice2021Quantized.json")]
    assert len(twice) == 2 and set(twice["compression_family"]) == {"quantization"}
    bnn = df[df["url_or_path"].str.endswith("Bnn2020Binarized.json")]
    assert list(bnn["source_location"]) == ["reported"] and bnn["clean_acc_compressed"].isna().all()
    assert set(bnn["norm"]) == {"l2"} and set(bnn["compression_family"]) == {"binarization"}
    assert len(df) == 2 + 1 + 2 + 2 + 1

    skipped = "\n".join(report.skipped)
    assert "Kundu2020Tunable.json: reported 'null' is the string 'null', not a JSON null: no reported row" in skipped
    assert "Standard.json: not a compressed model" in skipped and "Amini2024MeanSparse.json: not a compressed model" in skipped
    assert "Roe2019Dense.json: not a compressed model" in skipped
    assert "Clash2021Binary.json: key 'autoattack_acc' appears twice with different values ('30.0' and '33.0')" in skipped
    assert "Broken2022Prune.json: not valid JSON" in skipped
    assert "Bnn2020Binarized.json: clean_acc '120' is outside [0, 100]" in skipped
    assert "Bnn2020Binarized.json: autoattack_acc 'abc' is not a number: no autoattack_acc row" in skipped
    studies = list_studies(seeded, status="pending")
    assert {"roe_2019_pruned", "twice_2021_quantized", "bnn_2020_binarized"} <= set(studies["study_id"])
    assert report.studies == 3 and report.results == 8


def test_importing_the_same_folder_twice_adds_nothing_new(seeded, model_info):
    RobustBenchImporter().run(seeded, model_info, by="curator")
    with pytest.raises(ValidationFailed, match="nothing to import"):
        RobustBenchImporter().run(seeded, model_info / "cifar10" / "Linf" / "Sehwag2020Hydra.json", by="curator")
    res = runner.invoke(app, ["evidence", "import-robustbench", str(model_info), "--db", str(seeded.url)])
    assert res.exit_code == 2 and "nothing to import" in res.output and "nothing was written" in res.output
    again = RobustBenchImporter()
    with seeded.connect() as conn:
        sub, report = again.read(conn, model_info)
    assert sub.is_empty() and sum("already in the database" in s for s in report.skipped) == 8


def test_cli_import_robustbench_prints_the_report(seeded_url, model_info):
    res = runner.invoke(app, ["evidence", "import-robustbench", str(model_info), "--db", seeded_url, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["results"] == 8 and out["written"] is True and len(out["skipped"]) == 8
