"""Swarm and task-board tools: thin adapters from validated input to ansf_mcp.board."""

from __future__ import annotations

from typing import Annotated, Literal

import anyio
from ansf_mcp.tools.answers import Shrinking, cut
from ansf_mcp.tools.registry import Kind, Toolbox
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from ansf_mcp.board import messages, presets, swarms
from ansf_mcp.board import tasks as board
from ansf_mcp.board.models import (
    ID_PATTERN,
    MAX_MESSAGE_CHARS,
    MAX_SUMMARY_CHARS,
    MAX_TASKS_PER_CALL,
    AgentSpec,
    Claim,
    DissolveReceipt,
    MessageView,
    OutcomeReceipt,
    SentMessage,
    SwarmSummary,
    SwarmView,
    TaskSpec,
    Topology,
)
from ansf_mcp.coordinator.episode import CoordinationResult, Strategy
from ansf_mcp.runtime import Runtime

SwarmId = Annotated[
    str, Field(pattern=r"^swarm-[0-9a-f]{12}$", description="swarm id from spawn_swarm, e.g. 'swarm-1a2b3c4d5e6f'")
]
AgentId = Annotated[str, Field(pattern=ID_PATTERN, description="agent id within the swarm, e.g. 'agent-0'")]
TaskId = Annotated[str, Field(pattern=ID_PATTERN, description="task id within the swarm, e.g. 'task-3'")]


class SwarmStatus(BaseModel):
    swarm: SwarmView | None = None
    swarms: list[SwarmSummary] = Field(default_factory=list)


class PresetSwarms(BaseModel):
    swarms: list[SwarmView]


class Inbox(BaseModel):
    messages: list[MessageView]
    next_since: int = Field(description="pass as `since` to read only newer messages")


PREVIEW_CHARS = 160


def status_steps(view: SwarmView) -> Shrinking[SwarmStatus]:
    """Full -> compact (long texts cut to a preview) -> counts (no task list), each saying what it left out."""

    def compact() -> SwarmStatus:
        return SwarmStatus(swarm=view.model_copy(
            update={
                "tasks": [
                    t.model_copy(update={"description": cut(t.description, PREVIEW_CHARS + 1),
                                         "result": cut(t.result, PREVIEW_CHARS + 1),
                                         "last_error": cut(t.last_error, PREVIEW_CHARS + 1)})
                    for t in view.tasks
                ],
                "shrunk": "compact",
            }
        ))

    def counts() -> SwarmStatus:
        return SwarmStatus(swarm=view.model_copy(
            update={"tasks": [], "tasks_omitted": view.tasks_omitted + len(view.tasks), "shrunk": "counts"}
        ))

    return Shrinking(SwarmStatus(swarm=view), compact, counts)


