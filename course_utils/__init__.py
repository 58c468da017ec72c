"""course_utils: the machinery behind the conditional diffusion course (data, models, schedulers, training,
sampling, pipelines, metrics, plots, presets). The notebooks show the ideas and call this package.
"""
from .data import DatasetUnavailableError, ImageDataset, load_dataset, to_model_range, to_unit_range
from .metrics import (JudgeClassifier, class_accuracy, classifier_fid, evaluate_samples, frechet_distance,
                      load_or_train_judge)
from .models import ClassConditionedUnet, count_parameters
from .pipelines import CheckpointError, ConditionalDDPMPipeline, load_pipeline
from .presets import default_preset, get_preset, load_config
from .sampling import denoise, labels_per_class, sample_images
from .schedulers import make_noise_scheduler, make_sampler
from .scratch import CosineDDPM, ScratchUNet
from .training import TrainConfig, TrainResult, train_diffusion
from . import plots, scratch, scratch_tasks, tasks, text  # noqa: E402  (submodules the lessons call as cu.tasks.*)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "ClassConditionedUnet", "ConditionalDDPMPipeline", "CosineDDPM", "ScratchUNet", "DatasetUnavailableError",
    "ImageDataset", "JudgeClassifier", "TrainConfig", "TrainResult", "class_accuracy", "classifier_fid",
    "count_parameters", "default_preset", "denoise", "evaluate_samples", "frechet_distance", "get_preset",
    "labels_per_class", "load_config", "load_dataset", "load_or_train_judge", "load_pipeline", "make_noise_scheduler",
    "make_sampler", "sample_images", "to_model_range", "to_unit_range", "train_diffusion",
]
