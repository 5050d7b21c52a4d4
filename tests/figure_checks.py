"""Layout checks the figure tests share: drawn at the size they are saved, no text leaves the figure,
and the value labels written on an axes stay inside it, clear of each other and of the legends."""

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

SLACK = 1.0  # pixels: antialiasing and rounding at the edges


def _outer(fig: Figure, renderer):
    """(name, box) of every axes as drawn (its ticks, labels, titles and annotations) and of the
    figure's own texts and legends."""
    for ax in fig.axes:
        yield f"axes {ax.get_title() or ax.get_ylabel()!r}", ax.get_tightbbox(renderer)
    for text in [*fig.texts, fig._suptitle, fig._supxlabel, fig._supylabel]:
        if text is not None and text.get_visible() and text.get_text():
            yield f"text {text.get_text()!r}", text.get_window_extent(renderer)
    for legend in fig.legends:
        yield "figure legend", legend.get_window_extent(renderer)


def _overlap(a: Bbox, b: Bbox) -> bool:
    """Whether two boxes share more than their edges (and the slack)."""
    return (a.x0 < b.x1 - SLACK and b.x0 < a.x1 - SLACK and a.y0 < b.y1 - SLACK
            and b.y0 < a.y1 - SLACK)  # fmt: skip


def _inside(inner: Bbox, outer: Bbox) -> bool:
    return (inner.x0 >= outer.x0 - SLACK and inner.y0 >= outer.y0 - SLACK and inner.x1 <= outer.x1 + SLACK
            and inner.y1 <= outer.y1 + SLACK)  # fmt: skip


def assert_texts_clear(fig: Figure) -> None:
    """Draw ``fig`` and check its text: every axes as drawn (tick labels, axis labels, titles,
    annotations) and the figure's titles, notes and legends inside the figure; each axes' annotations
    (value labels) inside that axes' frame, not overlapping each other, and not under a legend; the
    figure's titles, notes and legends off every axes."""
    canvas = FigureCanvasAgg(fig)  # a figure made without pyplot has no canvas that draws
    canvas.draw()
    renderer = canvas.get_renderer()
    page = fig.bbox
    outer = list(_outer(fig, renderer))
    for name, box in outer:
        assert _inside(box, page), f"{name} leaves the figure: {box} not in {page}"
    drawn = [(name, box) for name, box in outer if name.startswith("axes ")]
    for name, box in outer:
        if not name.startswith("axes "):  # the figure's own notes and legends keep off every axes
            for axes, abox in drawn:
                assert not _overlap(box, abox), f"{name} overlaps {axes}"
    legends = [lg.get_window_extent(renderer) for lg in fig.legends]
    legends += [ax.get_legend().get_window_extent(renderer) for ax in fig.axes if ax.get_legend()]
    for ax in fig.axes:
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in ax.texts if t.get_visible() and t.get_text()]
        for name, box in boxes:
            assert _inside(box, ax.bbox), f"label {name!r} leaves its axes: {box} not in {ax.bbox}"
            for legend in legends:
                assert not _overlap(box, legend), f"label {name!r} lies under a legend"
        for i, (name, box) in enumerate(boxes):
            for other, obox in boxes[i + 1:]:
                assert not _overlap(box, obox), f"labels {name!r} and {other!r} overlap"
