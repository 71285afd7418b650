"""`ansf train --profile NAME --seed S --mirror DIR`: train a coordinator checkpoint, reproducibly.

Data, mixed in every batch (`replay_share` of it replayed history):
- REPLAYED git history of the repositories in `training_repos.txt` (read from `--mirror`): agents are authors,
  tasks their commits; the target is who really did each task, learnt as a softmax over the block's agents.
- SIMULATED episodes: the broad family (`family.py`, many randomised generators) and the classic simulator
  (`simulator.py`); the target is each pair's true success probability p* (binary cross-entropy). A share of the
  classic episodes has every word renamed to a nonce word (`nonce_frac`), so the network compares in context.
The profile's record (`coordinator/profiles.py`) holds every default; a flag overrides one. Logs go to stderr.
Same seed, arguments, data, device and torch version: same checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from ansf_mcp.coordinator.profiles import Training, network_of

log = logging.getLogger("ansf.train")


def _nonce_mapping(rng: np.random.Generator, episode) -> dict[str, str]:
    from ansf_mcp.coordinator.tokenizer import split_words

    texts = [t.description for t in episode.tasks]
    for a in episode.agents:
        texts.append(a.role)
        texts.extend(a.capabilities)
        texts.extend(h.task for h in a.history)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    mapping: dict[str, str] = {}
    for text in texts:
        for w in split_words(text):
            if w not in mapping:
                mapping[w] = "".join(rng.choice(letters, size=int(rng.integers(4, 10))))
    return mapping


def _domain_labels(sim, keep: int) -> np.ndarray:
    """Domain of every text of a classic simulated episode, in sequence order (-1: agent items)."""
    rows = []
    for i, agent in enumerate(sim.episode.agents):
        rows.append(-1)
        n = len(agent.history)
        rows.extend(int(sim.hist_domain[i][k]) for k in range(max(n - keep, 0), n))
    rows.extend(int(d) for d in sim.task_domain)
    return np.array(rows, dtype=np.int64)


def _prepare_one(job: tuple) -> object:
    from ansf_mcp.coordinator import features as F

    episode, kwargs = job
    return F.prepare(episode, **kwargs)


def prepare_all(jobs: list[tuple], workers: int) -> list:
    """F.prepare over (episode, kwargs) jobs, in order. Every random draw happens before, in the caller, so the
    blocks are the same whatever the number of worker processes."""
    if workers <= 1 or len(jobs) < 2 * workers:
        return [_prepare_one(j) for j in jobs]
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.map(_prepare_one, jobs, chunksize=32)


def synthetic_data(cfg: Training, seed: int, keep: int, workers: int = 1) -> list:
    """Prepared blocks of simulated episodes: `family_share` from the broad family, the rest classic."""
    from ansf_mcp.coordinator import features as F
    from ansf_mcp.lab import family, simulator

    rng = np.random.default_rng([seed, 7])
    n_family = int(cfg.synthetic_episodes * cfg.family_share)
    n_outcome = int(n_family * cfg.outcome_share)
    sizes = {"n_agents": (3, cfg.max_agents), "n_tasks": (4, cfg.max_tasks)}
    jobs = []
    families = [
        *family.generate(n_family - n_outcome, seed, sources=family.TRAIN_SOURCES, **sizes),
        *family.generate(n_outcome, seed, sources=family.TRAIN_SOURCES, outcome_driven=True, **sizes),
    ]
    for fe in families:
        slots = rng.permutation(F.MAX_AGENTS)[: len(fe.episode.agents)]
        jobs.append((fe.episode, {"slots": slots, "target": fe.p_true.astype(np.float32), "seq_history": keep}))
    for s in simulator.generate("train", cfg.synthetic_episodes - n_family, seed, **sizes):
        slots = rng.permutation(F.MAX_AGENTS)[: len(s.episode.agents)]
        mapping = _nonce_mapping(rng, s.episode) if rng.random() < cfg.nonce_frac else None
        jobs.append(
            (
                s.episode,
                {
                    "slots": slots,
                    "mapping": mapping,
                    "target": s.p_true.astype(np.float32),
                    "text_label": None if mapping else _domain_labels(s, keep),
                    "seq_history": keep,
                },
            )
        )
    return prepare_all(jobs, workers)


def replay_data(
    cfg: Training,
    seed: int,
    mirror: Path | None,
    per_repo: int,
    keep: int,
    repos: Path | None = None,
    *,
    histories: Path | None = None,
    workers: int = 1,
) -> tuple[list, list[str]]:
    """Prepared blocks of replayed history from every training repository, and the repositories used. The
    histories come from the mirror or from a file `python -m ansf_mcp.lab.corpus --export` wrote from one."""
    from ansf_mcp.coordinator import features as F
    from ansf_mcp.lab import corpus, replay

    refs = corpus.read_list(repos or corpus.TRAINING_LIST)
    rng = np.random.default_rng([seed, 13])
    blind_rng = np.random.default_rng([seed, 17])  # its own stream: a share of 0 reproduces older runs exactly
    jobs = []
    found = corpus.load_histories(histories, refs) if histories else corpus.histories(mirror, refs)
    for h in found:
        for rep in corpus.sample_windows(h, rng, per_repo, max_agents=cfg.max_agents):
            if cfg.style_blind_share > 0 and blind_rng.random() < cfg.style_blind_share:
                rep = replay.restyle(rep, "blind")
            ep = rep.episode
            ids = {a.id: i for i, a in enumerate(ep.agents)}
            target = np.zeros((len(ep.agents), len(ep.tasks)), dtype=np.float32)
            for j, t in enumerate(ep.tasks):
                target[ids[rep.truth[t.id]], j] = 1.0
            slots = rng.permutation(F.MAX_AGENTS)[: len(ep.agents)]
            jobs.append((ep, {"slots": slots, "target": target, "listwise": True, "seq_history": keep}))
        log.info("replayed %s: %d blocks so far", h.name, len(jobs))
    return prepare_all(jobs, workers), [f"{r.name} {r.commit}" for r in refs]


def replay_input_problem(mirror: Path | None, histories: Path | None, repos: Path | None) -> str | None:
    """Why `replay_data` could not read the training repositories from these arguments (None: it can, as far as
    can be told without reading every history)."""
    from ansf_mcp.lab import corpus

    listing = repos or corpus.TRAINING_LIST
    try:
        refs = corpus.read_list(listing)
    except (OSError, ValueError) as exc:
        return f"cannot read the list of training repositories {listing}: {exc}"
    if histories is not None:
        return None if histories.is_file() else f"--histories {histories} is not a file"
    if mirror is None or not mirror.is_dir():
        return f"--mirror {mirror} is not a directory"
    missing = []
    for ref in refs:
        try:
            corpus.locate(mirror, ref.name)
        except FileNotFoundError:
            missing.append(ref.name)
    if not missing:
        return None
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return (f"{len(missing)} of the {len(refs)} training repositories are not under --mirror {mirror}: {shown} "
            "(looked for OWNER+NAME/repo, OWNER+NAME and OWNER/NAME)")


def _plot(curves: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(curves["step"], curves["train_loss"], label="train loss (running mean)", alpha=0.8)
    axes[0].set_xlabel("step")
    axes[0].legend()
    for key, label in (
        ("classic_ratio", "classic held-out (simulated)"),
        ("shifted_ratio", "classic shifted (simulated)"),
        ("family_ratio", "family held-out sources (simulated)"),
    ):
        axes[1].plot(curves["eval_step"], curves[key], "o-", label=label)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("value ratio")
    axes[1].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ansf train", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True, help="spec (or spec-fp32/-int8/-pruned20) or student")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("ansf-train-out"))
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--mirror", type=Path, help="folder holding the training repositories (see lab/corpus.py)"
    )
    parser.add_argument("--repos", type=Path, help="list of training repositories (default: lab/training_repos.txt)")
    parser.add_argument(
        "--histories",
        type=Path,
        help="the training repositories' histories as `python -m ansf_mcp.lab.corpus --export` wrote them "
        "(instead of --mirror: a machine without the mirror trains on the same data)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes preparing the data (the blocks do not depend on it)"
    )
    for f in fields(Training):
        flag = "--" + f.name.replace("_", "-")
        kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)
        if f.name == "teacher":
            parser.add_argument(flag, type=Path, help="spec checkpoint (.safetensors) to distil from")
        else:
            parser.add_argument(flag, type=kind, help=f"default: the profile's {f.name}")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--val-episodes", type=int, default=150)
    parser.add_argument("--name", help="checkpoint name (default: the network's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    try:
        network = network_of(args.profile)
    except KeyError as exc:
        parser.error(exc.args[0])  # str() of a KeyError is its repr, in quotes
    overrides = {f.name: getattr(args, f.name) for f in fields(Training) if getattr(args, f.name) is not None}
    if "teacher" in overrides:
        overrides["teacher"] = str(overrides["teacher"])
    cfg = Training(**{**asdict(network.training), **overrides})
    if cfg.replay_share > 0 and args.mirror is None and args.histories is None:
        parser.error("--mirror or --histories is required to replay the training repositories (or --replay-share 0)")
    if cfg.replay_share > 0:
        # The replayed histories are read after the simulated data is made (the better part of a minute): a wrong
        # path found then ended in a traceback.
        problem = replay_input_problem(args.mirror, args.histories, args.repos)
        if problem:
            parser.error(problem)
    try:  # now, not after hours of training: a folder that cannot be made then lost the checkpoint
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        parser.error(f"cannot make the output folder --out {args.out}: {exc.strerror or exc}")

    import torch

    from ansf_mcp.coordinator import ckpt
    from ansf_mcp.coordinator import features as F
    from ansf_mcp.coordinator import model as M
    from ansf_mcp.lab import evaluate, family, simulator

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(args.seed)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available")
    device = torch.device(args.device)
    started = time.time()
    keep = network.config.seq_history
    synth = synthetic_data(cfg, args.seed, keep, args.workers)
    real, repos = (
        replay_data(
            cfg,
            args.seed,
            args.mirror,
            cfg.replay_per_repo,
            keep,
            args.repos,
            histories=args.histories,
            workers=args.workers,
        )
        if cfg.replay_share > 0
        else ([], [])
    )
    val = {
        "classic": simulator.generate("heldout", args.val_episodes, 10_000 + args.seed),
        "shifted": simulator.generate("shifted", args.val_episodes // 2, 10_000 + args.seed),
        "family": family.generate(args.val_episodes, 10_000 + args.seed, sources=family.HELDOUT_SOURCES),
    }
    val_preps = {k: [F.prepare(s.episode, seq_history=keep) for s in v] for k, v in val.items()}
    log.info(
        "data ready in %.1fs: %d simulated + %d replayed blocks from %d repositories",
        time.time() - started,
        len(synth),
        len(real),
        len(repos),
    )

    teacher = None
    if cfg.teacher:
        from ansf_mcp.coordinator import neural

        teacher = neural.load_file(Path(cfg.teacher), variant="fp32").net.to(device)

    net = M.CoordinatorNet(network.config)
    seen = torch.zeros(network.config.vocab)
    for prep in [*synth, *real]:
        if prep.text_label is not None or prep.listwise:  # renamed (nonce) episodes do not count as seen text
            for w in prep.wtexts:
                seen[list(w)] = 1.0
    seen[0] = 0.0
    net.seen.copy_(seen)
    log.info("%d word ids seen in training text", int(seen.sum()))
    net = net.to(device)
    emb_params = [net.embed.weight]
    other = [p for n, p in net.named_parameters() if n != "embed.weight"]
    opt = torch.optim.AdamW(
        [
            {"params": emb_params, "lr": cfg.lr * cfg.embed_lr_mult, "weight_decay": 0.0},
            {"params": other, "lr": cfg.lr},
        ],
        weight_decay=0.01,
    )
    base_lrs = [g["lr"] for g in opt.param_groups]
    warmup = max(1, cfg.steps // 20)
    rng = np.random.default_rng([args.seed, 11])

    def move(batch):
        return {k: v.to(device) for k, v in batch.items()}

    def validate(kind: str) -> float:
        net.eval()
        ratios = []
        with torch.inference_mode():
            for i in range(0, len(val_preps[kind]), 32):
                chunk = val_preps[kind][i : i + 32]
                probs = torch.sigmoid(net(move(F.collate(chunk)))).cpu().double().numpy()
                for k, s in enumerate(val[kind][i : i + 32]):
                    a, t = s.p_true.shape
                    ratios.append(evaluate.ratio_of_estimate(s.episode, s.p_true, probs[k, :a, :t]))
        net.train()
        return float(np.mean(ratios))

    curves: dict = {"step": [], "train_loss": [], "eval_step": []}
    n_real = round(cfg.batch * cfg.replay_share) if real else 0
    running = None
    net.train()
    for step in range(1, cfg.steps + 1):
        idx_s = rng.integers(len(synth), size=cfg.batch - n_real)
        idx_r = rng.integers(len(real), size=n_real) if n_real else []
        items = [synth[i] for i in idx_s] + [real[i] for i in idx_r]
        b = move(F.collate(items))
        target = b["target"]
        teacher_logits = None
        if teacher is not None:
            with torch.no_grad():
                teacher_logits = teacher(b)
            if cfg.distill_weight:
                soft = torch.sigmoid(teacher_logits)
                keep = (~b["listwise"]).view(-1, 1, 1).to(soft.dtype) * cfg.distill_weight
                target = keep * soft + (1 - keep) * target
        frac = (
            step / warmup
            if step <= warmup
            else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(cfg.steps - warmup, 1)))
        )
        for g, lr in zip(opt.param_groups, base_lrs, strict=True):
            g["lr"] = lr * max(frac, 0.02)
        logits = net(b)
        loss = M.loss(logits, b, target)
        if teacher_logits is not None and cfg.replay_distill_weight:
            loss = loss + cfg.replay_distill_weight * M.listwise_distill(logits, teacher_logits, b)
        if cfg.aux_weight > 0:
            loss = loss + cfg.aux_weight * net.aux_loss(b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        lv = float(loss.detach())
        running = lv if running is None else 0.95 * running + 0.05 * lv
        curves["step"].append(step)
        curves["train_loss"].append(running)
        if step % args.eval_every == 0 or step == cfg.steps:
            curves["eval_step"].append(step)
            for kind in val:
                curves.setdefault(f"{kind}_ratio", []).append(validate(kind))
            log.info(
                "step %d/%d loss %.4f classic %.4f shifted %.4f family %.4f (%.0fs)",
                step,
                cfg.steps,
                running,
                curves["classic_ratio"][-1],
                curves["shifted_ratio"][-1],
                curves["family_ratio"][-1],
                time.time() - started,
            )

    name = args.name or network.name
    args.out.mkdir(parents=True, exist_ok=True)
    _plot(curves, args.out / f"{name}-loss.png", f"{name} (seed {args.seed})")
    card = {
        "profile": network.name,
        "name": name,
        "config": network.config.as_dict(),
        "params": M.count_parameters(net),
        "seed": args.seed,
        "torch": torch.__version__,
        "device": args.device,
        "train": {
            **asdict(cfg),
            "wall_s": round(time.time() - started, 1),
            "simulated_blocks": len(synth),
            "replayed_blocks": len(real),
            "final": {k: curves[f"{k}_ratio"][-1] for k in val},
            "data": "SIMULATED episodes (lab/family.py, lab/simulator.py) and REPLAYED git history of the "
            "repositories in lab/training_repos.txt",
            "repositories": repos,
        },
    }
    weights, meta = ckpt.save(net.cpu().state_dict(), args.out, name, card)
    (args.out / f"{name}-curves.json").write_text(json.dumps(curves) + "\n")
    log.info("saved %s (%d bytes), %s", weights, weights.stat().st_size, meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
