"""`ansf train --profile NAME --seed S`: train a coordinator checkpoint on SIMULATED episodes, reproducibly.

Profiles: ``spec`` (also reached as spec-fp32 / spec-int8 / spec-pruned20: one training run, the variants are made
at load time) and ``student`` (compact, distilled from a spec checkpoint given with ``--teacher``; without one it
trains on the simulator's probabilities alone and says so in its card).

Targets are the simulator's true probabilities p* (soft labels, binary cross-entropy). A fraction of training
episodes has every word consistently renamed to a random nonce word ("--nonce-frac"), so the network has to
compare a task with the agent's past tasks in context instead of only memorising which word means which domain.
Logs go to stderr. Same seed, same arguments, same device and torch version: same checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("ansf.train")

# The settings that produced the shipped checkpoints (docs/MODEL.md); any flag overrides its default.
DEFAULTS = {
    "spec": {
        "steps": 800,
        "batch": 12,
        "lr": 5e-4,
        "embed_lr_mult": 20.0,
        "episodes": 4000,
        "nonce_frac": 0.4,
        "max_agents": 8,
        "max_tasks": 12,
    },
    "student": {
        "steps": 3000,
        "batch": 16,
        "lr": 2e-3,
        "embed_lr_mult": 5.0,
        "episodes": 6000,
        "nonce_frac": 0.4,
        "max_agents": 10,
        "max_tasks": 16,
    },
}
ALIASES = {"spec-fp32": "spec", "spec-int8": "spec", "spec-pruned20": "spec"}


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


def _text_labels(sim) -> np.ndarray:
    """Domain and difficulty level of every text of a simulated episode, in sequence order (-1: agent item)."""
    from ansf_mcp.lab import simulator as S

    levels = {v: i for i, v in enumerate(S.DIFFICULTY_LEVELS)}
    rows = []
    for i, agent in enumerate(sim.episode.agents):
        rows.append((-1, -1))
        for k in range(len(agent.history)):
            rows.append((int(sim.hist_domain[i][k]), levels[float(sim.hist_difficulty[i][k])]))
    for j in range(len(sim.episode.tasks)):
        rows.append((int(sim.task_domain[j]), levels[float(sim.task_difficulty[j])]))
    return np.array(rows, dtype=np.int64)


def build_data(n: int, seed: int, nonce_frac: float, max_agents: int = 8, max_tasks: int = 12):
    from ansf_mcp.coordinator import model as M
    from ansf_mcp.lab import simulator as S

    sims = S.generate("train", n, seed, n_agents=(3, max_agents), n_tasks=(4, max_tasks))
    rng = np.random.default_rng([seed, 7])
    preps = []
    for s in sims:
        slots = rng.permutation(M.MAX_AGENTS)[: len(s.episode.agents)]
        mapping = _nonce_mapping(rng, s.episode) if rng.random() < nonce_frac else None
        preps.append(
            M.prepare(
                s.episode,
                slots=slots,
                mapping=mapping,
                target=s.p_true.astype(np.float32),
                text_label=None if mapping else _text_labels(s),
            )
        )
    return sims, preps


def _plot(curves: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(
        curves["step"], curves["train_loss"], label="train loss: BCE + aux (running mean)", alpha=0.8
    )
    axes[0].plot(curves["eval_step"], curves["val_loss"], "o-", label="held-out BCE")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("BCE vs p* (simulated)")
    axes[0].legend()
    axes[1].plot(curves["eval_step"], curves["val_ratio"], "o-", label="held-out value ratio (neural)")
    if curves.get("history_ratio") is not None:
        axes[1].axhline(curves["history_ratio"], color="gray", ls="--", label="history baseline")
    if curves.get("ceiling_ratio") is not None:
        axes[1].axhline(curves["ceiling_ratio"], color="green", ls=":", label="information ceiling")
    axes[1].set_xlabel("step")
    axes[1].legend()
    fig.suptitle(title + " — simulated episodes")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ansf train", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile", required=True, help="spec (spec-fp32/spec-int8/spec-pruned20) or student"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("ansf-train-out"))
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--episodes", type=int, help="training episodes generated (fixed set, reused)")
    parser.add_argument("--nonce-frac", type=float)
    parser.add_argument("--max-agents", type=int, help="training episodes have 3..N agents")
    parser.add_argument("--max-tasks", type=int, help="training episodes have 4..N tasks")
    parser.add_argument(
        "--teacher", type=Path, help="spec checkpoint (.safetensors) to distil the student from"
    )
    parser.add_argument("--distill-weight", type=float, default=0.3)
    parser.add_argument(
        "--embed-lr-mult", type=float, default=5.0, help="learning-rate factor of the embeddings"
    )
    parser.add_argument("--aux-weight", type=float, default=0.3, help="weight of the text domain/level loss")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--val-episodes", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", help="checkpoint name (default: the profile)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    profile = ALIASES.get(args.profile, args.profile)
    if profile not in DEFAULTS:
        parser.error(f"unknown profile {args.profile!r}")
    for key, value in DEFAULTS[profile].items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    import torch

    from ansf_mcp.coordinator import baselines, ckpt
    from ansf_mcp.coordinator import model as M
    from ansf_mcp.lab import evaluate, simulator

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available")
    device = torch.device(args.device)
    cfg = M.SPEC if profile == "spec" else M.STUDENT
    started = time.time()
    _sims, preps = build_data(args.episodes, args.seed, args.nonce_frac, args.max_agents, args.max_tasks)
    val = simulator.generate("heldout", args.val_episodes, 10_000 + args.seed)
    val_preps = [M.prepare(s.episode, target=s.p_true.astype(np.float32)) for s in val]
    hist_ratio = float(np.mean(evaluate.evaluate_estimator(val, baselines.history)))
    # Monitoring only (nothing is selected on it): a small shifted validation set, other seeds than the bench's.
    val_shift = simulator.generate("shifted", args.val_episodes // 2, 10_000 + args.seed)
    val_shift_preps = [M.prepare(s.episode, target=s.p_true.astype(np.float32)) for s in val_shift]
    shift_hist = float(np.mean(evaluate.evaluate_estimator(val_shift, baselines.history)))
    ceil_ratio = float(np.mean([evaluate.ratio_of_estimate(s, simulator.ceiling_estimate(s)) for s in val]))
    log.info(
        "data ready in %.1fs: %d train episodes; validation history %.4f ceiling %.4f; shifted history %.4f",
        time.time() - started,
        len(preps),
        hist_ratio,
        ceil_ratio,
        shift_hist,
    )

    teacher_p = None
    distilled_from = None
    if profile == "student" and args.teacher is not None:
        from ansf_mcp.coordinator import neural

        teacher = neural.load_file(args.teacher, variant="fp32")
        distilled_from = args.teacher.name
        teacher_p = []
        with torch.inference_mode():
            for i in range(0, len(preps), 32):
                b = M.collate(preps[i : i + 32])
                probs = torch.sigmoid(teacher.net(b))
                for k, prep in enumerate(preps[i : i + 32]):
                    a, t = len(prep.agent_item), len(prep.task_item)
                    teacher_p.append(probs[k, :a, :t].numpy().copy())
        log.info("teacher predictions for %d episodes in %.1fs", len(teacher_p), time.time() - started)

    net = M.CoordinatorNet(cfg)
    seen = torch.zeros(cfg.vocab)
    for prep in preps:
        if prep.text_label is not None:  # renamed (nonce) episodes do not count as seen text
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
            {"params": emb_params, "lr": args.lr * args.embed_lr_mult, "weight_decay": 0.0},
            {"params": other, "lr": args.lr},
        ],
        weight_decay=0.01,
    )
    base_lrs = [g["lr"] for g in opt.param_groups]
    warmup = max(1, args.steps // 20)
    rng = np.random.default_rng([args.seed, 11])

    def move(batch):
        return {k: v.to(device) for k, v in batch.items()}

    def validate(sims_v=val, preps_v=val_preps) -> tuple[float, float]:
        net.eval()
        losses, ratios = [], []
        with torch.inference_mode():
            for i in range(0, len(preps_v), 32):
                chunk = preps_v[i : i + 32]
                b = move(M.collate(chunk))
                logits = net(b)
                losses.append(float(M.masked_bce(logits, b)) * len(chunk))
                probs = torch.sigmoid(logits).cpu().double().numpy()
                for k, s in enumerate(sims_v[i : i + 32]):
                    a, t = s.p_true.shape
                    ratios.append(evaluate.ratio_of_estimate(s, probs[k, :a, :t]))
        net.train()
        return sum(losses) / len(preps_v), float(np.mean(ratios))

    curves: dict = {
        "step": [],
        "train_loss": [],
        "eval_step": [],
        "val_loss": [],
        "val_ratio": [],
        "history_ratio": hist_ratio,
        "ceiling_ratio": ceil_ratio,
    }
    order = rng.permutation(len(preps))
    cursor = 0
    running = None
    net.train()
    for step in range(1, args.steps + 1):
        if cursor + args.batch > len(order):
            order, cursor = rng.permutation(len(preps)), 0
        idx = order[cursor : cursor + args.batch]
        cursor += args.batch
        b = M.collate([preps[i] for i in idx])
        target = b["target"]
        if teacher_p is not None:
            soft = torch.zeros_like(target)
            for k, i in enumerate(idx):
                a, t = teacher_p[i].shape
                soft[k, :a, :t] = torch.from_numpy(teacher_p[i])
            target = args.distill_weight * soft + (1 - args.distill_weight) * target
        b = move(b)
        frac = (
            step / warmup
            if step <= warmup
            else 0.5 * (1 + math.cos(math.pi * (step - warmup) / (args.steps - warmup)))
        )
        for g, lr in zip(opt.param_groups, base_lrs, strict=True):
            g["lr"] = lr * max(frac, 0.02)
        loss = M.masked_bce(net(b), b, target.to(device))
        if args.aux_weight > 0:
            loss = loss + args.aux_weight * net.aux_loss(b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        lv = float(loss.detach())
        running = lv if running is None else 0.95 * running + 0.05 * lv
        curves["step"].append(step)
        curves["train_loss"].append(running)
        if step % args.eval_every == 0 or step == args.steps:
            vl, vr = validate()
            _, sr = validate(val_shift, val_shift_preps)
            curves["eval_step"].append(step)
            curves["val_loss"].append(vl)
            curves["val_ratio"].append(vr)
            curves.setdefault("shifted_ratio", []).append(sr)
            log.info(
                "step %d/%d train %.4f val %.4f ratio %.4f shifted %.4f (%.0fs)",
                step,
                args.steps,
                running,
                vl,
                vr,
                sr,
                time.time() - started,
            )

    name = args.name or profile
    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / f"{name}-loss.png"
    _plot(curves, png, f"{name} (seed {args.seed})")
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, args.out / f"{name}-fp32.pt")
    card = {
        "profile": profile,
        "name": name,
        "config": cfg.as_dict(),
        "params": M.count_parameters(net),
        "seed": args.seed,
        "torch": torch.__version__,
        "device": args.device,
        "train": {
            "steps": args.steps,
            "batch": args.batch,
            "lr": args.lr,
            "episodes": args.episodes,
            "nonce_frac": args.nonce_frac,
            "max_agents": args.max_agents,
            "max_tasks": args.max_tasks,
            "embed_lr_mult": args.embed_lr_mult,
            "aux_weight": args.aux_weight,
            "distilled_from": distilled_from,
            "distill_weight": args.distill_weight if distilled_from else None,
            "wall_s": round(time.time() - started, 1),
            "final_val_loss": curves["val_loss"][-1],
            "final_val_ratio": curves["val_ratio"][-1],
            "val_history_ratio": hist_ratio,
            "shifted_val_ratio": curves["shifted_ratio"][-1],
            "shifted_val_history_ratio": shift_hist,
            "val_ceiling_ratio": ceil_ratio,
            "val_episodes": args.val_episodes,
            "data": "SIMULATED episodes (ansf_mcp.lab.simulator, split 'train')",
        },
    }
    weights, meta = ckpt.save(net.cpu().state_dict(), args.out, name, card)
    (args.out / f"{name}-curves.json").write_text(json.dumps(curves) + "\n")
    log.info("saved %s (%d bytes), %s, %s", weights, weights.stat().st_size, meta, png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
