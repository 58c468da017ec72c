"""What every bench shares: the machine and the command printed before any figure, and the report written as
JSON under runs/ (a bench's figures, with where they came from)."""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_utils.devices import machine_description  # noqa: E402


machine = machine_description


def announce(script: str) -> None:
    """Print the machine and the command, so every figure printed after them says where it came from."""
    print(f"machine: {machine()}")
    print(f"command: python bench/{script} {' '.join(sys.argv[1:])}", flush=True)


def report(lesson: str, part: str, result: dict) -> None:
    """Print a bench's figures as JSON and keep them in runs/bench-LESSON-PART.json."""
    result = {"machine": machine(), "command": " ".join(sys.argv), "part": part, "result": result}
    print(json.dumps(result, indent=2))
    Path("runs").mkdir(exist_ok=True)
    Path(f"runs/bench-{lesson}-{part}.json").write_text(json.dumps(result, indent=2))


def add_recipe_arguments(p, recipes: list[str]) -> None:
    """The side-by-side part's choice of recipes (``preset_recipes``), ``recipes`` by default, and the scales at
    which each trained model is judged besides its preset's."""
    p.add_argument("--recipes", nargs="+", default=recipes, choices=["source", "unguided", "cpu"],
                   help="side-by-side: which recipes (source: the gpu preset's; unguided: the cpu preset without "
                        "label dropout and guidance; cpu: as shipped)")
    p.add_argument("--candidate", nargs="+", action="append", metavar="SECTION.KEY=VALUE", default=None,
                   help="side-by-side: add, last, the cpu preset with these settings changed "
                        "(e.g. train.batch_size=32 train.learning_rate=1e-3); repeat it to add several candidates")
    p.add_argument("--also-scales", type=float, nargs="+", default=None,
                   help="side-by-side (lesson 1: and timesteps): judge every guided model at these guidance scales "
                        "too (its preset's sampler, steps and interval, the same noise)")
    p.add_argument("--also-intervals", nargs="+", metavar="LO-HI", default=None,
                   help="side-by-side: judge every guided model guided only on the timesteps in each of these "
                        "intervals too (e.g. 500-1000), at its preset's scale and the --also-scales, with as many "
                        "steps as fit in its preset's number of model evaluations")


def parse_intervals(intervals: list[str] | None, number=int) -> list[tuple]:
    """``["500-1000", ...]`` (the benches' ``--intervals`` and ``--also-intervals``) as ``[(500, 1000), ...]``;
    ``number=float`` reads pairs of scales (``--ramps 1.5-3``)."""
    try:
        pairs = [tuple(number(x) for x in i.split("-")) for i in intervals or []]
    except ValueError:
        pairs = [()]
    if any(len(pair) != 2 for pair in pairs):
        raise SystemExit(f"write each pair LO-HI, e.g. 500-1000 or 1.5-3; got {' '.join(intervals)}")
    return pairs


def add_guidance_arguments(p) -> None:
    """The options of the ``side-by-side`` and ``scales`` parts, shared by lessons 2 and 4's benches."""
    add_recipe_arguments(p, ["unguided", "cpu"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="side-by-side: the seeds")
    p.add_argument("--factors", type=float, nargs="+", default=[1.0, 2.0],
                   help="budgets: training budgets as multiples of the cpu preset's time limit")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0, 3.0, 4.0, 5.0], help="scales: the scales")
    p.add_argument("--sampler", default="ddpm", help="scales: the sampler (ddpm, ddim, dpm, dpm-sde)")
    p.add_argument("--steps", type=int, default=25, help="scales: sampling steps")
    p.add_argument("--interval", type=int, nargs=2, metavar=("LO", "HI"), default=None,
                   help="scales: guide only the steps whose timestep lies in [LO, HI] (default: every step)")
    p.add_argument("--evaluations", type=int, default=None,
                   help="scales: instead of --steps, as many steps as fit in this many model evaluations per sample")


