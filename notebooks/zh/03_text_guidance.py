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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/conditional-diffusion-course/conditional-diffusion-course/blob/main/notebooks/zh/03_text_guidance.ipynb)
#
# # 第 3 课：用无分类器引导实现文本条件控制
#
# 在第 2 课中，一个标签变成了供交叉注意力读取的一个词元。一句话则是一串词元，冻结的（frozen）**文本编码器**（text encoder）把它变成每个词元一个向量。UNet 关注这些向量的方式，与它关注标签词元的方式完全相同。
# 让文本模型听从提示词（prompt）的，是另一个想法：**无分类器引导**（classifier-free guidance）。训练时，提示词有时会被丢弃。采样时，模型做两次预测，一次带提示词，一次不带，然后把这一步沿着提示词所指的方向再往前推一些。
#
# 你将会：
# 1. 把提示词编码为各词元的隐藏状态（hidden state）和一个注意力掩码（attention mask），并弄清为什么需要掩码；
# 2. 为图像配上图像描述（caption）：离线时用表情符号名称，完整运行时用 COCO 的图像描述，并缓存它们的嵌入；
# 3. 用两行代码写出无分类器引导；
# 4. 用一个预训练模型在几种引导强度（guidance scale）下采样；
# 5. 用标签丢弃（label dropout）进行训练，然后**度量**引导强度的效果；
# 6. 观察一个提示词的去噪过程，试试你自己的提示词，并在练习中度量标签丢弃带来了什么。

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

import course_utils as cu
from course_utils import plot_losses, show_denoising, show_images

print("torch", torch.__version__, "| CUDA available:", torch.cuda.is_available())

# %% [markdown]
# **预设**（preset）决定了所有东西的规模：`smoke`（几秒钟，用于测试）、`cpu`（在笔记本电脑上训练约 10 分钟）或 `gpu`。
# 如果你有 COCO 2017 数据集，`COCO_ROOT` 就是它所在的文件夹（包含 `annotations/captions_train2017.json` 和 `train2017/`）；设为 `None` 时在表情符号名称上训练。
# `TEXT_ENCODER` 可以是 `"auto"`（如果已经下载了 CLIP 的权重就用 CLIP，否则用课程包自带的 MiniLM）、`"clip"` 或 `"minilm"`。

# %% tags=["parameters"]
PRESET = cu.default_preset()
SEED = 0
COCO_ROOT = None
TEXT_ENCODER = "auto"

# %%
preset = cu.load_config("captions", PRESET)
device = "cuda" if torch.cuda.is_available() else "cpu"
run_dir = Path(os.environ.get("COURSE_RUNS_DIR", "runs")) / f"lesson3-captions-{PRESET}"
print("preset:", PRESET, "| device:", device, "| outputs in", run_dir)

# %% [markdown]
# ## 1. 冻结的文本编码器
# 编码器是一个我们不去训练的预训练 Transformer。它把提示词切分成词元，并为每个词元返回一个隐藏状态。
# 同一批次中的提示词长度各不相同，因此要填充（padding）到相同的长度，而**注意力掩码**标明哪些位置是真实的词元。
# 交叉注意力必须忽略填充部分；如果只用一个池化后的向量，就会丢掉哪个词在哪个位置的信息。

# %%
encoder = cu.load_text_encoder(TEXT_ENCODER, max_length=preset["text_max_length"])
prompts = ["red apple", "grinning face with big eyes", ""]
hidden, mask = encoder(prompts)
print("back-end:", encoder.backend, "| hidden states", tuple(hidden.shape), "| mask", tuple(mask.shape))
for p, ids, m in zip(prompts, encoder.tokenize(prompts)["input_ids"], mask):
    print(f"{p!r:32} {int(m.sum()):2d} real tokens:", encoder.tokenizer.convert_ids_to_tokens(ids[m])[:8])

# %% [markdown]
# 空提示词 `""` 同样有词元（编码器的起始标记和结束标记）。它的隐藏状态就是无分类器引导所需要的“无提示词”条件。
#
# ## 2. 带图像描述的图像
# 离线时，每个表情符号的名称就是它的图像描述（“red apple”）。使用 `COCO_ROOT` 时，每张照片大约有五条人工撰写的图像描述；每次抽取一张图像用于训练时，都会从中随机挑选一条。
# 冻结的编码器对所有图像描述只运行**一次**；训练时读取缓存好的隐藏状态。

# %%
if COCO_ROOT:
    data = cu.load_coco_captions(COCO_ROOT, "train", size=preset["image_size"])
else:
    data = cu.load_emoji_captions(preset["image_size"], "train")
