import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from seqopt.cli import run_search
from seqopt.report import find_runs, group_runs, main, read_run, varying_keys
from seqopt.store import read_records


def _run(folder: Path, overrides: list[str]) -> None:
    """Run one search as the seqopt command would, in a config context opened by the caller."""
    cfg = compose("config", overrides=["progress=false", "env.n=5", "budget.trials=80",
                                       "agent.population_size=10", "agent.sample_size=3", *overrides])
    run_search(cfg, folder)
    (folder / ".hydra").mkdir()
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")  # what Hydra saves in every run folder


def _final_moving_average(folder: Path, window: int = 50) -> float:
    rewards = [r["reward"] for r in sorted(read_records(folder), key=lambda r: r["trial"])]
    usable = [r for r in rewards[-window:] if r is not None]
    return float(np.mean(usable))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    job = 0
    with initialize_config_module(config_module="seqopt.conf", version_base=None):
        for p in (0.1, 0.5):
            for seed in (0, 1, 2):
                _run(root / str(job), [f"agent.mutation_probability={p}", f"seed={seed}",
                                       f"checkpoint.every_trials={10 + job}"])
                job += 1
    return root


def test_runs_are_found_in_natural_order(sweep):
    assert [path.name for path in find_runs([sweep])] == [str(job) for job in range(6)]
    with pytest.raises(FileNotFoundError, match=r"No trials\.jsonl found"):
        find_runs([sweep / "0" / ".hydra"])


def test_seed_and_run_settings_do_not_split_settings(sweep):
    runs = [read_run(path, 50) for path in find_runs([sweep])]
    assert varying_keys(runs) == ["agent.mutation_probability"]
    settings = group_runs(runs)
    assert [setting.label for setting in settings] in (
        ["agent.mutation_probability=0.1", "agent.mutation_probability=0.5"],
        ["agent.mutation_probability=0.5", "agent.mutation_probability=0.1"],
    )
    assert all(sorted(setting.seeds) == [0, 1, 2] for setting in settings)


def test_settings_ranked_by_mean_final_moving_average(sweep):
    runs = [read_run(path, 50) for path in find_runs([sweep])]
    expected = {}
    for p, jobs in ((0.1, (0, 1, 2)), (0.5, (3, 4, 5))):
        expected[f"agent.mutation_probability={p}"] = np.mean([_final_moving_average(sweep / str(j)) for j in jobs])
    settings = group_runs(runs)
    assert [s.label for s in settings] == sorted(expected, key=expected.get, reverse=True)
    for setting in settings:
        assert setting.mean_and_std("final_moving_average")[0] == pytest.approx(expected[setting.label])


def test_report_command_writes_table_and_plots(sweep, tmp_path, capsys):
    assert main([str(sweep), "--out", str(tmp_path)]) == 0
    output = capsys.readouterr().out
    assert "6 runs, 2 settings" in output
    assert "| 1 | agent.mutation_probability=" in output
    with open(tmp_path / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["replicas"] for row in rows] == ["3", "3"]
    assert float(rows[0]["final_moving_average_mean"]) >= float(rows[1]["final_moving_average_mean"])
    for name in ("report.md", "curves_moving_average.png", "curves_best_reward.png"):
        assert (tmp_path / name).stat().st_size > 0
    # The table spreads are standard deviations, unlike the plots' bands, and the header says so.
    assert "best reward, mean ± std" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_identical_settings_form_one_group(tmp_path):
    with initialize_config_module(config_module="seqopt.conf", version_base=None):
        for seed in (0, 1):
            _run(tmp_path / f"seed{seed}", [f"seed={seed}"])
    runs = [read_run(path, 50) for path in find_runs([tmp_path])]
    (setting,) = group_runs(runs)
    assert setting.label == "all runs"
    assert len(setting.runs) == 2


@pytest.mark.slow
def test_tuning_experiment_multirun_then_report(tmp_path):
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, "-m", "seqopt.cli", "experiment=tune_mutation", "agent=aging_evolution",
               "agent.population_size=10", "agent.sample_size=3", "env.n=5", "budget.trials=60",
               "agent.mutation_probability=0.1,0.5", "seed=0,1", f"hydra.sweep.dir={sweep_dir}"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert len(find_runs([sweep_dir])) == 4

    report = subprocess.run([sys.executable, "-m", "seqopt.report", str(sweep_dir), "--out", str(tmp_path / "r")],
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert "4 runs, 2 settings" in report.stdout
    assert "seed=" not in report.stdout
