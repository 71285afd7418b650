"""Swarm and task-board tools: thin adapters from validated input to ansf_mcp.board."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from ansf_mcp.tools.answers import Shrinking, cut, printable
from ansf_mcp.tools.app import BOARD_META
from ansf_mcp.tools.registry import Kind, Toolbox, guarded
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from ansf_mcp.board.board import MAX_WAIT_S, TaskFilter
from ansf_mcp.board.models import (
    ID_PATTERN,
    MAX_MESSAGE_CHARS,
    MAX_SUMMARY_CHARS,
    MAX_TASKS_PER_CALL,
    AgentSpec,
    BoardDecision,
    Claim,
    DissolveReceipt,
    LeaseReceipt,
    ManageAction,
    MessageView,
    NotBlank,
    OutcomeReceipt,
    ReassignReceipt,
    ReleaseReceipt,
    SentMessage,
    SwarmSummary,
    SwarmView,
    TaskChange,
    TaskDetail,
    TaskEdit,
    TaskSpec,
    TaskState,
    Topology,
)
from ansf_mcp.coordinator.episode import MAX_TEXT_CHARS, Strategy
from ansf_mcp.runtime import Runtime

# Ids copied from earlier answers go undescribed and their patterns unlisted: every worker's client lists them in
# every tool on every connection, their names say what they are, and a refused one is answered with an example and
# where to look one up (registry.HINTS, lean_schema).
SWARM_ID = r"^swarm-[0-9a-f]{12}$"
SwarmId = Annotated[str, Field(pattern=SWARM_ID)]
AgentId = Annotated[str, Field(pattern=ID_PATTERN)]
TaskId = Annotated[str, Field(pattern=ID_PATTERN)]


class SwarmStatus(BaseModel):
    swarm: SwarmView | None = None
    swarms: list[SwarmSummary] = Field(default_factory=list)


class PresetSwarms(BaseModel):
    swarms: list[SwarmView]


class CoordinationAnswer(BoardDecision):
    shrunk: str | None = Field(
        default=None,
        description="set when the answer was too large: how many assignments and unassigned tasks are listed; every "
                    "one is on the board all the same",
    )


class Inbox(BaseModel):
    messages: list[MessageView]
    next_since: int = Field(description="pass as `since` to read only newer messages")


# Numbers at the edge are finite and bounded: one absurd duration must not poison every later sum.
MAX_DURATION_S = 30 * 24 * 3600.0
PREVIEW_CHARS = 160
TEXT_DESCRIPTION_CHARS = 80
DEFAULT_PAGE = 10
F = TypeVar("F", bound=Callable[..., Any])


def quoting_lease(lease_s: float) -> Callable[[F], F]:
    """The configured lease, quoted in the tool's lease_seconds parameter (a decorator under `tools.add`: the
    schema is read from the function when it is registered)."""

    def decorate(fn: F) -> F:
        fn.__annotations__["lease_seconds"] = Annotated[
            Annotated[float, Field(gt=0, le=7 * 24 * 3600), guarded("number")] | None,
            Field(description=f"(default {lease_s:g})"),
        ]
        return fn

    return decorate

# The fencing number of a lease: next_task's `claim`. A call that names it is refused once that claim is over,
# even if the same agent holds a newer claim on the task (a message from a lease that expired, arriving late).
ClaimNumber = Annotated[int, Field(ge=1, le=2**31 - 1), guarded("integer")] | None


def status_steps(status: SwarmStatus) -> Shrinking[SwarmStatus]:
    """Full -> compact (long texts cut to a preview) -> compact with fewer tasks (the cursor continues right after
    the last one listed, so paging never skips a task) -> the same with agents' capabilities cut -> counts only.
    Each says what it left out."""
    view = status.swarm
    if view is None:
        return Shrinking(status)

    def compact_view() -> SwarmView:
        return view.model_copy(update={
            "tasks": [
                t.model_copy(update={"description": cut(t.description, PREVIEW_CHARS + 1),
                                     "result": cut(t.result, PREVIEW_CHARS + 1),
                                     "last_error": cut(t.last_error, PREVIEW_CHARS + 1)})
                for t in view.tasks
            ],
            "shrunk": "compact",
        })

    def short_agents(v: SwarmView) -> SwarmView:
        # Many agents with long capability lists: keep each agent's first few, cut, and say so.
        return v.model_copy(update={
            "agents": [a.model_copy(update={"capabilities": [c[:24] for c in a.capabilities[:3]]
                                            + ([f"…(+{len(a.capabilities) - 3})"] if len(a.capabilities) > 3 else [])})
                       for a in v.agents],
            "shrunk": f"{v.shrunk}, capabilities cut",
        })

    def first(n: int, agents_cut: bool) -> Callable[[], SwarmStatus]:
        def step() -> SwarmStatus:
            page = compact_view().first_tasks(n)
            page = page.model_copy(update={"shrunk": f"compact, first {n}" if n else "counts"})
            return SwarmStatus(swarm=short_agents(page) if agents_cut else page)
        return step

    steps = [lambda: SwarmStatus(swarm=compact_view())]
    for agents_cut in (False, True):
        steps += [first(n, agents_cut) for n in page_sizes(len(view.tasks))]
    return Shrinking(status, *steps)


def coordination_steps(result: BoardDecision) -> Shrinking[CoordinationAnswer]:
    """Full -> the first part of each list, shorter and shorter, saying how much is listed and where the rest is.
    Without these steps the generic cut halved the lists and cut the reason with nothing in the answer saying so:
    1 000 tasks came back as 125 assignments and no unassigned, read as if that were the whole decision."""
    full = CoordinationAnswer.model_validate(result.model_dump())
    n_a, n_u = len(result.assignments), len(result.unassigned)
    total = n_a + n_u

    def first(k: int) -> Callable[[], CoordinationAnswer]:
        def step() -> CoordinationAnswer:
            a, u = math.ceil(n_a * k / total), math.ceil(n_u * k / total)
            return full.model_copy(update={
                "assignments": result.assignments[:a], "unassigned": result.unassigned[:u],
                "shrunk": f"too large to list whole: the first {a} of {n_a} assignments and {u} of {n_u} unassigned "
                          "tasks are listed; all were recorded on the board, where swarm_status(swarm_id) pages "
                          "each task's assignee and p_success and get_task(swarm_id, task_id) shows why one was "
                          "left unassigned",
            })
        return step

    return Shrinking(full, *(first(k) for k in page_sizes(total)))


def page_sizes(n: int) -> list[int]:
    """Fewer and fewer tasks, from n - 1 down to none: one by one near the end, in steps of about a tenth
    above (a page that must shrink lists within ~10 % of what fits, in a handful of renderings)."""
    sizes, k = [], n - 1
    while k > 0:
        sizes.append(k)
        k = min(k - 1, int(k * 0.9))
    return [*sizes, 0]


def _counts_text(counts: dict[str, int]) -> str:
    shown = [f"{state} {n}" for state, n in counts.items() if n]
    return ", ".join(shown) or "none"


def status_text(status: SwarmStatus) -> str:
    """swarm_status for the model: one line per agent and per task shown; the full data is structured content."""
    if status.swarm is None:
        if not status.swarms:
            return "no swarms; spawn_swarm creates one"
        return "\n".join(
            f"{s.swarm_id} {s.name!r} ({s.topology}, {s.agents} agents): tasks {_counts_text(s.tasks_by_state)}"
            for s in status.swarms
        )
    v = status.swarm
    lines = [f"swarm {v.swarm_id} {v.name!r} ({v.topology}); tasks: {_counts_text(v.tasks_by_state)}"]
    lines.append("agents (holding/capacity, assigned, succeeded, failed): " + "; ".join(
        f"{a.id} {printable(a.role)} {a.active_claims}/{a.capacity} {a.assigned_open} {a.successes} {a.failures}"
        for a in v.agents))
    if v.tasks:
        first = v.tasks_matching - v.tasks_omitted - len(v.tasks) + 1
        lines.append(f"tasks {first}-{first + len(v.tasks) - 1} of {v.tasks_matching}"
                     + (f" (next page: cursor={v.next_cursor!r})" if v.next_cursor else "") + ":")
    elif v.tasks_matching:
        lines.append(f"{v.tasks_matching} matching task(s), none listed here")
    for t in v.tasks:
        if t.state == "claimed":
            detail = f" by {t.lease_owner}, {t.lease_expires_in_s:.0f} s left"
        elif t.state == "blocked":
            detail = f" on {', '.join(t.blocked_by)}"
        elif t.state in ("failed", "cancelled"):
            detail = f": {printable(cut(t.last_error, 60))}"
        else:
            detail = ""
        if t.assignee and t.state in ("ready", "blocked"):
            detail += f" -> {t.assignee}"
        if t.attempts and t.state != "succeeded":
            detail += f", attempt {t.attempts}"
        lines.append(f"- {t.id} [{t.state}{detail}] p{t.priority}: {printable(cut(t.description, TEXT_DESCRIPTION_CHARS))}")
    if v.shrunk:
        lines.append(f"(answer shrunk: {v.shrunk}; filter by state or agent, or page with a smaller limit)")
    return "\n".join(lines)


def register(tools: Toolbox, app: Runtime) -> None:
    board = app.board  # every call below runs the board's blocking work off the event loop
    lease = quoting_lease(board.policy.lease_s)

    @tools.add(Kind.WRITE, "Spawn a swarm")
    async def spawn_swarm(
        name: Annotated[str, Field(min_length=1, max_length=200, description="for people")],
        agents: Annotated[list[AgentSpec], Field(min_length=1, max_length=64, description="one per agent")],
        topology: Annotated[Topology, Field(description="who may message whom")] = "mesh",
    ) -> SwarmView:
        """Create a swarm of agents."""
        return await board.write(board.spawn, name, agents, topology)

    @tools.add(Kind.READ, "Swarm status", text=status_text, meta=BOARD_META)
    async def swarm_status(
        swarm_id: Annotated[
            str | None, Field(pattern=SWARM_ID, description="leave out: every swarm")
        ] = None,
        state: Annotated[list[TaskState] | None, Field(description="only these", max_length=5)] = None,
        agent: Annotated[str | None, Field(pattern=ID_PATTERN, description="only this agent's")] = None,
        cursor: Annotated[str | None, Field(pattern=r"^[0-9]{1,12}$")] = None,
        limit: Annotated[int, Field(ge=0, le=500, description="tasks per page")] = DEFAULT_PAGE,
    ) -> Shrinking[SwarmStatus]:
        """A swarm's counts, agents and a page of its tasks."""
        if swarm_id is None:
            return Shrinking(SwarmStatus(swarms=await board.answer_read(board.summaries)))
        filters = TaskFilter(states=tuple(state or ()), agent=agent,
                             after_seq=int(cursor) if cursor is not None else None)
        return status_steps(SwarmStatus(swarm=await board.answer_read(board.view, swarm_id, limit=limit,
                                                                      filters=filters)))

    @tools.add(Kind.WRITE, "Coordinate tasks")
    async def coordinate(
        swarm_id: SwarmId,
        tasks: Annotated[
            list[TaskSpec], Field(min_length=1, max_length=MAX_TASKS_PER_CALL, description="to add")
        ],
        strategy: Annotated[Strategy, Field(description="how success is estimated")] = "auto",
    ) -> Shrinking[CoordinationAnswer]:
        """Add tasks and assign them to the agents likeliest to succeed."""
        return coordination_steps(await board.write(board.coordinate, swarm_id, tasks, strategy))

    @tools.add(Kind.WRITE, "Claim the next task")
    @lease
    async def next_task(
        swarm_id: SwarmId, agent_id: AgentId, lease_seconds: float | None = None,
        wait_s: Annotated[
            float, Field(ge=0, le=MAX_WAIT_S, allow_inf_nan=False, description="wait for work")
        ] = 0,
    ) -> Claim:
        """Claim the agent's next task under a lease, or say why not: wait, done or blocked (stop)."""
        return await board.next(swarm_id, agent_id, lease_seconds, wait_s)

    @tools.add(Kind.READ, "Read a task")
    async def get_task(swarm_id: SwarmId, task_id: TaskId) -> TaskDetail:
        """One task whole, with dependents and outcomes."""
        return await board.answer_read(board.get_task, swarm_id, task_id)

    @tools.add(Kind.DESTRUCTIVE, "Manage a task")
    async def manage_task(
        swarm_id: SwarmId,
        task_id: TaskId,
        action: Annotated[ManageAction, Field(description="retry: a failed or cancelled one")],
        description: Annotated[
            Annotated[str, NotBlank] | None, Field(min_length=1, max_length=MAX_TEXT_CHARS, description="edit")
        ] = None,
        priority: Annotated[int | None, Field(ge=0, le=1_000, description="edit")] = None,
        depends_on: Annotated[list[str] | None, Field(max_length=100, description="edit: the whole list")] = None,
        reason: Annotated[str, Field(max_length=2000, description="why")] = "",
    ) -> TaskChange:
        """Edit, retry or cancel a task nobody holds; cancel takes its dependents."""
        edits = {k: v for k, v in (("description", description), ("priority", priority), ("depends_on", depends_on))
                 if v is not None}
        if action != "edit" and edits:
            raise ToolError(f"{' and '.join(edits)} {'are' if len(edits) > 1 else 'is'} only for action 'edit'; "
                            "nothing was changed")
        return await board.write(board.manage, swarm_id, task_id, action, TaskEdit(**edits), reason)

    @tools.add(Kind.IDEMPOTENT, "Renew a lease")
    @lease
    async def renew_lease(
        swarm_id: SwarmId, task_id: TaskId, agent_id: AgentId, lease_seconds: float | None = None,
        claim: ClaimNumber = None,
    ) -> LeaseReceipt:
        """Extend a held lease."""
        return await board.write(board.renew, swarm_id, task_id, agent_id, lease_seconds, claim)

    @tools.add(Kind.IDEMPOTENT, "Release a task")
    async def release_task(
        swarm_id: SwarmId,
        task_id: TaskId,
        agent_id: AgentId,
        reason: Annotated[str, Field(max_length=2000, description="why")] = "",
        claim: ClaimNumber = None,
    ) -> ReleaseReceipt:
        """Give a held task back; the attempt is not counted."""
        return await board.write(board.release, swarm_id, task_id, agent_id, reason, claim)

    @tools.add(Kind.IDEMPOTENT, "Reassign a task")
    async def reassign_task(
        swarm_id: SwarmId,
        task_id: TaskId,
        to_agent: Annotated[str | None, Field(pattern=ID_PATTERN, description="leave out: anyone")] = None,
    ) -> ReassignReceipt:
        """Move an unclaimed task to another agent."""
        return await board.write(board.reassign, swarm_id, task_id, to_agent)

    @tools.add(Kind.IDEMPOTENT, "Report an outcome")
    async def report_outcome(
        swarm_id: SwarmId,
        task_id: TaskId,
        agent_id: AgentId,
        success: Annotated[bool, Field(description="false: it failed")],
        summary: Annotated[str, Field(max_length=MAX_SUMMARY_CHARS, description="what was done, or why not")] = "",
        duration_s: Annotated[
            Annotated[float, Field(ge=0, le=MAX_DURATION_S, allow_inf_nan=False), guarded("number")] | None,
            Field(description="seconds worked"),
        ] = None,
        claim: ClaimNumber = None,
    ) -> OutcomeReceipt:
        """Close a held task; a failure re-offers it until attempts run out."""
        return await board.write(board.report, swarm_id, task_id, agent_id, success, summary, duration_s, claim)

    @tools.add(Kind.WRITE, "Send a message")
    async def send_message(
        swarm_id: SwarmId,
        from_agent: Annotated[str, Field(pattern=ID_PATTERN)],
        body: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="the text")],
        to_agent: Annotated[str | None, Field(pattern=ID_PATTERN, description="leave out: all it may reach")] = None,
    ) -> SentMessage:
        """Message an agent that the swarm's topology lets this one reach."""
        return await board.write(board.send, swarm_id, from_agent, to_agent, body)

    @tools.add(Kind.READ, "Read messages")
    async def read_messages(
        swarm_id: SwarmId,
        agent_id: AgentId,
        since: Annotated[int, Field(ge=0, le=2**63 - 1), guarded("integer")] = 0,
        limit: Annotated[
            Annotated[int, Field(ge=1, le=1000), guarded("integer")], Field(description="at most this many")
        ] = 100,
        wait_s: Annotated[float, Field(ge=0, le=60, allow_inf_nan=False, description="wait for one")] = 0,
    ) -> Inbox:
        """An agent's new messages, oldest first."""
        found = await board.inbox(swarm_id, agent_id, since, limit, wait_s)
        return Inbox(messages=found, next_since=found[-1].id if found else since)

    @tools.add(Kind.WRITE, "Spawn preset swarms")
    async def spawn_preset(
        preset: Annotated[Literal["six-swarms"], Field(description="the only one")] = "six-swarms",
    ) -> PresetSwarms:
        """Phase 3 only: spawn six specialised swarms."""
        return PresetSwarms(swarms=await board.write(board.spawn_preset, preset))

    @tools.add(Kind.DESTRUCTIVE, "Dissolve a swarm")
    async def dissolve_swarm(swarm_id: SwarmId) -> DissolveReceipt:
        """Delete a swarm and all it holds."""
        return await board.write(board.dissolve, swarm_id)