data.cache_embeddings(encoder)  # every caption, and the empty one
print(len(data), "images,", len(data.all_captions), "captions; cached hidden states", tuple(data.hidden.shape))
show_images(data.images[:12], nrow=12, title="Training images")
plt.show()
print([caps[0] for caps in data.captions[:12]])

# %% [markdown]
# ## 3. 两行代码实现无分类器引导
# 训练时以概率 $p$（这里是 0.1）把提示词替换成空提示词，这样同一个网络既学会条件预测 $\epsilon(x_t, c)$，也学会无条件（unconditional）预测 $\epsilon(x_t, \varnothing)$。采样时把两者组合起来：
# $$\hat\epsilon = \epsilon(x_t, \varnothing) + s\,\big(\epsilon(x_t, c) - \epsilon(x_t, \varnothing)\big).$$
# $s = 0$ 时忽略提示词，$s = 1$ 就是普通的条件模型，$s > 1$ 则放大提示词带来的变化。两个预测来自对加倍批次的**一次**前向传播（forward pass）。
# 下面用一个玩具“模型”演示这个算式：

# %%
def toy_model(x, t, cond):
    return x * cond["hidden"].mean((1, 2)).view(-1, 1, 1, 1)  # any function of the condition


x = torch.ones(1, 1, 2, 2)
c = {"hidden": torch.full((1, 3, 4), 2.0), "mask": torch.ones(1, 3, dtype=torch.bool)}
u = {"hidden": torch.full((1, 3, 4), 0.5), "mask": torch.ones(1, 3, dtype=torch.bool)}
for s in (0.0, 1.0, 3.0):
    print(f"s = {s}: {cu.guided_prediction(toy_model, x, 0, c, u, s).flatten()[0].item():.2f}")

# %% [markdown]
# ## 4. 模型，以及一个预训练模型
# `cu.models.TextConditionedUnet` 就是第 2 课的 `UNet2DConditionModel`，只是把标签编码器换成了对文本隐藏状态的线性投影。
# 注意力掩码会一并传进去，因此填充部分会被忽略。

# %%
model = cu.TextConditionedUnet(text_dim=encoder.hidden_size, sample_size=preset["image_size"],
                                      text_backend=encoder.backend, text_max_length=encoder.max_length,
                                      **preset["model"])
t = torch.randint(0, 1000, (3,))
print(f"{cu.count_parameters(model):,} parameters; output",
      tuple(model(torch.randn(3, 3, preset["image_size"], preset["image_size"]), t,
                  {"hidden": hidden, "mask": mask}).shape))

# %% [markdown]
# `data/pretrained/captions-cpu` 是用 `python -m course_utils train captions --preset cpu` 在表情符号名称上训练出来的（它的 README 记录了实测数据）。
# 下面每一行使用不同的引导强度；每一行的噪声都相同。

# %%
pipe = cu.load_pipeline(cu.pretrained_dir("captions-cpu"))
pipe.set_progress_bar_config(disable=True)
demo_prompts = ["red apple", "grinning face", "japan flag", "dog face", "rocket", "cherries"]
rows = []
for s in preset["guidance_scales"]:
    rows.append(pipe(demo_prompts, guidance_scale=s, num_inference_steps=20,
                     generator=torch.Generator().manual_seed(SEED), output_type="pt").images)
show_images(torch.cat(rows), nrow=len(demo_prompts), title=" | ".join(demo_prompts),
            row_labels=[f"s = {s}" for s in preset["guidance_scales"]])
plt.show()

# %% [markdown]
# ## 5. 用标签丢弃进行训练
# 丢弃由共用的训练循环完成：`cond_drop_prob` 就是概率 $p$，`null_condition` 指定被丢弃的条件变成什么（空提示词的隐藏状态和掩码）。

# %%
print({k: v for k, v in preset["train"].items()})
noise_scheduler = cu.make_noise_scheduler(prediction_type=preset["prediction_type"])
config = cu.TrainConfig.from_config(preset, len(data))
result = cu.train_diffusion(model, noise_scheduler, data, config, out_dir=run_dir, null_condition=data.null_condition())
print(f"{result.step} steps in {result.train_seconds:.0f} s")
plot_losses(result.losses, title="Training loss (lesson 3)")
plt.show()

# %% [markdown]
# ## 6. 实测引导强度
# 对于从训练图像描述中选取的提示词，我们在每种引导强度下各生成一张图像，并用第 2 课的评判分类器（judge classifier，一个在真实表情符号上训练的分类器）回答两个问题：
# - **类别准确率**（category accuracy）：图像是否被判为其表情符号所属的类别？
# - **提示词忠实度**（prompt fidelity）：在评判分类器的特征空间中，离样本最近的训练图像是否正是该提示词自己的训练图像（top-1），或者该图像是否在最近的 5 张之内（top-5）？

