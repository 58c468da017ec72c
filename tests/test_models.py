import pytest
import torch

from course_utils.models import ClassConditionedUnet, check_class_labels


def test_shapes_and_embedding_channels(tiny_model):
    x = torch.randn(3, 1, 8, 8)
    out = tiny_model(x, torch.tensor([1, 500, 999]), torch.tensor([0, 4, 9]))
    assert out.shape == x.shape
    # the UNet sees the image channel plus class_emb_size embedding channels
    assert tiny_model.unet.config.in_channels == 1 + tiny_model.config.class_emb_size


def test_class_label_changes_the_output(tiny_model):
    torch.nn.init.normal_(tiny_model.class_emb.weight, std=1.0)
    x, t = torch.randn(1, 1, 8, 8), torch.tensor([10])
    a = tiny_model(x, t, torch.tensor([3]))
    b = tiny_model(x, t, torch.tensor([7]))
    assert not torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(a, tiny_model(x, t, torch.tensor([3])))


def test_gradient_reaches_the_embedding(tiny_model):
    out = tiny_model(torch.randn(2, 1, 8, 8), torch.tensor([3, 4]), torch.tensor([1, 2]))
    out.pow(2).mean().backward()
    grad = tiny_model.class_emb.weight.grad
    assert grad[1].abs().sum() > 0 and grad[2].abs().sum() > 0 and grad[5].abs().sum() == 0


@pytest.mark.parametrize("labels, error, match", [
    (torch.tensor([0, 10]), ValueError, "class label 10 is out of range.*0..9"),
    (torch.tensor([-1, 0]), ValueError, "out of range"),
    (torch.tensor([0.0, 1.0]), TypeError, "integers"),
    (torch.tensor([1, 2, 3]), ValueError, "one class label per image"),
])
def test_bad_labels_are_refused_clearly(tiny_model, labels, error, match):
    with pytest.raises(error, match=match):
        tiny_model(torch.randn(2, 1, 8, 8), torch.tensor([1, 1]), labels)


def test_wrong_image_size_is_refused_clearly(tiny_model):
    with pytest.raises(ValueError, match=r"expects images of shape \(B, 1, 8, 8\).*got \(2, 1, 12, 12\)"):
        tiny_model(torch.randn(2, 1, 12, 12), torch.tensor([1, 1]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="expects images"):
        tiny_model(torch.randn(2, 3, 8, 8), torch.tensor([1, 1]), torch.tensor([1, 2]))


def test_check_class_labels_accepts_lists():
    assert check_class_labels([1, 2], 10, 2).dtype == torch.long


def test_default_config_is_the_seed_design():
    m = ClassConditionedUnet()
    assert m.class_emb.num_embeddings == 10 and m.class_emb.embedding_dim == 4
    assert tuple(m.unet.config.block_out_channels) == (32, 64, 64) and m.unet.config.sample_size == 28
