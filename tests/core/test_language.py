from __future__ import annotations

import json

import pytest

from lvpcnet_core.errors import LvpcError
from lvpcnet_core.language import DescriptionTable, build_descriptions

HOUSTON = ["healthy grass", "stressed grass", "synthetic grass", "trees", "soil", "water", "residential", "commercial",
           "road", "highway", "railway", "parking lot 1", "parking lot 2", "tennis court", "running track"]
TRENTO = ["apple trees", "buildings", "ground", "woods", "vineyard", "roads"]
AUGSBURG = ["forest", "residential area", "industrial area", "low plants", "allotment", "commercial area", "water"]
SLOVENIA = ["cultivated land", "forest", "grassland", "shrubland", "artificial surface"]
BRANDENBURG = ["forest", "meadow", "farm", "residential", "scrub", "grass", "water", "wetland"]
WORLDCOVER = ["Tree cover", "Shrubland", "Grassland", "Cropland", "Built-up", "Bare / sparse vegetation",
              "Snow and ice", "Permanent water bodies", "Herbaceous wetland", "Mangroves", "Moss and lichen"]
CORINE = ["Urban fabric", "Industrial units", "Arable land", "Pastures", "Orchards", "Vineyards",
          "Beaches, dunes, sands", "Bare rock", "Glaciers", "Marshes", "Peat bogs", "Artificial surfaces",
          "Agricultural areas", "Wetlands", "Water bodies", "Coniferous forest"]
MODALITIES = ["hs", "lidar", "sar"]


def small_table() -> DescriptionTable:
    return DescriptionTable(
        modalities=["hs", "lidar"], classes=["Straße", "tree, \"tall\""],
        shared={"Straße": "Asphalt, grau; mit Linien", "tree, \"tall\"": "line one\nline two"},
        specific={"hs": {"Straße": "dunkel", "tree, \"tall\"": "grün, \"red edge\""},
                  "lidar": {"Straße": "flach", "tree, \"tall\"": "hoch"}})


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_save_load_round_trip_keeps_unicode_quotes_commas_and_newlines(tmp_path, suffix):
    table = small_table()
    path = tmp_path / f"descriptions{suffix}"
    table.save(path)
    loaded = DescriptionTable.load(path)
    assert loaded.modalities == table.modalities
    assert loaded.classes == table.classes
    assert loaded.shared == table.shared
    assert loaded.specific == table.specific


def test_file_layouts_are_the_documented_ones(tmp_path):
    table = small_table()
    table.save(tmp_path / "d.json")
    data = json.loads((tmp_path / "d.json").read_text(encoding="utf-8"))
    assert data["modalities"] == ["hs", "lidar"]
    assert data["classes"][0] == {"name": "Straße", "shared": "Asphalt, grau; mit Linien", "hs": "dunkel",
                                  "lidar": "flach"}
    table.save(tmp_path / "d.csv")
    assert (tmp_path / "d.csv").read_text(encoding="utf-8").splitlines()[0] == '"class","shared","hs","lidar"'


def test_hand_written_csv_with_bom_loads(tmp_path):
    path = tmp_path / "edited.csv"
    path.write_text("\ufeffclass,shared,sar\nwater,calm water,dark\n", encoding="utf-8")
    table = DescriptionTable.load(path)
    assert table.classes == ["water"] and table.modalities == ["sar"]
    assert table.specific["sar"]["water"] == "dark"


def test_validate_names_every_gap_and_says_to_edit(tmp_path):
    table = small_table()
    table.specific["lidar"]["Straße"] = "  "
    with pytest.raises(LvpcError) as err:
        table.validate(["Straße", "tree, \"tall\"", "water"], ["hs", "lidar", "sar"])
    message = str(err.value)
    assert "'water' is not in the table" in message
    assert "'Straße' has no 'lidar' description" in message
    assert "modality 'sar' has no column" in message
    assert "Edit the file" in message and "DESCRIPTIONS" in message


def test_validate_returns_table_in_requested_order_matching_case():
    picked = small_table().validate(["TREE, \"TALL\"", "straße"], ["lidar"])
    assert picked.classes == ["TREE, \"TALL\"", "straße"]
    assert picked.modalities == ["lidar"]
    shared, specific = picked.texts()
    assert shared == ["line one\nline two", "Asphalt, grau; mit Linien"]
    assert specific == {"lidar": ["hoch", "flach"]}


