"""Figures that just show: the Figure wrapper (reprs, save), readable queue levels, the
aggregated and zoomable timeline, and explore plots whose labels stay inside the figure.

Traces here are built by hand with a fake clock (records of a 60 s run in milliseconds);
the real runs are in tests/test_views.py and tests/test_views_vad.py.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure as MplFigure
from matplotlib.text import Text

from spear_lab import explore
from spear_lab.abi.constants import EPOLLIN, EPOLLOUT
from spear_lab.trace import Trace
from spear_lab.views import (
    Figure,
    QueueView,
    TimelineView,
    queue_figure,
    segments_figure,
    timeline_figure,
)
from spear_lab.views.queues import log_fraction
from spear_lab.views.timeline import BINS, aggregate_spans

PNG = b"\x89PNG\r\n\x1a\n"


class Clock:
    """A settable clock for a Trace (seconds)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def queue_trace() -> Trace:
    """One rtasr fd whose send queue holds at most 960 B of a 1 MB cap; recv stays empty."""
    clock = Clock()
    tr = Trace(clock=clock)
    for k in range(50):
        clock.t += 0.02
        tr.note("g", 1002, "rtasr_queues", {"send_queue_bytes": 960 if k % 2 else 0,
                                             "max_send_queue_bytes": 1048576,
                                             "recv_queue_bytes": 0, "max_recv_queue_bytes": 1048576,
                                             "dropped_events": 0})
    return tr


