"""The modified ResNet image encoder (paper §2.4).

Three changes to He et al.'s ResNet-50, as the paper lists them: a stem of three 3x3
convolutions with an average pool instead of one 7x7 convolution and a max pool;
anti-aliased downsampling (Zhang, 2019), where a strided block average-pools *before* a
stride-1 convolution instead of convolving with a stride; and global average pooling
replaced by a single layer of multi-head attention whose query is the mean of the
feature map.

Shapes: B batch, D channels, G grid side (input resolution / 32 at the end), L = G*G + 1
tokens in the pool.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 bottleneck block; ``stride`` > 1 downsamples by average
    pooling (anti-aliasing)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        # Blur-then-subsample: pooling before the stride-1 convolution keeps the block
        # shift-tolerant.
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu3 = nn.ReLU(inplace=True)

        self.downsample = None
        if stride > 1 or inplanes != planes * self.expansion:
            # The shortcut is anti-aliased the same way. "-1" holds no parameters, so
            # the checkpoint's keys stay downsample.0 (convolution) and downsample.1
            # (batch norm).
            self.downsample = nn.Sequential(
                OrderedDict(
                    [
                        ("-1", nn.AvgPool2d(stride)),
                        (
                            "0",
                            nn.Conv2d(
                                inplanes,
                                planes * self.expansion,
                                1,
                                stride=1,
                                bias=False,
                            ),
                        ),
                        ("1", nn.BatchNorm2d(planes * self.expansion)),
                    ]
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.avgpool(out)
        out = self.bn3(self.conv3(out))
        return self.relu3(out + identity)


class AttentionPool2d(nn.Module):
    """Pool a [B, D, G, G] feature map to [B, output_dim] with one query attending over
    all positions.

    The query is the mean of the feature map, so at initialisation the layer starts
    close to global average pooling (the mean token sees every position); learning then
    lets it weight positions by content.
    """

    def __init__(
        self,
        spacial_dim: int,
        embed_dim: int,
        num_heads: int,
        output_dim: int | None = None,
    ):
        super().__init__()
        self.num_heads = num_heads
        # One position for the mean token plus G*G for the grid.
        self.positional_embedding = nn.Parameter(
            torch.randn(spacial_dim**2 + 1, embed_dim) / embed_dim**0.5
        )
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim or embed_dim)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The pool's input tokens [B, 1 + G*G, D]: the mean token first, then the
        grid, plus positions."""
        x = x.flatten(2).transpose(1, 2)  # [B, D, G, G] -> [B, G*G, D]
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)  # [B, 1 + G*G, D]
        return x + self.positional_embedding.to(x.dtype)

    def forward(self, x: torch.Tensor, project: bool = True) -> torch.Tensor:
        x = self.tokens(x)
        B, L, D = x.shape
        H = self.num_heads
        # [B, H, 1, D/H]: only the mean token asks
        q = self.q_proj(x[:, :1]).view(B, 1, H, D // H).transpose(1, 2)
        k = self.k_proj(x).view(B, L, H, D // H).transpose(1, 2)  # [B, H, L, D/H]
        v = self.v_proj(x).view(B, L, H, D // H).transpose(1, 2)  # [B, H, L, D/H]
        out = F.scaled_dot_product_attention(q, k, v)  # [B, H, 1, D/H]
        out = out.reshape(B, D)  # heads side by side
        return self.c_proj(out) if project else out  # [B, output_dim], or [B, D]


class ModifiedResNet(nn.Module):
    """CLIP's ResNet: 3-convolution stem, four stages of bottlenecks, attention pooling.

    ``layers`` gives the number of blocks per stage, ``width`` the stem width; the final
    feature map has ``width * 32`` channels and ``input_resolution // 32`` positions per
    side.
    """

    def __init__(
        self,
        layers: Sequence[int],
        output_dim: int,
        heads: int,
        input_resolution: int = 224,
        width: int = 64,
    ):
        super().__init__()
        self.input_resolution = input_resolution

        # Stem: three 3x3 convolutions (the first with stride 2), then a 2x2 average
        # pool: /4 in all.
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(2)

        self._inplanes = width  # grows as stages are added
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, layers[3], stride=2)

        embed_dim = width * 32  # channels of layer4's output
        self.attnpool = AttentionPool2d(
            input_resolution // 32, embed_dim, heads, output_dim
        )

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        stage = [Bottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * Bottleneck.expansion
        stage += [Bottleneck(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        return self.avgpool(x)

    def forward(self, x: torch.Tensor, project: bool = True) -> torch.Tensor:
        x = x.to(self.conv1.weight.dtype)
        x = self.stem(x)  # [B, width, R/4, R/4]
        # [B, 32 width, R/32, R/32]
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.attnpool(x, project)  # [B, output_dim], or [B, 32 width]