def steps_within(scheduler, evaluations: int, guidance_interval=None) -> int:
    """The most sampling steps whose guided run costs at most ``evaluations`` model evaluations per sample
    (a guided step costs two; with ``guidance_interval`` only the steps inside it are guided)."""
    from course_utils.sampling import model_evaluations

    return max(n for n in range(1, evaluations + 1)
               if model_evaluations(scheduler, n, 2.0, guidance_interval) <= evaluations)


def judged_figures(ev) -> dict:
    """An evaluation's figures as the benches print them: accuracy (also over the judge's own), FID, ms per sample."""
    r = ev.report
    return {"class_accuracy": round(r.class_accuracy, 4),
            "accuracy_over_judge": round(r.class_accuracy / r.judge_test_accuracy, 3),
            "per_class_accuracy": [round(a, 3) for a in r.per_class_accuracy],
            "fid": round(r.fid, 2), "fid_real_vs_real": round(r.fid_real_vs_real, 2),
            "ms_per_sample": round(1000 * ev.seconds_per_sample, 1)}


def guidance_scales(checkpoint: Path, judge: str, scales: list[float], sampler: str, steps: int,
                    per_class: int, interval=None, evaluations: int | None = None) -> dict:
    """A saved pipeline judged at each guidance scale (the same noise for every scale): class accuracy and
    classifier FID per scale, for choosing the scale a config samples with. Scale 1 is the unguided model.
    With ``interval`` only the steps whose timestep lies in it are guided; with ``evaluations`` the steps are as
    many as fit in that many model evaluations per sample."""
    import course_utils as cu
    from course_utils.sampling import model_evaluations
    from course_utils.schedulers import make_sampler

    pipe = cu.load_pipeline(checkpoint)
    interval = tuple(interval) if interval else None
    counter = make_sampler(sampler, pipe.scheduler)
    if evaluations:
        steps = steps_within(counter, evaluations, interval)
    out = {}
    for scale in scales:
        ev = cu.evaluate_model(pipe.denoiser, pipe.scheduler, judge, sampler, steps, per_class,
                               guidance_scale=scale, null_condition=pipe.null_condition,  # scale 1: unguided
                               guidance_interval=interval)
        key = f"s={scale:g}" + (f", t in [{interval[0]}, {interval[1]}]" if interval else "")
        out[key] = dict(judged_figures(ev), steps=steps,
                        model_evals_per_sample=model_evaluations(counter, steps, scale, interval))
        print(key, out[key], flush=True)
    return out


