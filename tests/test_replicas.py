"""Several `ansf serve --transport http --store postgresql://...` replicas on one board: agents whose requests
land on any replica (the 2026-07-28 revision) and agents whose legacy sessions are pinned to one (sticky routing)
work through the same tasks; no task is claimed twice, none is lost, every outcome is stored once."""

from __future__ import annotations

import os
import random

import anyio
import pytest
from mcp import Client

from ansf_mcp.store.db import open_store
from tests.mcp_calls import call, read_while_sent

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

AGENTS = 8
TASKS = 96


async def test_two_replicas_hand_out_every_task_once(http_server, pg_cluster) -> None:
    url = pg_cluster.new_database()
    bases = [http_server("http", "--store", url)[0] for _ in range(2)]
    async with Client(f"{bases[0]}/mcp") as admin:
        sw = (await call(admin, "spawn_swarm", name="replicas",
                         agents=[{"role": f"worker {i}"} for i in range(AGENTS)]))["swarm_id"]
        await call(admin, "coordinate", swarm_id=sw, strategy="round-robin",
                   tasks=[{"description": f"task number {i}"} for i in range(TASKS)])
    claims: list[tuple[str, str, int]] = []

    async def agent(i: int) -> None:
        me = f"agent-{i}"
        legacy = i % 2 == 0  # half keep a session on one replica (sticky); half spread every request
        if legacy:
            clients = [Client(f"{bases[i % 4 // 2]}/mcp", mode="legacy")]
        else:
            clients = [Client(f"{b}/mcp") for b in bases]
        rng = random.Random(i)
        async with clients[0]:
            if len(clients) > 1:
                await clients[1].__aenter__()
            try:
                while True:
                    got = await call(rng.choice(clients), "next_task", swarm_id=sw, agent_id=me)
                    if not got["claimed"]:
                        break
                    claims.append((got["task"]["id"], me, got["claim"]))
                    await call(rng.choice(clients), "report_outcome", swarm_id=sw, task_id=got["task"]["id"],
                               agent_id=me, success=True, summary="done", claim=got["claim"])
            finally:
                if len(clients) > 1:
                    await clients[1].__aexit__(None, None, None)

    async with anyio.create_task_group() as tg:
        for i in range(AGENTS):
            tg.start_soon(agent, i)

    ids = [task for task, _, _ in claims]
    assert len(ids) == TASKS and len(set(ids)) == TASKS, "a task was claimed twice or lost"
    assert {n for _, _, n in claims} == {1}
    store = open_store(url)
    try:
        with store.reading() as conn:
            assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT task_id) FROM outcomes").fetchone()[:] == (
                TASKS, TASKS)
            assert conn.execute("SELECT COUNT(*) FROM tasks WHERE status != 'succeeded'").fetchone()[0] == 0
    finally:
        store.close()
    # Every replica reads the same board and the same messages.
    async with Client(f"{bases[1]}/mcp") as other, Client(f"{bases[0]}/mcp") as first:
        await call(first, "send_message", swarm_id=sw, from_agent="agent-0", to_agent="agent-1", body="hello")
        inbox = await call(other, "read_messages", swarm_id=sw, agent_id="agent-1")
        assert [m["body"] for m in inbox["messages"]] == ["hello"]
        counts = [(await call(c, "swarm_status", swarm_id=sw))["swarm"]["tasks_by_state"] for c in (first, other)]
        assert counts[0] == counts[1] and counts[0]["succeeded"] == TASKS


async def test_a_reader_on_one_replica_wakes_for_a_message_sent_through_another(http_server, pg_cluster) -> None:

    url = pg_cluster.new_database()
    first, second = (http_server("http", "--store", url)[0] for _ in range(2))
    async with Client(f"{first}/mcp") as a, Client(f"{second}/mcp") as b:
        sw = (await call(a, "spawn_swarm", name="news", agents=[{"role": "x"}, {"role": "y"}]))["swarm_id"]
        inbox, waited = await read_while_sent(b, a, sw, "hi", send_after_s=1.0, wait_s=30)
        assert [m["body"] for m in inbox["messages"]] == ["hi"]
        # LISTEN/NOTIFY wakes it at once; without it the reader would sleep on to its 5 s safety poll.
        assert 0.9 < waited < 4.0


def test_replicas_killed_mid_workload_lose_nothing_and_share_nothing(pg_cluster, tmp_path) -> None:
    """A bounded run of `ansf bench --suite scale`'s chaos phase: 3 replicas, SIGKILLed and restarted, and
    PostgreSQL itself restarted once."""
    from ansf_mcp.bench import scale_suite

    result = scale_suite._chaos(pg_cluster.new_database(), tasks=300, kills=3, tmp=tmp_path,
                                restart_db=pg_cluster.restart)
    assert result["kills"] >= 1 and result["claims_acknowledged"] >= 300
    assert result["postgresql_restarts"] == 1
    assert result["claimed_by_two"] == 0 and result["lost"] == 0 and result["succeeded_twice"] == 0
    assert result["max_attempts_seen"] <= result["attempt_limit"]
    assert result["acknowledged_outcomes_missing"] == 0