@pytest.mark.parametrize("content", ["{not json", '{"classes": []}', ""])
def test_unreadable_files_raise_lvpc_error(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(LvpcError, match="DESCRIPTIONS"):
        DescriptionTable.load(path)


def test_csv_without_class_and_shared_columns_is_refused(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("name,text\nwater,dark\n", encoding="utf-8")
    with pytest.raises(LvpcError, match="'class' and 'shared'"):
        DescriptionTable.load(path)


def test_other_extensions_are_refused(tmp_path):
    with pytest.raises(LvpcError, match=r"\.json or \.csv"):
        small_table().save(tmp_path / "d.txt")


@pytest.mark.parametrize("classes", [HOUSTON, TRENTO, AUGSBURG, SLOVENIA, BRANDENBURG, WORLDCOVER, CORINE])
def test_benchmark_classes_have_built_in_texts(classes):
    messages = []
    table = build_descriptions(classes, MODALITIES, log=messages.append)
    assert table.generic == {} and messages == []
    table.validate(classes, MODALITIES)
    for m in MODALITIES:
        texts = [table.specific[m][c] for c in classes]
        assert len(set(texts)) == len(classes), f"two {m} texts coincide"
        for c in classes:
            assert table.specific[m][c] != table.shared[c]
            assert c.lower().replace("-", " ") in table.specific[m][c]
    for c in classes:
        assert table.shared[c].startswith(f"A remote sensing image of {c.lower().replace('-', ' ')},")


def test_modality_texts_speak_of_their_sensor():
    table = build_descriptions(["trees", "water", "buildings"], MODALITIES)
    assert "red edge" in table.specific["hs"]["trees"]
    assert "returns" in table.specific["lidar"]["trees"]
    assert "double bounce" in table.specific["sar"]["buildings"]
    assert "near-infrared" in table.specific["hs"]["water"]


@pytest.mark.parametrize("name, same_as", [
    ("Tree_Cover", "trees"), ("TREES", "tree"), ("Buildings", "building"), ("parking lot 3", "parking lot"),
    ("Parking_Lot_1", "parking lot"), ("woods", "forest"), ("Bare/sparse vegetation", "sparse vegetation"),
    ("beaches dunes and sands", "sand"), ("snow_and_ice", "glaciers"), ("Pastures", "pasture"),
])
def test_name_matching_is_forgiving(name, same_as):
    table = build_descriptions([name, same_as], ["lidar"])
    assert table.generic == {}
    got = table.specific["lidar"][name].replace(table.specific["lidar"][name].split(":")[0], "")
    want = table.specific["lidar"][same_as].replace(table.specific["lidar"][same_as].split(":")[0], "")
    assert got == want


def test_parking_lot_2_is_not_parking_lot_1():
    table = build_descriptions(["parking lot 1", "parking lot 2"], ["sar"])
    assert "cars" in table.specific["sar"]["parking lot 2"]
    assert table.shared["parking lot 1"].split(", ", 1)[1] != table.shared["parking lot 2"].split(", ", 1)[1]


def test_unknown_class_gets_sensor_specific_template_and_is_reported():
    messages = []
    table = build_descriptions(["Asphalt shingles", "water"], MODALITIES, log=messages.append)
    assert table.generic == {"shared": ["Asphalt shingles"], "hs": ["Asphalt shingles"],
                             "lidar": ["Asphalt shingles"], "sar": ["Asphalt shingles"]}
    assert "colour" in table.specific["hs"]["Asphalt shingles"]
    assert "height" in table.specific["lidar"]["Asphalt shingles"]
    assert "backscatter" in table.specific["sar"]["Asphalt shingles"]
    assert all("asphalt shingles" in table.specific[m]["Asphalt shingles"] for m in MODALITIES)
    assert len(messages) == 1 and "Asphalt shingles" in messages[0] and "edit" in messages[0]


def test_other_modalities_get_a_complete_table_and_a_flag():
    messages = []
    table = build_descriptions(["forest", "water"], ["hs", "thermal"], log=messages.append)
    assert table.generic == {"thermal": ["forest", "water"]}
    assert all("thermal" in table.specific["thermal"][c] for c in ["forest", "water"])
    assert any("'thermal'" in m for m in messages)
    table.validate(["forest", "water"], ["hs", "thermal"])


def test_built_in_table_survives_a_csv_round_trip(tmp_path):
    table = build_descriptions(HOUSTON, MODALITIES)
    table.save(tmp_path / "houston.csv")
    loaded = DescriptionTable.load(tmp_path / "houston.csv")
    assert loaded.texts() == table.texts()