def side_by_side(task: str, recipes: dict[str, dict], budget_s: float, seeds: list[int], per_class: int,
                 loss_fns: dict | None = None, own_budgets: dict | None = None,
                 also_scales: list[float] | None = None,
                 also_intervals: list[tuple[int, int]] | None = None) -> dict:
    """Recipes (a label -> a loaded config) trained for the same own-time budget from the same seeds, all interleaved
    one optimizer step at a time so that the machine's drift falls on each alike; each judged with its own config's
    sampler, steps and guidance. Medians over the seeds, and the ratio of the last recipe over the first.
    ``loss_fns`` (a label -> a loss function) trains a recipe with its own training loss; ``own_budgets`` (a
    label -> seconds) gives a recipe its own budget instead of ``budget_s``. ``also_scales``: each guided model is
    judged at these guidance scales too, with the same sampler, steps, interval and noise (``"s=2"`` in its figures);
    ``also_intervals``: and guided only inside each of these timestep intervals, at its own scale and each of
    ``also_scales``, with as many steps as fit in its own number of model evaluations (``"t in [500, 1000], s=2"``).
    Each model's sample grid is saved under ``runs/bench-grids-TASK/``, and the judge's own accuracy on each class's
    held-out real images is reported beside the figures.

    The learning rate of each run decays over its time limit (``lr_factor``), so every run ends its schedule."""
    import statistics

    import torch

    import course_utils as cu
    from course_utils.configs import merge
    from course_utils.jobs import guidance_of, with_guidance_for
    from course_utils.models import null_condition_for
    from course_utils.sampling import model_evaluations
    from course_utils.schedulers import make_sampler
    from course_utils.training import train_interleaved, training_loss, training_run

    grids = Path(f"runs/bench-grids-{task}")
    runs, setups = {}, {}
    for label, base in recipes.items():
        for seed in seeds:
            own_budget = (own_budgets or {}).get(label, budget_s)
            cfg = merge(base, {"train": {"time_limit_s": own_budget, "max_steps": 10**6, "checkpoint_every": 0,
                                         "seed": seed}})
            cfg["train"].pop("epochs", None)
            cfg["train"].pop("min_steps", None)
            data = cu.build_dataset(cfg, "train", verbose=False)
            config = cu.TrainConfig.from_config(cfg, len(data))
            torch.manual_seed(seed)
            model = cu.build_model(cfg, data)
            sched = cu.build_noise_scheduler(cfg)
            null = null_condition_for(model) if config.cond_drop_prob > 0 else None
            runs[(label, seed)] = training_run(model, sched, data, config, null_condition=null, progress=False,
                                               loss_fn=(loss_fns or {}).get(label, training_loss))
            setups[(label, seed)] = (sched, cfg, data)
    out = {}
    for (label, seed), res in train_interleaved(runs).items():
        sched, cfg, data = setups[(label, seed)]
        cfg = with_guidance_for(cfg, res.step)  # the scale for its steps where the preset sets one by steps
        s, guidance = cfg["sample"], guidance_of(cfg, res.model)

        def judge(grid_name=None, steps=s["steps"], **change):
            ev = cu.evaluate_model(res.model, sched, cfg.get("judge", data.name), s["sampler"], steps,
                                   per_class, seed=seed, **{**guidance, **change})
            figures = judged_figures(ev)
            if grid_name:
                figures["grid"] = str(save_sample_grid(ev, data.classes, grids / f"{grid_name}.png",
                                                       f"{label}, seed {seed}: {res.step:,} steps"))
            return figures

        evals = model_evaluations(make_sampler(s["sampler"], sched), s["steps"], guidance["guidance_scale"],
                                  guidance["guidance_interval"])  # a guided step costs two, inside the interval
        fig = {**judge(grid_name=f"{slug(label)}-seed{seed}"), "steps": res.step,
               "train_seconds": round(res.train_seconds, 1), "model_evals_per_sample": evals}
        print(label, seed, {k: v for k, v in fig.items() if k != "per_class_accuracy"}, flush=True)
        for scale in (also_scales or []) if guidance["null_condition"] is not None else []:
            fig[f"s={scale:g}"] = at_scale = judge(guidance_scale=scale)
            print(label, seed, f"s={scale:g}", {k: v for k, v in at_scale.items() if k != "per_class_accuracy"},
                  flush=True)
        for lo, hi in also_intervals or [] if guidance["null_condition"] is not None else []:
            steps = steps_within(make_sampler(s["sampler"], sched), evals, (lo, hi))
            for scale in dict.fromkeys([guidance["guidance_scale"], *(also_scales or [])]):
                key = f"t in [{lo}, {hi}], s={scale:g}"
                fig[key] = at = dict(judge(steps=steps, guidance_scale=scale, guidance_interval=(lo, hi)),
                                     steps=steps)
                print(label, seed, key, f"{steps} steps", {k: v for k, v in at.items() if k != "per_class_accuracy"},
                      flush=True)
        out.setdefault(label, {})[f"seed {seed}"] = fig
    judge_name = cfg.get("judge", data.name)
    out[f"the judge on held-out real images ({judge_name}), per class"] = judge_on_real(judge_name, data.classes)
    keys = ("class_accuracy", "accuracy_over_judge", "fid", "fid_real_vs_real", "steps", "train_seconds")
    for label in recipes:
        runs_of = list(out[label].values())
        out[label]["median"] = {k: round(statistics.median(r[k] for r in runs_of), 4) for k in keys}
        extra = {k for r in runs_of for k in r if k.startswith(("s=", "t in ["))}
        for key in sorted(extra):
            at = [r[key] for r in runs_of if key in r]
            out[label]["median"][key] = {k: round(statistics.median(r[k] for r in at), 4)
                                         for k in ("class_accuracy", "fid")}
    first, last = (out[k]["median"] for k in (list(recipes)[0], list(recipes)[-1]))
    out[f"{list(recipes)[-1]} / {list(recipes)[0]}"] = {
        "class_accuracy": round(last["class_accuracy"] / first["class_accuracy"], 2),
        "steps": round(last["steps"] / first["steps"], 2)}
    return out


