"""`ansf coordinate`: stateless coordination of episodes from a file, one JSON result per line on stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator

from pydantic import ValidationError

from ansf_mcp.coordinator.episode import Episode
from ansf_mcp.coordinator.strategies import ModelUnavailable, coordinate


def read_episodes(lines: Iterable[str]) -> Iterator[tuple[int, object]]:
    """(line number, parsed JSON or the exception) for JSON Lines, streamed one line at a time, or for a single
    (pretty-printed) JSON document, which is the one case read whole.

    The first non-blank line decides: a complete value means JSON Lines. Otherwise the input is read as one
    document; if that fails too, and not on the first line already, it is one broken document, reported once at
    the line and column where it broke (not one "invalid episode" per physical line, its tasks named as episodes).
    Only an error on the first line itself leaves it to JSON Lines, each line reported on its own.
    """
    blank: list[str] = []  # kept, so that a whole-document error counts lines and columns as the file does
    numbered = enumerate(lines, start=1)
    for number, line in numbered:
        if not line.strip():
            blank.append(line)
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            rest = [line, *(later for _, later in numbered)]
            try:
                yield number, json.loads("".join([*blank, *rest]))  # one document over several lines
            except json.JSONDecodeError as whole:
                if whole.lineno > number:
                    yield whole.lineno, whole
                    return
                yield number, exc
                yield from _each_line(rest[1:], number + 1)
            return
        yield from _each_line((later for _, later in numbered), number + 1)
        return


def _each_line(lines: Iterable[str], start: int) -> Iterator[tuple[int, object]]:
    for number, line in enumerate(lines, start=start):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, exc


def invalid_episode(exc: ValidationError) -> str:
    """Each error as `where: why` (`tasks[0].priority: Input should be a valid integer`), in one line. pydantic's
    own text spans lines, repeats the input and ends each error with a documentation URL."""
    parts = []
    for err in exc.errors(include_url=False):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        why = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {why}" if where else why)
    return "; ".join(parts)


def run_coordinate(path: str, strategy: str, model: str | None) -> int:
    try:
        source = sys.stdin if path == "-" else open(path, encoding="utf-8")
    except OSError as exc:
        print(f"ansf coordinate: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(source, strategy, model)
    except UnicodeDecodeError as exc:
        print(f"ansf coordinate: {path} is not UTF-8 text: {exc}", file=sys.stderr)
        return 2
    finally:
        if source is not sys.stdin:
            source.close()


def _run(source: Iterable[str], strategy: str, model: str | None) -> int:
    neural = None
    note = None
    if strategy in ("auto", "neural"):
        from ansf_mcp.coordinator import neural as neural_loader

        try:
            neural = neural_loader.load(model)  # once for the whole file
        except ModelUnavailable as exc:
            if strategy == "neural":
                print(f"ansf coordinate: {exc}", file=sys.stderr)
                return 2
            note = str(exc)
    failures = 0
    count = 0
    for number, parsed in read_episodes(source):
        count += 1
        try:
            if isinstance(parsed, Exception):
                raise ValueError(f"line {number}: not JSON: {parsed}")
            if not isinstance(parsed, dict):
                raise ValueError(f"line {number}: an episode is a JSON object")
            episode = Episode.model_validate(parsed)
            # A model that failed to load once is not retried per episode; the note says why it is missing.
            result = coordinate(episode, strategy, neural=neural, neural_allowed=note is None)
            if note:
                result.note = f"{note}; auto chose among the non-learned estimators"
            print(result.model_dump_json(), flush=True)
        except (ValidationError, ValueError, ModelUnavailable) as exc:
            failures += 1
            ident = parsed.get("id") if isinstance(parsed, dict) else None
            message = invalid_episode(exc) if isinstance(exc, ValidationError) else str(exc).replace("\n", "; ")
            print(json.dumps({"id": ident, "line": number, "error": message}), flush=True)
    if count == 0:
        print("ansf coordinate: the input holds no episode", file=sys.stderr)
        return 2
    if failures:
        print(f"ansf coordinate: {failures} of {count} episode(s) were invalid", file=sys.stderr)
        return 1
    return 0