# %%
judge, judge_info = cu.load_or_train_judge(f"twemoji{preset['image_size']}")
sweep, sweep_images = cu.guidance_sweep(result.model, noise_scheduler, data, judge, preset["guidance_scales"],
                                        preset["eval_prompts"], steps=max(preset["sample"]["steps"], 2), seed=SEED)
print(f"judge on held-out real emoji: {judge_info['test_accuracy']:.1%}")
for r in sweep:
    print(f"s = {r['guidance_scale']:3.0f}: category {r['category_accuracy']:6.1%}   prompt top-1 "
          f"{r['prompt_top1']:5.1%}   top-5 {r['prompt_top5']:5.1%}")
scales = [r["guidance_scale"] for r in sweep]
plt.plot(scales, [r["category_accuracy"] for r in sweep], "o-", label="category accuracy")
plt.plot(scales, [r["prompt_top5"] for r in sweep], "o-", label="prompt fidelity (top-5)")
plt.xlabel("guidance scale s")
plt.legend()
plt.title("Guidance scale against prompt following")
plt.show()

# %% [markdown]
# 上面打印的数字取决于预设：在 `smoke` 上模型只训练了几步，这些数字只是噪声。
# 在 `cpu` 上我们实测了两次运行，都在 2 个 CPU 核心上完成，每次取 200 条训练图像描述，每条生成一张图像，用 25 步的 DPM-Solver++ 采样，随机种子为 0：
# - **预训练模型**：第 4 节加载的模型，由 `python -m course_utils train captions --preset cpu --out runs/captions-cpu` 训练而成（509 秒完成 1,800 个训练步；见 `data/pretrained/captions-cpu/README.md`）；
# - **本课的运行**：用 `COURSE_PRESET=cpu jupyter nbconvert --execute notebooks/en/03_text_guidance.ipynb` 运行本课（英文版笔记本，代码与本笔记本相同）时，第 5 节训练出的模型（525 秒完成 1,800 个训练步）。
#
# | 引导强度 $s$ | 0 | 1 | 3 | 7 |
# |---|---|---|---|---|
# | 类别准确率，预训练模型 | 18.0% | 71.0% | **80.5%** | 70.0% |
# | 类别准确率，本课的运行 | 21.0% | 70.5% | **74.5%** | 70.0% |
# | 提示词忠实度 top-5，预训练模型 | 1.0% | 4.0% | **15.0%** | 8.0% |
# | 提示词忠实度 top-5，本课的运行 | 0.5% | 3.5% | **11.0%** | 8.0% |
#
# 这些数字说明了什么：
# - $s = 0$ 时模型忽略提示词。大约五张图像中只有一张落在提示词所属的类别里，和五个类别下完全不看提示词的结果差不多；提示词自己的表情符号几乎从不出现在最近邻之中。
# - **$s = 3$ 的引导在两项指标上都胜过不加引导的条件模型（$s = 1$）**，两次运行都是如此：类别准确率分别提高 9.5 和 4 个百分点，top-5 忠实度大约变为原来的三倍。预训练模型在 $s = 3$ 时被判入正确类别的比例，与评判分类器在留出的真实表情符号上的准确率（78.4%）相当。
# - **引导强度过大反而有害。** 到 $s = 7$ 时两项指标都重新下降：每一步都冲过了头，颜色过饱和，形状崩坏。
# - top-5 忠实度始终很低（在 753 张训练图像中随机猜中的概率是 0.66%）。一个只训练了 9 分钟的 16x16 模型能较好地学会类别，却远没有学会每一个具体的表情符号。
#
# 两次运行在 $s = 3$ 时相差 6 个百分点；你自己运行的结果会落在它们附近，但不会完全相同。
#
# ## 7. 一个提示词，一步一步
# 每一列是采样器更靠后的一步；两行分别使用引导强度 1 和 3。

# %%
one_cond = {"hidden": hidden[:1], "mask": mask[:1]}
one_null = {"hidden": data.null_hidden, "mask": data.null_mask}
trajectories = []
for s in (1.0, 3.0):
    x = torch.randn(1, 3, preset["image_size"], preset["image_size"], generator=torch.manual_seed(SEED))
    with torch.no_grad():
        _, frames = cu.denoise(lambda xt, t: cu.guided_prediction(result.model, xt, t, one_cond, one_null, s),
                               cu.make_sampler("dpm", noise_scheduler), x, 20, keep_every=2)
    trajectories.append(frames)
