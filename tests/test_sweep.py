"""vtopt.training.sweep on its own: the search space, one real trial, and the results table and files."""

from __future__ import annotations

import csv
import json

import pytest

from vtopt.config.checks import load_config
from vtopt.config.distributions import Distribution
from vtopt.errors import VtoptError
from vtopt.testing import TINY_CONFIG
from vtopt.training.sweep import Trial, sweep_space, write_results


def _config(tmp_path, text: str):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


def test_the_space_is_parsed_and_a_config_without_one_is_named(tmp_path, vtopt_pm):
    pm = vtopt_pm()
    path = _config(tmp_path, TINY_CONFIG + "sweep:\n  space:\n    run.seed: randint(0, 9)\n"
                                          "    algorithm.params.n_epochs: choice([1, 2])\n")
    assert sweep_space(load_config(path, pm=pm)) == {"run.seed": Distribution("randint", (0, 9)),
                                                     "algorithm.params.n_epochs": Distribution("choice", (1, 2))}
    bare = _config(tmp_path, TINY_CONFIG)
    with pytest.raises(VtoptError, match=f"^{bare}: no sweep section with a space to search"):
        sweep_space(load_config(bare, pm=pm))


def test_a_trial_trains_with_its_values_and_reports_its_evaluations(tmp_path):
    path = _config(tmp_path, TINY_CONFIG.replace("checkpoint_every: 64", "checkpoint_every: 0"))
    heard = []
    row = Trial(str(path), ("run.timesteps=32",), 32)({"run.seed": 7}, str(tmp_path / "trial_3"), heard.append)
    assert row["trial"] == "trial_3" and row["run.seed"] == 7 and row["timesteps"] == 32
    assert row["score"] == heard[-1]["mean_score"] and heard[-1]["timesteps"] == 32
    assert set(heard[-1]) == {"mean_score", "mean_ssim", "mean_improvement", "bytes_ratio", "timesteps"}
    saved = load_config(tmp_path / "trial_3" / "config.yaml").config.run
    assert (saved.seed, saved.timesteps) == (7, 32)  # the drawn value and the override took effect


def test_results_are_sorted_best_first_with_failures_last_in_the_table_and_both_files(tmp_path):
    rows = [{"trial": "trial_0", "score": 0.5, "algorithm.params.learning_rate": 0.00012, "timesteps": 64},
            {"trial": "trial_1", "score": None, "algorithm.params.learning_rate": 0.0005, "error": "boom: it failed"},
            {"trial": "trial_2", "score": 0.75, "algorithm.params.learning_rate": 2500.0, "timesteps": 64}]
    table = write_results(rows, tmp_path / "out", "mean_score").splitlines()
    assert table[0].split() == ["trial", "mean_score", "learning_rate", "timesteps"]
    assert set(table[1]) == {"-"} and len(table[1]) == len(table[0])
    assert [line.split()[0] for line in table[2:]] == ["trial_2", "trial_0", "trial_1"]
    assert table[2].split() == ["trial_2", "0.7500", "2500", "64"]
    assert table[3].split()[2] == "0.00012"  # small values keep their digits
    assert table[4].split()[:2] == ["trial_1", "failed"] and table[4].endswith("  boom: it failed")
    saved = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [r["trial"] for r in saved] == ["trial_2", "trial_0", "trial_1"]
    with open(tmp_path / "out" / "sweep.csv", newline="") as fh:
        table_rows = list(csv.DictReader(fh))
    assert [r["trial"] for r in table_rows] == ["trial_2", "trial_0", "trial_1"]
    assert table_rows[2]["error"] == "boom: it failed" and table_rows[2]["score"] == ""
