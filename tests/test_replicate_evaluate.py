"""``crev replicate evaluate``: a user's dense and compressed checkpoints, loaded safely, evaluated on
the same digits images, written as one pending submission."""

from __future__ import annotations

import json
import os

import pytest
import torch
from typer.testing import CliRunner

from crev_cli import app
from evidence import approve, get_engine, pending_submissions, query_results, ResultFilter
from replicate.attacks.masking import InputQuantizer
from replicate.evaluate import CheckpointError, CheckpointFormat, load_checkpoint
from replicate.train import build_model, load_split

runner = CliRunner()
N_TEST = 120
EPS = 0.1


@pytest.fixture(scope="module")
def split():
    return load_split("digits", n_test=N_TEST)


def _train(split, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = build_model("lenet", split.shape, split.n_classes)
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    for _ in range(6):
        for i in range(0, len(split.y_train), 128):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(split.x_train[i: i + 128]), split.y_train[i: i + 128]).backward()
            opt.step()
    return m.eval()


def _prune(model: torch.nn.Module, amount: float) -> torch.nn.Module:
    import copy

    c = copy.deepcopy(model)
    with torch.no_grad():
        for p in c.parameters():
            if p.dim() > 1:
                cut = p.abs().flatten().kthvalue(int(amount * p.numel())).values
                p[p.abs() <= cut] = 0
    return c.eval()


@pytest.fixture(scope="module")
def pair(split, tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    dense = _train(split, 0)
    comp = _prune(dense, 0.6)
    torch.save(dense.state_dict(), d / "dense.pt")
    torch.jit.save(torch.jit.script(comp), d / "pruned_ts.pt")
    ex = torch.export.export(comp, (split.x_test[:4],), dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}})
    torch.export.save(ex, d / "pruned.pt2")
    from safetensors.torch import save_file

    save_file(comp.state_dict(), d / "pruned.safetensors")
    return d, dense, comp


def _evaluate(db, *args):
    return runner.invoke(app, ["replicate", "evaluate", "--dataset", "digits", "--n", str(N_TEST), "--eps", str(EPS), "--device", "cpu",
                               "--db", db, "--json", *args])


def _hand_fgsm_correct(model, x, y, eps):
    """Per image, one at a time: FGSM by hand (x + eps * sign of the cross-entropy gradient, clipped to [0, 1])."""
    out = []
    for i in range(len(y)):
        xi = x[i: i + 1].clone().requires_grad_(True)
        torch.nn.functional.cross_entropy(model(xi), y[i: i + 1]).backward()
        adv = (xi + eps * xi.grad.sign()).clamp(0, 1).detach()
        out.append(bool(model(adv).argmax(1).item() == y[i].item()))
    return out


def test_loaders_give_the_same_model_from_every_safe_format(pair, split):
    d, _, comp = pair
    x = split.x_test[:16]
    kw = {"arch": "lenet", "shape": split.shape, "n_classes": split.n_classes}
    formats = {}
    for name in ("pruned_ts.pt", "pruned.pt2", "pruned.safetensors"):
        lm = load_checkpoint(d / name, **kw)
        formats[name] = lm.format
        assert torch.allclose(lm.module(x), comp(x), atol=1e-5), name
        assert len(lm.sha256) == 64
    assert formats == {"pruned_ts.pt": CheckpointFormat.torchscript, "pruned.pt2": CheckpointFormat.exported_program,
                       "pruned.safetensors": CheckpointFormat.safetensors}


def test_state_dict_needs_a_fitting_arch(pair, split):
    d, _, _ = pair
    with pytest.raises(CheckpointError, match="--arch"):
        load_checkpoint(d / "dense.pt", arch=None, shape=split.shape, n_classes=split.n_classes)
    with pytest.raises(CheckpointError, match="do not fit --arch mlp"):
        load_checkpoint(d / "dense.pt", arch="mlp", shape=split.shape, n_classes=split.n_classes)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_pickle_that_would_run_code_is_refused_and_nothing_is_written(pair, tmp_path, seeded_url):
    d, _, _ = pair
    marker = str(tmp_path / "code-ran")
    torch.save({"weight": _RunsCode(marker)}, tmp_path / "evil.pt")
    before = len(pending_submissions(get_engine(seeded_url)))
    res = _evaluate(seeded_url, "--dense", str(d / "dense.pt"), "--compressed", str(tmp_path / "evil.pt"), "--arch", "lenet", "--attacks", "fgsm")
    assert res.exit_code == 2
    assert "refused" in res.output and "evil.pt" in res.output and "would import or call Python code" in res.output
    assert not os.path.exists(marker)
    assert len(pending_submissions(get_engine(seeded_url))) == before


