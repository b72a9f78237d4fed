"""Draw the book's architecture diagrams as SVG files in this folder, reproducibly.

    python book/figures/make_figures.py            # rewrite every SVG
    python book/figures/make_figures.py --out DIR  # elsewhere (tests compare)

Each diagram uses the book's shape letters (book/notation.md): B batch, N pairs, L
tokens, D width, H heads, E joint embedding, C classes, R image side, P patch side, G
grid side, V vocabulary. Module names (``conv1``, ``attnpool.q_proj``, ``ln_post`` ...)
are the keys of OpenAI's state dict, so a reader can match a box to a weight. The files
are byte-for-byte reproducible: fixed rcParams, glyphs drawn as paths from the fonts
bundled with matplotlib, a fixed ``svg.hashsalt`` for element ids, and no date.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Polygon, Rectangle

HERE = Path(__file__).resolve().parent

RC = {
    "svg.hashsalt": "annotated-clip",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "mathtext.fontset": "dejavusans",
    "path.simplify": False,
    "figure.dpi": 72,
    "savefig.dpi": 72,
}

# Colours: images blue, text orange, the joint space green (a palette safe for colour
# blindness).
IMAGE, IMAGE_FILL = "#33608c", "#dbe8f5"
TEXT, TEXT_FILL = "#b3541e", "#fbe3cf"
JOINT, JOINT_FILL = "#2e7d4f", "#d8efdf"
GREY, GREY_FILL = "#555555", "#f0f0f0"
INK = "#222222"
MONO = "DejaVu Sans Mono"


class Canvas:
    """A figure whose data units are inches, with y growing downwards (like reading a
    page)."""

    def __init__(self, width: float, height: float):
        self.fig = plt.figure(figsize=(width, height))
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set_xlim(0, width)
        self.ax.set_ylim(height, 0)
        self.ax.axis("off")

    def box(
        self,
        x,
        y,
        w,
        h,
        text="",
        edge=GREY,
        fill=GREY_FILL,
        size=10,
        mono=False,
        lw=1.2,
        weight="normal",
        color=INK,
        pad=0.04,
        radius=0.06,
        zorder=2,
    ):
        """A rounded box with its top-left corner at (x, y); returns its centre."""
        self.ax.add_patch(
            FancyBboxPatch(
                (x + pad, y + pad),
                w - 2 * pad,
                h - 2 * pad,
                boxstyle=f"round,pad={pad},rounding_size={radius}",
                linewidth=lw,
                edgecolor=edge,
                facecolor=fill,
                zorder=zorder,
            )
        )
        if text:
            self.text(
                x + w / 2,
                y + h / 2,
                text,
                size=size,
                mono=mono,
                weight=weight,
                color=color,
                zorder=zorder + 1,
            )
        return x + w / 2, y + h / 2

    def rect(self, x, y, w, h, edge=GREY, fill="white", lw=1.0, zorder=2, **kw):
        self.ax.add_patch(
            Rectangle(
                (x, y),
                w,
                h,
                linewidth=lw,
                edgecolor=edge,
                facecolor=fill,
                zorder=zorder,
                **kw,
            )
        )

    def text(
        self,
        x,
        y,
        text,
        size=10,
        mono=False,
        ha="center",
        va="center",
        color=INK,
        weight="normal",
        style="normal",
        zorder=4,
        rotation=0,
    ):
        self.ax.text(
            x,
            y,
            text,
            fontsize=size,
            family=MONO if mono else "DejaVu Sans",
            ha=ha,
            va=va,
            color=color,
            fontweight=weight,
            fontstyle=style,
            zorder=zorder,
            rotation=rotation,
        )

    def arrow(
        self,
        start,
        end,
        color=INK,
        lw=1.2,
        style="-|>",
        dashed=False,
        rad=0.0,
        zorder=3,
    ):
        self.ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                arrowstyle=style,
                mutation_scale=11,
                linewidth=lw,
                color=color,
                shrinkA=0,
                shrinkB=0,
                zorder=zorder,
                linestyle=(0, (3, 2)) if dashed else "-",
                connectionstyle=f"arc3,rad={rad}",
            )
        )

    def line(self, points, color=INK, lw=1.2, dashed=False, zorder=3):
        xs, ys = zip(*points)
        self.ax.plot(
            xs,
            ys,
            color=color,
            lw=lw,
            zorder=zorder,
            solid_capstyle="butt",
            linestyle=(0, (3, 2)) if dashed else "-",
        )

    def elbow(self, points, color=INK, lw=1.2, dashed=False):
        """A polyline whose last segment ends in an arrow head."""
        self.line(points[:-1], color=color, lw=lw, dashed=dashed)
        self.arrow(points[-2], points[-1], color=color, lw=lw, dashed=dashed)

    def plus(self, x, y, r=0.13):
        """The (+) of a residual connection."""
        self.ax.add_patch(
            matplotlib.patches.Circle(
                (x, y), r, facecolor="white", edgecolor=INK, lw=1.2, zorder=3
            )
        )
        self.line([(x - r * 0.6, y), (x + r * 0.6, y)], lw=1.2, zorder=4)
        self.line([(x, y - r * 0.6), (x, y + r * 0.6)], lw=1.2, zorder=4)

    def photo(self, x, y, w, h, sky="#9cc3e6", ground="#7fb069"):
        """A small stylised photograph: sky, a hill, a sun."""
        self.rect(x, y, w, h, edge=INK, fill=sky, lw=1.0)
        self.ax.add_patch(
            Polygon(
                [
                    (x, y + h),
                    (x, y + 0.62 * h),
                    (x + 0.35 * w, y + 0.38 * h),
                    (x + 0.62 * w, y + 0.64 * h),
                    (x + 0.8 * w, y + 0.5 * h),
                    (x + w, y + 0.7 * h),
                    (x + w, y + h),
                ],
                closed=True,
                facecolor=ground,
                edgecolor="none",
                zorder=3,
            )
        )
        self.ax.add_patch(
            matplotlib.patches.Circle(
                (x + 0.75 * w, y + 0.25 * h),
                0.09 * min(w, h) * 1.4,
                facecolor="#f5c542",
                edgecolor="none",
                zorder=3,
            )
        )

    def tokens(
        self,
        x,
        y,
        labels,
        w=0.34,
        h=0.3,
        edge=GREY,
        fill="white",
        size=8,
        first=None,
        gap=0.04,
        mono=False,
    ):
        """A row of small squares (tokens or vectors); ``first`` styles the first one
        (edge, fill)."""
        centres = []
        for i, label in enumerate(labels):
            e, f = first if (first and i == 0) else (edge, fill)
            cx = x + i * (w + gap)
            if label == "…":
                self.text(cx + w / 2, y + h / 2, "…", size=size + 2)
            else:
                self.rect(cx, y, w, h, edge=e, fill=f)
                self.text(cx + w / 2, y + h / 2, label, size=size, mono=mono)
            centres.append((cx + w / 2, y + h / 2))
        return centres

    def crop(self, height: float):
        """Make the figure ``height`` inches tall, keeping one data unit per inch."""
        self.fig.set_size_inches(self.fig.get_size_inches()[0], height)
        self.ax.set_ylim(height, 0)

    def save(self, path: Path):
        title = TITLES[Path(path).name]
        self.fig.savefig(
            path, format="svg", metadata={"Date": None, "Creator": None, "Title": title}
        )
        plt.close(self.fig)


def shape(c: Canvas, x, y, text, ha="left", color=GREY, size=9):
    """A tensor shape written next to an arrow."""
    c.text(x, y, text, size=size, ha=ha, color=color)


# --------------------------------------------------------------------------------------
# Figure 1 of the paper, redrawn: pre-training, a classifier from label text, zero-shot
# prediction.
# --------------------------------------------------------------------------------------


def figure1_overview(path: Path):
    c = Canvas(7.6, 6.55)
    rows = ["1", "2", "3", "…", "N"]
    cell_w, cell_h = 0.7, 0.4
    gx, gy = 3.4, 1.2  # top-left corner of the N x N grid

    # (1) Contrastive pre-training: the text encoder feeds the columns, the image
    # encoder the rows.
    c.text(0.1, 0.2, "(1) Contrastive pre-training", size=11, ha="left", weight="bold")
    ty = 0.72
    c.box(
        0.1,
        ty - 0.24,
        1.5,
        0.48,
        "“a dog catching\na frisbee”",
        edge=TEXT,
        fill="white",
        size=8.5,
    )
    c.arrow((1.6, ty), (1.8, ty))
    c.box(
        1.8, ty - 0.25, 1.15, 0.5, "text\nencoder", edge=TEXT, fill=TEXT_FILL, size=9.5
    )
    c.arrow((2.95, ty), (gx + 0.06, ty))
    for j, s in enumerate(rows):
        x0 = gx + j * cell_w
        if s == "…":
            c.text(x0 + cell_w / 2, ty, "…", size=12)
        else:
            c.box(
                x0 + 0.06,
                ty - 0.19,
                cell_w - 0.12,
                0.38,
                rf"$T_{{{s}}}$",
                edge=TEXT,
                fill=TEXT_FILL,
                size=10,
                pad=0.02,
                radius=0.04,
            )
    for i, r in enumerate(rows):
        cy = gy + i * cell_h
        if r == "…":
            c.text(gx - 0.35, cy + cell_h / 2, "⋮", size=12)
        else:
            c.box(
                gx - 0.64,
                cy + 0.03,
                0.58,
                cell_h - 0.06,
                rf"$I_{{{r}}}$",
                edge=IMAGE,
                fill=IMAGE_FILL,
                size=10,
                pad=0.02,
                radius=0.04,
            )
        for j, s in enumerate(rows):
            x0 = gx + j * cell_w
            if r == "…" or s == "…":
                mark = "⋱" if r == s else ("⋮" if r == "…" else "…")
                c.text(x0 + cell_w / 2, cy + cell_h / 2, mark, size=10, color=GREY)
                continue
            diagonal = r == s
            c.rect(
                x0,
                cy,
                cell_w,
                cell_h,
                edge="#999999",
                fill=JOINT_FILL if diagonal else "white",
                lw=0.8,
            )
            c.text(
                x0 + cell_w / 2,
                cy + cell_h / 2,
                rf"$I_{{{r}}}\cdot T_{{{s}}}$",
                size=9,
                color=JOINT if diagonal else INK,
            )
    mid = gy + 2.5 * cell_h
    c.photo(0.2, mid - 0.3, 0.78, 0.6)
    c.arrow((0.98, mid), (1.18, mid))
    c.box(
        1.18,
        mid - 0.25,
        1.15,
        0.5,
        "image\nencoder",
        edge=IMAGE,
        fill=IMAGE_FILL,
        size=9.5,
    )
    c.line(
        [
            (2.45, gy + 0.2),
            (2.55, gy + 0.2),
            (2.55, gy + 5 * cell_h - 0.2),
            (2.45, gy + 5 * cell_h - 0.2),
        ],
        color=IMAGE,
        lw=1.0,
    )
    c.arrow((2.33, mid), (2.55, mid))
    note_y = gy + 5 * cell_h + 0.3
    c.text(
        gx - 0.64,
        note_y,
        "An N × N matrix of cosine similarities for a batch of N pairs. "
        "Training makes\n"
        "each true pair (the diagonal) the largest in its row and in its column.",
        size=8.5,
        ha="left",
        color=GREY,
    )

    # (2) A classifier from label text.
    top = note_y + 0.45
    c.line([(0.1, top - 0.08), (7.5, top - 0.08)], color="#cccccc", lw=0.8)
    c.text(
        0.1,
        top + 0.2,
        "(2) Create a dataset classifier from label text",
        size=11,
        ha="left",
        weight="bold",
    )
    ly = top + 0.85
    c.box(
        0.1,
        ly - 0.4,
        0.85,
        0.8,
        "plane\ncar\ndog\n⋮\nbird",
        edge=GREY,
        fill="white",
        size=8,
    )
    c.arrow((0.95, ly), (1.15, ly))
    c.box(
        1.15,
        ly - 0.24,
        1.65,
        0.48,
        "“a photo of\na {object}.”",
        edge=TEXT,
        fill="white",
        size=8.5,
    )
    c.arrow((2.8, ly), (3.0, ly))
    c.box(
        3.0, ly - 0.25, 1.15, 0.5, "text\nencoder", edge=TEXT, fill=TEXT_FILL, size=9.5
    )
    c.arrow((4.15, ly), (gx + 0.85 + 0.06, ly))
    classes = ["1", "2", "3", "…", "C"]
    for j, s in enumerate(classes):
        x0 = gx + 0.85 + j * 0.62
        if s == "…":
            c.text(x0 + 0.31, ly, "…", size=12)
        else:
            c.box(
                x0 + 0.04,
                ly - 0.19,
                0.54,
                0.38,
                rf"$T_{{{s}}}$",
                edge=TEXT,
                fill=TEXT_FILL,
                size=10,
                pad=0.02,
                radius=0.04,
            )
    c.text(
        gx + 0.85 + 2.5 * 0.62,
        ly + 0.36,
        "one text embedding per class (C classes)",
        size=8.5,
        color=GREY,
    )

    # (3) Zero-shot prediction.
    top3 = ly + 0.75
    c.text(
        0.1,
        top3 + 0.05,
        "(3) Use for zero-shot prediction",
        size=11,
        ha="left",
        weight="bold",
    )
    py = top3 + 0.7
    c.photo(0.2, py - 0.3, 0.78, 0.6, ground="#c9a66b")
    c.arrow((0.98, py), (1.18, py))
    c.box(
        1.18,
        py - 0.25,
        1.15,
        0.5,
        "image\nencoder",
        edge=IMAGE,
        fill=IMAGE_FILL,
        size=9.5,
    )
    c.arrow((2.33, py), (2.53, py))
    c.box(
        2.53,
        py - 0.19,
        0.5,
        0.38,
        r"$I_1$",
        edge=IMAGE,
        fill=IMAGE_FILL,
        size=10,
        pad=0.02,
        radius=0.04,
    )
    c.arrow((3.03, py), (3.25, py))
    for j, s in enumerate(classes):
        x0 = 3.25 + j * 0.84
        if s == "…":
            c.text(x0 + 0.42, py, "…", size=12)
            continue
        best = s == "3"
        c.rect(
            x0,
            py - 0.2,
            0.84,
            0.4,
            edge="#999999",
            fill=JOINT_FILL if best else "white",
            lw=0.8,
        )
        c.text(
            x0 + 0.42,
            py,
            rf"$I_1\cdot T_{{{s}}}$",
            size=9,
            color=JOINT if best else INK,
        )
    c.arrow((3.25 + 2.5 * 0.84, py + 0.22), (3.25 + 2.5 * 0.84, py + 0.48), color=JOINT)
    c.text(
        3.25 + 2.5 * 0.84,
        py + 0.62,
        "the largest similarity wins: “a photo of a dog.”",
        size=8.5,
        color=JOINT,
    )
    c.crop(py + 0.85)
    c.save(path)


# --------------------------------------------------------------------------------------
# The modified ResNet: Bottleneck, AttentionPool2d, the whole encoder.
# --------------------------------------------------------------------------------------


def _layer(
    c: Canvas, x, y, w, name, detail, edge=IMAGE, fill=IMAGE_FILL, h=0.42, size=9.5
):
    """A layer box: the state-dict name in monospace on the left, what it does on the
    right."""
    c.box(x, y, w, h, edge=edge, fill=fill)
    c.text(x + 0.14, y + h / 2, name, size=size, mono=True, ha="left")
    c.text(x + w - 0.14, y + h / 2, detail, size=size - 0.5, ha="right", color=GREY)
    return y + h


def bottleneck(path: Path):
    c = Canvas(7.6, 6.3)
    x, w = 1.2, 3.1
    cx = x + w / 2
    c.text(cx, 0.2, r"input  $(B,\ D_{in},\ G,\ G)$", size=10)
    y = 0.5
    steps = [
        ("conv1", "1×1 conv, D_in → D"),
        ("bn1 · relu1", "batch norm, ReLU"),
        ("conv2", "3×3 conv, D → D, stride 1"),
        ("bn2 · relu2", "batch norm, ReLU"),
        ("avgpool", "s×s average pool (if s > 1)"),
        ("conv3", "1×1 conv, D → 4D"),
        ("bn3", "batch norm"),
    ]
    c.arrow((cx, 0.32), (cx, y))
    tops = {}
    for name, detail in steps:
        tops[name] = y
        fill = "#fff4c2" if name == "avgpool" else IMAGE_FILL
        edge = "#a07800" if name == "avgpool" else IMAGE
        y = _layer(c, x, y, w, name, detail, edge=edge, fill=fill)
        c.arrow((cx, y - 0.04), (cx, y + 0.14))
        y += 0.14
    plus_y = y + 0.13
    c.plus(cx, plus_y)
    c.arrow((cx, plus_y + 0.13), (cx, plus_y + 0.4))
    y = _layer(c, x, plus_y + 0.4, w, "relu3", "ReLU")
    c.arrow((cx, y - 0.04), (cx, y + 0.22))
    c.text(cx, y + 0.38, r"output  $(B,\ 4D,\ G/s,\ G/s)$", size=10)

    # Shapes beside the main branch.
    shape(c, x - 0.1, tops["conv2"] + 0.21, r"$(B, D, G, G)$", ha="right")
    shape(c, x - 0.1, tops["conv3"] + 0.21, r"$(B, D, G/s, G/s)$", ha="right")

    # The shortcut.
    bx, bw = 4.75, 2.75
    bcx = bx + bw / 2
    c.elbow([(cx, 0.36), (bcx, 0.36), (bcx, 1.05)], color=INK)
    c.text(bcx + 0.08, 0.6, "shortcut", size=9, ha="left", color=GREY)
    by = 1.05
    for name, detail, fill, edge in [
        ("downsample.-1", "s×s average pool", "#fff4c2", "#a07800"),
        ("downsample.0", "1×1 conv → 4D", IMAGE_FILL, IMAGE),
        ("downsample.1", "batch norm", IMAGE_FILL, IMAGE),
    ]:
        by = _layer(c, bx, by, bw, name, detail, edge=edge, fill=fill, size=9)
        if name != "downsample.1":
            c.arrow((bcx, by - 0.04), (bcx, by + 0.14))
            by += 0.14
    c.rect(
        bx - 0.1,
        0.93,
        bw + 0.2,
        by - 0.93 + 0.12,
        edge=GREY,
        fill="none",
        lw=0.8,
        zorder=1,
        linestyle=(0, (3, 2)),
    )
    c.text(
        bx + bw / 2,
        by + 0.32,
        "only when s > 1 or D_in ≠ 4D;\notherwise the input itself",
        size=8.5,
        color=GREY,
    )
    c.elbow([(bcx, by + 0.55), (bcx, plus_y), (cx + 0.13, plus_y)], color=INK)

    c.text(
        bx - 0.1,
        plus_y + 0.3,
        "Anti-aliased downsampling (Zhang,\n"
        "2019): a block with stride s averages\n"
        "s×s neighbourhoods, then convolves\n"
        "with stride 1, instead of a strided\n"
        "convolution that skips pixels. s = 2 in\n"
        "the first block of layer2, layer3 and\n"
        "layer4; s = 1 everywhere else.",
        size=8.5,
        ha="left",
        va="top",
        color="#6b5200",
    )
    c.crop(plus_y + 1.45)
    c.save(path)


def attention_pool(path: Path):
    c = Canvas(7.6, 6.0)
    c.text(0.15, 0.2, r"feature map of layer4  $(B,\ D,\ G,\ G)$", size=10, ha="left")
    # The G x G grid becomes G^2 tokens, and their mean goes in front.
    gx, gy, s = 0.3, 0.5, 0.2
    for i in range(3):
        for j in range(3):
            c.rect(gx + j * s, gy + i * s, s, s, edge=IMAGE, fill=IMAGE_FILL, lw=0.8)
    row_y = gy + 1.5 * s
    c.arrow((gx + 3 * s + 0.1, row_y), (2.0, row_y))
    c.text(1.45, row_y - 0.17, "flatten", size=8.5, color=GREY)
    labels = ["mean", "1", "2", "3", "…", "G²"]
    for k, label in enumerate(labels):
        x0 = 2.05 + k * 0.6
        if label == "…":
            c.text(x0 + 0.25, row_y, "…", size=11)
            continue
        edge, fill = (JOINT, JOINT_FILL) if k == 0 else (IMAGE, IMAGE_FILL)
        c.rect(x0, row_y - 0.16, 0.5, 0.32, edge=edge, fill=fill)
        c.text(x0 + 0.25, row_y, label, size=8.5)
    c.text(
        2.3,
        row_y + 0.32,
        "the mean of the\nG² tokens, in front",
        size=8,
        color=JOINT,
        va="top",
    )
    shape(c, 5.7, row_y, r"$(B,\ G^2{+}1,\ D)$")

    y = 1.55
    c.arrow((4.0, row_y + 0.17), (4.0, y + 0.04))
    c.box(1.6, y, 4.8, 0.42, edge=GREY, fill=GREY_FILL)
    c.text(1.75, y + 0.21, "+ positional_embedding", size=9.5, mono=True, ha="left")
    c.text(6.25, y + 0.21, r"$(G^2{+}1,\ D)$", size=9, ha="right", color=GREY)

    # q from the mean token only; k and v from every token.
    y2 = 2.55
    columns = [
        ("q_proj", 1.0, JOINT, JOINT_FILL, "the mean token only"),
        ("k_proj", 3.05, IMAGE, IMAGE_FILL, "all G²+1 tokens"),
        ("v_proj", 5.1, IMAGE, IMAGE_FILL, "all G²+1 tokens"),
    ]
    for name, x0, edge, fill, note in columns:
        c.arrow((x0 + 0.75, y + 0.42), (x0 + 0.75, y2 + 0.04), color=edge)
        c.text(x0 + 0.85, y + 0.72, note, size=8, ha="left", color=edge)
        c.box(x0, y2, 1.5, 0.42, name, edge=edge, fill=fill, size=9.5, mono=True)
    y3 = 3.35
    c.box(1.0, y3, 5.6, 0.64, edge=GREY, fill="white")
    c.text(3.8, y3 + 0.2, "multi-head attention: H heads of width D/H", size=9.5)
    c.text(
        3.8,
        y3 + 0.45,
        r"softmax$(q\,k^\top/\sqrt{D/H})\,v$: one query per image",
        size=9,
        color=GREY,
    )
    for _name, x0, edge, _fill, _note in columns:
        c.arrow((x0 + 0.75, y2 + 0.42), (x0 + 0.75, y3 + 0.04), color=edge)
    y4 = 4.35
    c.arrow((3.8, y3 + 0.64), (3.8, y4 + 0.04))
    shape(c, 3.9, y3 + 0.8, r"$(B,\ D)$")
    c.box(2.0, y4, 3.6, 0.42, edge=IMAGE, fill=IMAGE_FILL)
    c.text(2.15, y4 + 0.21, "c_proj", size=9.5, mono=True, ha="left")
    c.text(5.45, y4 + 0.21, "linear, D → E", size=9, ha="right", color=GREY)
    c.arrow((3.8, y4 + 0.42), (3.8, y4 + 0.72))
    c.text(3.8, y4 + 0.88, r"image feature  $(B,\ E)$", size=10)
    c.text(
        0.15,
        y4 + 1.25,
        "It replaces ResNet's global average pool: the mean asks the question, "
        "and attention "
        "weighs\nthe positions that answer it. In the ResNets, D = 32 × width "
        "and H = D / 64.",
        size=8.5,
        ha="left",
        va="top",
        color=GREY,
    )
    c.crop(y4 + 1.7)
    c.save(path)


def modified_resnet(path: Path):
    c = Canvas(7.6, 7.5)
    x, w = 0.2, 3.95
    cx = x + w / 2
    sx = 4.35  # shapes
    rx = 6.2  # RN50's numbers
    c.text(sx, 0.2, "shape", size=9, ha="left", weight="bold", color=GREY)
    c.text(rx, 0.2, "RN50", size=9, ha="left", weight="bold", color=GREY)
    c.text(cx, 0.2, "image", size=10)
    shape(c, sx, 0.45, r"$(B, 3, R, R)$")
    c.text(rx, 0.45, "3 × 224²", size=9, ha="left", color=GREY)
    c.arrow((cx, 0.33), (cx, 0.66))
    y = 0.66
    stem = [
        (
            "conv1 · bn1 · relu1",
            "3×3, 3 → w/2, stride 2",
            r"$(B, w/2, R/2, R/2)$",
            "32 × 112²",
        ),
        ("conv2 · bn2 · relu2", "3×3, w/2 → w/2", r"$(B, w/2, R/2, R/2)$", "32 × 112²"),
        ("conv3 · bn3 · relu3", "3×3, w/2 → w", r"$(B, w, R/2, R/2)$", "64 × 112²"),
        ("avgpool", "2×2 average pool", r"$(B, w, R/4, R/4)$", "64 × 56²"),
    ]
    c.rect(
        x - 0.1,
        y - 0.1,
        w + 0.2,
        4 * 0.56 + 0.06,
        edge=GREY,
        fill="none",
        lw=0.8,
        zorder=1,
        linestyle=(0, (3, 2)),
    )
    c.text(x - 0.08, y - 0.22, "stem", size=8.5, ha="left", color=GREY)
    for k, (name, detail, shp, rn50) in enumerate(stem):
        y = _layer(c, x, y, w, name, detail, size=9)
        shape(c, sx, y - 0.21, shp)
        c.text(rx, y - 0.21, rn50, size=9, ha="left", color=GREY)
        if k < len(stem) - 1:
            c.arrow((cx, y - 0.04), (cx, y + 0.14))
            y += 0.14
    stages = [
        (
            "layer1",
            "n₁ Bottlenecks, stride 1",
            r"$(B, 4w, R/4, R/4)$",
            "256 × 56², n₁ = 3",
        ),
        (
            "layer2",
            "n₂ Bottlenecks, first stride 2",
            r"$(B, 8w, R/8, R/8)$",
            "512 × 28², n₂ = 4",
        ),
        (
            "layer3",
            "n₃ Bottlenecks, first stride 2",
            r"$(B, 16w, R/16, R/16)$",
            "1024 × 14², n₃ = 6",
        ),
        (
            "layer4",
            "n₄ Bottlenecks, first stride 2",
            r"$(B, 32w, G, G)$",
            "2048 × 7², n₄ = 3",
        ),
    ]
    c.arrow((cx, y - 0.04), (cx, y + 0.36))
    y += 0.36
    for name, detail, shp, rn50 in stages:
        y = _layer(c, x, y, w, name, detail, size=9.5, h=0.46)
        shape(c, sx, y - 0.23, shp)
        c.text(rx, y - 0.23, rn50, size=9, ha="left", color=GREY)
        c.arrow((cx, y - 0.04), (cx, y + 0.18))
        y += 0.18
    y = _layer(
        c,
        x,
        y,
        w,
        "attnpool",
        "AttentionPool2d, H heads",
        edge=JOINT,
        fill=JOINT_FILL,
        size=9.5,
        h=0.46,
    )
    shape(c, sx, y - 0.23, r"$(B, E)$")
    c.text(rx, y - 0.23, "1024", size=9, ha="left", color=GREY)
    c.arrow((cx, y - 0.04), (cx, y + 0.22))
    c.text(cx, y + 0.38, "image feature", size=10)
    c.text(
        0.2,
        y + 0.75,
        "w = width (64 in RN50) and G = R/32. Each stage doubles the channels "
        "and halves "
        "the grid;\nthe attention pool's width is D = 32w. The larger models "
        "(RN50x4, x16, "
        "x64) grow w, the n's and R.",
        size=8.5,
        ha="left",
        va="top",
        color=GREY,
    )
    c.crop(y + 1.2)
    c.save(path)


# --------------------------------------------------------------------------------------
# The Vision Transformer and the text Transformer.
# --------------------------------------------------------------------------------------


def _block_detail(c: Canvas, x, y, causal: bool, colour, fill, w=2.25):
    """One residual attention block with its top-left corner at (x, y); returns its
    bottom."""
    cx = x + 0.15 + w / 2
    skip = x + 0.15 + w + 0.3
    c.rect(x, y, w + 0.75, 4.0, edge=GREY, fill="#fafafa", lw=0.8, zorder=1)
    c.text(x + 0.1, y + 0.2, "resblocks.i", size=9, mono=True, ha="left", weight="bold")
    bx = x + 0.15
    c.arrow((cx, y + 0.35), (cx, y + 0.6))
    yy = y + 0.6
    c.box(bx, yy, w, 0.38, "ln_1", edge=colour, fill=fill, size=9, mono=True)
    c.arrow((cx, yy + 0.38), (cx, yy + 0.55))
    c.box(bx, yy + 0.55, w, 0.52, edge=colour, fill=fill)
    c.text(cx, yy + 0.72, "attn", size=9, mono=True)
    c.text(
        cx,
        yy + 0.92,
        "H heads" + (", causal mask" if causal else ""),
        size=8,
        color=GREY,
    )
    p1 = yy + 1.3
    c.arrow((cx, yy + 1.07), (cx, p1 - 0.13))
    c.plus(cx, p1)
    c.elbow([(cx, y + 0.47), (skip, y + 0.47), (skip, p1), (cx + 0.13, p1)])
    c.arrow((cx, p1 + 0.13), (cx, p1 + 0.35))
    yy = p1 + 0.35
    c.box(bx, yy, w, 0.38, "ln_2", edge=colour, fill=fill, size=9, mono=True)
    c.arrow((cx, yy + 0.38), (cx, yy + 0.55))
    c.box(bx, yy + 0.55, w, 0.52, edge=colour, fill=fill)
    c.text(cx, yy + 0.72, "mlp", size=9, mono=True)
    c.text(cx, yy + 0.92, "D → 4D, QuickGELU, 4D → D", size=8, color=GREY)
    p2 = yy + 1.3
    c.arrow((cx, yy + 1.07), (cx, p2 - 0.13))
    c.plus(cx, p2)
    c.elbow([(cx, p1 + 0.22), (skip, p1 + 0.22), (skip, p2), (cx + 0.13, p2)])
    c.arrow((cx, p2 + 0.13), (cx, p2 + 0.3))
    return y + 4.0


def _pipeline(c: Canvas, x, y, w, steps):
    """A column of layer boxes joined by arrows, each arrow labelled with the shape that
    flows along it.

    ``steps`` holds (name, detail, edge, fill, shape after the box or None, note on the
    arrow or None). Returns {name: (top, bottom)} and the y below the last arrow.
    """
    cx = x + w / 2
    where = {}
    for _k, (name, detail, edge, fill, shp, note) in enumerate(steps):
        top = y
        y = _layer(c, x, y, w, name, detail, edge=edge, fill=fill, size=9.5)
        where[name] = (top, y)
        gap = 0.36 if (shp or note) else 0.2
        c.arrow((cx, y - 0.04), (cx, y + gap))
        if shp:
            shape(c, cx + 0.1, y + gap / 2, shp)
        if note:
            c.text(cx - 0.1, y + gap / 2, note, size=8.5, ha="right", color=JOINT)
        y += gap
    return where, y


def vit(path: Path):
    c = Canvas(7.6, 7.0)
    c.text(0.15, 0.2, r"image  $(B,\ 3,\ R,\ R)$", size=10, ha="left")
    px, py, s = 0.3, 0.42, 0.27
    c.photo(px, py, 3 * s, 3 * s)
    for k in (1, 2):
        c.line(
            [(px + k * s, py), (px + k * s, py + 3 * s)],
            color="white",
            lw=1.5,
            zorder=4,
        )
        c.line(
            [(px, py + k * s), (px + 3 * s, py + k * s)],
            color="white",
            lw=1.5,
            zorder=4,
        )
    c.text(
        px + 3 * s + 0.15,
        py + 1.5 * s,
        "cut into G × G patches\nof P × P pixels (G = R/P)",
        size=8.5,
        ha="left",
        color=GREY,
    )
    x0, w = 0.15, 3.6
    cx = x0 + w / 2
    c.arrow((px + 1.5 * s, py + 3 * s), (px + 1.5 * s, 1.42))
    _where, y = _pipeline(
        c,
        x0,
        1.42,
        w,
        [
            (
                "conv1",
                "P×P conv, stride P, 3 → D",
                IMAGE,
                IMAGE_FILL,
                r"$(B, D, G, G)$",
                "flatten",
            ),
        ],
    )
    # The tokens: the class token first, then the G^2 patches.
    labels = ["cls", "1", "2", "…", "G²"]
    for k, label in enumerate(labels):
        tx = x0 + 0.35 + k * 0.62
        if label == "…":
            c.text(tx + 0.25, y + 0.16, "…", size=11)
            continue
        edge, fill = (JOINT, JOINT_FILL) if k == 0 else (IMAGE, IMAGE_FILL)
        c.rect(tx, y, 0.5, 0.32, edge=edge, fill=fill)
        c.text(tx + 0.25, y + 0.16, label, size=8.5)
    c.text(
        x0 + 0.35,
        y + 0.42,
        "class_embedding, learned, in front",
        size=8,
        ha="left",
        va="top",
        color=JOINT,
    )
    c.arrow((cx + 0.6, y + 0.33), (cx + 0.6, y + 0.75))
    shape(c, cx + 0.7, y + 0.55, r"$(B, G^2{+}1, D)$")
    where2, y = _pipeline(
        c,
        x0,
        y + 0.75,
        w,
        [
            ("+ positional_embedding", r"$(G^2{+}1, D)$", GREY, GREY_FILL, None, None),
            ("ln_pre", "LayerNorm (CLIP's addition)", IMAGE, IMAGE_FILL, None, None),
            (
                "transformer",
                "layers × resblocks",
                IMAGE,
                IMAGE_FILL,
                r"$(B, G^2{+}1, D)$",
                "class token →",
            ),
            ("ln_post", "LayerNorm", IMAGE, IMAGE_FILL, r"$(B, D)$", None),
            ("@ proj", r"$(D, E)$ matrix", JOINT, JOINT_FILL, None, None),
        ],
    )
    c.text(cx, y + 0.15, r"image feature  $(B,\ E)$", size=10)

    bx, by = 4.45, 1.2
    bottom = _block_detail(c, bx, by, causal=False, colour=IMAGE, fill=IMAGE_FILL)
    top, low = where2["transformer"]
    c.line(
        [
            (x0 + w, (top + low) / 2),
            (bx - 0.2, (top + low) / 2),
            (bx - 0.2, by + 2.0),
            (bx, by + 2.0),
        ],
        color=GREY,
        lw=0.8,
        dashed=True,
    )
    c.text(
        bx,
        bottom + 0.12,
        "each of the `layers` blocks is pre-norm:\nLayerNorm, then attention or MLP, "
        "then\nadd back; the stream stays (B, G²+1, D).",
        size=8.5,
        ha="left",
        va="top",
        color=GREY,
    )
    c.crop(max(y + 0.4, bottom + 0.75))
    c.save(path)


def text_transformer(path: Path):
    c = Canvas(7.6, 7.0)
    c.text(0.15, 0.2, "text  “a photo of a dog.”", size=10, ha="left")
    c.arrow((0.6, 0.34), (0.6, 0.62))
    c.text(0.7, 0.48, "tokenize", size=9, ha="left", mono=True, color=GREY)
    ids = ["SOT", "a", "photo", "of", "a", "dog", ".", "EOT", "0", "…", "0"]
    for k, label in enumerate(ids):
        tx = 0.15 + k * 0.6
        if label == "…":
            c.text(tx + 0.26, 0.78, "…", size=11)
            continue
        edge, fill = (JOINT, JOINT_FILL) if label == "EOT" else (TEXT, "white")
        c.rect(tx, 0.62, 0.52, 0.32, edge=edge, fill=fill)
        c.text(tx + 0.26, 0.78, label, size=8)
    c.text(0.15 + 8 * 0.6, 1.08, "padding up to L = 77", size=8, ha="left", color=GREY)
    shape(c, 0.15 + 11 * 0.6 + 0.05, 0.78, r"$(B, L)$")
    x0, w = 0.15, 3.6
    cx = x0 + w / 2
    c.arrow((cx, 0.96), (cx, 1.42))
    shape(c, cx + 0.1, 1.2, "token ids")
    where, y = _pipeline(
        c,
        x0,
        1.42,
        w,
        [
            (
                "token_embedding",
                r"$(V, D)$ table",
                TEXT,
                TEXT_FILL,
                r"$(B, L, D)$",
                None,
            ),
            ("+ positional_embedding", r"$(L, D)$", GREY, GREY_FILL, None, None),
            (
                "transformer",
                "layers × causal resblocks",
                TEXT,
                TEXT_FILL,
                r"$(B, L, D)$",
                None,
            ),
            ("ln_final", "LayerNorm", TEXT, TEXT_FILL, r"$(B, D)$", "EOT position →"),
            ("@ text_projection", r"$(D, E)$ matrix", JOINT, JOINT_FILL, None, None),
        ],
    )
    c.text(cx, y + 0.15, r"text feature  $(B,\ E)$", size=10)
    c.text(
        x0,
        y + 0.5,
        "The EOT token has the largest id, so its position is the arg-max of each\n"
        "row of ids; the causal mask makes it the one position that read every word.",
        size=8.5,
        ha="left",
        va="top",
        color=GREY,
    )

    bx, by = 4.45, 1.45
    bottom = _block_detail(c, bx, by, causal=True, colour=TEXT, fill=TEXT_FILL)
    top, low = where["transformer"]
    c.line(
        [
            (x0 + w, (top + low) / 2),
            (bx - 0.2, (top + low) / 2),
            (bx - 0.2, by + 2.0),
            (bx, by + 2.0),
        ],
        color=GREY,
        lw=0.8,
        dashed=True,
    )
    # The causal mask: the query at position i may attend to keys 0..i.
    mx, my, m, n = bx + 0.35, bottom + 0.45, 0.17, 6
    for i in range(n):
        for j in range(n):
            c.rect(
                mx + j * m,
                my + i * m,
                m,
                m,
                edge="white",
                fill=TEXT if j <= i else "#e6e6e6",
                lw=0.6,
            )
    c.text(mx + n * m / 2, my - 0.12, "key", size=8, color=GREY)
    c.text(mx - 0.12, my + n * m / 2, "query", size=8, rotation=90, color=GREY)
    c.text(
        mx + n * m + 0.15,
        my + n * m / 2,
        "causal mask:\nposition i sees\npositions 0 … i",
        size=8.5,
        ha="left",
        color=GREY,
    )
    c.crop(max(y + 1.0, my + n * m + 0.2))
    c.save(path)


TITLES = {
    "figure1_overview.svg": (
        "CLIP in three steps: contrastive pre-training, a classifier from label text, "
        "zero-shot prediction"
    ),
    "bottleneck.svg": (
        "The modified ResNet's Bottleneck block with anti-aliased downsampling"
    ),
    "attention_pool.svg": (
        "AttentionPool2d: attention pooling with the mean token as the query"
    ),
    "modified_resnet.svg": (
        "The modified ResNet image encoder, stage by stage, with tensor shapes"
    ),
    "vit.svg": (
        "The Vision Transformer image encoder, with tensor shapes and one residual "
        "block"
    ),
    "text_transformer.svg": (
        "The text Transformer, with tensor shapes, one causal residual block and the "
        "mask"
    ),
}

FIGURES = {
    "figure1_overview.svg": figure1_overview,
    "bottleneck.svg": bottleneck,
    "attention_pool.svg": attention_pool,
    "modified_resnet.svg": modified_resnet,
    "vit.svg": vit,
    "text_transformer.svg": text_transformer,
}


def main(out: Path = HERE) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with matplotlib.rc_context(RC):
        for name, draw in FIGURES.items():
            draw(out / name)
            written.append(out / name)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE,
        help="folder for the SVG files (default: here)",
    )
    for path in main(parser.parse_args().out):
        print(f"wrote {path}")
