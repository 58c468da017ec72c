"""A diffusers pipeline around a class-conditioned denoiser and its scheduler.

``save_pretrained`` / ``from_pretrained`` round-trip (safetensors), and the scheduler can be swapped with
``from_config`` (DDPM -> DDIM / DPM-Solver++). Introduced in lesson 1; lesson 2 reuses it with a
cross-attention model, lesson 4 with the hand-written ScratchUNet.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput

from .sampling import denoise


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete, or of another model than the one asked for.

    Introduced in lesson 1.
    """


class ConditionalDDPMPipeline(DiffusionPipeline):
    """Sample images for given class labels: ``pipe(class_labels=[3, 3, 7], num_inference_steps=20)``.

    Lesson 1 registers a ``unet`` that takes integer labels itself (:class:`ClassConditionedUnet`) and a
    ``scheduler``. Lesson 2 adds a ``label_encoder`` (:class:`LabelEncoder`): labels (integers, or one-hot /
    multi-hot vectors such as ``[[1, 0, 1, 0, 0]]``) become tokens that the ``UNet2DConditionModel`` attends to.
    Introduced in lesson 1; the label encoder in lesson 2.
    """

    _optional_components = ["label_encoder"]

    def __init__(self, unet, scheduler, label_encoder=None):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, label_encoder=label_encoder)

    @property
    def num_classes(self) -> int:
        cfg = (self.label_encoder or self.unet).config
        return cfg.num_classes if "num_classes" in cfg else cfg.num_labels  # lesson 4's ScratchUNet: num_labels

    @property
    def takes_label_vectors(self) -> bool:
        """One-hot / multi-hot vectors (lesson 2's label encoder, lesson 4's ScratchUNet) or integers only."""
        return self.label_encoder is not None or "num_labels" in self.unet.config

    @property
    def denoiser(self) -> torch.nn.Module:
        """The model as the training loop sees it: ``denoiser(x_t, t, labels)``."""
        if self.label_encoder is None:
            return self.unet
        from .models import LabelConditionedUnet
        return LabelConditionedUnet(self.unet, self.label_encoder)

    def check_labels(self, class_labels) -> torch.Tensor:
        """Labels as this pipeline's model takes them, with a clear error when they do not fit."""
        from .models import check_class_labels, label_vectors
        labels = torch.as_tensor(class_labels)
        if labels.numel() == 0:
            raise ValueError("class_labels is empty: pass one label per image to generate")
        if self.takes_label_vectors:
            return label_vectors(labels, self.num_classes)
        return check_class_labels(labels.reshape(-1) if labels.ndim == 0 else labels, self.num_classes)

    @torch.no_grad()
    def __call__(self, class_labels, num_inference_steps: int = 50, generator: torch.Generator | None = None,
                 output_type: str = "pil", return_dict: bool = True):
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
        labels = self.check_labels(class_labels).to(self.device)
        cfg = self.unet.config
        shape = (len(labels), cfg.in_channels, cfg.sample_size, cfg.sample_size)
        x = torch.randn(shape, generator=generator, device=generator.device if generator else "cpu")
        x = x.to(self.device, self.unet.dtype)
        denoiser = self.denoiser
        self.set_progress_bar_config(leave=False)
        with self.progress_bar(total=num_inference_steps) as bar:
            images, _ = denoise(lambda xt, t: denoiser(xt, t, labels), self.scheduler, x, num_inference_steps,
                                generator=generator, on_step=lambda i: bar.update())
        images = images.add(1).div(2).clamp(0, 1)
        if output_type == "pt":
            out = images.cpu()
        else:
            out = images.cpu().permute(0, 2, 3, 1).float().numpy()
            if output_type == "pil":
                out = self.numpy_to_pil(out)
        if not return_dict:
            return (out,)
        return ImagePipelineOutput(images=out)


