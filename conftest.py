"""pytest set-up shared by the unit tests and nbval.

nbval compares only the cells marked ``# NBVAL_CHECK_OUTPUT`` (we run ``--nbval-lax``); widget and
HTML outputs are never compared (their ids and markup change every run), nor are images.
"""

import os

os.environ.setdefault("WORKBENCH_PROFILE", "smoke")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network

NOT_COMPARED = (
    "application/vnd.jupyter.widget-view+json",
    "application/vnd.jupyter.widget-state+json",
    "text/html",
    "text/markdown",
    "image/png",
    "image/svg+xml",
)


def pytest_collection_modifyitems(items):
    for item in items:
        notebook = getattr(item, "parent", None)
        if hasattr(notebook, "skip_compare"):  # an nbval notebook
            notebook.skip_compare = tuple(dict.fromkeys(notebook.skip_compare + NOT_COMPARED))
