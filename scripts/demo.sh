#!/bin/sh
# `make demo`: the bundled demo scene through the QGIS path, exactly as a user's shell script would run it.
# The real qgis_process loads this working tree as the plugin `lvpc` (a link in a temporary plugin folder, enabled
# in a throw-away profile), trains a model on demo/ (Sentinel-2 as HS, DEM as LIDAR, ROI polygons), classifies the
# scene with both layers and with the DEM alone (learned prompts stand in for the missing Sentinel-2), and evaluates
# both maps against the ROIs (MAP=, so the reports hold the area table of Olofsson et al. 2014).
# Outputs go to demo/output/ (or $LVPC_DEMO_OUT). No QGIS: `.venv/bin/python -m lvpcnet_core demo`.
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${LVPC_DEMO_OUT:-$REPO/demo/output}
DEMO=$REPO/demo
# Debian's /usr/bin/qgis_process wrapper may be broken (see README); the binary behind it always works.
QGIS_PROCESS=$(command -v qgis_process.bin || command -v qgis_process || true)
if [ -z "$QGIS_PROCESS" ]; then
    echo "demo: qgis_process not found: run 'make setup' first" >&2
    exit 1
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM
mkdir -p "$WORK/plugins" "$WORK/profile/profiles/default/QGIS" "$OUT"
ln -s "$REPO" "$WORK/plugins/lvpc"
printf '[PythonPlugins]\nlvpc=true\n' > "$WORK/profile/profiles/default/QGIS/QGIS3.ini"
# QGIS runs Debian's Python, not the venv: LVPC_PYTHONPATH tells the plugin where torch & co. are.
LVPC_PYTHONPATH=$(printf '%s:' "$REPO"/.venv/lib/python3*/site-packages)
# torch uses every core; on a machine shared with other heavy work, OMP_NUM_THREADS=1 avoids oversubscription.
export QT_QPA_PLATFORM=offscreen QGIS_PLUGINPATH="$WORK/plugins" QGIS_CUSTOM_CONFIG_PATH="$WORK/profile" LVPC_PYTHONPATH

run() {
    echo
    echo "demo: qgis_process run $*"
    "$QGIS_PROCESS" run "$@"
}

run lvpc:train -- HS="$DEMO/s2_l1c_20150711.tif" LIDAR="$DEMO/dem.tif" ROIS="$DEMO/rois.gpkg" CLASS_FIELD=class \
    OUTPUT_MODEL="$OUT/demo.lvpc" REPORT="$OUT/training_report.html"
run lvpc:classify -- MODEL="$OUT/demo.lvpc" HS="$DEMO/s2_l1c_20150711.tif" LIDAR="$DEMO/dem.tif" \
    OUTPUT="$OUT/demo_map.tif" CONFIDENCE="$OUT/demo_confidence.tif"
run lvpc:classify -- MODEL="$OUT/demo.lvpc" LIDAR="$DEMO/dem.tif" OUTPUT="$OUT/demo_map_lidar_only.tif"
run lvpc:evaluate -- MAP="$OUT/demo_map.tif" ROIS="$DEMO/rois.gpkg" CLASS_FIELD=class \
    OUTPUT_HTML="$OUT/accuracy.html" OUTPUT_JSON="$OUT/accuracy.json"
run lvpc:evaluate -- MAP="$OUT/demo_map_lidar_only.tif" ROIS="$DEMO/rois.gpkg" CLASS_FIELD=class \
    OUTPUT_HTML="$OUT/accuracy_lidar_only.html" OUTPUT_JSON="$OUT/accuracy_lidar_only.json"

oa() {
    sed -n 's/^ *"oa": *\([0-9.]*\).*/\1/p' "$1" | head -n 1 | awk '{printf "%.2f", $1}'
}
cat <<DONE

demo: done. Outputs in $OUT:
  map (HS + LIDAR):         $OUT/demo_map.tif   (style: $OUT/demo_map.qml; confidence: $OUT/demo_confidence.tif)
  map (LIDAR only):         $OUT/demo_map_lidar_only.tif
  model, training report:   $OUT/demo.lvpc, $OUT/training_report.html
  OA on the ROIs, HS + LIDAR: $(oa "$OUT/accuracy.json") %   (report: $OUT/accuracy.html)
  OA on the ROIs, LIDAR only: $(oa "$OUT/accuracy_lidar_only.json") %   (report: $OUT/accuracy_lidar_only.html)
  (the ROIs are also the training data: these numbers show the pipeline works, they are not an accuracy claim;
   the reports add the estimated class areas and area-weighted accuracies with 95 % intervals)
DONE
