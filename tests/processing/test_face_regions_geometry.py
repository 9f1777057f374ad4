"""The hand-written hull and point-in-polygon of face_regions.py (numpy only: Hub-shipped) agree with scipy's
ConvexHull and matplotlib's Path on random point sets."""

from __future__ import annotations

import numpy as np
from matplotlib.path import Path as PolygonPath
from scipy.spatial import ConvexHull

from microemo.processing.face_regions import _convex_hull, _inside_convex


def test_the_hull_has_scipys_vertices():
    rng = np.random.default_rng(0)
    for _ in range(50):
        points = rng.random((int(rng.integers(3, 40)), 2))
        ours = {tuple(p) for p in _convex_hull(points)}
        theirs = {tuple(points[i]) for i in ConvexHull(points).vertices}
        assert ours == theirs


def test_inside_agrees_with_matplotlib_path_away_from_the_edges():
    rng = np.random.default_rng(1)
    for _ in range(30):
        hull = _convex_hull(rng.random((12, 2)))
        queries = rng.random((400, 2))
        polygon = PolygonPath(np.vstack([hull, hull[:1]]))
        # Points within 1e-6 of an edge may go either way in either implementation: leave them out.
        near = polygon.contains_points(queries, radius=1e-6) != polygon.contains_points(queries, radius=-1e-6)
        ours, theirs = _inside_convex(hull, queries), polygon.contains_points(queries)
        assert np.array_equal(ours[~near], theirs[~near])
        assert theirs.any() and (~theirs).any()
