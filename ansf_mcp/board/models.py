"""Pydantic models of the board: what callers send and what they get back."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr
from pydantic_core import PydanticCustomError

from ansf_mcp.coordinator.episode import MAX_TEXT_CHARS, CoordinationResult
from ansf_mcp.coordinator.scoring import EstimatorScore

Topology = Literal["mesh", "hierarchical", "ring", "star"]
TaskState = Literal["blocked", "ready", "claimed", "succeeded", "failed", "cancelled"]
# What holds for an agent after next_task: it got a task, it should wait, the swarm has nothing left, or what is
# left can never run because a task failed its last attempt (or was cancelled): the agent loop may end.
NextStatus = Literal["assigned", "wait", "done", "blocked"]
ManageAction = Literal["edit", "retry", "cancel"]

MAX_AGENTS_PER_SWARM = 64
MAX_TASKS_PER_CALL = 1_000
MAX_MESSAGE_CHARS = 32_000
MAX_SUMMARY_CHARS = 16_000
MAX_CAPABILITY_CHARS = 100
ID_PATTERN = r"^[A-Za-z0-9][-A-Za-z0-9_.:]{0,99}$"  # '-' first: no escape, listed in every tool


def not_blank(text: str) -> str:
    """A description that is only white space says nothing to do, yet it was put on the board and assigned with
    a p_success like any other task; an empty one was already refused."""
    if not text.strip():
        raise PydanticCustomError("blank", "must say what is to be done, not only white space")
    return text


NotBlank = AfterValidator(not_blank)


class AgentSpec(BaseModel):
    # A misspelt field ('capcity') was dropped and its default used, with nothing said.
    model_config = ConfigDict(extra="forbid")

    role: str = Field(min_length=1, max_length=200, description="e.g. 'backend'")
    capabilities: list[Annotated[str, Field(min_length=1, max_length=MAX_CAPABILITY_CHARS)]] = Field(
        default_factory=list, max_length=50, description="skills; they steer assignment"
    )
    capacity: int = Field(default=1, ge=1, le=100, description="tasks it may hold at once")
    id: str | None = Field(default=None, pattern=ID_PATTERN, description="default 'agent-<n>'")
    lead: str | None = Field(
        default=None, pattern=ID_PATTERN,
        description="hierarchical: its lead's id (default: the first agent)",
    )


class TaskSpec(BaseModel):
    # A misspelt 'depends_on' was dropped: the task ran without its dependency, with nothing said.
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=ID_PATTERN, description="default 'task-<n>'")
    description: Annotated[str, NotBlank] = Field(min_length=1, max_length=MAX_TEXT_CHARS,
                                                  description="what is to be done")
    priority: int = Field(default=1, ge=0, le=1_000, description="higher runs first")
    depends_on: list[str] = Field(
        default_factory=list, max_length=100,
        description="ids of tasks (on the board or in this call) that must succeed first",
    )


class BoardDecision(CoordinationResult):
    """A decision on the board: the episode result, and whether this call was a repeat (answered from the board,
    nothing decided or written). Not in CoordinationResult: `ansf coordinate`'s output format has no board."""

    repeat: str | None = Field(
        default=None, description="set when every task was already on the board as given: an earlier call's "
        "repeat, answered with the tasks' current assignments; nothing was written")


class AgentView(BaseModel):
    id: str
    role: str
    capabilities: list[str]
    capacity: int
    lead: str | None = None
    active_claims: int = 0
    assigned_open: int = 0
    successes: int = 0
    failures: int = 0


class TaskView(BaseModel):
    id: str
    description: str
    priority: int
    state: TaskState
    depends_on: list[str]
    assignee: str | None = None
    p_success: float | None = None
    strategy: str | None = None
    lease_owner: str | None = None
    lease_expires_in_s: float | None = None
    attempts: int = 0
    claim: int | None = Field(default=None, description="number of the current (or last) claim on this task")
    blocked_by: list[str] = Field(default_factory=list)
    last_error: str | None = None
    result: str | None = None


class SwarmSummary(BaseModel):
    swarm_id: str
    name: str
    topology: Topology
    agents: int
    tasks_by_state: dict[str, int]


