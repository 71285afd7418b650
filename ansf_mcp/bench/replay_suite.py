"""`ansf bench --suite replay --repo PATH`: how every strategy does on a repository's own git history.

The repository's authors become agents and its newest commits tasks (lab/replay.py); each method's top-1
accuracy (share of tasks given to their real author) is measured per window size with 95 % CIs, beside the
random-assignment expectation and the paired difference to `similarity`, with the subjects as written and
style-blind (lab/replay_eval.py). Real data, nothing simulated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ansf_mcp.bench.context import SuiteContext, SuiteInputError

if TYPE_CHECKING:
    from ansf_mcp.lab.replay import History


def read_history(ctx: SuiteContext, *, with_files: bool = True) -> History:
    """The repository's history, or SuiteInputError: not a readable git repository, or too few usable commits."""
    from ansf_mcp.lab import replay, replay_eval

    repo = ctx.repo or ctx.project
    try:
        found = replay.read_history(repo, with_files=with_files)
    except replay.ReplayError as exc:
        raise SuiteInputError(str(exc)) from exc
    need = replay.WARMUP_COMMITS + min(replay_eval.WINDOWS)
    if len(found.commits) < need:
        raise SuiteInputError(
            f"{repo} has {len(found.commits)} usable commits; replay needs at least {need} (authors need a past to "
            "be judged on)"
        )
    return found


def check(ctx: SuiteContext) -> None:
    """Before the run: the same reading without the files each commit touched (one quick `git log`), so a bad
    --repo is refused in one line instead of a stored failed run."""
    read_history(ctx, with_files=False)


def run(ctx: SuiteContext) -> dict[str, Any]:
    from ansf_mcp.coordinator.profiles import DEFAULT_PROFILE
    from ansf_mcp.lab import replay, replay_eval

    ctx.progress(0.0, f"reading the history of {ctx.repo or ctx.project}")
    history = read_history(ctx)
    loaded, errors = replay_eval.load_profiles([DEFAULT_PROFILE])
    report = replay_eval.evaluate_history(
        history, loaded, limit=8 if ctx.quick else 30, progress=ctx.scaled(0.05, 1.0)
    )
    report["dropped_commits"] = dict(history.dropped)
    report["authors"] = len(history.authors)
    report["unavailable"] = errors
    report["markdown"] = "\n".join(
        [
            f"Replayed `{history.name}` at {history.head[:12]}: {len(history.commits)} usable commits by "
            f"{len(history.authors)} authors (left out: {dict(history.dropped) or 'nothing'}). REAL data.",
            "",
            replay_eval.side_by_side([report], tags="none"),
            "",
            replay_eval.side_by_side([report], tags="dirs"),
            "",
            *(
                replay_eval.markdown([report], tags=replay_eval.cell_key(tags, mode))
                for tags in ("none", "dirs")
                for mode in replay.TEXT_MODES
            ),
            *(f"{p}: not measured — {e}" for p, e in errors.items()),
        ]
    )
    for cells in report["results"].values():  # per-episode lists stay out of the stored report
        for cell in cells.values():
            cell.pop("per_episode", None)
    return report


def markdown(result: dict[str, Any]) -> str:
    return str(result.get("markdown", ""))
