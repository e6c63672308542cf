
import pytest
import sqlalchemy as sa

from evidence import ResultFilter, list_claims, list_studies, load_seed, query_results, stats
from evidence.models import Result, Study


SEED = ResultFilter(releases=["seed-2025.1"])
# releases shipped after the seed and coverage (the replication release, engineer D): their rows load too
from evidence.seed import shipped_releases  # noqa: E402

_LATER = [r for r in shipped_releases() if r.name not in ("seed-2025.1", "coverage-2026.11")]
LATER_RESULTS = sum(len(r.rows("results.csv")) for r in _LATER)
LATER_STUDIES = sum(len(r.rows("studies.csv")) for r in _LATER)


def test_seed_counts_per_study(seeded):
    s = stats(seeded)
    seed = {r.release: r for r in s.by_release}["seed-2025.1"]
    assert (seed.studies, seed.claims, seed.results) == (40, 43, 8349)
    seed_rows = query_results(seeded, SEED, columns=["study_id"])
    per_study = seed_rows["study_id"].value_counts().to_dict()
    assert per_study == {
        "merkle_2022_pruningfaceadversaries": 7798,
        "matachana_2020_uap": 336,
        "piras_2024_apbenchmark": 154,
        "sehwag_2020_hydra": 49,
        "sen_2020_empir": 12,
    }
    assert s.by_review_status["results"] == {"approved": 8714 + LATER_RESULTS}


def test_seed_is_curated_by_seed_with_a_source(seeded):
    df = query_results(seeded, SEED)
    assert set(df["created_by"]) == {"seed"}
    assert (df["url_or_path"].str.len() > 0).all()
    assert set(df["review_status"]) == {"approved"}


def test_seed_parses_tricky_values(seeded):
    df = query_results(seeded, SEED)
    two = df[df["epsilon_text"] == "2/255"]
    assert len(two) == 1163
    assert two["epsilon"].iloc[0] == pytest.approx(0.00784313725490196, abs=1e-12)
    assert (df.loc[df["epsilon_text"] == "0.031", "epsilon"] == 0.031).all()
    empty = df[df["epsilon_text"] == ""]
    assert len(empty) == 60 and empty["epsilon"].isna().all()
    two_bit = df[df["compression_level_text"] == "2-bit"]
    assert len(two_bit) == 24 and (two_bit["bits"] == 2).all() and two_bit["sparsity"].isna().all()
    assert set(two_bit["compression_family"]) == {"quantization"}
    unparsed = df[df["compression_level_text"] == "rate not stated in files read"]
    assert len(unparsed) == 72 and unparsed["sparsity"].isna().all() and unparsed["bits"].isna().all()


def test_seed_keeps_not_reported_as_null_never_zero(seeded):
    df = query_results(seeded, ResultFilter(study_ids=["piras_2024_apbenchmark"]))
    assert len(df) == 154
    assert df["clean_acc_dense"].isna().all() and df["robust_acc_dense"].isna().all()
    hydra = query_results(seeded, ResultFilter(study_ids=["sehwag_2020_hydra"]))
    assert hydra["clean_acc_compressed"].isna().sum() == 48 and hydra["n_test"].isna().all()
    assert (hydra["robust_acc_compressed"] > 0).all()


def test_seed_years_and_texts(seeded):
    studies = list_studies(seeded).set_index("study_id")
    yt = studies[studies["year_text"] == "2022 (arXiv Aug 2021)"]
    assert len(yt) == 1 and yt["year"].iloc[0] == 2022
    assert studies.loc[studies["year_text"] == "not seen", "year"].isna().all()
    assert studies.loc[studies["year_text"] == "not seen"].shape[0] == 5


def test_seed_marks_derived_numbers(seeded):
    df = query_results(seeded, ResultFilter(study_ids=["merkle_2022_pruningfaceadversaries"]))
    assert set(df["provenance"]) == {"derived"}
    assert df["cluster"].nunique() > 100  # one cluster per training run, not per row


def test_seed_claims_have_six_questions(seeded):
    claims = list_claims(seeded)
    assert len(claims) == 43
    assert claims["question_id"].nunique() == 6
    pw = claims[claims["question_id"] == "pruning_without_at"]
    assert set(pw["adversarial_training"]) == {"no"}


def test_loading_seed_twice_adds_nothing(seeded):
    assert load_seed(seeded) is None
    with seeded.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Result.__table__)).scalar_one() == 8349 + 365 + LATER_RESULTS
        assert conn.execute(sa.select(sa.func.count()).select_from(Study.__table__)).scalar_one() == 40 + 5 + LATER_STUDIES


def test_seed_flags_warnings_on_rows(seeded):
    df = query_results(seeded)
    flagged = df[df["warnings"].str.contains("robust accuracy above clean")]
    assert len(flagged) > 0
    row = flagged.iloc[0]
    assert row["robust_acc_compressed"] > row["clean_acc_compressed"] or row["robust_acc_dense"] > row["clean_acc_dense"]
