"""The resource governor, driven through prepared cgroup folders (ANSF_CGROUP_ROOT)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from mcp import Client

from ansf_mcp.coordinator import scoring
from ansf_mcp.governor.memory import read_memory
from ansf_mcp.governor.phases import Governor, target_phase
from ansf_mcp.server.app import build_server
from ansf_mcp.settings import Settings
from tests.conftest import ansf_command, subprocess_env

GiB = 1 << 30
# What auto chooses when the phase forbids the network and no outcomes came in: decided by the shipped prior alone.
AUTO_WITHOUT_NEURAL = scoring.choose({}, [c for c in scoring.AUTO_CANDIDATES if c != "neural"]).estimator


def cgroup_v2(root: Path, used: int, limit: int | str, inactive_file: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "memory.max").write_text(f"{limit}\n")
    (root / "memory.current").write_text(f"{used + inactive_file}\n")
    (root / "memory.stat").write_text(f"anon {used}\ninactive_file {inactive_file}\n")
    return root


def cgroup_v1(root: Path, used: int, limit: int) -> Path:
    mem = root / "memory"
    mem.mkdir(parents=True, exist_ok=True)
    (mem / "memory.limit_in_bytes").write_text(f"{limit}\n")
    (mem / "memory.usage_in_bytes").write_text(f"{used}\n")
    (mem / "memory.stat").write_text("total_inactive_file 0\n")
    return root


def test_v2_reading_excludes_reclaimable_cache(tmp_path: Path) -> None:
    r = read_memory(cgroup_v2(tmp_path, used=1 * GiB, limit=4 * GiB, inactive_file=2 * GiB))
    assert (r.used_bytes, r.limit_bytes, r.source) == (1 * GiB, 4 * GiB, "cgroup v2")
    assert r.fraction == pytest.approx(0.25)


def test_v2_without_limit_uses_host_memory(tmp_path: Path) -> None:
    r = read_memory(cgroup_v2(tmp_path, used=1 * GiB, limit="max"))
    assert "no limit" in r.source and r.limit_bytes > 1 * GiB


def test_v1_reading(tmp_path: Path) -> None:
    r = read_memory(cgroup_v1(tmp_path, used=3 * GiB, limit=4 * GiB))
    assert r.source == "cgroup v1" and r.fraction == pytest.approx(0.75)


def test_no_cgroup_falls_back_to_psutil(tmp_path: Path) -> None:
    r = read_memory(tmp_path / "empty")
    assert r.source.startswith("psutil") and 0 < r.fraction < 1


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        ([0.5], "optimal"),
        ([0.85], "enhanced"),
        ([0.995], "critical"),
        ([0.995, 0.975], "critical"),  # inside the hysteresis band: stays
        ([0.995, 0.95], "enhanced"),
        ([0.85, 0.79], "enhanced"),  # just under the threshold is not enough to improve
        ([0.85, 0.70], "optimal"),
        ([0.5, 0.81], "enhanced"),  # getting worse is immediate
    ],
)
def test_hysteresis(readings: list[float], expected: str) -> None:
    settings = Settings()
    phase = None
    for fraction in readings:
        phase = target_phase(fraction, phase, settings)
    assert phase == expected


def test_transitions_are_counted_and_relieve_pressure(tmp_path: Path) -> None:
    root = cgroup_v2(tmp_path / "cg", used=1 * GiB, limit=10 * GiB)
    governor = Governor(Settings(cgroup_root=root), min_interval_s=0)
    relieved: list[bool] = []
    governor.on_pressure.append(lambda: relieved.append(True))
    assert governor.limits().phase == "3 optimal"
    cgroup_v2(root, used=int(9.95 * GiB), limit=10 * GiB)
    limits = governor.limits()
    assert limits.phase == "1 critical" and not limits.neural_allowed and limits.max_active_agents == 2
    assert relieved == [True]
    assert "99.5%" in limits.reason and "cgroup v2" in limits.reason
    cgroup_v2(root, used=int(8.5 * GiB), limit=10 * GiB)
    assert governor.limits().phase == "2 enhanced"
    assert governor.changes == {"optimal->critical": 1, "critical->enhanced": 1}


@pytest.mark.anyio
async def test_critical_phase_through_the_tools(tmp_path: Path) -> None:
    root = cgroup_v2(tmp_path / "cg", used=int(9.95 * GiB), limit=10 * GiB)
    settings = Settings(data_dir=tmp_path / "data", cgroup_root=root)
    server, app = build_server(settings)
    assert app.governor is not None
    now = [0.0]
    app.governor.clock = lambda: now[0]  # readings expire when the test says so, not after a sleep
    async with Client(server) as client:
        status = (await client.call_tool("system_status", {})).structured_content
        assert status["phase"]["phase"] == "1 critical" and status["phase"]["memory"]["source"] == "cgroup v2"
        sw = (await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r"}] * 3})).structured_content
        result = (await client.call_tool(
            "coordinate", {"swarm_id": sw["swarm_id"], "tasks": [{"description": f"t{i}"} for i in range(3)]}
        )).structured_content
        # auto without the network: the estimator the shipped held-out prior ranks first, and only that one
        assert result["strategy"] == AUTO_WITHOUT_NEURAL and "operating phase" in result["note"]
        neural = await client.call_tool(
            "coordinate", {"swarm_id": sw["swarm_id"], "tasks": [{"description": "x"}], "strategy": "neural"}
        )
        assert neural.is_error and "operating phase" in neural.content[0].text
        claims = [
            (await client.call_tool("next_task", {"swarm_id": sw["swarm_id"], "agent_id": f"agent-{i}"})).structured_content
            for i in range(3)
        ]
        assert [c["claimed"] for c in claims] == [True, True, False]
        assert "operating phase" in claims[2]["reason"]
        # Memory is freed: after the hysteresis margin the phase improves and the third agent may work.
        cgroup_v2(root, used=int(5 * GiB), limit=10 * GiB)
        status = (await client.call_tool("system_status", {})).structured_content
        assert status["phase"]["phase"] == "1 critical", "a reading younger than min_interval_s is reused"
        now[0] += app.governor.min_interval_s
        status = (await client.call_tool("system_status", {})).structured_content
        assert status["phase"]["phase"] == "3 optimal"
        assert status["phase"]["changes"] == {"critical->optimal": 1}
        third = (await client.call_tool("next_task", {"swarm_id": sw["swarm_id"], "agent_id": "agent-2"})).structured_content
        assert third["claimed"]
        with app.store.reading() as conn:
            rows = [tuple(r) for r in conn.execute("SELECT from_phase, to_phase FROM phase_changes ORDER BY id")]
    assert rows == [("critical", "optimal")]  # where the process started is no change
    assert not app.ready, "the SDK lifespan stops the runtime when the client leaves"


def test_ansf_status_json_shows_phase_and_reason(tmp_path: Path) -> None:
    root = cgroup_v1(tmp_path / "cg", used=int(3.5 * GiB), limit=4 * GiB)
    env = {**subprocess_env(tmp_path / "data"), "ANSF_CGROUP_ROOT": str(root)}
    out = subprocess.run([*ansf_command(), "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["phase"]["phase"] == "2 enhanced" and "cgroup v1" in report["phase"]["reason"]


@pytest.mark.slow
@pytest.mark.anyio
async def test_critical_phase_never_imports_torch(tmp_path: Path) -> None:
    """A real stdio server under a critical cgroup: coordinating with auto must not pay for torch."""
    from mcp import StdioServerParameters

    root = cgroup_v2(tmp_path / "cg", used=int(9.95 * GiB), limit=10 * GiB)
    env = {**subprocess_env(tmp_path / "data"), "ANSF_CGROUP_ROOT": str(root)}
    cmd = ansf_command()
    params = StdioServerParameters(command=cmd[0], args=[*cmd[1:], "serve"], env=env, cwd=str(tmp_path))
    async with Client(params, mode="legacy") as client:
        sw = (await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r"}]})).structured_content
        result = await client.call_tool("coordinate", {"swarm_id": sw["swarm_id"], "tasks": [{"description": "x"}]})
        assert result.structured_content["strategy"] == AUTO_WITHOUT_NEURAL
        status = (await client.call_tool("system_status", {})).structured_content
    assert status["phase"]["phase"] == "1 critical"
    assert status["models"]["torch_imported"] is False


@pytest.mark.anyio
async def test_a_start_is_not_logged_as_a_phase_change(tmp_path: Path) -> None:
    root = cgroup_v2(tmp_path / "cg", used=int(2 * GiB), limit=10 * GiB)
    settings = Settings(data_dir=tmp_path / "data", cgroup_root=root, warm_model=False)
    for _ in range(2):  # two starts of a server on one store
        server, _ = build_server(settings)
        async with Client(server) as client:
            assert (await client.call_tool("system_status", {})).structured_content["phase"]["phase"] == "3 optimal"
    from ansf_mcp.store.db import open_store

    store = open_store(settings.db_path)
    with store.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM phase_changes").fetchone()[0] == 0
    store.close()


def test_the_phase_reason_quotes_the_current_reading(tmp_path: Path) -> None:
    root = cgroup_v2(tmp_path / "cg", used=int(2 * GiB), limit=10 * GiB)
    governor = Governor(Settings(cgroup_root=root), min_interval_s=0)
    governor.refresh()
    assert "memory 20.0% used" in governor.reason
    cgroup_v2(root, used=int(3 * GiB), limit=10 * GiB)  # no phase change, a new reading
    governor.refresh()
    assert "memory 30.0% used" in governor.reason


@pytest.mark.anyio
async def test_the_enhanced_phase_caps_active_agents_at_eight(tmp_path: Path) -> None:
    root = cgroup_v2(tmp_path / "cg", used=int(8.5 * GiB), limit=10 * GiB)
    server, _ = build_server(Settings(data_dir=tmp_path / "data", cgroup_root=root, warm_model=False))
    async with Client(server) as client:
        status = (await client.call_tool("system_status", {})).structured_content
        assert status["phase"]["phase"] == "2 enhanced" and status["phase"]["max_active_agents"] == 8
        sw = (await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r"}] * 9})).structured_content
        await client.call_tool("coordinate", {"swarm_id": sw["swarm_id"], "strategy": "round-robin",
                                              "tasks": [{"description": f"t{i}"} for i in range(9)]})
        claims = [
            (await client.call_tool("next_task", {"swarm_id": sw["swarm_id"], "agent_id": f"agent-{i}"})).structured_content
            for i in range(9)
        ]
    assert [c["claimed"] for c in claims] == [True] * 8 + [False]
    assert "operating phase" in claims[8]["reason"]


@pytest.mark.slow
def test_the_critical_phase_releases_a_loaded_model(tmp_path: Path) -> None:
    from ansf_mcp.coordinator import neural

    root = cgroup_v2(tmp_path / "cg", used=int(5 * GiB), limit=10 * GiB)
    governor = Governor(Settings(cgroup_root=root), min_interval_s=0)
    assert governor.limits().phase == "3 optimal"
    neural.load("student")
    assert neural.loaded_profiles() == ["student"]
    cgroup_v2(root, used=int(9.95 * GiB), limit=10 * GiB)
    assert governor.limits().phase == "1 critical"
    assert neural.loaded_profiles() == []


def test_a_limit_on_an_enclosing_group_binds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scope without a limit of its own, under a slice with one: the process is killed at the slice's limit,
    so that is the one the phase reads (it read "no limit set" and host memory)."""
    from ansf_mcp.governor import memory

    root = tmp_path / "cg"
    cgroup_v2(root / "work.slice", used=int(3.8 * GiB), limit=4 * GiB)
    cgroup_v2(root / "work.slice" / "ansf.scope", used=1 * GiB, limit="max")
    monkeypatch.setattr(memory, "_own_cgroup_paths", lambda: ("/work.slice/ansf.scope", None))
    r = read_memory(root)
    assert (r.used_bytes, r.limit_bytes) == (int(3.8 * GiB), 4 * GiB)
    assert r.source == "cgroup v2 (the limit of an enclosing group, /work.slice)"
    # The group's own limit counts when it is the one nearer to being reached.
    cgroup_v2(root / "work.slice" / "ansf.scope", used=1 * GiB, limit=1 * GiB + 1)
    assert read_memory(root).source == "cgroup v2"
    mem = cgroup_v1(root / "v1", used=int(1.9 * GiB), limit=2 * GiB) / "memory"
    (mem / "app").mkdir()
    (mem / "app" / "memory.limit_in_bytes").write_text(f"{1 << 62}\n")  # v1's "no limit": a huge number
    (mem / "app" / "memory.usage_in_bytes").write_text(f"{1 * GiB}\n")
    monkeypatch.setattr(memory, "_own_cgroup_paths", lambda: (None, "/app"))
    r = read_memory(root / "v1")
    assert (r.used_bytes, r.limit_bytes, r.source) == (int(1.9 * GiB), 2 * GiB,
                                                       "cgroup v1 (the limit of an enclosing group, /)")