def long_trace(seconds: float = 60.0, period: float = 0.01) -> Trace:
    """A guest whose fd 1001 toggles OUT every ``period`` s and IN every 10 periods, with one
    epoll_wait per period, for ``seconds``."""
    clock = Clock()
    tr = Trace(clock=clock)
    start = clock.t
    tr.hostcall("g", "spear_epoll_create", (), 1000, start, start + 1e-5)
    tr.hostcall("g", "rtasr_create", (), 1001, start, start + 1e-5)
    mask = 0
    n = int(seconds / period)
    for k in range(n):
        t = start + k * period
        clock.t = t
        new = (EPOLLOUT if k % 2 == 0 else 0) | (EPOLLIN if (k // 10) % 2 else 0)
        tr.readiness("g", 1001, mask, new)
        mask = new
        tr.hostcall("g", "spear_epoll_wait", (1000, 0, 8, 5), 1 if k % 7 else 0, t, t + period * 0.6)
    clock.t = start + seconds
    return tr


def drawn_bars(fig) -> int:
    """Rectangles drawn by broken_barh in every axis."""
    return sum(len(c.get_paths()) for ax in fig.axes for c in ax.collections
               if c.__class__.__name__ == "PolyCollection")


def agg_renderer(fig):
    """Draw ``fig`` on an Agg canvas; its renderer (for text extents)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def texts_outside(fig) -> list[str]:
    """Visible, non-empty texts of ``fig`` that reach outside the figure: tick labels (the
    ones drawn, through each axis' tight box) and every other text."""
    renderer = agg_renderer(fig)
    box = fig.bbox

    def outside(e) -> bool:
        return e.x0 < box.x0 - 1 or e.y0 < box.y0 - 1 or e.x1 > box.x1 + 1 or e.y1 > box.y1 + 1

    out = []
    tick_labels = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                tick_labels |= {id(tick.label1), id(tick.label2)}
            e = axis.get_tightbbox(renderer)
            if e is not None and outside(e):
                out.append(f"tick labels of {ax.get_title(loc='left') or ax.get_title()}")
    for t in fig.findobj(Text):
        if id(t) in tick_labels or not t.get_visible() or not t.get_text().strip():
            continue
        if t.get_clip_on() and (t.get_clip_box() is not None or t.get_clip_path() is not None):
            continue  # drawn clipped to its axes
        if outside(t.get_window_extent(renderer)):
            out.append(t.get_text())
    return out


# -- the Figure wrapper ---------------------------------------------------------------------

def test_figure_shows_as_a_picture_in_ipython_without_the_inline_backend():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    png_printers = shell.display_formatter.formatters["image/png"].type_printers
    assert MplFigure not in png_printers  # no %matplotlib inline: the case of the issue
    plain = MplFigure()
    plain.add_subplot()
    data, _ = shell.display_formatter.format(plain)
    assert "<Figure size" in data["text/plain"] and "image/png" not in data  # what users saw
    fig = timeline_figure(long_trace(2.0))
    data, _ = shell.display_formatter.format(fig)
    assert "<Figure size" not in data["text/plain"]
    assert data["image/png"][:8] == PNG
    m = re.search(r'src="data:image/png;base64,([^"]+)"', data["text/html"])
    assert m and base64.b64decode(m.group(1)) == data["image/png"]  # one render, both reprs


def test_figure_renders_in_a_fresh_kernel_with_no_magic():
    code = textwrap.dedent("""
        import json, queue
        from jupyter_client.manager import start_new_kernel
        km, kc = start_new_kernel(kernel_name="python3")
        try:
            src = ("from spear_lab.trace import Trace\\nfrom spear_lab.views import timeline_figure\\n"
                   "tr = Trace(); tr.readiness('g', 1000, 0, 4)\\ntimeline_figure(tr)")
            msg_id = kc.execute(src)
            found = None
            while True:
                msg = kc.get_iopub_msg(timeout=60)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "execute_result":
                    found = msg["content"]["data"]
                if msg["msg_type"] == "error":
                    found = {"error": msg["content"]["evalue"]}
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    break
            print(json.dumps({k: (v[:200] if isinstance(v, str) else v) for k, v in (found or {}).items()}))
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert "error" not in data, data
    assert "image/png" in data and "text/html" in data and data["text/html"].startswith("<img")
    assert "<Figure size" not in data["text/plain"]


def test_save_writes_png_svg_html_and_refuses_other_suffixes(tmp_path):
    fig = queue_figure(queue_trace())
    assert isinstance(fig, Figure) and isinstance(fig, MplFigure)
    assert fig.save(tmp_path / "q.png").read_bytes()[:8] == PNG
    root = ET.fromstring((tmp_path / "q.svg").read_bytes() if fig.save(tmp_path / "q.svg") else b"")
    assert root.tag.endswith("svg")
    page = fig.save(tmp_path / "Q.HTML").read_text()
    assert page.startswith("<!DOCTYPE html>") and "</html>" in page
    m = re.search(r'src="data:image/png;base64,([^"]+)"', page)
    assert m and base64.b64decode(m.group(1))[:8] == PNG
    for bad in ("q.jpg", "q"):
        with pytest.raises(ValueError, match=r"\.jpg|without suffix"):
            fig.save(tmp_path / bad)


def test_figures_stay_out_of_pyplot():
    before = plt.get_fignums()
    tr = long_trace(1.0)
    figs = [timeline_figure(tr), queue_figure(queue_trace()), segments_figure(tr, ["g"])]
    assert plt.get_fignums() == before
    assert all(isinstance(f, Figure) for f in figs)


# -- queues -----------------------------------------------------------------------------------

def test_a_small_level_is_visible_in_the_figure_and_the_bars():
    tr = queue_trace()
    fig = queue_figure(tr)
    assert fig.idle == [("g", 1002, "recv")] and ("g", 1002, "recv") in fig.series
    assert fig.peaks[("g", 1002, "send")] == 960
    ax = fig.axes[0]  # the one panel drawn: the send queue
    assert "send queue" in ax.get_title(loc="left")
    lo, hi = ax.get_ylim()
    share = (960 - lo) / (hi - lo)
    fig.to_png()
    height_px = ax.bbox.height * share
    assert share > 0.5 and height_px > 50, (share, height_px)  # 960 B of 1 MB: most of the panel
    texts = " ".join(t.get_text() for t in fig.findobj(Text))
    assert "peak 960 B" in texts and "cap 1 MB" in texts and "never held a byte" in texts
    # the figure is short: one panel and a line, not two full panels with cap lines
    assert fig.get_figheight() < 4.0
    view = QueueView(tr, live=False)
    bar, text = view.rows["g:1002:send"]
    assert bar.value == pytest.approx(log_fraction(960, 1048576)) and bar.value > 0.45
    assert "peak 960 B" in text.value and "0.092%" in text.value
    assert QueueView(tr, live=False, scale="linear").rows["g:1002:send"][0].value < 0.001
    snap = view.snapshot_html()
    assert "<table" in snap and re.search(r"width:4\d\.\d%", snap) and "log scale" in snap
    with pytest.raises(ValueError):
        QueueView(tr, live=False, scale="cubic")


def test_queue_figure_log_scale_and_empty_trace():
    fig = queue_figure(queue_trace(), scale="log")
    assert fig.axes[0].get_yscale() == "log"
    empty = queue_figure(Trace())
    assert "no queue levels recorded yet" in " ".join(t.get_text() for t in empty.findobj(Text))
    with pytest.raises(ValueError):
        queue_figure(Trace(), scale="sideways")


# -- the timeline -----------------------------------------------------------------------------

def test_aggregate_spans_bins_many_and_keeps_few():
    spans = [(k * 0.01, k * 0.01 + 0.005) for k in range(6000)]  # 50% duty for 60 s
    bars = aggregate_spans(spans, 0.0, 60.0, bins=200)
    assert 1 <= len(bars) <= 200
    assert all(0.4 < d < 0.6 for _, _, d in bars)
    few = aggregate_spans(spans[:20], 0.0, 60.0)
    assert few == [(a, b, 1.0) for a, b in spans[:20]]
    assert aggregate_spans(spans, 5.0, 5.0) == []


def test_a_long_run_draws_a_bounded_number_of_bars_and_zoom_shows_each_wait():
    tr = long_trace(60.0)
    full = timeline_figure(tr)
    lanes = {lane.label: lane for lane in full.lanes}
    out = lanes["g: fd 1001 rtasr OUT"]
    assert len(out.spans) == 3000  # the raw data stays complete
    assert full.aggregated and 0 < len(out.drawn) <= BINS
    assert drawn_bars(full) <= BINS * len(full.lanes)
    markers = sum(len(line.get_xdata()) for line in full.axes[0].get_lines())
    assert markers <= 3 * BINS  # not 6000 wait returns
    assert "binned" in full.axes[0].get_title(loc="left")
    zoom = timeline_figure(tr, t0=10.0, t1=10.2)
    zl = {lane.label: lane for lane in zoom.lanes}
    z_out = zl["g: fd 1001 rtasr OUT"]
    assert not zoom.aggregated and zoom.t_range == (10.0, 10.2)
    assert all(d == 1.0 for _, _, d in z_out.drawn) and 9 <= len(z_out.drawn) <= 11
    widest = max(b - a for a, b, _ in z_out.drawn)
    assert widest <= 0.0101 < max(b - a for a, b, _ in out.drawn)
    wait = zl["g: epoll_wait"]
    shown = sum(len(line.get_xdata()) for line in zoom.axes[0].get_lines())
    assert shown == sum(1 for t, _ in wait.returns if 10.0 <= t <= 10.2) > 10  # every wait
    assert drawn_bars(zoom) < drawn_bars(full)
    with pytest.raises(ValueError):
        timeline_figure(tr, t0=3.0, t1=2.0)


def test_timeline_view_zooms_and_follows():
    tr = long_trace(30.0)
    view = TimelineView(tr, live=False, window_s=None)
    assert view.widget.value[:8] == PNG and view.following
    assert view.slider.max == pytest.approx(30.0, abs=0.1)
    full_bars = sum(len(lane.drawn) for lane in view.lanes)
    view.zoom(5.0, 5.1)
    assert not view.following and not view.follow_box.value
    assert view.slider.value == pytest.approx((5.0, 5.1), abs=0.05)
    zoomed = {lane.label: lane for lane in view.lanes}
    assert all(d == 1.0 for _, _, d in zoomed["g: fd 1001 rtasr OUT"].drawn)
    assert sum(len(lane.drawn) for lane in view.lanes) < full_bars
    view.slider.value = (6.0, 6.2)  # what dragging the slider does
    assert view.range == pytest.approx((6.0, 6.2), abs=0.05)
    view.follow_box.value = True
    assert view.following and view.range == pytest.approx((0.0, 30.0), abs=0.1)
    snap = view.snapshot_html()
    assert snap.startswith("<img") and "base64," in snap
    view.close()


# -- explore plots ----------------------------------------------------------------------------

def _results():
    from test_explore_sweep import synthetic_results  # the sweep tests' fake replayer

    return synthetic_results()


def test_explore_plots_keep_every_label_inside_the_figure():
    res = _results()
    for fig in (explore.plot_tradeoff(res, x="latency_p95_ms", y="clipped_words", bound=2000),
                explore.plot_tradeoff(res, x="latency_p95_ms", y="segments"),
                explore.plot_metric(res, "segments", x="silence_ms", hue="threshold"),
                explore.plot_lanes(res)):
        assert isinstance(fig, Figure)
        assert texts_outside(fig) == [], fig.kind


def test_plot_tradeoff_labels_stay_inside_the_plot_area():
    res = _results()  # the right-most points and the bound: where labels used to run off
    for bound in (None, 1800, 2000):
        fig = explore.plot_tradeoff(res, bound=bound)
        r = agg_renderer(fig)
        ax = fig.axes[0]
        b = ax.bbox
        extents = [(t.get_text(), t.get_window_extent(r)) for t in ax.texts]
        over = [text for text, e in extents if e.x0 < b.x0 or e.x1 > b.x1 or e.y0 < b.y0 or e.y1 > b.y1]
        assert len(ax.texts) >= 4 and over == [], (bound, over)


def test_plot_metric_curves_on_top_of_each_other_stay_distinguishable():
    res = _results()
    fig = explore.plot_metric(res, "latency_p95_ms", x="silence_ms", hue="threshold")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2
    a, b = lines
    assert list(a.get_ydata()) == list(b.get_ydata())  # the same values: one would hide the other
    assert (a.get_marker(), a.get_linestyle()) != (b.get_marker(), b.get_linestyle())
    assert all(xa != xb for xa, xb in zip(a.get_xdata(), b.get_xdata()))  # nudged apart


def test_plot_tradeoff_coincident_points_are_all_visible():
    res = _results()
    fig = explore.plot_tradeoff(res, x="latency_p95_ms", y="clipped_words", bound=2000)
    sizes = sorted(float(c.get_sizes()[0]) for c in fig.axes[0].collections
                   if c.__class__.__name__ == "PathCollection" and c.get_facecolors().size)
    assert len(sizes) == 4 and len(set(sizes)) >= 2  # coincident pairs: one inside the other
    labels = [t for t in fig.axes[0].texts if "t0." in t.get_text()]
    r = agg_renderer(fig)
    boxes = [t.get_window_extent(r) for t in labels]
    assert not any(boxes[i].overlaps(boxes[j]) for i in range(len(boxes)) for j in range(i))
