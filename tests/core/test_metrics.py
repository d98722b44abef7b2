import numpy as np
from sklearn.metrics import cohen_kappa_score

from lvpcnet_core.metrics import confusion, summarise


def test_summary_against_sklearn_and_hand_values():
    ref = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    pred = np.array([0, 0, 1, 1, 1, 2, 2, 0, 2, 2])
    s = summarise(confusion(ref, pred, 3), ["a", "b", "c"])
    assert s["oa"] == 80.0
    assert np.isclose(s["aa"], 100 * (2 / 3 + 1 + 4 / 5) / 3)
    assert np.isclose(s["kappa"], 100 * cohen_kappa_score(ref, pred))
    assert np.isclose(s["per_class"]["b"]["users_accuracy"], 100 * 2 / 3)
    assert np.isclose(s["per_class"]["b"]["f1"], 100 * 2 * 2 / (2 + 3))  # 2 hits, 2 reference + 3 predicted
    assert s["confusion"][0] == [2, 1, 0]
