"""The command line of a script that writes a committed data file from pinned packages (tool_values, word_bands).

    main(__doc__, DEST, build, summary)   # rewrites DEST, or with --check exits 1 when it differs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def render(values: dict) -> str:
    """The file's text: JSON, one value per line, ASCII only (stable diffs)."""
    return json.dumps(values, indent=0, ensure_ascii=True) + "\n"


def main(doc: str, dest: Path, build, summary) -> int:
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--check", action="store_true", help="compare with the committed file instead of writing it")
    args = p.parse_args()
    text = render(build())
    if args.check:
        same = dest.exists() and dest.read_text() == text
        print(f"{dest.name}: {'up to date' if same else 'differs from what the packages give'}")
        return 0 if same else 1
    dest.write_text(text)
    print(f"wrote {dest} {summary(json.loads(text))}")
    return 0
