"""Orientation markers from Image Orientation (Patient): the letters at each edge."""

import math

import pytest

from workflow.imaging.orientation import markers


@pytest.mark.parametrize(("orientation", "expected"), [
    ([1, 0, 0, 0, 1, 0], {"left": "R", "right": "L", "top": "A", "bottom": "P"}),  # axial
    ([0, 1, 0, 0, 0, -1], {"left": "A", "right": "P", "top": "H", "bottom": "F"}),  # sagittal
    ([1, 0, 0, 0, 0, -1], {"left": "R", "right": "L", "top": "H", "bottom": "F"}),  # coronal
    ([-1, 0, 0, 0, -1, 0], {"left": "L", "right": "R", "top": "P", "bottom": "A"}),  # prone
    (["1", "0", "0", "0", "1", "0"], {"left": "R", "right": "L", "top": "A", "bottom": "P"}),
], ids=["axial", "sagittal", "coronal", "axial-flipped", "strings"])
def test_each_edge_is_named_by_the_patient_direction_it_faces(orientation, expected):
    assert markers(orientation) == expected


def test_an_oblique_slice_names_the_strongest_axis_first():
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    found = markers([c, s, 0, -s, c, 0])  # axial, turned 30° about the head-foot axis
    assert found["right"] == "LP" and found["left"] == "RA"
    assert found["bottom"] == "PR" and found["top"] == "AL"


@pytest.mark.parametrize("orientation", [
    [1, 0.05, 0, 0, 0.99, -0.1],
    [1, 0, 0, 0, 0.9483237, -0.3173047],  # tests/data's GE head CT: 18.5° gantry tilt
])
def test_a_tilted_axial_slice_reads_as_axial(orientation):
    assert markers(orientation) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}


@pytest.mark.parametrize("bad", [None, [], [1, 0, 0], [0, 0, 0, 0, 1, 0],
                                 ["x", 0, 0, 0, 1, 0], [float("nan")] * 6, 7])
def test_a_missing_or_malformed_orientation_gives_no_markers(bad):
    assert markers(bad) is None
