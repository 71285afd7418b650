"""Tasks you can manage and a next_task that says what holds (issue 18 items 1-3), through a real (in-process) MCP
client on both engines, the board's clock under test control: read one task, edit it (cycles and edits of claimed
or finished tasks refused), retry a failed task, cancel one with its dependents; next_task answers assigned,
wait, done or blocked by a failed task, waits with wait_s until the board changes, and gives work pinned to a
busy agent to whoever is free."""

from __future__ import annotations

import threading

import anyio
import pytest
from mcp import Client

from ansf_mcp.server.app import build_server
from tests.board_helpers import FakeClock
from tests.mcp_calls import call, error, hints

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(settings, store_spec):
    return settings.model_copy(update={"store": str(store_spec), "max_attempts": 2})


@pytest.fixture
async def served(settings, clock):
    server, runtime = build_server(settings, clock=clock)
    async with Client(server) as c:
        yield c, runtime
    runtime.shutdown()


@pytest.fixture
def client(served) -> Client:
    return served[0]


async def board(client: Client, n_agents: int, tasks: list[dict]) -> str:
    sw = (await call(client, "spawn_swarm", name="t", agents=[{"role": f"r{i}"} for i in range(n_agents)]))["swarm_id"]
    await call(client, "coordinate", swarm_id=sw, tasks=tasks, strategy="round-robin")
    return sw


CHAIN = [{"id": "a", "description": "build a"}, {"id": "b", "description": "build b", "depends_on": ["a"]},
         {"id": "c", "description": "build c", "depends_on": ["b"]}]


async def fail_for_good(client: Client, sw: str, task: str, agent: str, attempts: int = 2) -> None:
    for _ in range(attempts):
        got = await call(client, "next_task", swarm_id=sw, agent_id=agent)
        assert got["task"]["id"] == task
        await call(client, "report_outcome", swarm_id=sw, task_id=task, agent_id=agent, success=False, summary="no")


async def test_a_new_task_behind_a_chain_that_waits_on_a_failed_task_is_not_assigned(client: Client) -> None:
    # A failure does not cascade as a cancel does: 'b' and 'c' stay open behind the failed 'a'. A new task behind
    # 'c' was assigned as if it could start.
    sw = await board(client, 2, CHAIN)
    await fail_for_good(client, sw, "a", "agent-0")
    got = await call(client, "coordinate", swarm_id=sw, strategy="round-robin",
                     tasks=[{"id": "d", "description": "build d", "depends_on": ["c"]},
                            {"id": "e", "description": "build e"}])
    assert [a["task"] for a in got["assignments"]] == ["e"]
    assert got["unassigned"] == [{"task": "d", "reason": "dependency 'c' waits on 'a', which failed"}]
    # Once 'a' is retried, the chain can run again, and a task behind it is assigned.
    await call(client, "manage_task", swarm_id=sw, task_id="a", action="retry")
    again = await call(client, "coordinate", swarm_id=sw, strategy="round-robin",
                       tasks=[{"id": "f", "description": "build f", "depends_on": ["c"]}])
    assert [a["task"] for a in again["assignments"]] == ["f"]


async def test_get_task_reads_one_task_whole(client: Client) -> None:
    sw = await board(client, 1, CHAIN)
    await fail_for_good(client, sw, "a", "agent-0", attempts=1)
    got = await call(client, "get_task", swarm_id=sw, task_id="a")
    assert got["task"]["state"] == "ready" and got["task"]["attempts"] == 1
    assert got["dependents"] == ["b"]
    assert [(o["agent"], o["success"], o["summary"]) for o in got["recent_outcomes"]] == [("agent-0", False, "no")]
    assert "unknown task 'zz'" in await error(client, "get_task", swarm_id=sw, task_id="zz")


async def test_edit_changes_what_nobody_holds_and_refuses_cycles_and_finished_work(client: Client) -> None:
    sw = await board(client, 1, [*CHAIN, {"id": "d", "description": "docs"}])
    edited = await call(client, "manage_task", swarm_id=sw, task_id="c", action="edit", description="build c well",
                        priority=9, depends_on=["b", "d"])
    assert edited["changed"] == ["description", "priority", "depends_on"] and edited["state"] == "blocked"
    c = (await call(client, "get_task", swarm_id=sw, task_id="c"))["task"]
    assert (c["description"], c["priority"], sorted(c["depends_on"])) == ("build c well", 9, ["b", "d"])
    text = await error(client, "manage_task", swarm_id=sw, task_id="a", action="edit", depends_on=["c"])
    assert "cycle" in text and "a -> c" in text.replace("'", "")
    assert (await call(client, "get_task", swarm_id=sw, task_id="a"))["task"]["depends_on"] == []
    assert "unknown task" in await error(client, "manage_task", swarm_id=sw, task_id="c", action="edit",
                                         depends_on=["nope"])
    assert "itself" in await error(client, "manage_task", swarm_id=sw, task_id="c", action="edit", depends_on=["c"])
    same = await call(client, "manage_task", swarm_id=sw, task_id="c", action="edit", priority=9)
    assert same["changed"] == [] and "nothing was written" in same["note"]
    await call(client, "next_task", swarm_id=sw, agent_id="agent-0")  # claims a
    assert "claimed by 'agent-0'" in await error(client, "manage_task", swarm_id=sw, task_id="a", action="edit",
                                                 priority=3)
    await call(client, "report_outcome", swarm_id=sw, task_id="a", agent_id="agent-0", success=True)
    assert "already succeeded" in await error(client, "manage_task", swarm_id=sw, task_id="a", action="edit",
                                              priority=3)
    assert "priority is only for action 'edit'" in await error(client, "manage_task", swarm_id=sw, task_id="b",
                                                       action="cancel", priority=3)
    # Dropping a dependency can make a task ready at once.
    assert (await call(client, "manage_task", swarm_id=sw, task_id="b", action="edit", depends_on=[]))["state"] == "ready"


