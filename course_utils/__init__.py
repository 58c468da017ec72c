"""course_utils: the machinery behind the conditional diffusion course. The notebooks show the ideas and call
this package through one flat namespace (``import course_utils as cu``; ``cu.load_dataset``, ``cu.train``, ...).

Modules, each named for what it holds:

* ``data/``: the data sets (real path + offline default), one module each, and ``load_dataset``;
* ``models``: lessons 1-3's denoisers; ``scratch``: lesson 4's hand-written UNet and DDPM;
* ``schedulers``: the DDPM scheduler and fast samplers; ``sampling``: the one sampler, with guidance;
* ``training``: the one Accelerate training loop; ``devices``: device and precision by hardware;
* ``pipelines``: diffusers pipelines that save and load; ``evaluation``: the judge, class accuracy, FID,
  prompt fidelity; ``experiments``: comparisons the lessons run;
* ``configs`` (+ ``configs/*.yaml``): every task's presets; ``jobs``: train / sample / evaluate end to end;
* ``plots``, ``text`` (frozen text encoders), ``files`` (atomic writes, pretrained models), ``errors``, ``cli``.

Names are loaded on first use, so ``python -m course_utils --help`` does not import torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "configs": ["PRESET_NAMES", "SAMPLERS", "TASKS", "config_path", "config_text", "default_preset", "load_config"],
    "data": ["CaptionedImages", "ImageDataset", "load_coco_captions", "load_dataset", "load_emoji_captions",
             "to_model_range", "to_unit_range", "typical_combinations"],
    "devices": ["default_device", "resolve_mixed_precision"],
    "errors": ["CheckpointError", "ConfigError", "CourseError", "DatasetUnavailableError", "SamplesFileError",
               "TextEncoderUnavailableError"],
    "evaluation": ["Evaluation", "JudgeClassifier", "QualityReport", "class_accuracy", "classifier_fid",
                   "evaluate_model", "evaluate_models", "evaluate_samples", "frechet_distance", "guidance_accuracy",
                   "guidance_sweep", "load_or_train_judge", "per_class_accuracy"],
    "exercises": ["check_exercise"],
    "experiments": ["compare_conditioning", "compare_samplers", "mixed_label_shares"],
    "files": ["atomic_path", "pretrained_dir"],
    "jobs": ["build_dataset", "build_model", "build_noise_scheduler", "evaluate_file", "guidance_scale_for",
             "null_condition_of", "pipeline_of", "sample_to_file", "train"],
    "models": ["ClassConditionedUnet", "LabelConditionedUnet", "LabelEncoder", "TextConditionedUnet",
               "count_parameters", "label_vectors", "null_condition_for", "recording_cross_attention",
               "token_attention_maps"],
    "pipelines": ["ConditionalDDPMPipeline", "TextToImagePipeline", "load_pipeline"],
    "plots": ["plot_losses", "save_gif", "show_denoising", "show_images"],
    "sampling": ["DEFAULT_GUIDANCE_SCALE", "denoise", "guided_prediction", "labels_per_class", "sample_images"],
    "schedulers": ["make_noise_scheduler", "make_sampler"],
    "scratch": ["CosineDDPM", "ScratchUNet"],
    "text": ["TextEncoder", "load_text_encoder"],
    "training": ["TrainConfig", "TrainResult", "diffusion_loss", "time_mixed_precision", "train_diffusion",
                 "training_target"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_SUBMODULES = {"cli", "colab", "configs", "data", "devices", "errors", "evaluation", "exercises", "experiments",
               "files", "jobs", "models", "pipelines", "plots", "sampling", "schedulers", "scratch", "text", "training"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'course_utils' has no attribute {name!r}")
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)


if TYPE_CHECKING:  # for editors and type checkers: the same names, imported eagerly
    from .configs import PRESET_NAMES, SAMPLERS, TASKS, config_path, config_text, default_preset, load_config  # noqa: F401
    from .data import (  # noqa: F401
        CaptionedImages,
        ImageDataset,
        load_coco_captions,
        load_dataset,
        load_emoji_captions,
        to_model_range,
        to_unit_range,
        typical_combinations,
    )
    from .devices import default_device, resolve_mixed_precision  # noqa: F401
    from .errors import (  # noqa: F401
        CheckpointError,
        ConfigError,
        CourseError,
        DatasetUnavailableError,
        SamplesFileError,
        TextEncoderUnavailableError,
    )
    from .evaluation import (  # noqa: F401
        Evaluation,
        JudgeClassifier,
        QualityReport,
        class_accuracy,
        classifier_fid,
        evaluate_model,
        evaluate_models,
        evaluate_samples,
        frechet_distance,
        guidance_accuracy,
        guidance_sweep,
        load_or_train_judge,
        per_class_accuracy,
    )
    from .exercises import check_exercise  # noqa: F401
    from .experiments import compare_conditioning, compare_samplers, mixed_label_shares  # noqa: F401
    from .files import atomic_path, pretrained_dir  # noqa: F401
    from .jobs import (  # noqa: F401
        build_dataset,
        build_model,
        build_noise_scheduler,
        evaluate_file,
        guidance_scale_for,
        null_condition_of,
        pipeline_of,
        sample_to_file,
        train,
    )
    from .models import (  # noqa: F401
        ClassConditionedUnet,
        LabelConditionedUnet,
        LabelEncoder,
        TextConditionedUnet,
        count_parameters,
        label_vectors,
    )
    from .pipelines import ConditionalDDPMPipeline, TextToImagePipeline, load_pipeline  # noqa: F401
    from .plots import plot_losses, save_gif, show_denoising, show_images  # noqa: F401
    from .sampling import DEFAULT_GUIDANCE_SCALE, denoise, guided_prediction, labels_per_class, sample_images  # noqa: F401
    from .schedulers import make_noise_scheduler, make_sampler  # noqa: F401
    from .scratch import CosineDDPM, ScratchUNet  # noqa: F401
    from .text import TextEncoder, load_text_encoder  # noqa: F401
    from .training import (  # noqa: F401
        TrainConfig,
        TrainResult,
        diffusion_loss,
        time_mixed_precision,
        train_diffusion,
        training_target,
    )