trajectory = [torch.cat(pair) for pair in zip(*trajectories)]
show_denoising(trajectory, rows=2, title=f"{prompts[0]!r}: s = 1 (top), s = 3 (bottom)")
plt.show()

# %% [markdown]
# ## 8. 自己动手试试
# 输入一个提示词（表情符号名称效果最好：“red apple”、“cat face”、“france flag”），再选择引导强度、步数和随机种子。如果没有安装 ipywidgets，这个单元格只会画出一个示例。

# %%
def draw(prompt="red apple", guidance_scale=3.0, steps=20, seed=0):
    trained = cu.TextToImagePipeline(unet=result.model, scheduler=noise_scheduler)
    trained.set_text_encoder(encoder)
    trained.set_progress_bar_config(disable=True)
    imgs = trained([prompt] * 8, guidance_scale=guidance_scale, num_inference_steps=steps,
                   generator=torch.Generator().manual_seed(seed), output_type="pt").images
    show_images(imgs, nrow=8, title=f"{prompt!r}, s = {guidance_scale}, {steps} steps, seed {seed}")
    plt.show()


try:
    from ipywidgets import FloatSlider, IntSlider, Text, interact
    interact(draw, prompt=Text("red apple"), guidance_scale=FloatSlider(3.0, min=0, max=10, step=0.5),
             steps=IntSlider(20, 2, 50), seed=IntSlider(0, 0, 100))
except ImportError:
    draw()

# %% [markdown]
# ## 练习：标签丢弃带来了什么？
# 用相同的预算训练两次：一次取 $p = 0$（模型从未见过空提示词），一次取 $p = 0.1$。对两者都运行引导强度扫描。如果无条件预测从未被训练过，引导会发生什么？
# 先自己试一试，再打开下面的参考答案。

# %%
# Solution: the same job twice, only cond_drop_prob differs; the job runs the sweep itself.
dropout_runs = {}
for p in (0.0, 0.1):
    overrides = dict(preset["exercise"]["train"], cond_drop_prob=p)
    m = cu.train("captions", PRESET, run_dir.with_name(f"lesson3-dropout{p}-{PRESET}"), data_path=COCO_ROOT,
                 text_encoder=TEXT_ENCODER, overrides=overrides, progress=False, resume=False)
    dropout_runs[p] = m["guidance"]
for p, rows in dropout_runs.items():
    plt.plot([r["guidance_scale"] for r in rows], [r["category_accuracy"] for r in rows], "o-", label=f"p = {p}")
plt.xlabel("guidance scale s")
plt.ylabel("category accuracy")
plt.legend()
plt.title("Guidance with and without label dropout")
plt.show()

# %% [markdown]
# **实测结果。** 在 `cpu` 预设下运行本课（`COURSE_PRESET=cpu jupyter nbconvert --execute notebooks/en/03_text_guidance.ipynb`，2 个 CPU 核心）时，两个模型各训练 240 秒（800 个训练步），再做与第 6 节相同的扫描（200 个提示词）。类别准确率如下：
#
# | 标签丢弃概率 $p$ | $s = 0$ | $s = 1$ | $s = 3$ | $s = 7$ |
# |---|---|---|---|---|
# | 0 | 13.5% | 62.5% | 64.5% | 54.5% |
# | 0.1 | 19.5% | 63.5% | **70.5%** | **72.0%** |
#
# 在 $s = 1$ 时两个模型不相上下（62.5% 和 63.5%），可见每十个提示词丢掉一个并不会损害条件模型。差别出在引导上。
# $p = 0$ 时模型从未见过空提示词，它的“无条件”预测根本没有训练过，引导等于把每一步推离一个毫无意义的预测：$s = 3$ 时只提高 2 个百分点，到 $s = 7$ 时反而比不加引导低 8 个百分点。
# $p = 0.1$ 时，同样的训练预算在 $s = 3$ 时提高了 7 个百分点，到 $s = 7$ 也没有下降（72.0%；对 200 个提示词来说，1.5 个百分点的差别还在噪声范围之内）。第 6 节中训练更久的两次运行在 $s = 7$ 时则确实下降了。

# %% [markdown]
# ## 小结
# - 冻结的文本编码器为每个词元给出一个隐藏状态，外加一个掩码。交叉注意力读取真实的词元，忽略填充部分。
# - 无分类器引导需要一个无条件模型：标签丢弃在同一个网络内部把它训练出来，而空提示词就是“无提示词”条件。
# - 采样时，用一次批量前向传播得到两个预测，再按 `uncond + s * (cond - uncond)` 混合。引导强度在提示词忠实度与图像质量之间做权衡。我们对它做了实测，而不是靠猜。
#
# 下一课（第 4 课）将亲手搭建 UNet 本身。