async def test_a_failed_task_blocks_its_chain_until_retried(client: Client) -> None:
    sw = await board(client, 2, CHAIN)
    await fail_for_good(client, sw, "a", "agent-0")
    stuck = await call(client, "next_task", swarm_id=sw, agent_id="agent-1")
    assert stuck["status"] == "blocked" and stuck["blocked_by"] == ["a"] and not stuck["claimed"]
    assert "'a'" in stuck["reason"] and "retry" in stuck["reason"]
    assert "only a failed or cancelled task" in await error(client, "manage_task", swarm_id=sw, task_id="b",
                                                            action="retry")
    again = await call(client, "manage_task", swarm_id=sw, task_id="a", action="retry", reason="flaky network")
    assert again["state"] == "ready" and again["attempts"] == 0 and "reset from 2 to 0" in again["note"]
    got = await call(client, "next_task", swarm_id=sw, agent_id="agent-1")
    assert got["status"] == "assigned" and got["task"]["id"] == "a" and got["task"]["attempts"] == 1
    waiting = await call(client, "next_task", swarm_id=sw, agent_id="agent-0")
    assert waiting["status"] == "wait" and "1 task(s) running (by 'agent-1')" in waiting["reason"]
    assert "2 task(s) wait on dependencies" in waiting["reason"]


async def test_cancel_takes_its_dependents_with_it_and_the_swarm_is_done(client: Client) -> None:
    sw = await board(client, 2, [*CHAIN, {"id": "d", "description": "docs"}])
    assert (await call(client, "next_task", swarm_id=sw, agent_id="agent-0"))["task"]["id"] == "a"
    assert "claimed by 'agent-0'" in await error(client, "manage_task", swarm_id=sw, task_id="a", action="cancel")
    await call(client, "release_task", swarm_id=sw, task_id="a", agent_id="agent-0")
    gone = await call(client, "manage_task", swarm_id=sw, task_id="a", action="cancel", reason="not needed")
    assert gone["state"] == "cancelled" and gone["cancelled"] == ["b", "c"] and "2 task(s)" in gone["note"]
    assert (await call(client, "get_task", swarm_id=sw, task_id="c"))["task"]["last_error"] == (
        "cancelled with 'a', which it depends on")
    assert "already cancelled" in await error(client, "manage_task", swarm_id=sw, task_id="b", action="cancel")
    assert (await call(client, "next_task", swarm_id=sw, agent_id="agent-1"))["task"]["id"] == "d"
    await call(client, "report_outcome", swarm_id=sw, task_id="d", agent_id="agent-1", success=True)
    done = await call(client, "next_task", swarm_id=sw, agent_id="agent-0")
    assert done["status"] == "done" and not done["claimed"]
    counts = (await call(client, "swarm_status", swarm_id=sw))["swarm"]["tasks_by_state"]
    assert counts["cancelled"] == 3 and counts["succeeded"] == 1
    # A cancelled task comes back with retry; its dependents stay cancelled until retried themselves.
    assert (await call(client, "manage_task", swarm_id=sw, task_id="a", action="retry"))["state"] == "ready"


async def test_work_pinned_to_a_busy_agent_goes_to_whoever_is_free(client: Client) -> None:
    sw = await board(client, 2, [{"id": "x", "description": "one"}, {"id": "y", "description": "two"}])
    for t in ("x", "y"):
        await call(client, "reassign_task", swarm_id=sw, task_id=t, to_agent="agent-0")
    assert (await call(client, "next_task", swarm_id=sw, agent_id="agent-0"))["task"]["id"] == "x"
    got = await call(client, "next_task", swarm_id=sw, agent_id="agent-1")
    assert got["task"]["id"] == "y" and got["taken_over_from"] == "agent-0"
    assert "holds 1 claim(s), its capacity" in got["note"] and "whoever is free" in got["note"]


async def test_work_pinned_to_a_free_agent_waits_for_it(client: Client, clock: FakeClock) -> None:
    sw = await board(client, 2, [{"id": "x", "description": "one"}])
    await call(client, "reassign_task", swarm_id=sw, task_id="x", to_agent="agent-0")
    waiting = await call(client, "next_task", swarm_id=sw, agent_id="agent-1")
    assert waiting["status"] == "wait" and "assigned to other agents with free capacity" in waiting["reason"]


