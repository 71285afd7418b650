"""Model warm-up at start when the phase allows, and model loads kept out of the decision latency, through a real
stdio server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import ansf_command, subprocess_env
from tests.mcp_calls import call

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def params(data_dir: Path, cwd: Path, **env: str) -> StdioServerParameters:
    cmd = ansf_command()
    return StdioServerParameters(command=cmd[0], args=[*cmd[1:], "serve", "--project", str(cwd)],
                                 env={**subprocess_env(data_dir), **env}, cwd=str(cwd))


def model_unavailable() -> str | None:
    """Why the shipped default model cannot load here (then the warm-up must say so), or None."""
    from ansf_mcp.coordinator import neural
    from ansf_mcp.coordinator.episode import ModelUnavailable

    try:
        neural.load(None)
    except ModelUnavailable as exc:
        return str(exc)
    return None


def rows(data_dir: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(data_dir / "ansf.sqlite3") as conn:
        return conn.execute(sql).fetchall()


async def test_the_model_warms_at_start_and_the_first_decision_does_not_load_it(data_dir: Path, tmp_path: Path):
    async with Client(params(data_dir, tmp_path, ANSF_WARMUP="1"), mode="legacy") as client:
        with anyio.fail_after(180):  # polls the state, as an operator would; not a timing check
            while (warm := (await call(client, "system_status"))["components"]["model_warmup"])["state"] == "loading":
                await anyio.sleep(0.2)
        if (why := model_unavailable()) is not None:  # a checkpoint that does not fit: the warm-up says why
            assert warm["state"] == "failed" and warm["reason"] == why, warm
            pytest.skip(f"the shipped model does not load in this build: {why[:200]}")
        assert warm["state"] == "loaded" and warm["trigger"] == "warm-up", warm
        with anyio.fail_after(60):  # the heap is settled right after the warm-up, in its own thread
            while not (heap := (await call(client, "system_status"))["components"]["heap"])["settled"]:
                await anyio.sleep(0.2)
        assert heap["after"] == "the start-up's warm-up" and heap["frozen_objects"] > 100_000, heap
        sw = (await call(client, "spawn_swarm", name="w", agents=[{"role": "backend"}, {"role": "qa"}]))["swarm_id"]
        result = await call(client, "coordinate", swarm_id=sw, tasks=[{"description": "Add an endpoint"}],
                            strategy="neural")
        assert result["strategy"] == "neural"
    loads = rows(data_dir, "SELECT trigger, elapsed_ms FROM model_loads")
    decisions = rows(data_dir, "SELECT strategy, elapsed_ms FROM decisions")
    assert [t for t, _ in loads] == ["warm-up"] and [s for s, _ in decisions] == ["neural"]
    assert decisions[0][1] < loads[0][1], "the first decision paid for the model load"


async def test_without_warm_up_the_load_is_its_own_figure(data_dir: Path, tmp_path: Path):
    async with Client(params(data_dir, tmp_path), mode="legacy") as client:
        status = await call(client, "system_status")
        assert status["models"]["torch_imported"] is False
        assert status["components"]["model_warmup"]["state"] == "skipped"
        if (why := model_unavailable()) is not None:
            pytest.skip(f"the shipped model does not load in this build: {why[:200]}")
        sw = (await call(client, "spawn_swarm", name="w", agents=[{"role": "backend"}]))["swarm_id"]
        first = await call(client, "coordinate", swarm_id=sw, tasks=[{"description": "Add an endpoint"}],
                           strategy="neural")
        assert first["strategy"] == "neural"
        with anyio.fail_after(60):  # the call that loaded the model settles the heap once it has answered
            while not (heap := (await call(client, "system_status"))["components"]["heap"])["settled"]:
                await anyio.sleep(0.2)
        assert heap["after"] == "the model's load", heap
    (trigger, load_ms), = rows(data_dir, "SELECT trigger, elapsed_ms FROM model_loads")
    (decision_ms,) = rows(data_dir, "SELECT elapsed_ms FROM decisions")[0]
    assert trigger == "first use" and decision_ms < load_ms
    assert abs(first["elapsed_ms"] - decision_ms) < 1e-6  # what the answer says is what the alert reads


async def test_no_warm_up_in_the_critical_phase(data_dir: Path, tmp_path: Path):
    from tests.test_governor import GiB, cgroup_v2

    root = cgroup_v2(tmp_path / "cg", used=int(9.95 * GiB), limit=10 * GiB)
    async with Client(params(data_dir, tmp_path, ANSF_WARMUP="1", ANSF_CGROUP_ROOT=str(root)),
                      mode="legacy") as client:
        status = await call(client, "system_status")
        assert status["phase"]["phase"] == "1 critical"
        assert status["components"]["model_warmup"]["state"] == "skipped"
        assert status["models"]["torch_imported"] is False
