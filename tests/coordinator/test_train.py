"""`ansf train` end to end on a tiny budget: replayed history of a repository we write, simulated episodes,
files, curves, reproducibility from the seed, and every default read from the profile's record."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ansf_mcp.coordinator import neural
from ansf_mcp.coordinator.profiles import SPEC, STUDENT
from ansf_mcp.lab import corpus, train
from tests.git_history import GitHistory

AUTHORS = {f"dev{i}": (f"Dev {i}", f"dev{i}@example.org") for i in range(4)}
FOLDERS = {f"dev{i}": f"pkg{i}" for i in range(4)}
WORDS = ["parser", "docs", "network", "storage"]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A mirror folder with one repository of 260 commits by four authors, and a list naming it."""
    root = tmp_path_factory.mktemp("mirror")
    repo = root / "acme+tool" / "repo"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    h = GitHistory(AUTHORS, FOLDERS)
    for k in range(260):
        i = (k * 7) % 4 if k % 5 else k % 4
        h.commit(f"dev{i}", f"Improve the {WORDS[i]} module, part {k}")
    h.write(repo)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    listing = root / "repos.txt"
    listing.write_text(f"# test\nacme/tool {head}\n")
    return root, listing


def tiny(mirror: tuple[Path, Path], out: Path, seed: int, profile: str = "student") -> list[str]:
    return [
        "--profile", profile, "--seed", str(seed), "--out", str(out), "--mirror", str(mirror[0]),
        "--repos", str(mirror[1]), "--replay-per-repo", "6", "--steps", "3", "--synthetic-episodes", "16",
        "--val-episodes", "6", "--eval-every", "3", "--batch", "4",
    ]


def test_train_writes_checkpoint_card_and_curves_reproducibly(tmp_path: Path, mirror) -> None:
    assert train.main(tiny(mirror, tmp_path / "a", 3)) == 0
    assert train.main(tiny(mirror, tmp_path / "b", 3)) == 0
    assert train.main(tiny(mirror, tmp_path / "c", 4)) == 0
    cards = {k: json.loads((tmp_path / k / "student.json").read_text()) for k in "abc"}
    assert cards["a"]["sha256"] == cards["b"]["sha256"]
    assert cards["a"]["sha256"] != cards["c"]["sha256"]
    assert (tmp_path / "a" / "student-loss.png").stat().st_size > 1000
    t = cards["a"]["train"]
    assert t["steps"] == 3 and cards["a"]["seed"] == 3 and t["replayed_blocks"] == 6
    assert t["repositories"] == [mirror[1].read_text().splitlines()[1]]
    # Every setting not given on the command line is the profile's own (no argparse default overrides it).
    assert t["embed_lr_mult"] == STUDENT.training.embed_lr_mult and t["lr"] == STUDENT.training.lr
    assert cards["a"]["config"] == STUDENT.config.as_dict()
    # What training writes, the loader reads.
    est = neural.load_file(tmp_path / "a" / "student.safetensors")
    assert est.card["sha256"] == cards["a"]["sha256"]


def test_spec_profile_reads_its_own_defaults(tmp_path: Path, mirror) -> None:
    args = tiny(mirror, tmp_path / "s", 1, profile="spec-int8")
    args[args.index("--batch") + 1] = "2"
    assert train.main(args) == 0
    card = json.loads((tmp_path / "s" / "spec.json").read_text())
    assert card["train"]["embed_lr_mult"] == SPEC.training.embed_lr_mult == 20.0
    assert card["config"]["d_model"] == 512 and card["config"]["layers"] == 6 and card["config"]["heads"] == 8


