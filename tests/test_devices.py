"""Device and precision by hardware: fp16 with a scaler below compute capability 8.0 (a T4), bf16 where the GPU
has bf16 units, float32 on the CPU and MPS; MPS only where its operations work."""
import pytest
import torch

from course_utils import devices
from course_utils.devices import default_device, resolve_mixed_precision


def fake_gpu(monkeypatch, capability):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "fake GPU")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    # what torch answers: True on a T4 through emulation, unless emulation is excluded
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: including_emulation or capability >= (8, 0))


def test_a_t4_trains_in_fp16_with_a_scaler(monkeypatch):
    fake_gpu(monkeypatch, (7, 5))
    assert torch.cuda.is_bf16_supported()  # the trap: emulated bf16 says yes
    assert resolve_mixed_precision("auto", "cuda") == "fp16"


def test_an_ampere_or_newer_gpu_trains_in_bf16(monkeypatch):
    fake_gpu(monkeypatch, (9, 0))
    assert resolve_mixed_precision("auto", "cuda") == "bf16"
    assert default_device(verbose=False).type == "cuda"


def test_cpu_and_mps_train_in_float32_and_a_request_is_kept():
    assert resolve_mixed_precision("auto", "cpu") == "no"
    assert resolve_mixed_precision("auto", "mps") == "no"
    assert resolve_mixed_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="fp8"):
        resolve_mixed_precision("fp8", "cpu")


def test_mps_is_chosen_only_where_its_operations_work(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "mps_works", lambda: True)
    assert default_device().type == "mps"
    assert "mps" in capsys.readouterr().err
    monkeypatch.setattr(devices, "mps_works", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert default_device().type == "cpu"
    assert "lacks an operation" in capsys.readouterr().err
