"""Run the whole replication catalogue at full settings and ship it as a curated release.

End to end, resumable (finished cells live in the working database; run the same command again to
continue after a kill or a time limit):

1. a working database (default ``<workdir>/release.db``, SQLite) with the shipped releases loaded,
   so the verdicts find the literature's claims;
2. every trained dense and surrogate model of every catalogue claim, trained up front in parallel
   (``--workers`` processes, one torch thread each) into the model cache (``<workdir>/cache``);
3. each catalogue claim run to the end with ``--workers`` single-thread Dask workers (or locally with
   ``--workers 1``), its results submitted through ``evidence.submit`` as a pending submission;
4. each submission approved by ``--curator`` (pending -> approved, with the reason recorded);
5. the approved rows exported to ``evidence/data/releases/replication-2026.11/`` in the seed's
   columns plus the count and replication columns, with ``release.toml`` naming the curator, the
   typed verdicts (``verdicts.json``) and a README with the settings and timings.

Usage::

    python scripts/make_replication_release.py --workers 16              # a 16-core machine
    nohup python scripts/make_replication_release.py --workers 2 &       # here (slow)
    python scripts/make_replication_release.py --only quantization,transfer --export-only

A claim whose attacks have no registered method yet (PGD++ / EOT before replicate/attacks/adaptive.py
lands) is skipped with a message, and the release says so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = "replication-2026.11"


def _train_one(args):
    spec_json, seed, surrogate, cache = args
    os.environ["CREV_CACHE"] = cache
    import torch

    torch.set_num_threads(1)
    from replicate.jobs.cells import dense_model, surrogate_model
    from replicate.jobs.spec import JobSpec

    spec = JobSpec.model_validate_json(spec_json)
    t0 = time.perf_counter()
    _, rec = (surrogate_model if surrogate else dense_model)(spec, seed)
    return spec.id, seed, surrogate, rec.cache, time.perf_counter() - t0


def _runnable(spec) -> str | None:
    from replicate.attacks import ATTACKS

    missing = [g.name.value for g in spec.attacks if g.name not in ATTACKS]
    return f"attack(s) {', '.join(missing)} not registered yet" if missing else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default=str(ROOT / ".replication-release"), help="working database and model cache")
    ap.add_argument("--db", default=None, help="database URL (default: SQLite in the workdir)")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2)), help="processes, one torch thread each")
    ap.add_argument("--only", default="", help="comma-separated catalogue ids (default: all)")
    ap.add_argument("--seeds", type=int, default=5, help="seeds per claim (full runs: 5)")
    ap.add_argument("--curator", default="D (replication curator, crev maintainers)")
    ap.add_argument("--out", default=str(ROOT / "evidence" / "data" / "releases" / RELEASE))
    ap.add_argument("--export-only", action="store_true", help="skip the runs; export what the working database holds")
    ap.add_argument("--note", default="", help="a paragraph for the release README (e.g. which claims were re-run and why)")
    args = ap.parse_args(argv)

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    os.environ["CREV_CACHE"] = str(work / "cache")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from evidence import init_database
    from evidence.seed import load_release, shipped_releases
    from replicate import catalogue, run_job

    engine, _ = init_database(args.db or f"sqlite:///{work / 'release.db'}", load=False)
    for rel in shipped_releases():  # the literature's releases (the claims), never this release itself
        if rel.name != RELEASE:
            load_release(engine, rel)
    every = catalogue()
    specs = dict(every)
    if args.only:
        specs = {k: v for k, v in specs.items() if k in args.only.split(",")}
    # CPU processes, one thread each: deterministic, and what the release's provenance records
    specs = {k: v.model_copy(update={"seeds": list(range(args.seeds)), "device": "cpu"}) for k, v in specs.items()}
    skipped = {k: why for k, v in specs.items() if (why := _runnable(v))}
    for k, why in skipped.items():
        print(f"skip {k}: {why}", flush=True)
    todo = {k: v for k, v in specs.items() if k not in skipped}
    timings: dict[str, float] = {}
    summaries = {}
    if not args.export_only:
        t0 = time.perf_counter()
        jobs = [(s.model_dump_json(), seed, sur, os.environ["CREV_CACHE"]) for s in todo.values() for seed in s.seeds for sur in (False, True)]
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            for sid, seed, sur, cache, sec in pool.map(_train_one, jobs):
                print(f"trained {sid} seed {seed}{' surrogate' if sur else ''}: cache {cache}, {sec:.0f} s", flush=True)
        timings["training_s"] = time.perf_counter() - t0
        for k, spec in todo.items():
            t1 = time.perf_counter()
            out = run_job(engine, spec, executor="dask" if args.workers > 1 else "local", workers=args.workers, threads=1, by="crev-replicate",
                          show_progress=False, device="cpu")
            timings[k] = time.perf_counter() - t1
            summaries[k] = out
            print(f"{k}: {out.status.value}, {out.n_results} rows ({out.n_skipped_existing} already stored), {timings[k]:.0f} s", flush=True)
            for v in out.verdicts:
                print(f"   {v.study} ({v.direction.value}): {v.verdict.value} - {v.reason}", flush=True)
    export(engine, Path(args.out), curator=args.curator, specs=every, skipped=skipped, timings=timings, workers=args.workers, note=args.note)
    return 0


def _missing(v) -> bool:
    import pandas as pd

    return v is None or (isinstance(v, str) and v == "") or (not isinstance(v, str) and bool(pd.isna(v)))


def export(engine, out: Path, *, curator: str, specs: dict, skipped: dict, timings: dict, workers: int, note: str = "") -> None:
    """Approve the replication submissions (by ``curator``) and write the release folder."""
    import pandas as pd
    import sqlalchemy as sa

    from evidence import ResultFilter, Submission, approve, query_results
    from evidence.export import to_interchange
    from evidence.rows import OPTIONAL_COLUMNS, RELEASE_COLUMNS
    from evidence.vocab import ReviewStatus, SubmissionKind
    from replicate.jobs.store import REPLICATION_STUDY, read_summary

    from evidence.models import Job
    from replicate.jobs.store import assemble, finished_cells
    from replicate.jobs.store import verdicts as decide_verdicts
    from replicate.jobs.spec import JobSpec

    with engine.connect() as c:
        subs = c.execute(sa.select(Submission.id, Submission.status, Submission.summary).where(Submission.kind == SubmissionKind.replication)).all()
    verdicts = {}
    for sid, status, summary in subs:
        js = read_summary(summary)
        if js.spec_id not in specs:
            continue
        # the verdicts are decided again from the stored cells by the current verdict code, so the release's
        # verdicts and reasons never lag behind a change of wording or rule that left the measurements alone
        with engine.connect() as c:
            spec_json = c.execute(sa.select(Job.spec_json).where(Job.spec_hash == js.spec_hash).order_by(Job.id.desc())).scalars().first()
        spec = JobSpec.model_validate_json(spec_json)
        cells = finished_cells(engine, js.spec_hash)
        verdicts[js.spec_id] = [v.model_dump(mode="json") for v in decide_verdicts(engine, spec, assemble(spec, cells))]
        if status == ReviewStatus.pending:
            approve(engine, sid, by=curator, reason=f"replication release {RELEASE}: full catalogue run, checked by the curator")
    df = query_results(engine, ResultFilter(status="approved", study_ids=[REPLICATION_STUDY], include_quick=False))
    if df.empty:
        print("no approved replication rows to export", flush=True)
        return
    res = to_interchange(df)
    for col in (*OPTIONAL_COLUMNS, *RELEASE_COLUMNS):
        if col in df.columns and col not in res.columns:
            res[col] = df[col].map(lambda v: "" if _missing(v) else (v.value if hasattr(v, "value") else v))
    for col in ("clean_acc_dense", "robust_acc_dense", "clean_acc_compressed", "robust_acc_compressed"):  # count / n_test, no float noise
        res[col] = df[col].map(lambda v: "" if _missing(v) else f"{round(float(v), 6):g}")
    for col in OPTIONAL_COLUMNS:  # counts as integers, never 12.0
        if col in res.columns and col != "cluster":
            res[col] = res[col].map(lambda v: "" if _missing(v) else str(int(v)))
    out.mkdir(parents=True, exist_ok=True)
    res.to_csv(out / "results.csv", index=False)
    pd.DataFrame([{
        "study_id": REPLICATION_STUDY, "title": "Controlled replications run by crev (replicate engine)", "authors": "crev", "year": "2026",
        "venue": "crev", "arxiv_id/doi/url": "crev replicate", "compression_kind": "both",
        "main_claim": "Replication evidence: see each result's claim and verdict", "direction": "mixed", "adversarial_training": "both",
        "datasets": "MNIST-5k; digits", "architectures": "LeNet-like CNN", "attacks": "PGD, PGD-L2, FGSM, transfer, PGD++, EOT-PGD",
        "source_of_info": "measured by crev replicate; every row carries its spec hash, seed and library versions",
        "review_membership": "replication", "numeric_rows_in_results_csv": str(len(res)),
    }]).to_csv(out / "studies.csv", index=False)
    (out / "verdicts.json").write_text(json.dumps(verdicts, indent=1), encoding="utf-8")
    (out / "release.toml").write_text(
        "# A curated release shipped with the package (evidence/seed.py): the full replication catalogue,\n"
        "# made by scripts/make_replication_release.py and approved by the curator below.\n"
        f'name = "{RELEASE}"\nversion = "2026.11"\n'
        f'title = "Replication: {len(res)} controlled results from {len(verdicts)} catalogue claims, 5 seeds each"\n'
        f'curator = "{curator}"\napproved = true\norder = 3\nkind = "replication"\nclaim_uid_prefix = "replication"\n'
        'source = "scripts/make_replication_release.py (README.md in this folder)"\n', encoding="utf-8")
    lines = [f"# Replication release {RELEASE}", "", "Made by `python scripts/make_replication_release.py` "
             f"({workers} worker processes, one torch thread each). Approved by {curator}.", "",
             "Every row: counts out of n_test (percentages derived exactly), paired discordant counts, real steps and queries,",
             "threat model (int8 rows: transfer from the fake-quantized twin), rigour checks (checks_json), provenance (replication_json).", "",
             "| claim | verdict (claim's study) | reason |", "|---|---|---|"]
    for k, vs in verdicts.items():
        if vs:
            lines.append(f"| {k} | {vs[0]['verdict']} ({vs[0]['study']}, {vs[0]['direction']}) | {vs[0]['reason'][:300]} |")
    for k, why in skipped.items():
        lines.append(f"| {k} | not run | {why} |")
    if timings:
        lines += ["", "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items())]
    if note:
        lines += ["", note]
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(res)} rows)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
