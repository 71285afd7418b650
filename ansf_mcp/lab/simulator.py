"""SIMULATED coordination episodes with each pair's hidden true success probability.

Generative model (everything below is simulated; nothing here is measured from real agents):

- ``N_DOMAINS`` work domains. Each agent has a primary domain (skill ~ N(1.6, 0.6)), a secondary one
  (skill ~ N(0.6, 0.6)) and weak skills elsewhere (~ N(-0.9, 0.7)). Skills are hidden.
- Role and capability tags are *claims*: the role names the primary domain with probability 0.65 (else a random
  domain: stale or wrong); each of two capability tags is a word of the primary domain with probability 0.6.
- Tasks are natural-language sentences built from templates, one domain word or two, shared filler words that
  appear in every domain, and a difficulty word from one of five levels (difficulty -1.0 ... +1.0).
- ``p*(agent, task) = sigmoid(skill[agent, domain(task)] - difficulty(task))``.
- History: 4-16 past tasks per agent (half in the primary domain, half anywhere), outcome ~ Bernoulli(p*).

Splits: ``train`` and ``heldout`` share vocabulary and templates (fresh agents and tasks: disjoint seeds);
``shifted`` uses a disjoint vocabulary for domain words, filler words, difficulty words, roles and templates, so
a model that memorised which word means which domain gains nothing there.

The information ceiling (:func:`ceiling_estimate`) reads every text perfectly (it is told each task's domain and
difficulty) and computes the exact Bayes posterior mean of p* from the same role, tags and noisy histories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ansf_mcp.coordinator.episode import Episode, EpisodeAgent, EpisodeTask, HistoryItem

Split = Literal["train", "heldout", "shifted"]
N_DOMAINS = 8
DIFFICULTY_LEVELS = (-1.0, -0.5, 0.0, 0.5, 1.0)
PRIMARY = (1.6, 0.6)
SECONDARY = (0.6, 0.6)
OTHER = (-0.9, 0.7)
ROLE_TRUE = 0.65
CAP_TRUE = 0.6
HIST_PRIMARY = 0.5

# Domain vocabularies: (train/heldout words, shifted words). Disjoint by construction.
_DOMAIN_WORDS: list[tuple[str, str]] = [
    (
        "endpoint api route handler request payload rest webhook controller middleware serializer grpc",
        "servlet rpc callback interceptor dispatcher marshaller gateway uplink",
    ),
    (
        "button layout css modal navbar component stylesheet tooltip dropdown carousel sidebar widget",
        "checkbox viewport typography palette breadcrumb accordion slider canvas",
    ),
    (
        "postgres query index migration schema sql table replica transaction orm shard column",
        "cassandra cursor deadlock tablespace sequel relational datastore rowset",
    ),
    (
        "kubernetes docker pipeline terraform helm deployment container ansible cluster nginx autoscaler ingress",
        "vagrant puppet nomad provisioning hypervisor buildkite chef orchestrator",
    ),
    (
        "authentication oauth token encryption vulnerability csrf password firewall certificate audit xss secrets",
        "kerberos phishing malware ciphertext sandboxing keystore antivirus pentest",
    ),
    (
        "model training dataset embedding classifier feature inference tensor gradient accuracy regression label",
        "perceptron backprop hyperparameter autoencoder bayesian annotation epoch clustering",
    ),
    (
        "android ios swift kotlin app push notification tablet gesture simulator xcode playstore",
        "smartwatch flutter handset haptic splashscreen wearable appstore emulator",
    ),
    (
        "documentation readme tutorial changelog guide docstring wiki manual glossary faq handbook diagram",
        "whitepaper brochure storyboard transcript proofreading footnote appendix errata",
    ),
]
_ROLES: list[tuple[str, str]] = [
    ("backend engineer", "server programmer"),
    ("frontend developer", "interface designer"),
    ("database administrator", "data steward"),
    ("devops engineer", "platform operator"),
    ("security specialist", "threat analyst"),
    ("ml engineer", "research scientist"),
    ("mobile developer", "handheld programmer"),
    ("technical writer", "content author"),
]
_FILLER = (
    "module service system component feature project version release config issue user team customer report "
    "workflow integration production staging legacy internal",
    "subsystem package platform tooling portal tenant partner cohort pilot rollout sprint roadmap quarter "
    "backlog artifact prototype",
)
_DIFFICULTY_WORDS = (
    # level -1 ... +1, train then shifted
    ("trivial|simple|quick", "minor|routine|effortless"),
    ("small|easy|straightforward", "modest|plain|lightweight"),
    ("|standard|regular", "|ordinary|typical"),
    ("tricky|involved|complex", "demanding|intricate|thorny"),
    ("critical|hard|gnarly", "brutal|daunting|formidable"),
)
_TEMPLATES = (
    [
        "Fix the {d} {w1} in the {f} {w2}",
        "Add {d} {w1} support to the {f}",
        "Refactor the {w1} {f} and clean up the {w2}",
        "Investigate a {d} bug in the {w1} of the {f}",
        "Implement {w1} for the {f} {w2}",
        "Update the {w1} so the {f} handles {w2} correctly",
        "Write tests for the {d} {w1} {f}",
        "Review the {f} {w1} change before the {w2} ships",
        "Improve {w1} performance for the {f} {d}",
        "Migrate the {f} {w1} to the new {w2}",
        "Debug {d} {w1} failures reported by the {f}",
        "Design a {d} {w1} for the {f} {w2}",
    ],
    [
        "Our {f} needs a {d} overhaul of its {w1} and {w2}",
        "Someone should look into why the {w1} keeps breaking in the {f}",
        "Please prototype {w1} {w2} ideas for the next {f} ({d})",
        "Survey {w1} usage across every {f}, {d} effort",
        "Replace the outdated {w1} of the {f} with {w2}",
        "Help the {f} crew untangle a {d} {w1} mess",
        "Benchmark {w1} against {w2} for the {f}",
        "Document lessons from the {d} {w1} incident on the {f}",
    ],
)


def _split_words(s: str) -> list[str]:
    return s.split()


@dataclass(frozen=True)
class Vocab:
    domain_words: list[list[str]]
    roles: list[str]
    filler: list[str]
    difficulty_words: list[list[str]]
    templates: list[str]


def vocab(split: Split) -> Vocab:
    k = 1 if split == "shifted" else 0
    return Vocab(
        domain_words=[_split_words(pair[k]) for pair in _DOMAIN_WORDS],
        roles=[pair[k] for pair in _ROLES],
        filler=_split_words(_FILLER[k]),
        difficulty_words=[lvl[k].split("|") for lvl in _DIFFICULTY_WORDS],
        templates=list(_TEMPLATES[k]),
    )


@dataclass
class SimEpisode:
    """One simulated decision: the public episode plus what only the benchmark may know."""

    episode: Episode
    p_true: np.ndarray  # (agents, tasks)
    task_domain: np.ndarray  # (tasks,)
    task_difficulty: np.ndarray  # (tasks,)
    role_domain: np.ndarray  # (agents,) domain the role names
    cap_domains: list[list[int]]  # per agent, the domain of each capability tag
    hist_domain: list[np.ndarray]  # per agent, domain of each history item
    hist_difficulty: list[np.ndarray]
    hist_outcome: list[np.ndarray]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _text(rng: np.random.Generator, v: Vocab, domain: int, level: int) -> str:
    tpl = v.templates[rng.integers(len(v.templates))]
    words = v.domain_words[domain]
    w1 = words[rng.integers(len(words))]
    # The second slot is a domain word half of the time and a shared filler word otherwise.
    w2 = words[rng.integers(len(words))] if rng.random() < 0.5 else v.filler[rng.integers(len(v.filler))]
    f = v.filler[rng.integers(len(v.filler))]
    dwords = v.difficulty_words[level]
    d = dwords[rng.integers(len(dwords))]
    text = tpl.format(d=d, w1=w1, w2=w2, f=f)
    text = " ".join(text.split())  # an empty difficulty word leaves a double space
    return text[0].upper() + text[1:]


def _one(rng: np.random.Generator, v: Vocab, idx: int, split: str, n_agents: int, n_tasks: int) -> SimEpisode:
    primaries = rng.integers(N_DOMAINS, size=n_agents)
    skills = rng.normal(OTHER[0], OTHER[1], size=(n_agents, N_DOMAINS))
    role_domain = np.empty(n_agents, dtype=np.int64)
    agents: list[EpisodeAgent] = []
    cap_domains: list[list[int]] = []
    hist_domain, hist_diff, hist_out = [], [], []
    for i in range(n_agents):
        k = int(primaries[i])
        second = int((k + 1 + rng.integers(N_DOMAINS - 1)) % N_DOMAINS)
        skills[i, k] = rng.normal(*PRIMARY)
        skills[i, second] = rng.normal(*SECONDARY)
        role_domain[i] = k if rng.random() < ROLE_TRUE else rng.integers(N_DOMAINS)
        caps, cdoms = [], []
        for _ in range(2):
            cd = k if rng.random() < CAP_TRUE else int(rng.integers(N_DOMAINS))
            words = v.domain_words[cd]
            caps.append(words[rng.integers(len(words))])
            cdoms.append(int(cd))
        n_hist = int(rng.integers(4, 17))
        hd = np.where(rng.random(n_hist) < HIST_PRIMARY, k, rng.integers(N_DOMAINS, size=n_hist))
        hl = rng.integers(len(DIFFICULTY_LEVELS), size=n_hist)
        hdiff = np.array(DIFFICULTY_LEVELS)[hl]
        ho = rng.random(n_hist) < _sigmoid(skills[i, hd] - hdiff)
        history = [
            HistoryItem(task=_text(rng, v, int(hd[h]), int(hl[h])), success=bool(ho[h]))
            for h in range(n_hist)
        ]
        cap = int(rng.choice([1, 1, 2, 2, 3]))
        agents.append(
            EpisodeAgent(
                id=f"agent-{i}",
                role=v.roles[role_domain[i]],
                capabilities=caps,
                capacity=cap,
                history=history,
            )
        )
        cap_domains.append(cdoms)
        hist_domain.append(hd.astype(np.int64))
        hist_diff.append(hdiff)
        hist_out.append(ho)
    td = rng.integers(N_DOMAINS, size=n_tasks)
    tl = rng.integers(len(DIFFICULTY_LEVELS), size=n_tasks)
    tdiff = np.array(DIFFICULTY_LEVELS)[tl]
    tasks = [
        EpisodeTask(id=f"task-{j}", description=_text(rng, v, int(td[j]), int(tl[j])), priority=1)
        for j in range(n_tasks)
    ]
    p_true = _sigmoid(skills[:, td] - tdiff[None, :])
    ep = Episode(id=f"{split}-{idx}", agents=agents, tasks=tasks)
    return SimEpisode(ep, p_true, td, tdiff, role_domain, cap_domains, hist_domain, hist_diff, hist_out)


# Seeds of different splits never meet: the split name picks a disjoint seed stream.
_SPLIT_STREAM = {"train": 1, "heldout": 2, "shifted": 3}


def generate(
    split: Split,
    n: int,
    seed: int,
    n_agents: int | tuple[int, int] = (4, 8),
    n_tasks: int | tuple[int, int] = (6, 16),
) -> list[SimEpisode]:
    """`n` simulated episodes of a split; sizes are fixed ints or inclusive (low, high) ranges."""
    if split not in _SPLIT_STREAM:
        raise ValueError(f"unknown split {split!r}")
    v = vocab("shifted" if split == "shifted" else "train")
    rng = np.random.default_rng([_SPLIT_STREAM[split], seed])
    out = []
    for idx in range(n):
        a = n_agents if isinstance(n_agents, int) else int(rng.integers(n_agents[0], n_agents[1] + 1))
        t = n_tasks if isinstance(n_tasks, int) else int(rng.integers(n_tasks[0], n_tasks[1] + 1))
        out.append(_one(rng, v, idx, split, a, t))
    return out


# ---------------------------------------------------------------------------------------------- the ceiling
_GRID = np.linspace(-4.0, 5.0, 181)


def _normal_pdf(x: np.ndarray, mu: float, sd: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mu) / sd) ** 2) / sd


def ceiling_estimate(sim: SimEpisode) -> np.ndarray:
    """Exact Bayes posterior mean of p* given role, tags and histories, reading every text perfectly.

    Hidden per agent: the primary domain k, the secondary domain s, and the skill in every domain. Per domain the
    skill prior is a mixture over whether the domain is primary, secondary or other; we integrate skills on a grid
    and sum over (k, s) exactly.
    """
    n_a = len(sim.episode.agents)
    n_t = len(sim.episode.tasks)
    priors = {
        "p": _normal_pdf(_GRID, *PRIMARY),
        "s": _normal_pdf(_GRID, *SECONDARY),
        "o": _normal_pdf(_GRID, *OTHER),
    }
    for key in priors:
        priors[key] = priors[key] / priors[key].sum()
    p_task = _sigmoid(_GRID[None, :] - sim.task_difficulty[:, None])  # (tasks, grid)
    out = np.empty((n_a, n_t))
    for i in range(n_a):
        # Likelihood of the history outcomes of domain d as a function of the skill grid.
        lik = np.ones((N_DOMAINS, _GRID.size))
        for d_, diff, o in zip(sim.hist_domain[i], sim.hist_difficulty[i], sim.hist_outcome[i], strict=True):
            ps = _sigmoid(_GRID - diff)
            lik[d_] *= ps if o else 1.0 - ps
        # Evidence and posterior of each domain's skill under each of its three prior types.
        ev = {key: lik @ pr for key, pr in priors.items()}  # (domains,)
        post_mean_p = {
            key: (lik * pr) @ p_task.T / np.maximum(ev[key][:, None], 1e-300) for key, pr in priors.items()
        }
        # post_mean_p[key][d, j] = E[p(task j) | hist_d, domain d has type key]
        weights = np.full((N_DOMAINS, N_DOMAINS), -np.inf)  # (k, s) joint log posterior
        log_ev_o = np.log(np.maximum(ev["o"], 1e-300))
        total_o = log_ev_o.sum()
        for k in range(N_DOMAINS):
            role_lik = ROLE_TRUE * (sim.role_domain[i] == k) + (1 - ROLE_TRUE) / N_DOMAINS
            cap_lik = 1.0
            for cd in sim.cap_domains[i]:
                cap_lik *= CAP_TRUE * (cd == k) + (1 - CAP_TRUE) / N_DOMAINS
            # Which domains the past tasks were in says something about the primary domain too.
            hd = sim.hist_domain[i]
            cap_lik *= float(np.prod(HIST_PRIMARY * (hd == k) + (1 - HIST_PRIMARY) / N_DOMAINS))
            for s in range(N_DOMAINS):
                if s == k:
                    continue
                lw = (
                    total_o
                    - log_ev_o[k]
                    - log_ev_o[s]
                    + np.log(max(ev["p"][k], 1e-300))
                    + np.log(max(ev["s"][s], 1e-300))
                )
                weights[k, s] = lw + np.log(role_lik * cap_lik)
        weights = np.exp(weights - weights.max())
        weights /= weights.sum()
        w_primary = weights.sum(axis=1)  # P(domain d is primary)
        w_secondary = weights.sum(axis=0)
        w_other = 1.0 - w_primary - w_secondary
        for j in range(n_t):
            d = int(sim.task_domain[j])
            out[i, j] = (
                w_primary[d] * post_mean_p["p"][d, j]
                + w_secondary[d] * post_mean_p["s"][d, j]
                + w_other[d] * post_mean_p["o"][d, j]
            )
    return out
