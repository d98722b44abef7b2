"""RandomForest of the speed benchmarks (bench/random_forest.py): features made chunk by chunk predict as all at once."""
from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from bench import random_forest


def test_chunked_prediction_equals_one_pass(monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {"hs": rng.random((6, 30, 30)).astype(np.float32), "dsm": rng.random((1, 30, 30)).astype(np.float32)}
    rows, cols = (v.ravel() for v in np.mgrid[0:30, 0:30])
    labels = (arrays["hs"][0] > 0.5).ravel().astype(int) + 1
    for window in (1, 5):
        features = random_forest._features(arrays, rows, cols, window)
        forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(features, labels)
        monkeypatch.setattr(random_forest, "FEATURE_BYTES", 4 * 7 * window * window * 100)   # 100 pixels a chunk
        predicted, seconds = random_forest._predict(forest, arrays, rows, cols, window)
        np.testing.assert_array_equal(predicted, forest.predict(features))
        assert 0 < seconds
