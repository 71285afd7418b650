"""Swarm and task-board tools: thin adapters from validated input to ansf_mcp.board."""

from __future__ import annotations

from typing import Annotated, Literal

import anyio
from ansf_mcp.tools.errors import clear_errors
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
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

SwarmId = Annotated[str, Field(pattern=r"^swarm-[0-9a-f]{12}$", description="id from spawn_swarm")]
AgentId = Annotated[str, Field(pattern=ID_PATTERN)]
TaskId = Annotated[str, Field(pattern=ID_PATTERN)]


class SwarmStatus(BaseModel):
    swarm: SwarmView | None = None
    swarms: list[SwarmSummary] = Field(default_factory=list)


class PresetSwarms(BaseModel):
    swarms: list[SwarmView]


class Inbox(BaseModel):
    messages: list[MessageView]
    next_since: int = Field(description="pass as `since` to read only newer messages")


# Numbers at the edge are finite and bounded: one absurd duration must not poison every later sum.
MAX_DURATION_S = 30 * 24 * 3600.0

# Past this many characters of JSON an answer costs a client more context than it is worth.
MAX_ANSWER_CHARS = 40_000
PREVIEW_CHARS = 160


def shrink(view: SwarmView) -> SwarmView:
    """Full -> compact (long texts cut to a preview) -> counts (no task list), saying which step was taken."""
    # A cheap upper bound first: serialising every answer just to measure it would tax the hot path.
    bound = sum(
        len(t.description) + len(t.result or "") + len(t.last_error or "") + 400
        + sum(len(d) + 4 for d in (*t.depends_on, *t.blocked_by))
        for t in view.tasks
    ) + sum(300 + len(a.role) + sum(len(c) + 4 for c in a.capabilities) for a in view.agents)
    if bound <= MAX_ANSWER_CHARS or len(view.model_dump_json()) <= MAX_ANSWER_CHARS:
        return view

    def cut(text: str | None) -> str | None:
        return text if text is None or len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"

    compact = view.model_copy(
        update={
            "tasks": [
                t.model_copy(update={"description": cut(t.description), "result": cut(t.result),
                                     "last_error": cut(t.last_error)})
                for t in view.tasks
            ],
            "shrunk": "compact",
        }
    )
    if len(compact.model_dump_json()) <= MAX_ANSWER_CHARS:
        return compact
    counts = view.model_copy(
        update={"tasks": [], "tasks_omitted": view.tasks_omitted + len(view.tasks), "shrunk": "counts"}
    )
    if len(counts.model_dump_json()) <= MAX_ANSWER_CHARS:
        return counts
    # Many agents with long capability lists: keep each agent's first few, cut, and say so.
    return counts.model_copy(update={
        "agents": [a.model_copy(update={"capabilities": [c[:24] for c in a.capabilities[:3]]
                                        + ([f"…(+{len(a.capabilities) - 3})"] if len(a.capabilities) > 3 else [])})
                   for a in view.agents],
        "shrunk": "counts",
    })


def _ro() -> ToolAnnotations:
    return ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


def _rw(*, destructive: bool = False, idempotent: bool = False) -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=False, destructive_hint=destructive, idempotent_hint=idempotent, open_world_hint=False
    )


