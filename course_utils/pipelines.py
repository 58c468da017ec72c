"""Diffusers pipelines around the course's denoisers: ``save_pretrained`` / ``from_pretrained`` round-trip
(safetensors), the scheduler can be swapped with ``from_config`` (DDPM -> DDIM / DPM-Solver++), and sampling
runs the course's one sampler (:func:`course_utils.sampling.sample_images`).

Introduced in lesson 1; lesson 2 adds the label encoder, lesson 3 the text pipeline, lesson 4 reuses the first
with the hand-written ScratchUNet.
"""
from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput

from .data import to_unit_range
from .data.captions import null_condition_fn
from .errors import CheckpointError
from .models import LabelConditionedUnet, check_class_labels, label_vectors, null_condition_for
from .sampling import DEFAULT_GUIDANCE_SCALE, sample_images
from .text import load_text_encoder

OUTPUT_TYPES = ("pil", "np", "pt")


class ConditionalDDPMPipeline(DiffusionPipeline):
    """Sample images for given class labels: ``pipe(class_labels=[3, 3, 7], num_inference_steps=20)``.

    Lesson 1 registers a ``unet`` that takes integer labels itself (:class:`ClassConditionedUnet`) and a
    ``scheduler``. Lesson 2 adds a ``label_encoder`` (:class:`LabelEncoder`): labels (integers, or one-hot /
    multi-hot vectors such as ``[[1, 0, 1, 0, 0]]``) become tokens that the ``UNet2DConditionModel`` attends to.
    ``label_dropout`` records how often training replaced the label by the all-zero vector: a model trained
    with it can be guided (``guidance_scale``), the all-zero vector being "no label"; ``guidance_interval=(lo, hi)``
    guides only the steps whose timestep lies in it (lesson 1 measures where guidance pays). ``patch_size`` (with a
    label encoder only) records that the UNet works on the image with each p x p block of pixels folded into
    channels (:class:`LabelConditionedUnet`); it is written to the saved config only when it is not 1.
    Introduced in lesson 1, guidance with it (explained in lesson 3); the label encoder in lesson 2.
    """

    _optional_components = ["label_encoder"]

    def __init__(self, unet, scheduler, label_encoder=None, label_dropout: float | None = 0.0, patch_size: int = 1):
        super().__init__()
        if patch_size != 1 and label_encoder is None:
            raise ValueError("patch_size belongs to a UNet read through a label encoder; a ClassConditionedUnet "
                             "folds its pixels itself (its own patch_size)")
        self.register_modules(unet=unet, scheduler=scheduler, label_encoder=label_encoder)
        self.register_to_config(label_dropout=label_dropout)
        if patch_size != 1:
            self.register_to_config(patch_size=patch_size)

    @property
    def num_classes(self) -> int:
        cfg = (self.label_encoder or self.unet).config
        return cfg.num_classes if "num_classes" in cfg else cfg.num_labels  # lesson 4's ScratchUNet: num_labels

    @property
    def takes_label_vectors(self) -> bool:
        """One-hot / multi-hot vectors (lesson 2's label encoder, lesson 4's ScratchUNet) or integers only."""
        return self.label_encoder is not None or "num_labels" in self.unet.config

    @property
    def null_condition(self):
        """The "no label" condition guidance samples with (see :func:`~course_utils.models.null_condition_for`)."""
        return torch.zeros_like if self.label_encoder is not None else null_condition_for(self.unet)

    @property
    def denoiser(self) -> torch.nn.Module:
        """The model as the training loop sees it: ``denoiser(x_t, t, labels)``."""
        if self.label_encoder is None:
            return self.unet
        return LabelConditionedUnet(self.unet, self.label_encoder, self.config.get("patch_size", 1))

    def check_labels(self, class_labels) -> torch.Tensor:
        """Labels as this pipeline's model takes them, with a clear error when they do not fit."""
        labels = torch.as_tensor(class_labels)
        if labels.numel() == 0:
            raise ValueError("class_labels is empty: pass one label per image to generate")
        if self.takes_label_vectors:
            return label_vectors(labels, self.num_classes)
        return check_class_labels(labels.reshape(-1) if labels.ndim == 0 else labels, self.num_classes)

    def check_guidance(self, guidance_scale: float | None) -> None:
        """A clear error when guidance is asked of a model that has no "no label" input or never trained it."""
        if guidance_scale is None or guidance_scale == 1:
            return
        if self.null_condition is None:
            raise ValueError("this pipeline's model takes integer class labels and has no 'no label' input, so it "
                             "cannot be guided; leave the guidance scale out (or train it with `null_class: true` "
                             "and label dropout)")
        if self.config.label_dropout == 0:
            raise ValueError("this model was trained without label dropout (cond_drop_prob 0), so its 'no label' "
                             "prediction was never learnt and guidance has nothing to push away from; leave the "
                             "guidance scale out, or train with `cond_drop_prob: 0.1` in the config's train section")

    @torch.no_grad()
    def __call__(self, class_labels, num_inference_steps: int = 50, generator: torch.Generator | None = None,
                 output_type: str = "pil", return_dict: bool = True, guidance_scale: float | None = None,
                 guidance_interval: tuple[float, float] | None = None):
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        labels = self.check_labels(class_labels)
        self.check_guidance(guidance_scale)
        self.set_progress_bar_config(leave=False)
        with self.progress_bar(total=num_inference_steps * ((len(labels) + 255) // 256)) as bar:
            images = sample_images(self.denoiser, self.scheduler, labels, num_inference_steps, self.scheduler,
                                   generator=_generator(generator),
                                   guidance_scale=guidance_scale, null_condition=self.null_condition,
                                   guidance_interval=guidance_interval, device=self.device,
                                   on_step=lambda i: bar.update())
        return postprocess(images, output_type, return_dict)


class TextToImagePipeline(DiffusionPipeline):
    """Sample images for prompts with classifier-free guidance:
    ``pipe(prompt=["red apple"], guidance_scale=3.0, num_inference_steps=20)``.

    Registers the :class:`TextConditionedUnet` and the scheduler. The frozen text encoder is not saved with the
    pipeline (it is a packaged or downloadable model); the UNet's config names it and it is loaded on first
    use, or pass one with :meth:`set_text_encoder`. ``label_dropout`` records how often training replaced the
    caption by the empty one (``None``: not recorded). Introduced in lesson 3.
    """

    def __init__(self, unet, scheduler, label_dropout: float | None = None):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)
        self.register_to_config(label_dropout=label_dropout)
        self._text_encoder = None

    def text_encoder(self):
        if self._text_encoder is None:
            cfg = self.unet.config
            self._text_encoder = load_text_encoder(cfg.text_backend, max_length=cfg.text_max_length, verbose=False)
        return self._text_encoder

    def set_text_encoder(self, encoder) -> None:
        if encoder.hidden_size != self.unet.config.text_dim:
            raise CheckpointError(f"this UNet reads {self.unet.config.text_dim}-d text states, but the encoder "
                                  f"({encoder.backend}) gives {encoder.hidden_size}-d ones")
        self._text_encoder = encoder

    def encode(self, prompts: list[str]) -> tuple[dict, callable]:
        """The prompts' hidden states and masks, and the null condition (the empty caption's)."""
        enc = self.text_encoder()
        hidden, mask = enc(prompts)
        return {"hidden": hidden, "mask": mask}, null_condition_fn(*enc([""]))

    @torch.no_grad()
    def __call__(self, prompt, guidance_scale: float = DEFAULT_GUIDANCE_SCALE, num_inference_steps: int = 50,
                 generator: torch.Generator | None = None, output_type: str = "pil", return_dict: bool = True,
                 guidance_interval: tuple[float, float] | None = None):
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise ValueError("prompt is empty: pass one prompt (or a list) per image to generate")
        if guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0 (0: unconditional, 1: conditional), got {guidance_scale}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        cond, null_condition = self.encode(prompts)
        self.set_progress_bar_config(leave=False)
        with self.progress_bar(total=num_inference_steps * ((len(prompts) + 255) // 256)) as bar:
            images = sample_images(self.unet, self.scheduler, cond, num_inference_steps, self.scheduler,
                                   generator=_generator(generator),
                                   guidance_scale=guidance_scale, null_condition=null_condition,
                                   guidance_interval=guidance_interval, device=self.device,
                                   on_step=lambda i: bar.update())
        return postprocess(images, output_type, return_dict)


def postprocess(images: torch.Tensor, output_type: str, return_dict: bool):
    """A pipeline's images in [-1, 1] as ``output_type``: "pt" (tensors in [0, 1]), "np" or "pil".

    Introduced in lesson 1.
    """
    out = to_unit_range(images).cpu()
    if output_type != "pt":
        out = out.permute(0, 2, 3, 1).float().numpy()
        if output_type == "pil":
            out = DiffusionPipeline.numpy_to_pil(out)
    return ImagePipelineOutput(images=out) if return_dict else (out,)


def _generator(generator: torch.Generator | None) -> torch.Generator:
    """The caller's generator, or (as diffusers does without one) a seed drawn from torch's global RNG."""
    return generator if generator is not None else torch.Generator().manual_seed(int(torch.randint(2**62, ())))


def load_pipeline(path: str | os.PathLike, expected_model: str | None = None,
                  device: str | torch.device = "cpu") -> DiffusionPipeline:
    """Load a saved pipeline, with a clear error when the folder is not one, holds another model than
    ``expected_model`` (the UNet's class name), or cannot be read (a truncated or corrupted file).

    ``path`` may be the pipeline folder or a training run's folder (its ``pipeline/`` is used).
    Introduced in lesson 1.
    """
    path = Path(path)
    if (path / "pipeline" / "model_index.json").exists():
        path = path / "pipeline"
    index = path / "model_index.json"
    if not index.exists():
        raise CheckpointError(f"{path} is not a saved pipeline (no model_index.json). Pass the folder written by "
                              "`python -m course_utils train ...` (its pipeline/ subfolder) or by save_pretrained.")
    try:
        meta = json.loads(index.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{index} is not valid JSON: the pipeline folder is damaged; train again or copy "
                              "it again") from None
    classes = {"ConditionalDDPMPipeline": ConditionalDDPMPipeline, "TextToImagePipeline": TextToImagePipeline}
    cls = classes.get(meta.get("_class_name"))
    if cls is None:
        raise CheckpointError(f"{path} holds a {meta.get('_class_name')}, not one of the course's pipelines "
                              f"({', '.join(classes)})")
    found = (meta.get("unet") or [None, None])[1]
    if expected_model is not None and found != expected_model:
        raise CheckpointError(f"{path} holds a {found} model, but this step needs a {expected_model}; "
                              "was it trained for another lesson?")
    # diffusers loads a component only from a library already imported: import the course's own (lesson 4's
    # ScratchUNet lives in course_utils.scratch, which `import course_utils` does not load until it is used)
    for library, _ in (v for v in meta.values() if isinstance(v, list) and len(v) == 2):
        if isinstance(library, str) and library.startswith("course_utils."):
            importlib.import_module(library)
    try:
        return cls.from_pretrained(path).to(device)
    except Exception as e:  # a truncated safetensors file, a missing config, a foreign weight file, ...
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} could not be loaded ({type(e).__name__}: {reason}); the files are incomplete "
                              "or corrupted: train again (the run resumes from its last checkpoint) or copy the "
                              "folder again") from None
