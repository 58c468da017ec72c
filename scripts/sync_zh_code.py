#!/usr/bin/env python3
"""Copy the code cells of each English lesson into its Chinese twin, keeping the Chinese prose.

Run after changing code in an English lesson (then `make sync` to refresh the .ipynb files):
    python scripts/sync_zh_code.py
The cells must already correspond one to one (same types in the same order); if not, it says where.
"""
import sys
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    status = 0
    for en_path in sorted((ROOT / "notebooks" / "en").glob("[0-9][0-9]_*.py")):
        zh_path = ROOT / "notebooks" / "zh" / en_path.name
        if not zh_path.exists():
            print(f"missing Chinese twin: {zh_path}")
            status = 1
            continue
        en, zh = jupytext.read(en_path), jupytext.read(zh_path)
        if [c.cell_type for c in en.cells] != [c.cell_type for c in zh.cells]:
            print(f"{zh_path.name}: cells do not correspond; add or remove the markdown cells by hand first")
            status = 1
            continue
        changed = 0
        for a, b in zip(en.cells, zh.cells):
            if a.cell_type == "code" and (a.source != b.source or a.metadata != b.metadata):
                b.source, b.metadata = a.source, a.metadata
                changed += 1
        if changed:
            jupytext.write(zh, zh_path, fmt="py:percent")
        print(f"{zh_path.relative_to(ROOT)}: {changed} code cell(s) updated")
    return status


if __name__ == "__main__":
    sys.exit(main())