def register(server: MCPServer, app: Runtime) -> None:
    store = app.store
    settings = app.settings

    async def spawn_swarm(
        name: Annotated[str, Field(min_length=1, max_length=200)],
        agents: Annotated[list[AgentSpec], Field(min_length=1, max_length=64)],
        topology: Topology = "mesh",
    ) -> SwarmView:
        """Create a swarm of typed agents. Topology routes messages: mesh, star (first agent is the hub),
        hierarchical (each agent's `lead`, default the first agent), ring."""
        with clear_errors():
            return swarms.spawn(store, name, agents, topology)

    async def swarm_status(
        swarm_id: SwarmId | None = None,
        max_tasks: Annotated[int, Field(ge=0, le=5000)] = 200,
    ) -> SwarmStatus:
        """One swarm's agents (with load) and tasks (state, lease, assignee); without an id, all swarms.
        Large boards shrink: texts cut, then counts only (`shrunk` says so); lower max_tasks to page less."""
        with clear_errors():
            if swarm_id is None:
                return SwarmStatus(swarms=swarms.summaries(store))
            return SwarmStatus(
                swarm=shrink(swarms.view(store, swarm_id, max_tasks=max_tasks, max_attempts=settings.max_attempts))
            )

    async def coordinate(
        swarm_id: SwarmId,
        tasks: Annotated[list[TaskSpec], Field(min_length=1, max_length=MAX_TASKS_PER_CALL)],
        strategy: Strategy = "auto",
    ) -> CoordinationResult:
        """Put tasks on the board and assign them to agents (estimate success per agent, then exact matching).
        `auto` says which strategy it used."""
        limits = app.limits()

        def run() -> CoordinationResult:
            # Imported on first use: numpy and scipy cost ~60 MB that an idle server should not carry.
            from ansf_mcp.board import assign

            with clear_errors():
                return assign.submit_and_assign(
                    store, swarm_id, tasks, strategy, neural_allowed=limits.neural_allowed
                )

        return await anyio.to_thread.run_sync(run)

    async def next_task(
        swarm_id: SwarmId,
        agent_id: AgentId,
        lease_seconds: Annotated[float, Field(gt=0, le=7 * 24 * 3600)] | None = None,
    ) -> Claim:
        """Claim the agent's next ready task under a lease (default 300 s), or say why nothing is ready."""
        limits = app.limits()
        with clear_errors():
            return board.claim_next(
                store,
                swarm_id,
                agent_id,
                lease_seconds or settings.default_lease_s,
                max_attempts=settings.max_attempts,
                max_active_agents=limits.max_active_agents,
            )

    async def report_outcome(
        swarm_id: SwarmId,
        task_id: TaskId,
        agent_id: AgentId,
        success: bool,
        summary: Annotated[str, Field(max_length=MAX_SUMMARY_CHARS)] = "",
        duration_s: Annotated[float, Field(ge=0, le=MAX_DURATION_S, allow_inf_nan=False)] | None = None,
    ) -> OutcomeReceipt:
        """Record a task's outcome; it joins the agent's history and shapes later assignments.
        A failure re-offers the task until the attempt limit."""
        with clear_errors():
            return board.report(
                store, swarm_id, task_id, agent_id, success, summary, duration_s, max_attempts=settings.max_attempts
            )

    async def send_message(
        swarm_id: SwarmId,
        from_agent: AgentId,
        body: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)],
        to_agent: AgentId | None = None,
    ) -> SentMessage:
        """Message another agent (or, without to_agent, every neighbour); the topology decides who is reachable."""
        with clear_errors():
            return messages.send(store, swarm_id, from_agent, to_agent, body)

    async def read_messages(
        swarm_id: SwarmId,
        agent_id: AgentId,
        since: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0,
        limit: Annotated[int, Field(ge=1, le=1000)] = 100,
    ) -> Inbox:
        """Messages delivered to an agent, oldest first, newer than `since`."""
        with clear_errors():
            found = messages.read(store, swarm_id, agent_id, since, limit)
        return Inbox(messages=found, next_since=found[-1].id if found else since)

    async def spawn_preset(preset: Literal["six-swarms"] = "six-swarms") -> PresetSwarms:
        """Multi-swarm operation (phase 3 "optimal" only): spawn the six specialised swarms, 32 agents."""
        limits = app.limits()
        if limits.max_active_agents is not None:
            raise ToolError(f"multi-swarm presets need phase 3 optimal; now {limits.phase}: {limits.reason}")
        with clear_errors():
            return PresetSwarms(swarms=presets.spawn_preset(store, preset))

    async def dissolve_swarm(swarm_id: SwarmId) -> DissolveReceipt:
        """Delete a swarm with its agents, tasks, outcomes and messages; says what it removed."""
        with clear_errors():
            return swarms.dissolve(store, swarm_id)

    for fn, hints in (
        (spawn_swarm, _rw()),
        (swarm_status, _ro()),
        (coordinate, _rw()),
        (next_task, _rw()),
        (report_outcome, _rw()),
        (send_message, _rw()),
        (read_messages, _ro()),
        (dissolve_swarm, _rw(destructive=True)),
        (spawn_preset, _rw()),
    ):
        # One line per description: clients show it verbatim and every character costs context.
        server.add_tool(fn, description=" ".join((fn.__doc__ or "").split()), annotations=hints)
