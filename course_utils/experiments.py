"""The comparisons the lessons and benches run: conditioning by concatenation against cross-attention at the
same budget (lesson 2), samplers on one model (lesson 1), mixing two labels (lesson 2's exercise).

Introduced in lesson 1.
"""
from __future__ import annotations

import os

import torch

from .configs import load_config
from .data import load_dataset, to_unit_range
from .evaluation import evaluate_model, judge_predict
from .jobs import build_model, build_noise_scheduler
from .models import count_parameters
from .sampling import sample_images
from .training import TrainConfig, train_diffusion


def compare_samplers(model, noise_scheduler, dataset: str, samplers, per_class: int, seed: int = 0,
                     progress: bool = True, **kwargs) -> dict:
    """Judge the same model with each ``(sampler, steps)`` of ``samplers`` (say DDPM 1000, DDIM 50, DPM-Solver++
    20), from the same labels and noise. Returns an :class:`~course_utils.evaluation.Evaluation` per
    ``"sampler steps"``.

    Introduced in lesson 1.
    """
    return {f"{name} {steps}": evaluate_model(model, noise_scheduler, dataset, name, steps, per_class, seed,
                                              progress=progress, **kwargs)
            for name, steps in samplers}


def compare_conditioning(task: str = "sprites", preset: str | None = None, budget_s: float | None = None,
                         source: str = "auto", data_path: str | os.PathLike | None = None, seed: int = 0,
                         progress: bool = False) -> dict[str, dict]:
    """Lesson 1's channel concatenation (the config's ``concat_model``) against lesson 2's cross-attention on the
    same data with the same training-time budget (``compare_budget_s`` unless given), the learning rate held
    after warm-up. Returns, per variant: parameters, steps, images per second, class accuracy, classifier FID
    (with real-vs-real) and milliseconds per sample.

    Introduced in lesson 2.
    """
    cfg = load_config(task, preset)
    budget_s = budget_s or cfg["compare_budget_s"]
    data = load_dataset(cfg["dataset"], "train", source=source, path=data_path, verbose=False)
    variants = {
        "concatenation (lesson 1)": ({**cfg, "model_class": "ClassConditionedUnet", "model": cfg["concat_model"]},
                                     data.with_class_indices()),
        "cross-attention (lesson 2)": (cfg, data.one_hot()),
    }
    results = {}
    for name, (variant_cfg, train_set) in variants.items():
        torch.manual_seed(seed)
        model = build_model(variant_cfg, train_set)
        noise_scheduler = build_noise_scheduler(cfg)
        train_cfg = TrainConfig.from_config(cfg, len(train_set))
        train_cfg.max_steps, train_cfg.time_limit_s = 10**6, budget_s
        train_cfg.lr_schedule, train_cfg.checkpoint_every = "constant_with_warmup", 0
        train_cfg.cond_drop_prob = 0.0  # the conditioning alone: no label dropout, and no guidance when sampling
        result = train_diffusion(model, noise_scheduler, train_set, train_cfg, progress=progress)
        s = cfg["sample"]
        ev = evaluate_model(result.model, noise_scheduler, data.name, s["sampler"], s["steps"], cfg["eval_per_class"],
                            seed=seed, source=source, data_path=data_path)
        results[name] = {"parameters": count_parameters(model), "steps": result.step,
                         "train_seconds": round(result.train_seconds, 1),
                         "images_per_second": round(result.step * train_cfg.batch_size / result.train_seconds, 1),
                         "class_accuracy": ev.report.class_accuracy, "fid": ev.report.fid,
                         "fid_real_vs_real": ev.report.fid_real_vs_real,
                         "judge_test_accuracy": ev.report.judge_test_accuracy,
                         "ms_per_sample": round(1000 * ev.seconds_per_sample, 2)}
    return results


def mixed_label_shares(model, noise_scheduler, judge, class_a: int, class_b: int,
                       weights=(0.0, 0.25, 0.5, 0.75, 1.0), per_weight: int = 20, steps: int = 20,
                       sampler: str = "dpm", seed: int = 0):
    """Condition on a mix of two classes, ``(1 - w) * onehot(a) + w * onehot(b)``, for each ``w``, and report
    the share of samples the judge assigns to ``a``, to ``b`` and to neither. Returns ``(shares, images01)``
    where ``shares`` is a list of ``{"w", "a", "b", "other"}`` and ``images01`` has ``per_weight`` images per w.

    Introduced in lesson 2 (its exercise).
    """
    k = judge.config.num_classes
    eye = torch.eye(k)
    labels = torch.cat([((1 - w) * eye[class_a] + w * eye[class_b]).expand(per_weight, k) for w in weights])
    images = to_unit_range(sample_images(model, noise_scheduler, labels, steps, sampler, seed=seed))
    predicted = judge_predict(judge, images)[0].argmax(1).view(len(weights), per_weight)
    shares = [{"w": float(w), "a": (p == class_a).float().mean().item(), "b": (p == class_b).float().mean().item(),
               "other": ((p != class_a) & (p != class_b)).float().mean().item()} for w, p in zip(weights, predicted)]
    return shares, images