def judge_on_real(judge_name: str, class_names) -> dict:
    """The judge's own accuracy on the held-out real images of each class: what a sample's per-class figure is
    read against (the twemoji judges recognise real food less often than real flags)."""
    import course_utils as cu
    from course_utils.evaluation import per_class_accuracy

    judge, _ = cu.load_or_train_judge(judge_name, verbose=False)
    test = cu.load_dataset(judge_name, "test", verbose=False)
    accuracy = per_class_accuracy(judge, test.images.float() / 255.0, test.class_indices)
    return {name: round(a, 3) for name, a in zip(class_names, accuracy)}


def slug(label: str) -> str:
    """A recipe's label as a file name: ``cpu preset with train.batch_size=16`` ->
    ``cpu-preset-with-train.batch_size-16``."""
    return "-".join("".join(c if c.isalnum() or c in "._" else " " for c in label).split())


def save_sample_grid(ev, class_names, path: Path, title: str, per_row: int = 8) -> Path:
    """The first ``per_row`` of a judged model's samples of each class as a labelled grid, so that what the figures
    call right can be looked at (is the food recognisable?). Saved beside the bench's JSON under runs/."""
    from course_utils.plots import save_grid

    keep = [i for c in range(len(class_names)) for i in (ev.labels == c).nonzero().flatten()[:per_row].tolist()]
    return save_grid(ev.images[keep], path, nrow=per_row, row_labels=list(class_names), title=title, scale=1.0)


def budgets(task: str, factors: list[float], seeds: list[int], per_class: int) -> dict:
    """The cpu preset trained for its own time limit times each factor, the same seeds, interleaved (side_by_side),
    each with its learning rate decaying over its own budget and judged with the preset's sampler: which figures
    more training time moves, and how fast, i.e. how far a target lies beyond the budget."""
    import course_utils as cu

    cpu = cu.load_config(task, "cpu")
    base = cpu["train"]["time_limit_s"]
    recipes, own = {}, {}
    for factor in factors:
        label = f"cpu preset, {base * factor:g} s of training"
        recipes[label], own[label] = cpu, base * factor
    return side_by_side(task, recipes, base, seeds, per_class, own_budgets=own)


# Lesson 1's gpu preset adds label dropout and guided sampling to the source course's recipe (README, "The `gpu`
# preset on a GPU"); the side-by-side benches measure against the recipe as the source course ran it.
SOURCE_CHANGES = {"mnist": {"model": {"null_class": False}, "train": {"cond_drop_prob": 0.0},
                            "sample": {"sampler": "ddpm", "steps": 25, "guidance_scale": None,
                                       "guidance_interval": None}}}


