"""HTML reports: well-formed, self-contained, and showing the numbers they are given."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lvpcnet_core import report

EVALUATION = {"oa": 87.5, "aa": 80.25, "kappa": 71.0, "n": 8, "modalities": ["lidar"], "fill": "prompts",
              "unclassified_reference_pixels": 2, "class_names": ["forest", "water & <lake>"],
              "confusion": [[5, 1], [0, 2]],
              "per_class": {"forest": {"producers_accuracy": 83.33, "users_accuracy": 100.0, "reference_pixels": 6},
                            "water & <lake>": {"producers_accuracy": 100.0, "users_accuracy": None,
                                               "reference_pixels": 2}}}
TRAINING = {"class_counts": {"forest": 30, "water": 10}, "modalities": ["hs", "lidar"], "text_encoder": "minilm",
            "n_train": 34, "n_val": 6, "device": "cpu", "seconds": 3.2,
            "stage1": {"best_epoch": 2, "val_oa": 83.3, "history": [{"epoch": 1, "loss": 2.0, "val_oa": 0.5},
                                                                    {"epoch": 2, "loss": 1.5, "val_oa": 0.833}]},
            "stage2": {"lidar": {"best_epoch": 1, "val_oa": 66.7, "history": [{"epoch": 1, "loss": 1.0, "val_oa": 0.667}]}},
            "validation": {"hs+lidar|prompts": 83.3, "lidar|prompts": 66.7, "lidar|zeros": 50.0},
            "validation_split": {"method": {"forest": "components", "water": "blocks"},
                                 "groups": {"forest": 9, "water": 4}, "val_groups": {"forest": 2, "water": 1},
                                 "val_pixels": {"forest": 4, "water": 2}, "block_size": 22, "dropped_by_gap": 5,
                                 "kept_in_gap": {"forest": 0, "water": 0}},
            "settings": {"epochs_stage1": 2}}


class Balance(HTMLParser):
    """Counts open and closed elements (void elements excluded), and collects text."""

    VOID = {"meta", "br", "img", "rect", "line", "polyline"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID:
            assert self.stack.pop() == tag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> str:
    parser = Balance()
    parser.feed(html)
    assert parser.stack == []
    return " ".join(parser.text)


def test_evaluation_report_shows_numbers_matrix_and_escapes_names() -> None:
    html = report.evaluation_report(EVALUATION)
    text = parse(html)
    assert "87.50 %" in text and "80.25 %" in text and "71.00" in text
    assert "water & <lake>" in text and "<lake>" not in html  # escaped in the markup
    assert "2 reference pixels had no data" in text
    svg = re.search(r"<svg.*?</svg>", html, re.S).group(0)
    assert svg.count("<rect") == 4  # one cell per matrix entry
    assert "forest &rarr; water &amp; &lt;lake&gt;: 1" in svg
    assert "http" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from outside


def test_evaluation_report_of_a_map_has_the_area_table_and_proportions() -> None:
    from lvpcnet_core.accuracy import assess

    area = assess([[8, 2], [1, 9]], [600, 400], ["forest", "water & <lake>"], 0.01, "ha").to_dict()
    text = " ".join(parse(report.evaluation_report(dict(EVALUATION, map="/data/map.tif", modalities=[],
                                                        area_adjusted=area))).split())
    assert "8 reference pixels on the class map /data/map.tif" in text and "on unclassified (nodata) pixels" in text
    # W = 0.6, 0.4: OA = 0.6 * 0.8 + 0.4 * 0.9, SE = sqrt(0.36 * 0.8 * 0.2 / 9 + 0.16 * 0.9 * 0.1 / 9)
    assert "OA 84.00 ± 17.53 % (area-weighted" in text
    assert "forest 600 6.00 5.20 ± " in text and "80.00 ± 26.13" in text  # map area, estimated area, UA ± CI
    assert "0.4800 0.1200 0.6000" in text and "total 0.5200 0.4800 1.0000" in text  # p_ij with its totals
    assert "Not computed" not in text and "reference polygons drawn by hand are not one" in text


def test_evaluation_report_of_a_model_says_area_figures_need_a_map() -> None:
    text = parse(report.evaluation_report(EVALUATION))
    assert "Not computed" in text and "evaluate that map (MAP)" in text


def test_training_report_has_curves_counts_and_cases() -> None:
    html = report.training_report(TRAINING)
    text = parse(html)
    assert html.count("<svg") == 3  # stage-1 loss, stage-1 accuracy, stage-2 accuracy
    assert "75.0" in text and "25.0" in text  # class shares
    assert "zero-filled (ablation)" in text and "learned prompts" in text and "all present" in text
    points = re.findall(r'points="([^"]+)"', html)
    assert len(points[0].split()) == 2  # two stage-1 epochs


def test_training_report_shows_how_validation_was_split() -> None:
    text = parse(report.training_report(TRAINING))
    assert "6 pixels in 2 held-out areas and 1 block, spatially separate" in text
    assert "forest: 2 of 9 areas" in text and "water: 1 of 4 blocks of 22 x 22 pixels" in text
    assert "5 training pixels within half a window" in text
    assert "2 of 9" in text and "blocks of 22 x 22 pixels (a single area)" in text  # the per-class table


def test_validation_lines_give_every_case_with_its_pixels_and_areas() -> None:
    lines = report.validation_lines(TRAINING)
    basis = ", 6 pixels in 2 held-out areas and 1 block"
    assert lines == ["validation OA 83.3 % with hs+lidar [all present]" + basis,
                     "validation OA 66.7 % with lidar [hs from learned prompts]" + basis,
                     "validation OA 50.0 % with lidar [hs zero-filled, an ablation]" + basis]


def test_split_summary_names_classes_without_validation_and_the_gap_kept() -> None:
    split = dict(TRAINING["validation_split"], method={"forest": "components", "water": "none"},
                 val_pixels={"forest": 4, "water": 0}, kept_in_gap={"forest": 3, "water": 0}, dropped_by_gap=0)
    text = report.split_summary(split)
    assert "no validation pixels of water" in text and "of forest all lie within half a window" in text
    assert "left out of the validated run" not in text
    empty = dict(split, val_pixels={"forest": 0, "water": 0})
    assert report.split_summary(empty).startswith("no validation pixels")


def test_line_chart_without_data_says_so() -> None:
    assert "no data" in report.line_chart({"a": []}, "Empty", "y")


def test_write_html_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "r.html"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(TypeError):
        report.write_html(target, None)  # type: ignore[arg-type]
    assert target.read_text(encoding="utf-8") == "old" and [p.name for p in tmp_path.iterdir()] == ["r.html"]
    report.write_html(target, "<p>new</p>")
    assert target.read_text(encoding="utf-8") == "<p>new</p>"