def machine_of(monkeypatch: pytest.MonkeyPatch, total: int) -> None:
    """psutil reports a machine of `total` bytes (the test machine's own size must not matter)."""
    import psutil

    real = psutil.virtual_memory
    monkeypatch.setattr(psutil, "virtual_memory", lambda: real()._replace(total=total, available=total // 2))


def test_a_cgroup_limit_above_the_machine_memory_is_not_the_bound(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A container allowed 64 GiB on a 16 GiB machine meets the machine's end first: 12 GiB used is 75 %, not
    19 % (the limit was taken as it was, so the phase stayed optimal until the machine ran out)."""
    machine_of(monkeypatch, 16 * GiB)
    r = read_memory(cgroup_v2(tmp_path / "v2", used=12 * GiB, limit=64 * GiB))
    assert (r.used_bytes, r.limit_bytes, r.bound) == (12 * GiB, 16 * GiB, "physical memory")
    assert r.fraction == pytest.approx(0.75)
    assert r.source == ("cgroup v2 (its limit, 64.0 GiB, is above the machine's 16.0 GiB of memory; "
                        "the machine's memory is the bound in force)")
    r = read_memory(cgroup_v1(tmp_path / "v1", used=12 * GiB, limit=64 * GiB))
    assert (r.limit_bytes, r.bound) == (16 * GiB, "physical memory") and r.source.startswith("cgroup v1 (its limit")
    # A limit below the machine's memory is the bound, as before.
    r = read_memory(cgroup_v2(tmp_path / "small", used=2 * GiB, limit=8 * GiB))
    assert (r.limit_bytes, r.bound, r.source) == (8 * GiB, "cgroup limit", "cgroup v2")
    r = read_memory(cgroup_v2(tmp_path / "max", used=2 * GiB, limit="max"))
    assert (r.limit_bytes, r.bound) == (16 * GiB, "physical memory") and "no limit" in r.source


def test_an_enclosing_limit_above_the_machine_does_not_hide_a_smaller_one(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Groups are compared against the bound each really sets: a slice of 1 TiB using 15 of the machine's 16 GiB
    is nearer its end (94 %) than a scope at 3 of its 4 GiB (75 %), though 15 GiB of 1 TiB looked like 1.5 %."""
    from ansf_mcp.governor import memory

    machine_of(monkeypatch, 16 * GiB)
    root = tmp_path / "cg"
    cgroup_v2(root / "big.slice", used=15 * GiB, limit=1 << 40)
    cgroup_v2(root / "big.slice" / "ansf.scope", used=3 * GiB, limit=4 * GiB)
    monkeypatch.setattr(memory, "_own_cgroup_paths", lambda: ("/big.slice/ansf.scope", None))
    r = read_memory(root)
    assert (r.used_bytes, r.limit_bytes, r.bound) == (15 * GiB, 16 * GiB, "physical memory")
    assert r.source.startswith("cgroup v2 (the limit of an enclosing group, /big.slice) (its limit, 1024.0 GiB")


@pytest.mark.anyio
async def test_system_status_says_which_bound_is_in_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    machine_of(monkeypatch, 8 * GiB)
    root = cgroup_v2(tmp_path / "cg", used=int(7.95 * GiB), limit=32 * GiB)
    server, _ = build_server(Settings(data_dir=tmp_path / "data", cgroup_root=root, warm_model=False))
    async with Client(server) as client:
        status = (await client.call_tool("system_status", {})).structured_content
    memory = status["phase"]["memory"]
    assert (memory["bound"], memory["limit_bytes"]) == ("physical memory", 8 * GiB)
    assert "the machine's memory is the bound in force" in memory["source"]
    assert status["phase"]["phase"] == "1 critical"  # 99.4 % of the machine, though 25 % of the cgroup's limit