def register(tools: Toolbox, app: Runtime) -> None:
    store = app.store
    settings = app.settings

    @tools.add(Kind.WRITE, "Spawn a swarm")
    async def spawn_swarm(
        name: Annotated[str, Field(min_length=1, max_length=200, description="a name for people, e.g. 'billing'")],
        agents: Annotated[
            list[AgentSpec],
            Field(min_length=1, max_length=64,
                  description="the agents, e.g. [{\"role\": \"backend\", \"capabilities\": [\"python\"]}]"),
        ],
        topology: Annotated[Topology, Field(description="who may message whom")] = "mesh",
    ) -> SwarmView:
        """Create a swarm of typed agents. Topology routes messages: mesh, star (first agent is the hub),
        hierarchical (each agent's `lead`, default the first agent), ring."""
        return swarms.spawn(store, name, agents, topology)

    @tools.add(Kind.READ, "Swarm status")
    async def swarm_status(
        swarm_id: Annotated[
            SwarmId | None,
            Field(description="swarm id from spawn_swarm, e.g. 'swarm-1a2b3c4d5e6f'; leave out to list all swarms"),
        ] = None,
        max_tasks: Annotated[int, Field(ge=0, le=5000, description="at most this many tasks in the answer")] = 200,
    ) -> Shrinking[SwarmStatus]:
        """One swarm's agents (with load) and tasks (state, lease, assignee); without an id, all swarms.
        Large boards shrink: texts cut, then counts only (`shrunk` says so); lower max_tasks to page less."""
        if swarm_id is None:
            return SwarmStatus(swarms=swarms.summaries(store))
        return status_steps(swarms.view(store, swarm_id, max_tasks=max_tasks, max_attempts=settings.max_attempts))

    @tools.add(Kind.WRITE, "Coordinate tasks")
    async def coordinate(
        swarm_id: SwarmId,
        tasks: Annotated[
            list[TaskSpec],
            Field(min_length=1, max_length=MAX_TASKS_PER_CALL,
                  description="tasks to put on the board, e.g. [{\"id\": \"api\", \"description\": \"Add "
                              "paging\"}, {\"description\": \"Test paging\", \"depends_on\": [\"api\"]}]"),
        ],
        strategy: Annotated[
            Strategy,
            Field(description="how success is estimated: auto (neural when allowed, else history), neural, "
                              "history, tags, round-robin"),
        ] = "auto",
    ) -> CoordinationResult:
        """Put tasks on the board and assign them to agents (estimate success per agent, then exact matching).
        `auto` says which strategy it used."""
        limits = app.limits()

        def run() -> CoordinationResult:
            # Imported on first use: numpy and scipy cost ~60 MB that an idle server should not carry.
            from ansf_mcp.board import assign

            return assign.submit_and_assign(store, swarm_id, tasks, strategy, neural_allowed=limits.neural_allowed)

        return await anyio.to_thread.run_sync(run)

    @tools.add(Kind.WRITE, "Claim the next task")
    async def next_task(
        swarm_id: SwarmId,
        agent_id: AgentId,
        lease_seconds: Annotated[
            float | None,
            Field(gt=0, le=7 * 24 * 3600,
                  description="how long the claim holds before the task returns to the board (default 300)"),
        ] = None,
    ) -> Claim:
        """Claim the agent's next ready task under a lease (default 300 s), or say why nothing is ready."""
        limits = app.limits()
        return board.claim_next(
            store,
            swarm_id,
            agent_id,
            lease_seconds or settings.default_lease_s,
            max_attempts=settings.max_attempts,
            max_active_agents=limits.max_active_agents,
        )

    @tools.add(Kind.WRITE, "Report an outcome")
    async def report_outcome(
        swarm_id: SwarmId,
        task_id: TaskId,
        agent_id: AgentId,
        success: Annotated[bool, Field(description="true if the task was done, false if the attempt failed")],
        summary: Annotated[
            str, Field(max_length=MAX_SUMMARY_CHARS, description="what was done, or why it failed")
        ] = "",
        duration_s: Annotated[
            float | None, Field(ge=0, description="seconds the agent worked on it (feeds the efficiency figure)")
        ] = None,
    ) -> OutcomeReceipt:
        """Record a task's outcome; it joins the agent's history and shapes later assignments.
        A failure re-offers the task until the attempt limit."""
        return board.report(
            store, swarm_id, task_id, agent_id, success, summary, duration_s, max_attempts=settings.max_attempts
        )

    @tools.add(Kind.WRITE, "Send a message")
    async def send_message(
        swarm_id: SwarmId,
        from_agent: Annotated[str, Field(pattern=ID_PATTERN, description="the sending agent's id")],
        body: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="the message text")],
        to_agent: Annotated[
            str | None, Field(pattern=ID_PATTERN, description="the recipient's id; leave out to reach every "
                                                              "neighbour the topology allows")
        ] = None,
    ) -> SentMessage:
        """Message another agent (or, without to_agent, every neighbour); the topology decides who is reachable."""
        return messages.send(store, swarm_id, from_agent, to_agent, body)

    @tools.add(Kind.READ, "Read messages")
    async def read_messages(
        swarm_id: SwarmId,
        agent_id: AgentId,
        since: Annotated[
            int, Field(ge=0, description="only messages with a larger id: the next_since of the previous answer")
        ] = 0,
        limit: Annotated[int, Field(ge=1, le=1000, description="at most this many messages")] = 100,
    ) -> Inbox:
        """Messages delivered to an agent, oldest first, newer than `since`."""
        found = messages.read(store, swarm_id, agent_id, since, limit)
        return Inbox(messages=found, next_since=found[-1].id if found else since)

    @tools.add(Kind.WRITE, "Spawn the preset swarms")
    async def spawn_preset(
        preset: Annotated[Literal["six-swarms"], Field(description="which preset: the six specialised swarms")]
        = "six-swarms",
    ) -> PresetSwarms:
        """Multi-swarm operation (phase 3 "optimal" only): spawn the six specialised swarms, 32 agents."""
        limits = app.limits()
        if limits.max_active_agents is not None:
            raise ToolError(f"multi-swarm presets need phase 3 optimal; now {limits.phase}: {limits.reason}")
        return PresetSwarms(swarms=presets.spawn_preset(store, preset))

    @tools.add(Kind.DESTRUCTIVE, "Dissolve a swarm")
    async def dissolve_swarm(swarm_id: SwarmId) -> DissolveReceipt:
        """Delete a swarm with its agents, tasks, outcomes and messages; says what it removed."""
        return swarms.dissolve(store, swarm_id)
