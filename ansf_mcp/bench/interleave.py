"""Which of several things is timed first in a round: A B, then B A, and so on.

On a shared machine the load drifts during a benchmark; whatever always ran first (or last) in a round would meet
a different moment of it each time than the others, and a comparison would carry that drift. Alternating the order
round by round lets it cancel. Every suite and script that times things side by side takes its order from here, so
they all alternate the same way.

Two orders, the same for two items (A B, B A): `round_order` reverses every other round, which evens out each
item's mean position (a drift that rises steadily cancels), but with three or more the middle ones never go first;
`rotation_order` is a Latin square (A B C, B C A, C A B), each item in each position once every n rounds, for
where going first itself costs or gains something (a cold cache, a memo the previous read filled).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def round_order(items: Sequence[T], round_: int) -> list[T]:
    """`items` in order on even rounds (0, 2, ...) and reversed on odd ones: A B, B A, A B, B A for two."""
    return list(items) if round_ % 2 == 0 else list(reversed(items))


def rotation_order(items: Sequence[T], round_: int) -> list[T]:
    """`items` rotated left by `round_`: A B C, B C A, C A B, A B C, ... for three; A B, B A for two, as
    `round_order`."""
    k = round_ % len(items) if items else 0
    return [*items[k:], *items[:k]]
