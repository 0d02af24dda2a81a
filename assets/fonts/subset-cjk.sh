#!/usr/bin/env bash
# Regenerates NotoSansSC-chart.otf: Noto Sans CJK SC Regular cut down to the characters
# listed in chart-glyphs.txt (the report chart's labels), for plotters' ab_glyph renderer.
#
# Source: Debian's fonts-noto-cjk (NotoSansCJK-Regular.ttc). Every face in that collection
# has CFF (PostScript) outlines, there is no glyf/TrueType variant, so the subset is an
# .otf with CFF outlines (desubroutinized); ab_glyph (ttf-parser) reads CFF fine.
#
# Needs: fonts-noto-cjk, and fontTools (pyftsubset; Debian: python3-fonttools or fonttools,
# or `pip install fonttools`).
#
# Usage: assets/fonts/subset-cjk.sh [--keep-kern]
#   --keep-kern  keep the GPOS 'kern' feature (ab_glyph ignores GPOS, so off by default)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${NOTO_CJK_TTC:-/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc}"
face_family="Noto Sans CJK SC" # name ID 1 of the face we want in the collection
glyphs="$here/chart-glyphs.txt"
out="$here/NotoSansSC-chart.otf"

layout_features=""
for arg in "$@"; do
  case "$arg" in
    --keep-kern) layout_features="kern" ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "subset-cjk.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

if [[ ! -f "$src" ]]; then
  echo "subset-cjk.sh: source font not found: $src" >&2
  echo "  install Debian's fonts-noto-cjk:  apt-get install fonts-noto-cjk" >&2
  echo "  (or point NOTO_CJK_TTC at a NotoSansCJK-Regular.ttc)" >&2
  exit 1
fi
if [[ ! -f "$glyphs" ]]; then
  echo "subset-cjk.sh: missing character list: $glyphs" >&2
  exit 1
fi

# A Python that can import fontTools (pyenv/venv shims may lack it; Debian's may have it).
py=""
for cand in python3 /usr/bin/python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import fontTools.subset' >/dev/null 2>&1; then
    py="$cand"; break
  fi
done
if [[ -z "$py" ]]; then
  echo "subset-cjk.sh: fontTools not found; apt-get install python3-fonttools (or pip install fonttools)" >&2
  exit 1
fi

# Font number of the SC face inside the .ttc, looked up by family name, not hard-coded.
font_number="$("$py" - "$src" "$face_family" <<'EOF'
import sys
from fontTools.ttLib import TTCollection
path, family = sys.argv[1], sys.argv[2]
for i, f in enumerate(TTCollection(path, lazy=True).fonts):
    if f["name"].getDebugName(1) == family and f["name"].getDebugName(2) == "Regular":
        print(i)
        break
else:
    sys.exit(f"subset-cjk.sh: no '{family} Regular' face in {path}")
EOF
)"

# Name IDs kept: 0 copyright, 1-2 family/subfamily, 4 full name, 6 PostScript name,
# 7 trademark, 13 licence description, 14 licence URL.
"$py" -m fontTools.subset "$src" \
  --font-number="$font_number" \
  --text-file="$glyphs" \
  --output-file="$out" \
  --no-hinting \
  --desubroutinize \
  --layout-features="$layout_features" \
  --name-IDs=0,1,2,4,6,7,13,14 \
  --name-languages=0x0409 \
  --no-name-legacy \
  --notdef-outline \
  --drop-tables+=DSIG,vhea,vmtx,VORG,BASE,JSTF,meta

size="$(stat -c %s "$out")"
echo "wrote $out: $size bytes (face #$font_number '$face_family' of $src)"
