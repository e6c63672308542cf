"""Replication at research scale: devices, CIFAR-10/SVHN loaders, the literature's architectures and
recipes, channel pruning, HYDRA, int8 PTQ, adaptive attacks, SLURM/PBS executors, and a CIFAR-shaped
end-to-end run (on CPU here; on CUDA where a GPU exists)."""

from __future__ import annotations

import json
import math
import os
import pickle

import numpy as np
import pytest
import sqlalchemy as sa
import torch
from torch import nn
from typer.testing import CliRunner

from evidence import JobCell, init_database
from replicate import AttackSpec, TrainConfig, build_model, fit, get_claim_spec, load_split, run_job
from replicate.train.archs import build_arch, preact_resnet18
from replicate.attacks import ATTACKS, AttackName, correct, craft
from replicate.jobs.executors import ClusterConfig, ClusterError, DaskPool, Executor, make_jobqueue_cluster, run_grid
from replicate.train.datasets import DatasetError, Split
from replicate.train.device import DeviceError, configure, resolve_device
from replicate.compress.efficiency import count_params_macs
from replicate.compress.hydra import HydraPruner
from replicate.train.local_data import load_cifar10, load_svhn, read_cifar_batch
from replicate.attacks.masking import InputQuantizer, SaturatedLogits
from replicate.jobs.profiles import adapt_spec
from replicate.compress.ptq import Int8PTQMeasured
from replicate.train.recipes import SGDSchedule, augment, lr_at
from replicate.compress.structural import ChannelPruner, conv_channels

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CUDA_SKIP = "no CUDA device on this machine (torch.cuda.is_available() is False): the CUDA run is checked where a GPU exists"


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CREV_CACHE", str(tmp_path_factory.getbasetemp() / "scale-cache"))
    monkeypatch.setenv("CREV_DATA_REGISTRY", str(tmp_path_factory.getbasetemp() / "datasets.json"))
    monkeypatch.delenv("CREV_CIFAR10", raising=False)
    monkeypatch.delenv("CREV_SVHN", raising=False)
    saved = torch.get_num_threads()
    yield
    torch.set_num_threads(saved)


