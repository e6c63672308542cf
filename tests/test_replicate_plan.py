"""``crev replicate plan``: images and seeds for a replication, checked against a simulation of the paired design."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binomtest, norm
from typer.testing import CliRunner

from crev_cli import app
from replicate.evaluate.planning import images_for_equivalence, images_to_detect, mcnemar_power, release_spread

runner = CliRunner()


def _simulate_mcnemar(n, delta, psi, alpha, reps, rng):
    """Share of simulated paired runs in which the one-sided exact McNemar test rejects."""
    counts = rng.multinomial(n, [(psi + delta) / 2, (psi - delta) / 2, 1 - psi], size=reps)
    return np.mean([b + c > 0 and binomtest(int(b), int(b + c), 0.5, alternative="greater").pvalue <= alpha for b, c, _ in counts])


def test_plan_prints_images_and_seeds_for_the_claim():
    res = runner.invoke(app, ["replicate", "plan", "pruning_without_at", "--detect", "3", "--json"])
    assert res.exit_code == 0, res.output
    p = json.loads(res.output)
    assert p["images_detect"] > 0 and p["seeds_detect"] >= 2
    text = runner.invoke(app, ["replicate", "plan", "pruning_without_at", "--detect", "3", "--margin", "3"]).output
    assert f"n = {p['images_detect']} test images" in text and "TOST" in text


def test_images_to_detect_reach_the_power_in_a_simulation_of_the_paired_design():
    s = release_spread("pruning_without_at")
    n = images_to_detect(0.03, s.discordant, 0.05, 0.8)
    rng = np.random.default_rng(0)
    reps = 2000
    at_n = _simulate_mcnemar(n, 0.03, s.discordant, 0.05, reps, rng)
    se = np.sqrt(0.8 * 0.2 / reps)
    assert at_n >= 0.8 - 3 * se
    assert abs(at_n - mcnemar_power(n, 0.03, s.discordant, 0.05)) <= 3 * se  # the exact sum agrees with the simulation
    assert _simulate_mcnemar(n // 2, 0.03, s.discordant, 0.05, reps, rng) < 0.8 - 3 * se  # half the images are not enough


def test_equivalence_images_reach_the_power_of_tost_in_a_simulation():
    psi, margin, alpha, reps = 0.07, 0.03, 0.05, 4000
    n = images_for_equivalence(margin, psi, alpha, 0.8)
    rng = np.random.default_rng(1)
    counts = rng.multinomial(n, [psi / 2, psi / 2, 1 - psi], size=reps)
    d = (counts[:, 0] - counts[:, 1]) / n
    se = np.sqrt(np.maximum((counts[:, 0] + counts[:, 1]) / n - d ** 2, 1e-12) / n)
    z = norm.isf(alpha)
    shown = np.mean(((d + margin) / se > z) & ((margin - d) / se > z))
    assert shown >= 0.8 - 3 * np.sqrt(0.16 / reps)


def test_an_unknown_claim_names_the_known_ones():
    res = runner.invoke(app, ["replicate", "plan", "no_such_claim"])
    assert res.exit_code == 2 and "pruning_without_at" in res.output