async def test_a_waiting_agent_wakes_when_its_dependency_succeeds(served) -> None:
    client, runtime = served
    sw = await board(client, 2, CHAIN[:2])
    assert (await call(client, "next_task", swarm_id=sw, agent_id="agent-0"))["task"]["id"] == "a"
    waiting = threading.Event()
    store = runtime.board.store
    wait_news = store.wait_news

    def noticed_wait(*args):  # tells the test that the agent is waiting, then waits as the store does
        waiting.set()
        return wait_news(*args)

    store.wait_news = noticed_wait
    got: dict = {}

    async def agent_1() -> None:
        got.update(await call(client, "next_task", swarm_id=sw, agent_id="agent-1", wait_s=30))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent_1)
            assert await anyio.to_thread.run_sync(waiting.wait, 10)
            await call(client, "report_outcome", swarm_id=sw, task_id="a", agent_id="agent-0", success=True)
    assert got["status"] == "assigned" and got["task"]["id"] == "b"
    assert 0 < got["waited_s"] < 10  # woken by the report, long before wait_s


async def test_a_wait_ends_at_wait_s_or_at_once_when_the_swarm_is_done(client: Client) -> None:
    sw = await board(client, 2, CHAIN[:1])
    await call(client, "next_task", swarm_id=sw, agent_id="agent-0")
    short = await call(client, "next_task", swarm_id=sw, agent_id="agent-1", wait_s=0.3)
    assert short["status"] == "wait" and 0.3 <= short["waited_s"] < 5
    await call(client, "report_outcome", swarm_id=sw, task_id="a", agent_id="agent-0", success=True)
    with anyio.fail_after(5):
        done = await call(client, "next_task", swarm_id=sw, agent_id="agent-1", wait_s=60)
    assert done["status"] == "done"
    assert "wait_s" in await error(client, "next_task", swarm_id=sw, agent_id="agent-1", wait_s=61)


async def test_the_new_tools_say_truly_what_they_do(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert hints(tools["get_task"]).read_only is True
    manage = hints(tools["manage_task"])
    assert manage.read_only is False and manage.destructive is True  # cancel ends tasks for good
    assert hints(tools["next_task"]).read_only is False
    assert "wait_s" in tools["next_task"].input_schema["properties"]


async def test_agent_loops_on_chains_with_a_doomed_task_all_end_and_lose_nothing(client: Client) -> None:
    """Six agents loop next_task(wait_s) -> report on four chains of four, one task failing every attempt: every
    loop ends (blocked by that task), every task not behind it succeeds, nothing is left ready or claimed."""
    tasks = [{"id": f"c{c}-{k}", "description": f"part {c} step {k}", "depends_on": [f"c{c}-{k - 1}"] if k else []}
             for c in range(4) for k in range(4)]
    sw = await board(client, 6, tasks)
    ends: dict[str, dict] = {}

    async def loop(agent: str) -> None:
        for _ in range(40):
            got = await call(client, "next_task", swarm_id=sw, agent_id=agent, wait_s=10)
            if got["status"] == "assigned":
                task = got["task"]["id"]
                await call(client, "report_outcome", swarm_id=sw, task_id=task, agent_id=agent,
                           success=task != "c2-1", claim=got["claim"])
            elif got["status"] != "wait":
                ends[agent] = got
                return

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(loop, f"agent-{i}")
    assert {a: (e["status"], e["blocked_by"]) for a, e in ends.items()} == {
        f"agent-{i}": ("blocked", ["c2-1"]) for i in range(6)}
    states = {t["id"]: t["state"] for t in (await call(client, "swarm_status", swarm_id=sw, limit=20))["swarm"]["tasks"]}
    assert states == {t["id"]: ("failed" if t["id"] == "c2-1" else "blocked" if t["id"] in ("c2-2", "c2-3")
                                else "succeeded") for t in tasks}


async def test_a_waiting_agent_notices_a_lease_that_ran_out(served, clock: FakeClock, monkeypatch) -> None:
    """A lease running out writes nothing, so no news wakes the waiter: it re-checks every RECHECK_S."""
    from ansf_mcp.board import board as board_module

    monkeypatch.setattr(board_module, "RECHECK_S", 0.2)
    client, runtime = served
    sw = await board(client, 2, CHAIN[:1])
    assert (await call(client, "next_task", swarm_id=sw, agent_id="agent-0", lease_seconds=30))["task"]["id"] == "a"
    waiting = threading.Event()
    store = runtime.board.store
    wait_news = store.wait_news

    def noticed_wait(*args):
        waiting.set()
        return wait_news(*args)

    store.wait_news = noticed_wait
    got: dict = {}

    async def agent_1() -> None:
        got.update(await call(client, "next_task", swarm_id=sw, agent_id="agent-1", wait_s=30))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent_1)
            assert await anyio.to_thread.run_sync(waiting.wait, 10)
            clock.advance(31)
    assert got["status"] == "assigned" and got["task"]["id"] == "a" and got["task"]["attempts"] == 2
    assert got["waited_s"] < 10
