"""The before/after viewer: modes, synchronised zoom/pan, divider drag, hold-Space toggle,
rendering only the visible region at screen resolution, and the change overlay."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

pytestmark = [pytest.mark.gui, pytest.mark.timeout(60)]


class FakeSource:
    """A ``width``×``height`` gradient photo whose restored side is its negative; records every
    crop the viewer asks for."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height, self.revision = width, height, 0
        self.requests: list[tuple[str, slice, slice, int]] = []

    def _crop(self, rows: slice, cols: slice, step: int) -> np.ndarray:
        y = np.arange(rows.start, rows.stop, step, dtype=np.float32)[:, None] / self.height
        x = np.arange(cols.start, cols.stop, step, dtype=np.float32)[None, :] / self.width
        return np.stack(np.broadcast_arrays(x, y, 0.5 * (x + y)), axis=2).astype(np.float32)

    def before(self, rows, cols, step):
        self.requests.append(("before", rows, cols, step))
        return self._crop(rows, cols, step)

    def after(self, rows, cols, step):
        self.requests.append(("after", rows, cols, step))
        return 1.0 - self._crop(rows, cols, step)

    def change_map(self, step):
        self.requests.append(("change_map", slice(0, self.height), slice(0, self.width), step))
        return np.ones((-(-self.height // step), -(-self.width // step)), np.float32) * 0.5


@pytest.fixture
def viewer(qtbot):
    from app.viewer import BeforeAfterViewer

    v = BeforeAfterViewer()
    qtbot.addWidget(v)
    v.resize(800, 500)
    v.show()
    qtbot.waitExposed(v)
    return v


def test_modes_switch_and_render_the_right_sides(viewer):
    from app.viewer import ViewMode

    src = FakeSource(400, 300)
    viewer.set_source(src)
    for mode in ViewMode:
        src.requests.clear()
        viewer.set_mode(mode)
        viewer.repaint()
        sides = {r[0] for r in src.requests}
        assert viewer.mode() == mode
        assert sides == ({"after"} if mode in (ViewMode.TOGGLE, ViewMode.UNCERTAINTY) else {"before", "after"})
        assert set(viewer.panes()) == ({"before", "after"} if mode == ViewMode.SIDE_BY_SIDE else {"main"})
    # Holding Space shows the original, releasing it goes back.
    viewer.set_mode(ViewMode.TOGGLE)
    src.requests.clear()
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    QTest.keyPress(viewer, Qt.Key.Key_Space)
    assert viewer.show_original()
    viewer.repaint()
    assert {r[0] for r in src.requests} == {"before"}
    QTest.keyRelease(viewer, Qt.Key.Key_Space)
    assert not viewer.show_original()


def test_side_by_side_zoom_and_pan_stay_synchronised(viewer, qtbot):
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtTest import QTest

    from app.viewer import ViewMode

    viewer.set_source(FakeSource(1200, 900))
    viewer.set_mode(ViewMode.SIDE_BY_SIDE)
    assert viewer.visible_region("before") == viewer.visible_region("after")
    viewer.set_zoom(2.0)
    viewer.pan_by(-150, 40)
    before, after = viewer.visible_region("before"), viewer.visible_region("after")
    assert before == after and not before.empty
    assert (before.right - before.left) < 1200  # zoomed in: only part of the photo is visible
    # Drag with the mouse inside the left pane: both panes follow.
    c0 = viewer.center()
    QTest.mousePress(viewer, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(100, 200))
    QTest.mouseMove(viewer, QPoint(160, 230))
    QTest.mouseRelease(viewer, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(160, 230))
    c1 = viewer.center()
    assert c1.x() == pytest.approx(c0.x() - 60 / 2.0) and c1.y() == pytest.approx(c0.y() - 30 / 2.0)
    assert viewer.visible_region("before") == viewer.visible_region("after")
    # Zooming around a point keeps the image point under it in place.
    pane = viewer.panes()["after"]
    anchor = QPointF(pane.left() + 50, pane.top() + 80)
    image_point = viewer._to_image(anchor, pane)
    viewer.zoom_by(1.25, anchor)
    assert viewer.zoom() == pytest.approx(2.5)
    moved = viewer._to_image(anchor, pane)
    assert moved.x() == pytest.approx(image_point.x()) and moved.y() == pytest.approx(image_point.y())
    viewer.fit()
    assert viewer.is_fit() and viewer.visible_region("before") == viewer.visible_region("after")


def test_large_photo_renders_only_the_visible_part_at_screen_resolution(viewer):
    from app.viewer import ViewMode

    src = FakeSource(6000, 4000)  # 24 MP
    viewer.set_source(src)
    viewer.set_mode(ViewMode.SPLIT)
    viewer.repaint()
    dpr = viewer.devicePixelRatioF()
    for _side, rows, cols, step in src.requests:
        h = len(range(rows.start, rows.stop, step))
        w = len(range(cols.start, cols.stop, step))
        assert w <= 2 * viewer.width() * dpr and h <= 2 * viewer.height() * dpr  # screen-sized, not 24 MP
    assert all(r[3] >= 4 for r in src.requests)
    # At 100 % only the visible 800x500 window of the photo is composed, at full resolution.
    src.requests.clear()
    viewer.set_zoom(1.0)
    viewer.repaint()
    for _side, rows, cols, step in src.requests:
        assert step == 1
        assert cols.stop - cols.start <= viewer.width() + 2 and rows.stop - rows.start <= viewer.height() + 2
    # A repaint with nothing changed reuses the cached crops.
    renders = viewer.renders
    viewer.repaint()
    assert viewer.renders == renders
    src.revision += 1  # the restored side changed (e.g. a slider): only that side is re-composed
    src.requests.clear()
    viewer.repaint()
    assert [r[0] for r in src.requests] == ["after"]


def test_divider_drag_and_overlay(viewer):
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtTest import QTest

    from app.viewer import ViewMode

    src = FakeSource(400, 300)
    viewer.set_source(src)
    viewer.set_mode(ViewMode.SPLIT)
    x = int(viewer.divider_x())
    QTest.mousePress(viewer, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(x, 250))
    QTest.mouseMove(viewer, QPoint(200, 250))
    QTest.mouseRelease(viewer, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(200, 250))
    assert viewer.split_position() == pytest.approx(200 / viewer.width(), abs=0.01)
    assert viewer.is_fit()  # dragging the divider does not pan
    # Left of the divider shows the original, right of it the restored side (the fake's negative).
    img = viewer.grab().toImage()
    pane = viewer.panes()["main"]
    for x, side in ((150, "before"), (600, "after")):
        p = viewer._to_image(QPointF(x, 250), pane)
        expected = src._crop(slice(int(p.y()), int(p.y()) + 1), slice(int(p.x()), int(p.x()) + 1), 1)[0, 0]
        if side == "after":
            expected = 1.0 - expected
        got = np.array(img.pixelColor(x, 250).getRgb()[:3]) / 255.0
        assert np.abs(got - expected).max() < 0.02, (side, got, expected)
    src.requests.clear()
    viewer.set_overlay(True)
    viewer.repaint()
    assert any(r[0] == "change_map" for r in src.requests)
    viewer.set_overlay(False)


def test_moving_slider_renders_half_resolution_then_refines(viewer, qtbot):
    src = FakeSource(3000, 2000)
    viewer.set_source(src)
    viewer.repaint()
    full_step = viewer.visible_region("after").step
    src.revision += 1
    viewer.refresh(interactive=True)  # what a slider drag does
    src.requests.clear()
    viewer.repaint()
    assert viewer.is_coarse() and [r[3] for r in src.requests if r[0] == "after"] == [2 * full_step]
    src.requests.clear()
    qtbot.waitUntil(lambda: not viewer.is_coarse(), timeout=2000)  # settles by itself
    viewer.repaint()  # (the settle may already have painted; then this one hits the cache)
    assert [r[3] for r in src.requests if r[0] == "after"] == [full_step]
    assert viewer.rendered_image("after").width() == len(range(0, 3000, full_step))