def preset_recipes(task: str, which: list[str], candidates: list[list[str]] | None = None) -> dict[str, dict]:
    """The recipes a side-by-side run compares: ``source`` (the gpu preset's model and training settings, after the
    source course), ``unguided`` (the cpu preset without label dropout and guidance, the earlier recipe) and ``cpu``
    (the cpu preset as shipped); then, for each of ``candidates`` (``[["train.batch_size=32", ...], ...]``), the cpu
    preset with those settings changed, so that changes to the preset are measured against it in one interleaved
    run."""
    import course_utils as cu
    from course_utils.configs import merge

    cpu = cu.load_config(task, "cpu")
    every = {"source": ("source recipe (gpu preset)", lambda: merge(cu.load_config(task, "gpu"),
                                                                   SOURCE_CHANGES.get(task, {}))),
             "unguided": ("cpu preset without label dropout and guidance",
                          lambda: merge(cpu, {"train": {"cond_drop_prob": 0.0},
                                             "sample": {"guidance_scale": None, "guidance_by_steps": None}})),
             "cpu": ("cpu preset", lambda: cpu)}
    recipes = {every[k][0]: every[k][1]() for k in which}
    for candidate in candidates or []:
        recipes[f"cpu preset with {', '.join(candidate)}"] = merge(cpu, settings_of(candidate))
    return recipes


def settings_of(assignments: list[str]) -> dict:
    """``["train.batch_size=32"]`` -> ``{"train": {"batch_size": 32}}`` (values read as YAML)."""
    import yaml

    out: dict = {}
    for item in assignments:
        path, sep, value = item.partition("=")
        if not sep or "." not in path:
            raise SystemExit(f"--candidate takes SECTION.KEY=VALUE (e.g. train.batch_size=32), got {item!r}")
        *sections, key = path.split(".")
        node = out
        for name in sections:
            node = node.setdefault(name, {})
        node[key] = yaml.safe_load(value)
    return out


def speedups(task: str, rounds: int) -> dict:
    """A task's cpu-preset model, one training step (forward, backward, AdamW) on one batch of its data at the
    preset's batch size, four ways interleaved: as it is (torch's default threads), on one thread, in
    ``channels_last`` memory format, and compiled by ``torch.compile``, whose first steps (the compilation) are
    timed apart, in an empty cache: how many steps the compiled model must run before it has paid for them."""
    import torch

    import course_utils as cu

    cfg = cu.load_config(task, "cpu")
    data = cu.build_dataset(cfg, "train", verbose=False)
    batch = cfg["train"]["batch_size"]
    x, cond = next(iter(torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, drop_last=True)))

    def fresh():
        torch.manual_seed(0)
        return cu.build_model(cfg, data)

    threads = torch.get_num_threads()
    # an empty compilation cache, as on a learner's first run (a cache kept from an earlier run compiles in seconds)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-inductor-")
    compiled = torch.compile(fresh())
    variants = {f"as it is ({threads} threads)": (fresh(), threads), "1 thread": (fresh(), 1),
                "channels_last": (fresh().to(memory_format=torch.channels_last), threads),
                "torch.compile": (compiled, threads)}
    opts = {k: torch.optim.AdamW(m.parameters(), 1e-3) for k, (m, _) in variants.items()}

    def step(k):
        m, n = variants[k]
        torch.set_num_threads(n)
        inputs = x.to(memory_format=torch.channels_last) if k == "channels_last" else x
        t = torch.randint(0, 1000, (batch,))
        start = time.perf_counter()
        loss = (m(inputs, t, cond).float() - x).pow(2).mean()
        loss.backward()
        opts[k].step()
        opts[k].zero_grad()
        return time.perf_counter() - start

    # the first calls compile forward and backward (a third call catches a recompilation)
    compile_s = step("torch.compile") + step("torch.compile") + step("torch.compile")
    times = {k: [] for k in variants}
    for r in range(rounds + 1):
        for k in variants:
            seconds = step(k)
            if r:  # round 0 warms up
                times[k].append(seconds)
    torch.set_num_threads(threads)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med[f"as it is ({threads} threads)"]
    out = {"task": task, "batch": batch, "rounds": rounds}
    for k, sec in med.items():
        out[k] = {"ms_per_step": round(sec * 1000, 1), "ratio_to_as_it_is": round(sec / base, 2)}
    saved = base - med["torch.compile"]
    out["torch.compile"].update(compile_seconds=round(compile_s, 1),
                                steps_to_pay_for_it=round(compile_s / saved) if saved > 0 else None)
    return out