class SwarmView(BaseModel):
    swarm_id: str
    name: str
    topology: Topology
    created_at: float
    agents: list[AgentView]
    tasks_by_state: dict[str, int]
    tasks: list[TaskView]
    tasks_matching: int = Field(default=0, description="tasks that match the filters (all tasks without filters)")
    tasks_omitted: int = Field(default=0, description="matching tasks not in this answer")
    next_cursor: str | None = Field(default=None, description="pass as `cursor` for the next page of tasks")
    estimators: list[EstimatorScore] = Field(
        default_factory=list, description="each probabilistic estimator's realised score on this swarm's outcomes"
    )
    auto_uses: str | None = Field(default=None, description="what strategy='auto' would use now, and why")
    shrunk: str | None = Field(
        default=None,
        description="set when the answer was too large: 'compact' (texts cut), 'first N' (fewer tasks listed, the "
                    "cursor continues after the last one) or 'counts' (no task list)",
    )
    # The board position (seq) of each listed task and the cursor this page started from: a page shrunk to fit
    # the answer cap continues right after the last task it lists.
    _task_seqs: list[int] = PrivateAttr(default_factory=list)
    _after_seq: int | None = PrivateAttr(default=None)

    def first_tasks(self, n: int) -> SwarmView:
        """This page cut to its first `n` tasks; the cursor continues right after the last one kept (with none
        kept, where this page started)."""
        if n >= len(self.tasks):
            return self
        cursor = self._task_seqs[n - 1] if n > 0 else self._after_seq
        page = self.model_copy(update={"tasks": self.tasks[:n], "tasks_omitted": self.tasks_omitted + len(self.tasks) - n,
                                       "next_cursor": None if cursor is None else str(cursor)})
        page._task_seqs = self._task_seqs[:n]
        return page


class HeldClaim(BaseModel):
    task: str
    claim: int
    lease_expires_in_s: float


class Claim(BaseModel):
    claimed: bool
    status: NextStatus = Field(
        description="assigned: work on `task`; wait: call again (or pass wait_s), `reason` says why; done: nothing "
                    "is left for this swarm; blocked: what is left depends on a failed task (`blocked_by`) that "
                    "only a retry can bring back, so the agent loop may end",
    )
    blocked_by: list[str] = Field(default_factory=list, description="blocked: the failed or cancelled tasks")
    waited_s: float | None = Field(default=None, description="how long the call waited for work (wait_s)")
    task: TaskView | None = None
    claim: int | None = Field(default=None, description="this claim's number; outcomes and renewals refer to it")
    lease_expires_in_s: float | None = None
    taken_over_from: str | None = Field(
        default=None, description="the absent agent the task was assigned to, when it was taken over"
    )
    reason: str | None = Field(default=None, description="why nothing was claimed")
    held: list[HeldClaim] = Field(
        default_factory=list, description="wait because the agent holds as many claims as its capacity: those "
        "claims (also one whose answer was lost: report or release it by its number)")
    note: str | None = None


class TaskEdit(BaseModel):
    """What manage_task's edit changes; anything left out stays as it is."""

    description: Annotated[str, NotBlank] | None = Field(default=None, min_length=1, max_length=MAX_TEXT_CHARS)
    priority: int | None = Field(default=None, ge=0, le=1_000)
    depends_on: list[str] | None = Field(default=None, max_length=100)


class OutcomeView(BaseModel):
    agent: str
    success: bool
    summary: str
    claim: int | None = None
    duration_s: float | None = None


class TaskDetail(BaseModel):
    task: TaskView
    dependents: list[str] = Field(default_factory=list, description="tasks that depend on this one")
    recent_outcomes: list[OutcomeView] = Field(default_factory=list, description="its last outcomes, newest first")


class TaskChange(BaseModel):
    task_id: str
    action: ManageAction
    state: TaskState
    attempts: int
    changed: list[str] = Field(default_factory=list, description="what was written")
    cancelled: list[str] = Field(
        default_factory=list, description="cancel: the unfinished tasks that depended on it, cancelled with it"
    )
    note: str | None = None


class OutcomeReceipt(BaseModel):
    task_id: str
    state: TaskState
    attempts: int
    claim: int = Field(description="the claim this outcome closed")
    outcome_id: int
    unblocked: list[str] = Field(default_factory=list, description="tasks this success made ready")
    note: str | None = None


class LeaseReceipt(BaseModel):
    task_id: str
    claim: int
    lease_expires_in_s: float


class ReleaseReceipt(BaseModel):
    task_id: str
    state: TaskState
    attempts: int = Field(description="attempts counted so far; a released claim is not counted")
    claim: int
    note: str | None = Field(default=None, description="set when the claim was already released: a repeat")


class ReassignReceipt(BaseModel):
    task_id: str
    state: TaskState
    assignee: str | None = Field(default=None, description="the new assignee; null: any agent may take it")
    previous: str | None = None
    note: str | None = Field(default=None, description="set when it was so already: a repeat, nothing written")


class MessageView(BaseModel):
    id: int
    from_agent: str
    to_agent: str | None = Field(default=None, description="null for a broadcast")
    route: str
    body: str
    created_at: float


class SentMessage(BaseModel):
    id: int
    delivered_to: list[str]
    route: str


class DissolveReceipt(BaseModel):
    swarm_id: str
    removed: dict[str, int]
    note: str | None = Field(default=None, description="set when it was already dissolved: a repeat")
