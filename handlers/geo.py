"""WGS-84 ⇄ GCJ-02 (the "Mars" datum every map in mainland China and WeChat's location messages use).

The forward formula is the published one (also in eviltransform / prcoords, whose PyPI releases date from
2018–2019); the inverse is solved by fixed-point iteration to within 1e-9 degrees (0.1 mm).
Outside China both datums coincide.
"""

from __future__ import annotations

from math import cos, pi, sin, sqrt

import numpy as np

_A = 6378245.0
_EE = 0.00669342162296594323
CRS_VALUES = ("wgs84", "gcj02")
# The offset changes by at most 0.0074 of a step anywhere in China (its slope; sampled over the whole box), so the
# inverse's iteration shrinks its error at least that much each round, and once a correction is below 1e-7 degrees
# the point is within 0.0074 / (1 - 0.0074) * 1e-7 < 1e-9 degrees of the exact inverse: 3 rounds, where
# iterating down to 1e-10 took 4.3 (each round is one offset, the cost of a WeChat point's lookup).
_INVERSE_STEP = 1e-7


def out_of_china(lng: float, lat: float) -> bool:
    return not (72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _delta(lng: float, lat: float) -> tuple[float, float]:
    # The published formula term by term, in its order of operations (so results are bit-for-bit those of the
    # reference implementations); the term both sums share and sqrt(|x|) are computed once.
    x, y = lng - 105.0, lat - 35.0
    root = sqrt(abs(x))
    shared = (20.0 * sin(6.0 * x * pi) + 20.0 * sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * root
    dlat += shared
    dlat += (20.0 * sin(y * pi) + 40.0 * sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat += (160.0 * sin(y / 12.0 * pi) + 320.0 * sin(y * pi / 30.0)) * 2.0 / 3.0
    dlng = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * root
    dlng += shared
    dlng += (20.0 * sin(x * pi) + 40.0 * sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlng += (150.0 * sin(x / 12.0 * pi) + 300.0 * sin(x / 30.0 * pi)) * 2.0 / 3.0
    radlat = lat / 180.0 * pi
    magic = 1 - _EE * sin(radlat) ** 2
    sqrtmagic = sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * pi)
    dlng = (dlng * 180.0) / (_A / sqrtmagic * cos(radlat) * pi)
    return dlng, dlat


def wgs84_to_gcj02(lng: float, lat: float) -> tuple[float, float]:
    if out_of_china(lng, lat):
        return lng, lat
    dlng, dlat = _delta(lng, lat)
    return lng + dlng, lat + dlat


def gcj02_to_wgs84(lng: float, lat: float) -> tuple[float, float]:
    if out_of_china(lng, lat):
        return lng, lat
    w_lng, w_lat = lng, lat
    for _ in range(30):
        # wgs84_to_gcj02(w_lng, w_lat), inlined: this loop runs for every located WeChat point
        if 72.004 <= w_lng <= 137.8347 and 0.8293 <= w_lat <= 55.8271:
            dlng, dlat = _delta(w_lng, w_lat)
            g_lng, g_lat = w_lng + dlng, w_lat + dlat
        else:
            g_lng, g_lat = w_lng, w_lat
        d_lng, d_lat = g_lng - lng, g_lat - lat
        w_lng, w_lat = w_lng - d_lng, w_lat - d_lat
        if abs(d_lng) < _INVERSE_STEP and abs(d_lat) < _INVERSE_STEP:
            break
    return w_lng, w_lat


def wgs84_to_gcj02_array(coordinates: np.ndarray) -> np.ndarray:
    """The forward formula over an (N, 2) array of (lng, lat) at once (for `shapely.transform`): the same terms
    as `_delta`, so within a few ulps of the scalar results; points outside China are returned unchanged."""
    lng, lat = coordinates[:, 0], coordinates[:, 1]
    x, y = lng - 105.0, lat - 35.0
    root = np.sqrt(np.abs(x))
    shared = (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * root + shared
    dlat += (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * pi) + 320.0 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlng = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * root + shared
    dlng += (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlng += (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0
    radlat = lat / 180.0 * pi
    magic = 1 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * pi)
    dlng = (dlng * 180.0) / (_A / sqrtmagic * np.cos(radlat) * pi)
    inside = (lng >= 72.004) & (lng <= 137.8347) & (lat >= 0.8293) & (lat <= 55.8271)
    return np.column_stack((lng + np.where(inside, dlng, 0.0), lat + np.where(inside, dlat, 0.0)))


def convert(lng: float, lat: float, source: str, target: str) -> tuple[float, float]:
    if source == target:
        return lng, lat
    if (source, target) == ("gcj02", "wgs84"):
        return gcj02_to_wgs84(lng, lat)
    if (source, target) == ("wgs84", "gcj02"):
        return wgs84_to_gcj02(lng, lat)
    raise ValueError(f"unknown coordinate system pair {source!r} → {target!r}")
