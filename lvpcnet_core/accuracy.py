"""Good-practice accuracy and area estimates of a class map (Olofsson et al. 2014, Remote Sens. Environ. 148:42-57).

The reference sample is taken as a stratified random sample with the map classes as strata: each map class i
weighs W_i = (map pixels of i) / (map pixels), and the estimated area proportions p_ij = W_i n_ij / n_i. replace the
raw counts. Overall, user's and producer's accuracy, F1 and the class areas are all ratios of such stratified means,
so one estimator (`_ratio`) gives each of them and its standard error, reproducing their estimators and
variances (no finite population correction, 95 % interval = 1.96 SE); F1 = 2 p_jj / (p_j. + p_.j) comes the same way.

Matrices here have rows = MAP class and columns = REFERENCE class, as in Olofsson et al.; `metrics.confusion` has
rows = reference, and `error_matrix` is the one place that turns one into the other.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z95 = 1.96  # normal quantile of a two-sided 95 % interval, as Olofsson et al.


def error_matrix(confusion: np.ndarray) -> np.ndarray:
    """`metrics.confusion` (rows = reference, columns = predicted) as Olofsson's error matrix (rows = map class)."""
    return np.asarray(confusion).T


@dataclass(frozen=True)
class Estimate:
    """An estimate and its standard error; None where the sample cannot give it (no sample where it is needed)."""

    value: float | None
    se: float | None

    @property
    def ci95(self) -> float | None:
        """Half-width of the 95 % confidence interval."""
        return None if self.se is None else Z95 * self.se

    def scaled(self, factor: float) -> Estimate:
        return Estimate(None if self.value is None else self.value * factor,
                        None if self.se is None else self.se * factor)

    def to_dict(self) -> dict[str, float | None]:
        return {"estimate": self.value, "se": self.se, "ci95": self.ci95}


@dataclass(frozen=True)
class AreaAssessment:
    """Olofsson et al.'s figures for one map and one reference sample; accuracies and proportions as fractions."""

    class_names: list[str]
    counts: np.ndarray            # (K, K) sample counts n_ij, rows = map class
    map_pixels: np.ndarray        # (K,) pixels of each class in the map: the strata sizes
    proportions: list[list[float] | None]  # p_ij, rows = map class; None for a mapped class without sample
    overall: Estimate
    users: list[Estimate]
    producers: list[Estimate]
    f1: list[Estimate]
    area_proportions: list[Estimate]
    pixel_area: float | None      # area of one map pixel in `area_unit`, None where the map has no metric CRS
    area_unit: str | None

    @property
    def unsampled(self) -> list[str]:
        """Map classes with pixels but no reference sample: the estimates that need them are None."""
        return [c for c, n, m in zip(self.class_names, self.counts.sum(1), self.map_pixels) if n == 0 and m > 0]

    def area_pixels(self) -> list[Estimate]:
        """Estimated area of each reference class, in map pixels."""
        return [p.scaled(float(self.map_pixels.sum())) for p in self.area_proportions]

    def to_dict(self) -> dict:
        """JSON-ready: accuracies in percent (as the rest of the evaluation), proportions as fractions, areas in
        pixels and in `area_unit`."""
        pixels = self.area_pixels()
        per_class = {}
        for i, name in enumerate(self.class_names):
            area = pixels[i].scaled(self.pixel_area).to_dict() if self.pixel_area else None
            per_class[name] = {
                "map_pixels": int(self.map_pixels[i]), "sample": int(self.counts[i].sum()),
                "map_area": float(self.map_pixels[i] * self.pixel_area) if self.pixel_area else None,
                "area_proportion": self.area_proportions[i].to_dict(), "area_pixels": pixels[i].to_dict(),
                "area": area, "users_accuracy": self.users[i].scaled(100).to_dict(),
                "producers_accuracy": self.producers[i].scaled(100).to_dict(), "f1": self.f1[i].scaled(100).to_dict()}
        return {"method": "Olofsson et al. (2014): stratified estimators, strata = map classes, 95 % CI = 1.96 SE",
                "overall_accuracy": self.overall.scaled(100).to_dict(), "per_class": per_class,
                "proportions": self.proportions, "counts": self.counts.astype(int).tolist(),
                "matrix_rows": "map class", "area_unit": self.area_unit, "pixel_area": self.pixel_area,
                "unsampled_map_classes": self.unsampled}


