"""A broad family of SIMULATED coordination episodes: every source is its own randomised generator.

One fixed simulator teaches a network that simulator's habits (its words, its templates, how much its tags can be
trusted), and those habits do not transfer. Here each *source* (one seed) draws its own:
- vocabulary: domain words, filler words and role names made of random syllables, so no word means anything
  across sources; the number of domains (3-12) and words per domain;
- sentence shapes: its own templates (slot order, connectives, length 3-25 words), a share of filler, typos;
- reliability of claims: how often the role and each capability tag name the agent's strong domain, from useless
  (random) to exact, and whether agents declare anything at all;
- skills: how many strong domains an agent has (1-3), how far strong and weak skills lie apart, how hard tasks
  are (so failure rates range from rare to common);
- history: 0-60 past tasks per agent, drawn mostly from the agent's strong domains or from anywhere.
``p*(agent, task) = sigmoid(skill[agent, domain(task)] - difficulty(task))``, outcomes ~ Bernoulli(p*).

The **outcome-driven** variant (`generate(..., outcome_driven=True)`, `outcome_source`) keeps each source's words
but takes away the shortcuts: every agent's past tasks are drawn from all domains alike (what an agent *worked on*
says nothing about what it is good at), there are 20-60 of them, and roles and tags are partly stale (they name
the strong domain 20-60 % of the time). Skills show only in which past tasks succeeded and which failed.
Nothing here is measured from real agents.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ansf_mcp.coordinator.episode import Episode, EpisodeAgent, EpisodeTask, HistoryItem

_ONSETS = ("b c d f g h j k l m n p r s t v w z br cl dr fl gr kr pl pr sk sl sp st str tr sh ch th").split()
_VOWELS = ("a e i o u ai ea io ou ae").split()
_CODAS = ("", "", "n", "r", "s", "t", "l", "x", "m", "nd", "rt", "st", "ck", "sh")
_CONNECTIVES = ("the", "a", "for", "in", "on", "with", "of", "to", "and", "from", "across", "per", "via")


@dataclass(frozen=True)
class Source:
    """The habits of one generator."""

    seed: int
    domain_words: list[list[str]]
    filler: list[str]
    roles: list[str]
    templates: list[list[str]]  # each a list of slots: "D" domain word, "F" filler, "V" verb, or a literal word
    verbs: list[str]
    role_true: float
    tag_true: float
    declares: float  # chance an agent declares a role/tags at all
    n_strong: tuple[int, int]
    strong: tuple[float, float]
    weak: tuple[float, float]
    difficulty: tuple[float, float]
    hist_len: tuple[int, int]
    hist_focus: float  # share of history drawn from the agent's strong domains
    filler_share: float
    typo: float


def _word(rng: np.random.Generator, syllables: tuple[int, int]) -> str:
    n = int(rng.integers(syllables[0], syllables[1] + 1))
    return "".join(
        str(rng.choice(_ONSETS)) + str(rng.choice(_VOWELS)) + (str(rng.choice(_CODAS)) if k == n - 1 else "")
        for k in range(n)
    )


def make_source(seed: int) -> Source:
    rng = np.random.default_rng([91, seed])
    n_domains = int(rng.integers(3, 13))
    syl = (1, int(rng.integers(2, 4)))
    per_domain = int(rng.integers(4, 20))
    domain_words = [[_word(rng, syl) for _ in range(per_domain)] for _ in range(n_domains)]
    filler = [_word(rng, syl) for _ in range(int(rng.integers(5, 40)))]
    verbs = [_word(rng, (1, 2)) for _ in range(int(rng.integers(3, 12)))]
    roles = [f"{_word(rng, (1, 2))} {_word(rng, (1, 2))}" for _ in range(n_domains)]
    templates = []
    for _ in range(int(rng.integers(2, 14))):
        slots = ["V"] + ["D"] * int(rng.integers(1, 3)) + ["F"] * int(rng.integers(0, 4))
        slots += [str(rng.choice(_CONNECTIVES)) for _ in range(int(rng.integers(0, 4)))]
        order = list(rng.permutation(len(slots)))
        templates.append([slots[k] for k in order])
    strong_mu = float(rng.uniform(0.5, 2.5))
    return Source(
        seed=seed,
        domain_words=domain_words,
        filler=filler,
        roles=roles,
        templates=templates,
        verbs=verbs,
        role_true=float(rng.uniform(0.0, 1.0)),
        tag_true=float(rng.uniform(0.0, 1.0)),
        declares=float(rng.choice([0.0, 0.5, 1.0, 1.0])),
        n_strong=(1, int(rng.integers(1, 4))),
        strong=(strong_mu, float(rng.uniform(0.2, 0.9))),
        weak=(float(rng.uniform(-2.0, strong_mu - 0.3)), float(rng.uniform(0.3, 1.0))),
        difficulty=(float(rng.uniform(-1.0, 1.0)), float(rng.uniform(0.1, 1.0))),
        hist_len=(0, int(rng.integers(1, 61))),
        hist_focus=float(rng.uniform(0.0, 1.0)),
        filler_share=float(rng.uniform(0.0, 0.6)),
        typo=float(rng.choice([0.0, 0.0, 0.02, 0.08])),
    )


def outcome_source(seed: int) -> Source:
    """A source whose agents' skills show only through their success/failure records (see the module text)."""
    src = make_source(seed)
    rng = np.random.default_rng([93, seed])
    return replace(
        src,
        hist_focus=0.0,
        hist_len=(20, 60),
        declares=1.0,
        role_true=float(rng.uniform(0.2, 0.6)),
        tag_true=float(rng.uniform(0.2, 0.6)),
        # Strong skills clearly apart from weak ones, and tasks neither trivial nor hopeless: outcomes carry signal.
        strong=(float(rng.uniform(1.5, 3.0)), 0.5),
        weak=(float(rng.uniform(-2.0, -0.5)), 0.5),
        difficulty=(float(rng.uniform(-0.5, 0.5)), float(rng.uniform(0.1, 0.5))),
    )