def test_unknown_profile_and_missing_mirror_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        train.main(["--profile", "huge", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        train.main(["--profile", "student", "--out", str(tmp_path)])  # replay needs --mirror


def test_reserved_repositories_can_never_be_listed(tmp_path: Path) -> None:
    listing = tmp_path / "repos.txt"
    listing.write_text("pallets/flask 0123456789abcdef\n")
    with pytest.raises(ValueError, match="reserved"):
        corpus.read_list(listing)
    shipped = {r.name for r in corpus.read_list(corpus.TRAINING_LIST)}
    held = {r.name for r in corpus.read_list(corpus.HELDOUT_LIST)}
    valid = {r.name for r in corpus.read_list(corpus.VALIDATION_LIST)}
    assert len(shipped) >= 30 and len(held) >= 5
    assert not shipped & held and not shipped & valid and not held & valid


@pytest.mark.slow
def test_quick_bench_reports_every_method(monkeypatch: pytest.MonkeyPatch) -> None:
    from ansf_mcp.coordinator.profiles import DEFAULT_PROFILE
    from ansf_mcp.lab import bench
    from ansf_mcp.lab.bench import run_coordination_bench

    loads: list[list[str]] = []
    round_order = bench.round_order

    def recorded(items: tuple[str, ...], round_: int) -> list[str]:
        loads.append(round_order(items, round_))
        return loads[-1]

    monkeypatch.setattr(bench, "round_order", recorded)
    seen = []
    out = run_coordination_bench(lambda f, m: seen.append(f), quick=True)
    assert out["simulated"] is True
    assert {"similarity", "history", "tags", "round-robin", "ceiling", DEFAULT_PROFILE} <= set(out["quality"])
    for name, m in out["quality"].items():
        assert 0.0 < m["heldout"]["mean"] <= 1.0 + 1e-9 and m["heldout"]["n"] == 40
        if name != "ceiling":
            assert m["family"]["n"] == 40
    assert "16x64" in out["latency"][DEFAULT_PROFILE]
    # A quick run times 5 calls per size: too few for a p95, which the table printed anyway (the slowest call).
    busy = out["latency_beside_busy_process"][DEFAULT_PROFILE]
    assert busy["n"] == 5 and busy["p95_ms"] is None and busy["max_ms"] >= busy["p50_ms"] > 0
    assert f"max {busy['max_ms']:.1f} of n=5" in out["markdown"]
    # The quiet and the busy column were two blocks, one after the other, compared as if measured together; they
    # now take turns (quiet busy, busy quiet, ...) for each method, with as many calls each.
    assert out["latency"][DEFAULT_PROFILE]["16x64"]["n"] == 5
    assert loads[:bench.LOAD_ROUNDS] == [["quiet", "busy"], ["busy", "quiet"]] * (bench.LOAD_ROUNDS // 2)
    assert len(loads) == bench.LOAD_ROUNDS * len(out["latency_beside_busy_process"])
    assert f"taking turns in {bench.LOAD_ROUNDS} rounds" in out["markdown"]
    assert "| method |" in out["markdown"] and seen[-1] == 1.0
    # RSS and file sizes are divided by 2**20: the table said MB beside the memory suite's MiB for the same unit.
    assert "| RSS MiB | file MiB |" in out["markdown"] and " MB " not in out["markdown"]
    json.dumps(out)


@pytest.mark.slow
def test_shipped_similarity_constants_are_what_the_calibration_command_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ansf_mcp.coordinator import baselines
    from ansf_mcp.lab import calibrate

    assert calibrate.main([]) == 0
    assert capsys.readouterr().out == (
        f"SIMILARITY_BIAS = {baselines.SIMILARITY_BIAS:.3f}\nSIMILARITY_GAIN_OK = {baselines.SIMILARITY_GAIN_OK:.3f}\n"
        f"SIMILARITY_GAIN_FAIL = {baselines.SIMILARITY_GAIN_FAIL:.3f}\n"
    )


def test_similarity_calibration_and_auto_prior_are_reproducible_measurements(tmp_path: Path) -> None:
    from ansf_mcp.coordinator import baselines
    from ansf_mcp.lab import calibrate, prior

    bias, gain_ok, gain_fail = calibrate.fit(episodes=60, seed=1)
    # More similar to past successes: more likely; more similar to past failures: less likely.
    assert gain_ok > 0 and gain_fail > 0 and -2 < bias < 2
    assert (bias, gain_ok, gain_fail) != (
        baselines.SIMILARITY_BIAS, baselines.SIMILARITY_GAIN_OK, baselines.SIMILARITY_GAIN_FAIL
    )
    out = tmp_path / "prior.json"
    assert prior.main(["--episodes", "8", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data["estimators"]) == {"neural", "similarity", "history"} and "SIMULATED" in data["data"]
    for figures in data["estimators"].values():
        assert 0 < figures["brier"] < figures["log_loss"] < 1.5
        assert 0 < figures["recalibrated_brier"] < figures["recalibrated_log_loss"] < 1.5
        assert 0 < figures["recalibrated_pairs"] <= figures["pairs"]


def test_replay_distillation_pulls_towards_the_teachers_choice() -> None:
    """The listwise distillation term: the teacher's softmax over agents per task, on replayed blocks only."""
    import torch

    from ansf_mcp.coordinator import model as M

    agent_mask = torch.tensor([[True, True, False], [True, True, True]])
    task_mask = torch.tensor([[True, False], [True, True]])
    batch = {"agent_mask": agent_mask, "task_mask": task_mask, "listwise": torch.tensor([True, False])}
    teacher = torch.tensor([[[3.0, 0.0], [0.0, 0.0], [9.0, 9.0]], [[0.0, 0.0]] * 3])
    student = torch.zeros(2, 3, 2, requires_grad=True)
    value = M.listwise_distill(student, teacher, batch)
    # Block 0, task 0 only (task 1 and agent 2 are padding; block 1 is simulated): -sum(t * log 0.5) = log 2.
    assert float(value) == pytest.approx(float(torch.log(torch.tensor(2.0))), abs=1e-6)
    value.backward()
    grad = student.grad
    assert grad[0, 0, 0] < 0 < grad[0, 1, 0]  # raise the agent the teacher prefers
    assert float(grad[1].abs().sum()) == 0.0 and float(grad[0, :, 1].abs().sum()) == 0.0
    none_replayed = {**batch, "listwise": torch.tensor([False, False])}
    assert float(M.listwise_distill(student, teacher, none_replayed)) == 0.0


def test_a_mirror_or_export_that_cannot_be_read_is_refused_before_anything_runs(tmp_path: Path, mirror,
                                                                                capsys) -> None:
    """Once found only after the simulated data was made (~40 s), and then as a traceback."""
    listing = mirror[1]
    base = ["--profile", "student", "--out", str(tmp_path / "out"), "--repos", str(listing)]
    refusals = {
        "--mirror": (["--mirror", str(tmp_path / "nowhere")], "--mirror"),
        "empty mirror": (["--mirror", str(tmp_path)], "1 of the 1 training repositories are not under --mirror"),
        "--histories": (["--histories", str(tmp_path / "none.xz")], "--histories"),
    }
    for case, (extra, said) in refusals.items():
        with pytest.raises(SystemExit) as stopped:
            train.main([*base, *extra])
        assert stopped.value.code == 2, case
        assert said in capsys.readouterr().err, case
    assert not (tmp_path / "out").exists()
    assert train.replay_input_problem(mirror[0], None, listing) is None


def test_an_output_folder_that_cannot_be_made_is_refused_before_training(tmp_path: Path, mirror, capsys) -> None:
    """Once made only after training, so the checkpoint of a run (hours, for the spec network) was lost."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = tiny(mirror, blocker / "out", 3)
    with pytest.raises(SystemExit) as stopped:
        train.main(args)
    assert stopped.value.code == 2
    assert "cannot make the output folder --out" in capsys.readouterr().err
