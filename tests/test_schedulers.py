import math

import pytest
import torch

from course_utils.schedulers import make_noise_scheduler, make_sampler


def cosine_betas(T, s=0.008, max_beta=0.999):
    """Nichol & Dhariwal's cosine schedule, written from the paper."""
    def alpha_bar(t):
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    return torch.tensor([min(1 - alpha_bar(i + 1) / alpha_bar(i), max_beta) for i in range(T)])


def test_training_schedule_is_the_cosine_schedule():
    sched = make_noise_scheduler()
    assert sched.config.num_train_timesteps == 1000 and sched.config.beta_schedule == "squaredcos_cap_v2"
    torch.testing.assert_close(sched.betas.double(), cosine_betas(1000).double(), rtol=1e-5, atol=1e-7)
    # signal fades to (almost) nothing at the last step
    assert sched.alphas_cumprod[-1] < 1e-4 and sched.alphas_cumprod[0] > 0.999


def test_add_noise_follows_the_closed_form():
    sched = make_noise_scheduler()
    x0, eps, t = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 500, 999])
    ab = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(sched.add_noise(x0, eps, t), ab.sqrt() * x0 + (1 - ab).sqrt() * eps)


@pytest.mark.parametrize("name, cls", [("ddpm", "DDPMScheduler"), ("ddim", "DDIMScheduler"),
                                       ("dpm", "DPMSolverMultistepScheduler")])
def test_samplers_keep_the_training_schedule(name, cls):
    train = make_noise_scheduler(prediction_type="v_prediction")
    s = make_sampler(name, train)
    assert type(s).__name__ == cls
    assert s.config.beta_schedule == "squaredcos_cap_v2" and s.config.prediction_type == "v_prediction"
    torch.testing.assert_close(s.alphas_cumprod, train.alphas_cumprod)
    s.set_timesteps(20)
    assert len(s.timesteps) == 20 and int(s.timesteps.max()) <= 999


@pytest.mark.parametrize("name", ["ddpm", "dpm-sde"])
def test_samplers_from_the_hand_written_scheduler(name):
    """Lesson 4 trains with CosineDDPM; a benchmark judges its models by a sampler's name, as for lessons 1-3."""
    from course_utils.scratch import CosineDDPM

    train = CosineDDPM(prediction_type="v_prediction")
    s = make_sampler(name, train)
    assert s.config.prediction_type == "v_prediction"
    torch.testing.assert_close(s.alphas_cumprod, train.alphas_cumprod)


def test_unknown_sampler():
    with pytest.raises(ValueError, match="unknown sampler"):
        make_sampler("euler", make_noise_scheduler())