@dataclass
class FamilyEpisode:
    episode: Episode
    p_true: np.ndarray  # (agents, tasks)
    source: int


def _typo(rng: np.random.Generator, w: str) -> str:
    if len(w) < 4:
        return w
    k = int(rng.integers(1, len(w) - 1))
    return w[:k] + w[k + 1] + w[k] + w[k + 2 :]


def _text(rng: np.random.Generator, src: Source, domain: int) -> str:
    words = []
    for slot in src.templates[int(rng.integers(len(src.templates)))]:
        if slot == "D":
            pool = src.filler if rng.random() < src.filler_share else src.domain_words[domain]
            w = str(rng.choice(pool))
        elif slot == "F":
            w = str(rng.choice(src.filler))
        elif slot == "V":
            w = str(rng.choice(src.verbs))
        else:
            w = slot
        words.append(_typo(rng, w) if rng.random() < src.typo else w)
    text = " ".join(words)
    return text[0].upper() + text[1:]


def episode(src: Source, rng: np.random.Generator, idx: int, n_agents: int, n_tasks: int) -> FamilyEpisode:
    n_dom = len(src.domain_words)
    skills = rng.normal(src.weak[0], src.weak[1], size=(n_agents, n_dom))
    agents = []
    for i in range(n_agents):
        n_strong = int(rng.integers(src.n_strong[0], src.n_strong[1] + 1))
        strong = rng.choice(n_dom, size=min(n_strong, n_dom), replace=False)
        skills[i, strong] = rng.normal(src.strong[0], src.strong[1], size=len(strong))
        main = int(strong[0])
        role, caps = "", []
        if rng.random() < src.declares:
            role = src.roles[main if rng.random() < src.role_true else int(rng.integers(n_dom))]
            for _ in range(int(rng.integers(0, 4))):
                d = int(rng.choice(strong)) if rng.random() < src.tag_true else int(rng.integers(n_dom))
                caps.append(str(rng.choice(src.domain_words[d])))
        n_hist = int(rng.integers(src.hist_len[0], src.hist_len[1] + 1))
        hd = np.where(
            rng.random(n_hist) < src.hist_focus,
            rng.choice(strong, size=n_hist),
            rng.integers(n_dom, size=n_hist),
        )
        hdiff = rng.normal(src.difficulty[0], src.difficulty[1], size=n_hist)
        ok = rng.random(n_hist) < 1.0 / (1.0 + np.exp(-(skills[i, hd] - hdiff)))
        agents.append(
            EpisodeAgent(
                id=f"agent-{i}",
                role=role,
                capabilities=caps,
                capacity=int(rng.choice([1, 1, 2, 2, 3])),
                history=[
                    HistoryItem(task=_text(rng, src, int(hd[h])), success=bool(ok[h])) for h in range(n_hist)
                ],
            )
        )
    td = rng.integers(n_dom, size=n_tasks)
    tdiff = rng.normal(src.difficulty[0], src.difficulty[1], size=n_tasks)
    tasks = [EpisodeTask(id=f"task-{j}", description=_text(rng, src, int(td[j]))) for j in range(n_tasks)]
    p_true = 1.0 / (1.0 + np.exp(-(skills[:, td] - tdiff[None, :])))
    ep = Episode(id=f"family-{src.seed}-{idx}", agents=agents, tasks=tasks)
    return FamilyEpisode(ep, p_true, src.seed)


def generate(
    n: int,
    seed: int,
    *,
    sources: range | list[int],
    n_agents: tuple[int, int] = (3, 12),
    n_tasks: tuple[int, int] = (4, 16),
    hist_len: tuple[int, int] | None = None,
    outcome_driven: bool = False,
) -> list[FamilyEpisode]:
    """`n` episodes spread over the given sources (each source seed is its own generator); `hist_len` overrides
    the sources' history lengths (latency measurements at a fixed size); `outcome_driven` uses `outcome_source`."""
    rng = np.random.default_rng([92, seed, int(outcome_driven)])
    make = outcome_source if outcome_driven else make_source
    made = {s: make(s) for s in sources}
    if hist_len is not None:
        made = {k: replace(v, hist_len=hist_len) for k, v in made.items()}
    keys = list(made)
    out = []
    for idx in range(n):
        src = made[keys[int(rng.integers(len(keys)))]]
        a = int(rng.integers(n_agents[0], n_agents[1] + 1))
        t = int(rng.integers(n_tasks[0], n_tasks[1] + 1))
        out.append(episode(src, rng, idx, a, t))
    return out


# Source seeds: training draws from TRAIN_SOURCES; choices are made on VALIDATION_SOURCES; evaluation is on
# sources no training run or choice ever sees.
TRAIN_SOURCES = range(0, 400)
VALIDATION_SOURCES = range(2_000_000, 2_000_100)
HELDOUT_SOURCES = range(1_000_000, 1_000_100)
