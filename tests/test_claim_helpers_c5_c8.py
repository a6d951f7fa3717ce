"""The numeric helpers claims C5-C8 use (mcis_claims.readouts), against hand-computed values."""
import numpy as np
import pytest
from scipy import stats as sps

from mcis_claims import readouts
from mcis_claims.errors import InputError


class TestPlateauEndIndex:
    def test_last_point_before_the_first_crossing(self):
        # first value >= 0.1 is at index 3, so the plateau ends at index 2
        assert readouts.plateau_end_index([0.0, 0.01, 0.05, 0.2, 1.0], 0.1) == 2

    def test_reaching_the_threshold_exactly_counts_as_crossing(self):
        assert readouts.plateau_end_index([0.0, 0.1, 0.3], 0.1) == 0

    def test_never_crossing_gives_the_last_index(self):
        assert readouts.plateau_end_index([0.0, 0.01, 0.02], 0.1) == 2

    def test_crossing_at_the_first_point_gives_minus_one(self):
        assert readouts.plateau_end_index([0.5, 0.6], 0.1) == -1

    def test_the_first_crossing_wins_over_a_later_dip(self):
        assert readouts.plateau_end_index([0.0, 0.2, 0.05, 0.3], 0.1) == 0

    def test_batched_curves(self):
        curves = np.array([[0.0, 0.01, 0.05, 0.2], [0.0, 0.2, 0.3, 0.4], [0.0, 0.0, 0.0, 0.0]])
        np.testing.assert_array_equal(readouts.plateau_end_index(curves, 0.1), [2, 0, 3])

    def test_nan_is_an_error(self):
        with pytest.raises(InputError, match="NaN"):
            readouts.plateau_end_index([0.0, np.nan], 0.1)


class TestNearestGridIndex:
    def test_nearest(self):
        radii = [0.0, 0.02, 0.0264, 0.0348, 0.186, 0.246, 0.325]
        assert readouts.nearest_grid_index(radii, 0.25) == 5  # |0.246 - 0.25| = 0.004 is the smallest

    def test_tie_takes_the_smaller_radius(self):
        assert readouts.nearest_grid_index([0.0, 2.0, 4.0], 3.0) == 1

    def test_beyond_the_grid_clamps_to_an_end(self):
        assert readouts.nearest_grid_index([0.0, 1.0, 2.0], 10.0) == 2
        assert readouts.nearest_grid_index([0.0, 1.0, 2.0], -1.0) == 0

    def test_bad_grid(self):
        with pytest.raises(InputError, match="non-empty 1-D"):
            readouts.nearest_grid_index([], 0.5)


class TestStepSpearman:
    def test_hand_computed(self):
        # steps x = [1, 2, 3], y = [2, 1, 6]; ranks [1, 2, 3] and [2, 1, 3];
        # centred [-1, 0, 1] and [0, -1, 1]: sum of products 1, norms sqrt(2 * 2) = 2 -> 0.5
        assert readouts.step_spearman([0, 1, 3, 6], [0, 2, 3, 9]) == pytest.approx(0.5)

    def test_perfect_and_reversed(self):
        assert readouts.step_spearman([0, 1, 3, 6], [0, 10, 30, 100]) == pytest.approx(1.0)
        assert readouts.step_spearman([0, 1, 3, 6], [0, 3, 5, 6]) == pytest.approx(-1.0)

    def test_ties_use_average_ranks(self):
        # steps x = [1, 1, 2], y = [1, 2, 3]; ranks [1.5, 1.5, 3] and [1, 2, 3];
        # centred [-0.5, -0.5, 1] and [-1, 0, 1]: products sum 1.5; norms sqrt(1.5 * 2) -> 1.5 / sqrt(3)
        assert readouts.step_spearman([0, 1, 2, 4], [0, 1, 3, 6]) == pytest.approx(1.5 / np.sqrt(3))

    def test_constant_steps_give_nan(self):
        assert np.isnan(readouts.step_spearman([0, 1, 2, 3], [0, 5, 7, 20]))

    def test_rows_agree_with_scipy(self):
        rng = np.random.default_rng(0)
        a, b = rng.random((6, 12)).cumsum(-1), rng.random((6, 12)).cumsum(-1)
        expected = [sps.spearmanr(np.diff(x), np.diff(y)).statistic for x, y in zip(a, b)]
        np.testing.assert_allclose(readouts.step_spearman(a, b), expected, rtol=1e-12)

    def test_shape_mismatch(self):
        with pytest.raises(InputError, match="same shape"):
            readouts.step_spearman([0, 1, 2, 3], [0, 1, 2])
