"""Small thermal images of machines (chapter 05_data; images in chapter 14).

A frame is a ``size x size`` float32 array of temperatures in °C, as a low-resolution
thermal camera (e.g. a 32x32 thermopile array) would report: a room background with a
gentle gradient, a warm machine housing (a rounded rectangle), a warm motor section, and
at each bearing a spot whose excess temperature is the planted fault signal. The optics
blur the scene, the sensor adds temporal noise (NETD) and a fixed column pattern, and the
camera's aim wobbles by up to a pixel between frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["ThermalScene", "draw_scene", "thermal_frame", "column_pattern"]


@dataclass(frozen=True)
class ThermalScene:
    """What a camera sees of one machine (positions in pixels of a ``size`` frame)."""

    size: int = 32
    ambient_c: float = 24.0
    housing_c: float = 38.0          # housing surface temperature
    box: tuple = (8.0, 10.0, 24.0, 22.0)  # housing x0, y0, x1, y1
    motor: tuple = (12.0, 16.0, 3.0)      # warm motor section: x, y, radius
    motor_excess_c: float = 6.0
    bearings: tuple = ((9.5, 16.0), (22.5, 16.0))  # drive end, non-drive end
    netd_c: float = 0.08             # temporal noise (°C)
    column_c: float = 0.1            # fixed-pattern column offsets (°C)


def draw_scene(rng: np.random.Generator, size: int = 32) -> ThermalScene:
    """A random machine placement and temperatures for one camera."""
    s = size / 32.0
    cx, cy = 16.0 * s + rng.uniform(-2, 2) * s, 16.0 * s + rng.uniform(-2, 2) * s
    w, h = rng.uniform(12, 17) * s, rng.uniform(8, 12) * s
    box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    return ThermalScene(
        size=size, ambient_c=float(rng.normal(23.0, 2.0)), housing_c=float(rng.normal(38.0, 4.0)),
        box=tuple(float(v) for v in box),
        motor=(float(cx - 0.15 * w), float(cy), float(0.22 * min(w, h))),
        motor_excess_c=float(rng.uniform(3.0, 8.0)),
        bearings=((float(box[0] + 1.5 * s), float(cy)), (float(box[2] - 1.5 * s), float(cy))),
    )


def thermal_frame(rng: np.random.Generator, scene: ThermalScene, hotspot_c: float = 0.0,
                  bearing: int = 0, load: float = 1.0, noise: float = 1.0,
                  column_pattern: np.ndarray | None = None, motor_extra_c: float = 0.0) -> np.ndarray:
    """One frame (°C, float32). ``hotspot_c`` is the bearing's excess temperature
    (0 for a healthy bearing); ``load`` scales the housing's and motor's excess heat;
    ``motor_extra_c`` heats the motor section further (an overheating winding)."""
    n = scene.size
    shift = rng.uniform(-1.0, 1.0, 2) if noise > 0 else np.zeros(2)
    y, x = np.mgrid[0:n, 0:n].astype(float)
    x, y = x - shift[0], y - shift[1]
    img = scene.ambient_c + 0.6 * (0.5 - y / n)  # warmer air towards the top of the view
    x0, y0, x1, y1 = scene.box
    r = 2.0
    dx = np.maximum(np.maximum(x0 + r - x, x - (x1 - r)), 0.0)
    dy = np.maximum(np.maximum(y0 + r - y, y - (y1 - r)), 0.0)
    inside = np.clip(r + 0.5 - np.hypot(dx, dy), 0.0, 1.0)
    img = img + inside * load * (scene.housing_c - scene.ambient_c)
    mx, my, mr = scene.motor
    img = img + inside * load * (scene.motor_excess_c + motor_extra_c) * np.exp(-((x - mx) ** 2 + (y - my) ** 2) / (2 * mr ** 2))
    for k, (bx, by) in enumerate(scene.bearings):
        base = 1.5 * load
        extra = hotspot_c if k == bearing else 0.0
        img = img + (base + extra) * np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * 1.4 ** 2))
    img = ndimage.gaussian_filter(img, 0.6, mode="nearest")
    if noise > 0:
        img = img + noise * scene.netd_c * rng.standard_normal((n, n))
        if column_pattern is not None:
            img = img + noise * column_pattern[None, :]
    return img.astype(np.float32)


def column_pattern(rng: np.random.Generator, scene: ThermalScene) -> np.ndarray:
    """The camera's fixed column offsets (°C), constant over its frames."""
    return scene.column_c * rng.standard_normal(scene.size)