def assess(counts: np.ndarray, map_pixels: np.ndarray, class_names: list[str], pixel_area: float | None = None,
           area_unit: str | None = None) -> AreaAssessment:
    """Olofsson et al. (2014) estimates from the error matrix `counts` (rows = MAP class) and the map's pixel count
    per class; `pixel_area` (in `area_unit`) turns pixels into areas."""
    counts = np.asarray(counts, dtype=np.float64)
    pixels = np.asarray(map_pixels, dtype=np.float64)
    k = len(class_names)
    if counts.shape != (k, k) or pixels.shape != (k,):
        raise ValueError(f"{k} classes need a {k} x {k} error matrix and {k} map pixel counts, got "
                         f"{counts.shape} and {pixels.shape}")
    if pixels.sum() <= 0:
        raise ValueError("the map has no classified pixel")
    weights = pixels / pixels.sum()
    n = counts.sum(1)
    proportions = [None if n[i] == 0 and weights[i] > 0 else
                   [float(weights[i] * c / n[i]) if n[i] else 0.0 for c in counts[i]] for i in range(k)]
    eye = np.eye(k)
    ones = np.ones((k, k))
    users, producers, f1, areas = [], [], [], []
    for j in range(k):
        hit = np.zeros((k, k))
        hit[j, j] = 1.0
        mapped, referenced = np.outer(eye[j], np.ones(k)), np.outer(np.ones(k), eye[j])
        users.append(_ratio(weights, counts, hit, mapped))
        producers.append(_ratio(weights, counts, hit, referenced))
        f1.append(_ratio(weights, counts, 2 * hit, mapped + referenced))
        areas.append(_ratio(weights, counts, referenced, ones))
    return AreaAssessment(list(class_names), counts, pixels, proportions, _ratio(weights, counts, eye, ones),
                          users, producers, f1, areas, pixel_area, area_unit)


def _ratio(weights: np.ndarray, counts: np.ndarray, y: np.ndarray, x: np.ndarray) -> Estimate:
    """R = sum_i W_i mean_i(y) / sum_i W_i mean_i(x) over the strata i, and its linearised standard error.

    y and x give a sample unit's value by (map class, reference class). The variance is that of the combined
    stratified ratio estimator, sum_i W_i^2 s_i^2(y - R x) / n_i / X^2 (Cochran 1977; Stehman 2014, IJRS 35:4923):
    with x = 1 it is Olofsson et al.'s variance of OA (eq. 5) and of an area proportion, with x = [map class j]
    that of UA (eq. 6), with x = [reference class j] that of PA (eq. 7, checked term by term in the tests).
    A stratum with map pixels but no sample leaves the estimate unknown unless y and x are 0 there; one with a
    single sample leaves its variance unknown.
    """
    n = counts.sum(1)
    matters = (weights > 0) & ((y != 0) | (x != 0)).any(1)
    if (matters & (n == 0)).any():
        return Estimate(None, None)
    safe = np.maximum(n, 1)
    x_total = float((weights * (counts * x).sum(1) / safe).sum())
    if x_total <= 0:
        return Estimate(None, None)
    ratio = float((weights * (counts * y).sum(1) / safe).sum()) / x_total
    if (matters & (n == 1)).any():
        return Estimate(ratio, None)
    d = y - ratio * x
    mean = (counts * d).sum(1) / safe
    spread = (counts * (d - mean[:, None]) ** 2).sum(1)  # (n_i - 1) s_i^2
    variance = (weights**2 * spread / np.maximum(n - 1, 1) / safe).sum() / x_total**2
    return Estimate(ratio, float(np.sqrt(variance)))