def test_a_dead_agent_s_work_is_back_within_its_lease_and_a_second(pg_cluster, tmp_path) -> None:
    from ansf_mcp.bench import scale_suite

    result = scale_suite._takeover(pg_cluster.new_database(), tmp_path, lease_s=2.0)
    assert result["within_lease_plus_1s"], result


@pytest.mark.slow
def test_replicas_behind_a_delayed_network_with_few_writes_in_flight_finish_the_work(pg_cluster, tmp_path) -> None:
    """The scale suite's `delayed` set-up, bounded: two replicas with one write in flight each, 5 ms from the
    database through the delaying relay; every task is done once and the row says how busy the machine was."""
    from urllib.parse import urlsplit

    from ansf_mcp.bench import scale_suite
    from ansf_mcp.bench.delay_relay import DelayRelay

    url = pg_cluster.new_database()
    with DelayRelay(urlsplit(url).port, 0.005) as relay:
        row = scale_suite._throughput(scale_suite._via(url, relay.port), 2, 30, tmp_path, n_agents=4, workers=1,
                                      backend=pg_cluster.cpu_s, relay_pid=relay.proc.pid)
    assert (row["replicas"], row["workers"], row["duplicate_claims"]) == (2, 1, 0)
    assert row["pairs"] >= 30 and row["pairs_per_s"] > 0
    assert row["machine_cpu_busy"] is None or 0.0 <= row["machine_cpu_busy"] <= 1.0
    # Every part's CPU per claim+outcome is measured: the replicas, PostgreSQL, the relay, this process.
    cpu = row["cpu_ms_per_pair"]
    assert set(cpu) == {"replicas", "backend", "relay", "load_generator"}
    assert all(cpu[part] > 0 for part in cpu), cpu
    assert row["cores_used"] > 0 and row["cpus"] == os.cpu_count()
    table = scale_suite.markdown({"delayed": [{"engine": "postgresql", "rtt_ms": 5.0, **row,
                                               "ratio_to_one_replica": 1.0}]})
    assert f"| postgresql | 5 | 2 | 1 | 4 | {row['pairs']} |" in table
    assert f"| {cpu['replicas']:g} / {cpu['backend']:g} / {cpu['relay']:g} / {cpu['load_generator']:g} |" in table


@pytest.mark.slow
def test_the_stdio_phase_says_where_each_engine_s_cpu_went(pg_cluster, tmp_path) -> None:
    """Both stdio servers' CPU per claim+outcome, and PostgreSQL's own, beside the rates."""
    from ansf_mcp.bench import scale_suite

    # 40 timed pairs: the CPU times come in 10 ms ticks, and the untimed warm-up now takes the costly first calls.
    result = scale_suite._stdio(tmp_path, pg_cluster.new_database(), rounds=4, pairs=10, backend=pg_cluster.cpu_s)
    assert result["sqlite_pairs_per_s"] > 0 and result["postgresql_pairs_per_s"] > 0
    assert set(result["server_cpu_ms_per_pair"]) == {"sqlite", "postgresql"}
    assert min(result["server_cpu_ms_per_pair"].values()) > 0
    assert result["postgresql_backend_cpu_ms_per_pair"] > 0
    # The engines' ratio is taken in every round, not only over the whole run.
    per_round = result["ratio_per_round"]
    assert per_round["n"] == 4 and 0 < per_round["min"] <= per_round["median"] <= per_round["max"]
    line = scale_suite.markdown({"stdio": result})
    assert f"plus PostgreSQL itself {result['postgresql_backend_cpu_ms_per_pair']} ms" in line
    assert "n=4 rounds" in line


@pytest.mark.slow
def test_the_throughput_rows_take_turns_on_replicas_kept_running(pg_cluster, tmp_path) -> None:
    """The scale suite's throughput table, bounded: SQLite and 1, 2 and 3 PostgreSQL replicas take turns in two
    rounds on the same replicas; every row sums its rounds and every PostgreSQL row has a ratio per round."""
    from ansf_mcp.bench import scale_suite

    def fresh() -> str:
        return pg_cluster.new_database()

    fresh.cpu_s = pg_cluster.cpu_s  # type: ignore[attr-defined]
    rows = scale_suite._throughput_table(fresh, 24, tmp_path, rounds=2)
    assert [(r["engine"], r["replicas"]) for r in rows] == [("sqlite", 1), ("postgresql", 1), ("postgresql", 2),
                                                            ("postgresql", 3)]
    for row in rows:
        assert row["rounds"] == 2 and row["pairs"] >= 24 and row["duplicate_claims"] == 0, row
    for row in rows[1:]:
        per_round = row["ratio_to_sqlite_per_round"]
        assert per_round["n"] == 2 and 0 < per_round["min"] <= per_round["max"], row
        assert row["cpu_ms_per_pair"]["backend"] > 0
    assert "take turns in 2 rounds" in scale_suite.markdown({"throughput": rows})
