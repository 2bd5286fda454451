"""Search curves and plots: moving average, best so far, bands, trial stores and seqopt-plot."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqopt import Budget, Evaluation, Proposal, Search, Status, TrialResult
from seqopt.agents import RandomSearch
from seqopt.envs import LearnToCount
from seqopt.plots import band, best_so_far, main, moving_average, plot_runs, read_rewards, run_label
from seqopt.store import TrialStore

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_moving_average_known_answer() -> None:
    rewards = np.array([1.0, 2.0, 3.0, math.nan, 5.0, 7.0])
    np.testing.assert_allclose(moving_average(rewards, window=2), [1.0, 1.5, 2.5, 3.0, 5.0, 6.0])
    np.testing.assert_allclose(moving_average(rewards, window=3), [1.0, 1.5, 2.0, 2.5, 4.0, 6.0])


def test_moving_average_is_nan_before_first_usable_reward() -> None:
    averages = moving_average(np.array([math.nan, math.nan, 4.0]), window=50)
    assert np.isnan(averages[:2]).all()
    assert averages[2] == 4.0


def test_moving_average_rejects_bad_window() -> None:
    with pytest.raises(ValueError, match="window must be an int >= 1, got 0"):
        moving_average(np.ones(3), window=0)


def test_best_so_far_skips_failed_trials() -> None:
    best = best_so_far(np.array([math.nan, 0.2, math.nan, 0.1, 0.7, 0.3]))
    assert math.isnan(best[0])
    np.testing.assert_allclose(best[1:], [0.2, 0.2, 0.2, 0.7, 0.7])


def test_band_known_answer() -> None:
    curves = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])
    summary = band(curves, "2sem")
    np.testing.assert_allclose(summary.mean, [3.0, 5.0])
    # Sample standard deviations 2 and sqrt(13); s.e.m. = sd / sqrt(3).
    np.testing.assert_allclose(summary.high - summary.mean, [2 * 2 / math.sqrt(3), 2 * math.sqrt(13) / math.sqrt(3)])
    minmax = band(curves, "minmax")
    np.testing.assert_allclose(minmax.low, [1.0, 2.0])
    np.testing.assert_allclose(minmax.high, [5.0, 9.0])
    assert summary.num_replicas == 3


def test_band_cuts_to_shortest_replica() -> None:
    summary = band([np.array([1.0, 2.0, 3.0]), np.array([3.0, 4.0])], "2sem")
    np.testing.assert_allclose(summary.mean, [2.0, 3.0])


def test_band_rejects_unknown_interval() -> None:
    with pytest.raises(ValueError, match=r"interval must be one of \['2sem', 'ci70', 'minmax'\], got 'sd'"):
        band(np.ones((2, 3)), "sd")


def test_read_rewards_orders_trials_and_marks_failures(tmp_path: Path) -> None:
    with TrialStore(tmp_path / "trials.jsonl") as store:
        for trial_id, reward, status in ((1, 0.5, Status.OK), (0, 0.25, Status.OK), (2, math.nan, Status.FAILED)):
            evaluation = Evaluation(reward=reward, status=status, error="boom" if status is Status.FAILED else None)
            store.append(TrialResult(trial_id, Proposal((0, 1)), evaluation))
    rewards = read_rewards(tmp_path)
    np.testing.assert_array_equal(rewards[:2], [0.25, 0.5])
    assert math.isnan(rewards[2])


def make_runs(root: Path, count: int, trials: int = 60) -> list[Path]:
    objective = LearnToCount(5)
    run_dirs = []
    for seed in range(count):
        run_dir = root / f"run{seed}"
        Search(objective, RandomSearch(objective.space, seed=seed), budget=Budget(trials=trials), seed=seed,
               run_dir=run_dir).run()
        run_dirs.append(run_dir)
    return run_dirs


def test_plot_runs_writes_two_pngs(tmp_path: Path) -> None:
    run_dirs = make_runs(tmp_path, 3)
    paths = plot_runs(run_dirs, tmp_path / "out" / "demo", labels=["a", "a", "b"], window=10)
    assert [p.name for p in paths] == ["demo_moving_average.png", "demo_best_reward.png"]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert path.stat().st_size > 5000


def test_plot_runs_rejects_label_count_mismatch(tmp_path: Path) -> None:
    run_dirs = make_runs(tmp_path, 2, trials=5)
    with pytest.raises(ValueError, match="Got 1 labels for 2 run folders"):
        plot_runs(run_dirs, tmp_path / "x", labels=["a"])


def test_run_label_reads_hydra_agent_choice(tmp_path: Path) -> None:
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n      agent: evo_nas_pqt\n")
    assert run_label(tmp_path) == "evo_nas_pqt"
    assert run_label(tmp_path / "missing") == "missing"


def test_main_writes_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dirs = make_runs(tmp_path, 2, trials=30)
    assert main([str(d) for d in run_dirs] + ["--out", str(tmp_path / "cli"), "--interval", "minmax"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "cli_moving_average.png"), str(tmp_path / "cli_best_reward.png")]


def test_main_reports_missing_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
    assert "run folder not found" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_runs(tmp_path: Path) -> None:
    run_dirs = make_runs(tmp_path, 2, trials=20)
    executable = shutil.which("seqopt-plot") or ""
    command = [executable] if executable else [sys.executable, "-m", "seqopt.plots"]
    completed = subprocess.run([*command, *map(str, run_dirs), "--out", str(tmp_path / "script")],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "script_best_reward.png").exists()