def test_paired_counts_equal_a_hand_written_loop_and_the_submission_is_pending_then_approvable(pair, split, seeded_url):
    d, dense, comp = pair
    res = _evaluate(seeded_url, "--dense", str(d / "dense.pt"), "--compressed", str(d / "pruned_ts.pt"), "--arch", "lenet",
                    "--attacks", "fgsm,pgd", "--steps", "10", "--family", "unstructured_pruning", "--no-checks")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    x, y = split.x_test, split.y_test
    clean_d = [bool(dense(x[i: i + 1]).argmax(1).item() == y[i].item()) for i in range(len(y))]
    clean_c = [bool(comp(x[i: i + 1]).argmax(1).item() == y[i].item()) for i in range(len(y))]
    rob_d, rob_c = _hand_fgsm_correct(dense, x, y, EPS), _hand_fgsm_correct(comp, x, y, EPS)
    fgsm = next(r for r in out["results"] if r["attack"] == "fgsm")
    assert fgsm["n_test"] == N_TEST
    assert (fgsm["n_clean_correct_dense"], fgsm["n_clean_correct_compressed"]) == (sum(clean_d), sum(clean_c))
    assert (fgsm["n_robust_correct_dense"], fgsm["n_robust_correct_compressed"]) == (sum(rob_d), sum(rob_c))
    assert fgsm["n_robust_dense_only"] == sum(a and not b for a, b in zip(rob_d, rob_c))
    assert fgsm["n_robust_compressed_only"] == sum(b and not a for a, b in zip(rob_d, rob_c))
    assert fgsm["real_steps"] == 1 and next(r for r in out["results"] if r["attack"] == "pgd")["real_steps"] == 10
    assert out["compressed"]["format"] == "torchscript" and out["dense"]["format"] == "state_dict"
    assert out["compressed"]["cost"]["params_nonzero"] < out["dense"]["cost"]["params_nonzero"]

    e = get_engine(seeded_url)
    sub = out["submission_id"]
    df = query_results(e, ResultFilter(status="all", study_ids=[out["study_id"]], include_quick=True))
    rows = df[df["submission_id"] == sub]
    assert len(rows) == 2 and set(rows["review_status"]) == {"pending"}
    row = rows[rows["attack"] == "fgsm"].iloc[0]
    assert row["n_robust_correct_compressed"] == sum(rob_c)
    assert row["robust_acc_compressed"] == pytest.approx(100 * sum(rob_c) / N_TEST)
    prov = json.loads(row["replication_json"])
    assert prov["dense"]["sha256"] == out["dense"]["sha256"] and prov["compressed"]["sha256"] == out["compressed"]["sha256"]
    assert prov["split"]["test_index_sha256"] and prov["attack"]["eps"] == EPS and prov["torch"] == torch.__version__
    approve(e, sub, by="a-reviewer", allow_self_approval=True)
    df = query_results(e, ResultFilter(status="approved", study_ids=[out["study_id"]], include_quick=True))
    assert len(df[df["submission_id"] == sub]) == 2


class _Quantized(torch.nn.Module):
    """Bit-depth reduction in front of the model: zero input gradients (a masking defence)."""

    def __init__(self, model):
        super().__init__()
        self.q, self.model = InputQuantizer(3), model

    def forward(self, x):
        return self.model(self.q(x))


@pytest.mark.slow
def test_a_model_that_masks_gradients_is_flagged_high_risk(pair, split, tmp_path, seeded_url):
    d, dense, comp = pair
    torch.jit.save(torch.jit.script(_Quantized(comp).eval()), tmp_path / "masked.pt")
    res = _evaluate(seeded_url, "--dense", str(d / "dense.pt"), "--compressed", str(tmp_path / "masked.pt"), "--arch", "lenet",
                    "--attacks", "pgd", "--steps", "10", "--family", "quantization")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    failed = {c["name"] for c in out["compressed"]["checks"] if c["informative"] and not c["passed"]}
    assert out["compressed"]["possible_gradient_masking"] and "no_vanishing_input_gradients" in failed
    assert "no_vanishing_input_gradients" not in {c["name"] for c in out["dense"]["checks"] if not c["passed"]}
    df = query_results(get_engine(seeded_url), ResultFilter(status="all", study_ids=[out["study_id"]], include_quick=True))
    row = df[df["submission_id"] == out["submission_id"]].iloc[0]
    assert bool(row["gradient_masking"]) and "possible gradient masking" in row["notes"]


def test_an_unknown_study_is_refused_before_anything_is_written(pair, seeded_url):
    d, _, _ = pair
    before = len(pending_submissions(get_engine(seeded_url)))
    res = _evaluate(seeded_url, "--dense", str(d / "dense.pt"), "--compressed", str(d / "pruned.pt2"), "--arch", "lenet", "--attacks", "fgsm",
                    "--no-checks", "--study", "no-such-study")
    assert res.exit_code == 2 and "no-such-study" in res.output
    assert len(pending_submissions(get_engine(seeded_url))) == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine: the CUDA path runs where a GPU exists")
def test_the_cuda_path_gives_the_cpu_counts_for_fgsm(pair, seeded_url):
    d, _, _ = pair
    args = ["--dense", str(d / "dense.pt"), "--compressed", str(d / "pruned.safetensors"), "--arch", "lenet", "--attacks", "fgsm", "--no-checks",
            "--no-submit"]
    cpu = json.loads(_evaluate(seeded_url, *args).output)
    res = runner.invoke(app, ["replicate", "evaluate", "--dataset", "digits", "--n", str(N_TEST), "--eps", str(EPS), "--device", "cuda", "--json", *args])
    assert res.exit_code == 0, res.output
    gpu = json.loads(res.output)
    assert gpu["runtime"]["device"].startswith("cuda")
    for a, b in zip(cpu["results"], gpu["results"]):
        assert abs(a["n_robust_correct_compressed"] - b["n_robust_correct_compressed"]) <= 2  # float reductions differ in the last bits


def test_attack_list_refuses_baselines_transfer_and_the_wrong_norm():
    from evidence.vocab import Norm
    from replicate.evaluate.run import parse_attacks, parse_eps

    assert parse_eps("8/255") == pytest.approx(8 / 255)
    with pytest.raises(ValueError, match="baseline"):
        parse_attacks("noise", eps=0.1, norm=Norm.linf, steps=10)
    with pytest.raises(ValueError, match="source model"):
        parse_attacks("transfer", eps=0.1, norm=Norm.linf, steps=10)
    with pytest.raises(ValueError, match="l2 norm"):
        parse_attacks("pgd,pgdl2", eps=0.1, norm=Norm.linf, steps=10)
    assert [a.real_steps for a in parse_attacks("autoattack_standard,fgsm", eps=0.1, norm=Norm.linf, steps=10)] == [100, 1]
