"""ModelLayers: the one check of the given layers against a model, with the training layers named."""
import pytest

from lvpcnet_core.compatibility import ModelLayers
from lvpcnet_core.errors import LvpcError

NAMES = [f"{w} nm" for w in range(400, 1120, 5)]  # 144 bands


def test_a_band_count_mismatch_names_the_training_layer_and_its_bands():
    expects = ModelLayers(("hs", "lidar"), {"hs": 144, "lidar": 1}, frozenset({"lidar->hs"}),
                          {"hs": {"file": "flight_07.tif", "bands": 144, "band_names": NAMES}})
    with pytest.raises(LvpcError) as error:
        expects.check_bands({"hs": 4, "lidar": 1})
    assert str(error.value) == ("layer HS has 4 bands but the model was trained with 144 bands for HS (flight_07.tif: "
                                "400 nm, 405 nm, 410 nm, ..., 1115 nm): give the same kind of image as in training")
    with pytest.raises(LvpcError, match=r"1 bands for LIDAR: give"):  # not recorded: nothing to name
        expects.check_bands({"lidar": 2})
    expects.check_bands({"hs": 144})