def write_cifar(folder, n_train=448, n_test=64, seed=0, protocol=2):
    """CIFAR-10-shaped python batches: class-dependent colour so a tiny model can learn something."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, n in (("data_batch_1", n_train), ("test_batch", n_test)):
        labels = [int(v) for v in rng.integers(0, 10, n)]
        base = np.array(labels)[:, None] * 20 + 30
        data = np.clip(base + rng.normal(0, 25, (n, 3072)), 0, 255).astype(np.uint8)
        obj = {b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": [b"x.png"] * n}
        (folder / name).write_bytes(pickle.dumps(obj, protocol=protocol))
    return folder


# --- devices ---------------------------------------------------------------------------------

def test_auto_device_is_cuda_when_available_else_cpu_or_mps():
    dev = resolve_device("auto")
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    else:
        assert dev.type in ("cpu", "mps")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("text", ["gpu", "cuda:x", "auto:0", ""])
def test_malformed_device_is_refused(text):
    if text == "":
        assert resolve_device(text) == resolve_device("auto")  # empty means the default
        return
    with pytest.raises(DeviceError, match="device"):
        resolve_device(text)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the refusal is tested where it has none")
def test_explicit_cuda_without_a_gpu_is_an_error_not_a_silent_cpu_run():
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda")


def test_configure_sets_threads_and_records_the_deterministic_settings():
    rt = configure("cpu", threads=1)
    assert torch.get_num_threads() == 1 and rt.threads == 1 and rt.deterministic
    assert torch.are_deterministic_algorithms_enabled()
    prov = rt.provenance()
    assert prov["device"] == "cpu" and prov["attack_mixed_precision"] is False and prov["cudnn_deterministic"] is None
    with pytest.raises(DeviceError):
        configure("cpu", threads=0)


def test_spec_hash_ignores_where_a_run_happens_but_not_mixed_precision():
    spec = get_claim_spec("pruning_with_at")
    assert spec.model_copy(update={"device": "cuda:1", "threads": 8}).spec_hash() == spec.spec_hash()
    assert spec.model_copy(update={"attack_mixed_precision": True}).spec_hash() != spec.spec_hash()


# --- architectures -----------------------------------------------------------------------------

@pytest.mark.parametrize("name,millions", [("preact_resnet18", 11.17), ("wrn_28_10", 36.48), ("wrn_34_10", 46.16)])
def test_standard_architectures_have_the_papers_parameter_counts(name, millions):
    m = build_arch(name, (3, 32, 32), 10)
    assert round(sum(p.numel() for p in m.parameters()) / 1e6, 2) == millions


def test_tiny_instances_of_the_same_architectures_run():
    x = torch.rand(2, 3, 32, 32)
    assert build_model("preact_resnet18", (3, 32, 32), 10, width=4)(x).shape == (2, 10)
    assert build_model("wrn_28_10", (3, 32, 32), 10, width=1)(x).shape == (2, 10)
    with pytest.raises(ValueError, match="6n \\+ 4"):
        build_arch("wrn_28_10", (3, 32, 32), 10).__class__(depth=27)


# --- local data ---------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 4])
def test_cifar_batches_load_with_the_official_test_split(tmp_path, protocol):
    folder = write_cifar(tmp_path / "cifar", protocol=protocol)
    arrays = load_cifar10(folder)
    assert arrays.x.shape == (512, 3, 32, 32) and arrays.x.dtype == np.float32 and arrays.x.max() <= 1.0
    assert int(arrays.is_test.sum()) == 64 and arrays.is_test[-64:].all()
    os.environ["CREV_CIFAR10"] = str(folder)
    try:
        split = load_split("cifar10", n_test=None)
    finally:
        del os.environ["CREV_CIFAR10"]
    assert len(split.y_train) == 448 and len(split.y_test) == 64  # the official test batch, not a re-split


def test_a_pickle_that_runs_code_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = write_cifar(tmp_path / "cifar")
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2))
    with pytest.raises(DatasetError, match="data_batch_2: refused: global (posix|os).system is not allowed"):
        load_cifar10(folder)
    assert not marker.exists()


def test_a_batch_with_the_wrong_layout_names_the_field(tmp_path):
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]}, protocol=2))
    with pytest.raises(DatasetError, match="field data: expected a uint8 array of N x 3072"):
        read_cifar_batch(p)
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}, protocol=2))
    with pytest.raises(DatasetError, match="field labels"):
        read_cifar_batch(p)


def test_svhn_mat_files_load_with_label_10_as_digit_0(tmp_path):
    from scipy.io import savemat

    folder = tmp_path / "svhn"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("train_32x32.mat", 20), ("test_32x32.mat", 8)):
        savemat(folder / name, {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8), "y": np.r_[[10], rng.integers(1, 11, n - 1)][:, None]})
    arrays = load_svhn(folder)
    assert arrays.x.shape == (28, 3, 32, 32) and arrays.y[0] == 0 and arrays.y.max() <= 9 and int(arrays.is_test.sum()) == 8


def test_data_add_registers_a_checked_folder_for_runs(tmp_path):
    from replicate.cli import app

    folder = write_cifar(tmp_path / "my-cifar")
    res = CliRunner().invoke(app, ["data", "add", "cifar10", str(folder)])
    assert res.exit_code == 0, res.output
    assert "448 training and 64 test images" in res.output
    assert len(load_split("cifar10", n_test=None).y_test) == 64  # found through the registry
    bad = CliRunner().invoke(app, ["data", "add", "cifar10", str(tmp_path)])
    assert bad.exit_code == 2 and "needs data_batch_1..5 and test_batch" in bad.output


# --- recipes -----------------------------------------------------------------------------------

def test_learning_rate_drops_tenfold_at_half_and_three_quarters():
    s = SGDSchedule()
    assert [lr_at(s, 0.1, e, 200) for e in (0, 99, 100, 149, 150, 199)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_augmentation_is_a_seeded_crop_and_flip():
    x = torch.rand(8, 3, 32, 32)
    a = augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, augment(x, torch.Generator().manual_seed(0))) and not torch.equal(a, x)
    none = augment(x, torch.Generator().manual_seed(0), pad=0)
    for i in range(8):  # without padding only flips remain
        assert torch.equal(none[i], x[i]) or torch.equal(none[i], x[i].flip(-1))


# --- compression ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cifar_like():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (96,), generator=g)
    x = (torch.rand(96, 3, 32, 32, generator=g) * 0.5 + y.view(-1, 1, 1, 1) / 20).clamp(0, 1)
    return Split("cifar10", x[:64], y[:64], x[64:], y[64:], 10, 0, "synthetic")


@pytest.mark.slow
def test_channel_pruning_removes_half_the_channels_and_measures_the_cost(cifar_like):
    dense = preact_resnet18(width=8).eval()
    comp = ChannelPruner(0.5, finetune="none").compress(dense, cifar_like, seed=0)
    assert conv_channels(comp.model) == conv_channels(dense) // 2
    eff = comp.info.efficiency
    assert eff.params_dense == sum(p.numel() for p in dense.parameters()) and eff.params == sum(p.numel() for p in comp.model.parameters())
    assert 0.2 < eff.params_ratio < 0.35 and 0.2 < eff.macs_ratio < 0.35  # both sides of most convs halved
    assert eff.latency_ms > 0 and eff.latency_ms_dense > 0 and comp.model(cifar_like.x_test).shape == (32, 10)
    assert count_params_macs(comp.model, cifar_like.x_test)[0] == eff.params


@pytest.fixture(scope="module")
def digits_mlp():
    torch.set_num_threads(2)
    split = load_split("digits", seed=0, n_test=240)
    model = build_model("mlp", split.shape, split.n_classes)
    fit(model, split, TrainConfig(epochs=8, lr=3e-3), seed=0)
    return model, split


@pytest.mark.slow
def test_hydra_reaches_the_sparsity_with_a_mask_learned_not_copied_from_magnitudes(digits_mlp):
    dense, split = digits_mlp
    comp = HydraPruner(0.8, score_epochs=1, finetune_epochs=0, adv_eps=0.1, adv_steps=2).compress(dense, split, seed=0)
    layers = [m for m in comp.model.modules() if isinstance(m, nn.Linear)]
    dense_layers = [m for m in dense.modules() if isinstance(m, nn.Linear)]
    differs = 0
    for m, d in zip(layers, dense_layers):
        kept = m.weight != 0
        assert abs(1 - kept.float().mean().item() - 0.8) < 0.01  # the same share in every layer
        k = int(kept.sum())
        magnitude = torch.zeros_like(kept).view(-1)
        magnitude[d.weight.abs().flatten().topk(k).indices] = True
        differs += int((magnitude.view_as(kept) != kept).sum())
        assert torch.equal(m.weight[kept], d.weight[kept])  # no fine-tuning: the kept weights are the dense ones
    assert differs > 0  # the scores moved: HYDRA is not magnitude pruning
    assert abs(comp.info.sparsity - 0.8) < 0.01


@pytest.mark.slow
def test_int8_ptq_keeps_named_layers_in_float_and_reports_latency(digits_mlp):
    dense, split = digits_mlp
    comp = Int8PTQMeasured(granularity="per_channel", keep_float=("net.1",)).compress(dense, split, seed=0)
    kinds = {name: type(m).__module__ for name, m in comp.model.named_modules()}
    assert any("quantized" in k for k in kinds.values())
    kept = dict(comp.model.named_modules())["net.1"]  # fused with its ReLU by FX, but not quantized
    assert "quantized" not in type(kept).__module__ and kept[0].weight.dtype == torch.float32
    assert comp.info.efficiency.latency_ms > 0 and comp.info.efficiency.device == "cpu"
    assert comp.info.twin_agreement >= 0.9 and comp.info.threat_model.value == "transfer"
    with pytest.raises(ValueError, match="keep_float: no module named nope"):
        Int8PTQMeasured(keep_float=("nope",)).compress(dense, split, seed=0)


# --- adaptive attacks -------------------------------------------------------------------------

class _RandomShatter(nn.Module):
    """A randomised defence: x + a·sin(ω x + φ) with a fresh random phase φ per pixel and pass. One
    gradient sample has a random sign per pixel (aω ≫ 1); its expectation is the undefended gradient."""

    def __init__(self, model, a=0.005, w=2000.0):
        super().__init__()
        self.model, self.a, self.w = model, a, w

    def forward(self, x):
        phi = torch.rand(x.shape, device=x.device) * 2 * math.pi
        return self.model(x + self.a * torch.sin(self.w * x + phi))


MASKED = {
    AttackName.pgd_pp: lambda m: SaturatedLogits(m, 1e4),  # saturated softmax: cross-entropy gradient exactly 0
    AttackName.bpda: lambda m: nn.Sequential(InputQuantizer(3), m),  # round(): zero gradient almost everywhere
    AttackName.eot_pgd: lambda m: _RandomShatter(m),  # randomised: single-sample gradients point nowhere
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MASKED))
def test_adaptive_attack_beats_plain_pgd_on_the_model_that_masks_its_way(digits_mlp, name):
    dense, split = digits_mlp
    masked = MASKED[name](dense)
    x, y = split.x_test, split.y_test

    def robust(attack):
        torch.manual_seed(0)
        x_adv = craft(masked, AttackSpec(attack, 0.1, 10), x, y, n_classes=10, seed=0)
        assert (x_adv - x).abs().max() <= 0.1 + 1e-6
        torch.manual_seed(1)
        return 100 * float(correct(masked, x_adv, y).float().mean())

    plain, adaptive = robust(AttackName.pgd), robust(name)
    assert plain > 85  # the masking fools plain PGD (the dense model falls below 60 % at this epsilon)
    assert adaptive < plain - 15, (plain, adaptive)


def test_adaptive_attacks_are_registered_with_their_vocabulary_and_labels():
    for name in MASKED:
        spec = AttackSpec(name, 8 / 255, 10, eot_samples=5)
        assert ATTACKS[name].vocab.value == name.value and spec.label() and spec.real_steps == 10
    assert "5 samples" in AttackSpec(AttackName.eot_pgd, 0.03, 10, eot_samples=5).label()


# --- clusters --------------------------------------------------------------------------------

def test_slurm_job_script_asks_for_the_gpu_queue_and_shared_cache(tmp_path):
    cfg = ClusterConfig(executor="slurm", queue="gpu", jobs=3, gpus_per_job=1, cores=8, memory="32GB", walltime="12:00:00", account="lab",
                        cache_dir=str(tmp_path / "shared-cache"), python="/opt/venv/bin/python")
    cluster = make_jobqueue_cluster(cfg)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p gpu", "#SBATCH --gres=gpu:1", "#SBATCH --cpus-per-task=8", "#SBATCH -t 12:00:00", "#SBATCH -A lab",
                 f"export CREV_CACHE={tmp_path / 'shared-cache'}", "export CUBLAS_WORKSPACE_CONFIG=:4096:8"):
        assert line in script, (line, script)
    assert "/opt/venv/bin/python -m distributed.cli.dask_worker" in script and "--nthreads 1" in script


def test_pbs_job_script_selects_cpus_gpus_and_memory():
    cluster = make_jobqueue_cluster(ClusterConfig(executor=Executor.pbs, queue="gpuq", gpus_per_job=2, cores=4, memory="16GB"))
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#PBS -q gpuq" in script and "#PBS -l select=1:ncpus=4:mem=16GB:ngpus=2" in script


@pytest.mark.parametrize("kw,msg", [({"queue": None}, "needs --queue"), ({"walltime": "4h"}, "HH:MM:SS"), ({"executor": "dask"}, "slurm or pbs")])
def test_cluster_settings_that_cannot_work_are_refused(kw, msg):
    with pytest.raises(ClusterError, match=msg):
        ClusterConfig(**{"executor": "slurm", "queue": "gpu", **kw})


def _tiny_cifar_spec(tmp_path, monkeypatch, claim="pruning_with_at", device="cpu"):
    """The catalogue claim moved to CIFAR-10 by the profile, shrunk to 512 images, width 4, one epoch."""
    monkeypatch.setenv("CREV_CIFAR10", str(write_cifar(tmp_path / "cifar")))
    spec = adapt_spec(get_claim_spec(claim), "cifar10")
    assert spec.model.value == "preact_resnet18" and spec.train.recipe.value == "pgd_at" and spec.train.adv_eps == pytest.approx(8 / 255)
    assert spec.train.epochs == 200 and spec.attacks[0].eps == pytest.approx([2 / 255, 4 / 255, 8 / 255]) and spec.data.n_test is None
    spec = spec.quick()  # the reduced grid of the same spec (marked quick: never a verdict), then smaller still
    return spec.model_copy(update={
        "seeds": [0], "device": device,
        "train": spec.train.model_copy(update={"epochs": 1, "width": 4, "adv_steps": 2, "batch_size": 64}),
        "compression": [spec.compression[0].model_copy(update={"levels": [0.5], "finetune_epochs": 1})],
        "attacks": [spec.attacks[0].model_copy(update={"eps": [8 / 255]})]})


@pytest.mark.slow
def test_a_cell_finished_twice_on_workers_is_stored_once(tmp_path, monkeypatch):
    from dask.distributed import Client, LocalCluster

    from replicate.jobs.cells import plan
    from replicate.jobs.store import store_cell

    spec = _tiny_cifar_spec(tmp_path, monkeypatch).model_copy(update={"checks": False})
    engine, _ = init_database(f"sqlite:///{tmp_path / 'c.db'}")
    dense_cell = plan(spec)[0]
    stored = []

    def on_done(result):
        store_cell(engine, spec.spec_hash(), result)
        stored.append(result.key)

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as lc, Client(lc) as client:
        grid = run_grid(DaskPool(client), spec.model_dump_json(), [dense_cell, dense_cell], [(0, False)], on_done=on_done,
                        on_model=lambda m: None, is_cancelled=lambda: False)
    assert (grid.cells, grid.duplicates_ignored, grid.models) == (1, 1, 1) and stored == [dense_cell.key]
    store_cell(engine, spec.spec_hash(), _reload(engine, spec))  # and again through the write path itself
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(JobCell).where(JobCell.job_key == spec.spec_hash())).scalar_one() == 1


def _reload(engine, spec):
    from replicate.jobs.store import finished_cells

    return next(iter(finished_cells(engine, spec.spec_hash()).values()))


# --- end to end -------------------------------------------------------------------------------

def _run_end_to_end(tmp_path, monkeypatch, device):
    spec = _tiny_cifar_spec(tmp_path, monkeypatch, device=device)
    engine, _ = init_database(f"sqlite:///{tmp_path / 'e2e.db'}")
    torch.set_num_threads(1)  # as every Dask worker; the autouse fixture restores the count
    out = run_job(engine, spec, show_progress=False, threads=1)
    assert out.status.value == "done" and out.n_results == 1
    from replicate.jobs.store import job_results

    row = job_results(engine, out.job_id).iloc[0]
    prov = json.loads(row["replication_json"])
    assert row["dataset"] == "cifar10" and row["architecture"] == "preact_resnet18" and row["n_test"] == 64
    assert "8/255" in row["attack_text"] or "0.03137" in row["attack_text"]
    return prov["runtime"]


@pytest.mark.slow
def test_cifar_claim_runs_end_to_end_on_a_512_image_subset_on_cpu(tmp_path, monkeypatch):
    runtime = _run_end_to_end(tmp_path, monkeypatch, "cpu")
    assert runtime["device"] == "cpu" and runtime["deterministic"] is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_SKIP)
def test_cifar_claim_runs_end_to_end_on_cuda_with_deterministic_cudnn(tmp_path, monkeypatch):
    runtime = _run_end_to_end(tmp_path, monkeypatch, "cuda")
    assert runtime["device"].startswith("cuda") and runtime["cudnn_deterministic"] is True and runtime["cudnn_benchmark"] is False
    assert runtime["tf32"] is False


def test_run_refuses_cuda_on_a_machine_without_it(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from replicate.cli import app

    res = CliRunner().invoke(app, ["run", "pruning_with_at", "--device", "cuda", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--json"])
    assert res.exit_code == 2 and "CUDA is not available" in res.output