class TextToImagePipeline(DiffusionPipeline):
    """Sample images for prompts with classifier-free guidance:
    ``pipe(prompt=["red apple"], guidance_scale=3.0, num_inference_steps=20)``.

    Registers the :class:`TextConditionedUnet` and the scheduler. The frozen text encoder is not saved with the
    pipeline (it is a packaged or downloadable model); the UNet's config names it and it is loaded on first
    use, or pass one with ``text_encoder=``. Introduced in lesson 3.
    """

    def __init__(self, unet, scheduler):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)
        self._text_encoder = None

    def text_encoder(self):
        if self._text_encoder is None:
            from .text import load_text_encoder
            cfg = self.unet.config
            self._text_encoder = load_text_encoder(cfg.text_backend, max_length=cfg.text_max_length, verbose=False)
        return self._text_encoder

    def set_text_encoder(self, encoder) -> None:
        if encoder.hidden_size != self.unet.config.text_dim:
            raise CheckpointError(f"this UNet reads {self.unet.config.text_dim}-d text states, but the encoder "
                                  f"({encoder.backend}) gives {encoder.hidden_size}-d ones")
        self._text_encoder = encoder

    def encode(self, prompts: list[str]) -> tuple[dict, dict]:
        """The prompts' and the empty caption's hidden states and masks, on the UNet's device."""
        enc = self.text_encoder()
        hidden, mask = enc(prompts)
        null_h, null_m = enc([""])
        cond = {"hidden": hidden.to(self.device), "mask": mask.to(self.device)}
        uncond = {"hidden": null_h.expand_as(hidden).to(self.device), "mask": null_m.expand_as(mask).to(self.device)}
        return cond, uncond

    @torch.no_grad()
    def __call__(self, prompt, guidance_scale: float = 3.0, num_inference_steps: int = 50,
                 generator: torch.Generator | None = None, output_type: str = "pil", return_dict: bool = True):
        from .text import guided_prediction
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise ValueError("prompt is empty: pass one prompt (or a list) per image to generate")
        if guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0 (0: unconditional, 1: conditional), got {guidance_scale}")
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
        cond, uncond = self.encode(prompts)
        cfg = self.unet.config
        x = torch.randn((len(prompts), cfg.in_channels, cfg.sample_size, cfg.sample_size), generator=generator,
                        device=generator.device if generator else "cpu").to(self.device, self.unet.dtype)
        self.set_progress_bar_config(leave=False)
        with self.progress_bar(total=num_inference_steps) as bar:
            images, _ = denoise(lambda xt, t: guided_prediction(self.unet, xt, t, cond, uncond, guidance_scale),
                                self.scheduler, x, num_inference_steps, generator=generator,
                                on_step=lambda i: bar.update())
        images = images.add(1).div(2).clamp(0, 1)
        out = images.cpu()
        if output_type != "pt":
            out = out.permute(0, 2, 3, 1).float().numpy()
            if output_type == "pil":
                out = self.numpy_to_pil(out)
        return ImagePipelineOutput(images=out) if return_dict else (out,)


def load_pipeline(path: str | Path, expected_model: str | None = "ClassConditionedUnet",
                  device: str | torch.device = "cpu") -> ConditionalDDPMPipeline:
    """Load a saved pipeline, with a clear error when the folder is not one or holds another model.

    ``path`` may be the pipeline folder or a training run's folder (its ``pipeline/`` is used).
    Introduced in lesson 1.
    A lesson-2 pipeline holds a ``UNet2DConditionModel`` (pass ``expected_model="UNet2DConditionModel"``).
    """
    path = Path(path)
    if (path / "pipeline" / "model_index.json").exists():
        path = path / "pipeline"
    index = path / "model_index.json"
    if not index.exists():
        raise CheckpointError(f"{path} is not a saved pipeline (no model_index.json). Pass the folder written by "
                              "`python -m course_utils train ...` (its pipeline/ subfolder) or by save_pretrained.")
    meta = json.loads(index.read_text())
    found = meta.get("unet", [None, None])[1]
    if expected_model is not None and found != expected_model:
        raise CheckpointError(f"{path} holds a {found} model, but this step needs a {expected_model}; "
                              "was it trained for another lesson?")
    cls = TextToImagePipeline if meta.get("_class_name") == "TextToImagePipeline" else ConditionalDDPMPipeline
    return cls.from_pretrained(path).to(device)


def save_samples_npz(path: str | Path, images01: torch.Tensor, labels: torch.Tensor, dataset: str,
                     **meta) -> Path:
    """Write generated samples as ``images`` float32 (N, C, H, W) in [0, 1] and ``labels`` int64 (N,),
    plus the data set's name and sampling settings.

    Introduced in lesson 1.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {k: np.asarray(v) for k, v in meta.items()}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, images=images01.float().numpy().astype(np.float32),
                        labels=torch.as_tensor(labels).long().numpy().astype(np.int64),
                        dataset=np.asarray(dataset), **extra)
    tmp.replace(path)
    return path


def load_samples_npz(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Read a samples file written by :func:`save_samples_npz`, checking its arrays.

    Introduced in lesson 1.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; write one with `python -m course_utils sample ...`")
    with np.load(path) as f:
        if "images" not in f or "labels" not in f:
            raise ValueError(f"{path} needs arrays 'images' and 'labels' (found {sorted(f.files)})")
        images, labels = torch.from_numpy(f["images"]), torch.from_numpy(f["labels"])
        meta = {k: f[k].item() if f[k].ndim == 0 else f[k] for k in f.files if k not in ("images", "labels")}
    if images.ndim != 4 or images.dtype != torch.float32:
        raise ValueError(f"'images' must be float32 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"'labels' must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError("'images' must lie in [0, 1]")
    return images, labels.long(), meta
