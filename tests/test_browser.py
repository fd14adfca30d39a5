"""A real JupyterLab in headless chromium: run notebook 07 top to bottom, then drive its attribution explorer.

    make browser                                            # installs Debian's chromium if missing, then this
    .venv/bin/pytest -q -m browser tests/test_browser.py
    WORKBENCH_BROWSER_NOTEBOOK=/tmp/x.ipynb .venv/bin/pytest -q -m browser tests/test_browser.py  # another notebook

The DOM contract (ipywidgets ``add_class``) that notebook 07 keeps: a container ``.wb-attribution-explorer``
holding Dropdowns ``.wb-example`` and ``.wb-method``, an IntSlider ``.wb-step`` and an HTML ``.wb-heatmap`` whose
first element carries a ``data-key`` that changes with example, method and step.
Outside CI a missing chromium or playwright skips; with ``CI=true`` it fails, so CI always runs this.
"""

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "07-interpretability.ipynb"
REPORTS = ROOT / "reports"
CHROMIUM = "/usr/bin/chromium"  # Debian's package; playwright's own download fails on these machines
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
IN_CI = os.environ.get("CI", "").lower() == "true"

EXPLORER = ".wb-attribution-explorer"
HEATMAP = f"{EXPLORER} .wb-heatmap [data-key]"
EXAMPLE = f"{EXPLORER} .wb-example select"
RUN_S = 600  # for Run All; notebook 07 (smoke) took ~4.5 min here, its 2 cores shared with a training job
# an error output renders as stderr text; tell it from a warning by its traceback or its `NameError: ...` line
ERRORS_JS = """() => [...document.querySelectorAll(
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')].map(e => e.textContent)
    .filter(t => /Traceback|^\\w*(Error|Exception)\\b/m.test(t))"""
# off: the network, cells kept out of the DOM, and autosave (it would write outputs into notebooks/)
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
}


def _missing(what):
    """Skip outside CI, fail in CI: CI must run the browser test."""
    (pytest.fail if IN_CI else pytest.skip)(f"{what}: run `make browser-deps` (Debian's chromium) and "
                                            "`.venv/bin/pip install -e '.[dev]'` (playwright)")


def _notebook():
    """The notebook under test: notebook 07, or the one WORKBENCH_BROWSER_NOTEBOOK names."""
    override = os.environ.get("WORKBENCH_BROWSER_NOTEBOOK")
    path = Path(override).resolve() if override else NOTEBOOK
    if not path.is_file():
        (pytest.fail if IN_CI else pytest.skip)(f"{path}: no such notebook")
    return path


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def _start_lab(root, state, port, token, log):
    """Start `jupyter lab` from this venv, serving `root`, with its config, runtime and settings in `state`."""
    for name, value in SETTINGS.items():
        (state / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (state / "settings" / name).write_text(json.dumps(value))
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # this venv's python first
    env = dict(os.environ, WORKBENCH_PROFILE="smoke", HF_HUB_OFFLINE="1", PATH=path,
               JUPYTER_CONFIG_DIR=str(state / "config"), JUPYTER_DATA_DIR=str(state / "data"),
               JUPYTER_RUNTIME_DIR=str(state / "runtime"), IPYTHONDIR=str(state / "ipython"),
               JUPYTERLAB_SETTINGS_DIR=str(state / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(state / "workspaces"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", f"--ServerApp.token={token}",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    # its own process group, so that stopping it reaches everything it started
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_lab(proc, base, token, log_path):
    for _ in range(120):
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            return _get(f"{base}/api/kernelspecs?token={token}")
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer on {base} within 60 s:\n{log_path.read_text()[-3000:]}")


def _stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _kernel_name(specs, notebook):
    """The kernel the notebook asks for, checked to be this venv's python."""
    name = json.loads(notebook.read_text())["metadata"].get("kernelspec", {}).get("name", specs["default"])
    assert name in specs["kernelspecs"], f"{notebook.name} wants kernel {name!r}; served: {list(specs['kernelspecs'])}"
    argv0 = specs["kernelspecs"][name]["spec"]["argv"][0]
    # jupyter_client launches a bare `python`/`python3` as the server's own sys.executable, i.e. this venv
    ours = argv0 in ("python", "python3") or argv0.startswith(sys.prefix)
    assert ours, f"kernel {name!r} runs {argv0}, not {sys.prefix}'s python"
    return name


def _wait_for_kernel(page, base, token, notebook, name):
    """Wait until the notebook has a kernel. On a busy machine the page can open the notebook before it has
    fetched the kernelspecs; JupyterLab then asks which kernel to start, and we accept its choice."""
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    for _ in range(120):
        kernels = [s["kernel"] for s in _get(f"{base}/api/sessions?token={token}") if s["path"] == notebook.name]
        if kernels and kernels[0]:
            assert kernels[0]["name"] == name, f"{notebook.name} got kernel {kernels[0]['name']!r}, not {name!r}"
            return
        if dialog.is_visible():
            dialog.locator(".jp-mod-accept").click()
        time.sleep(0.5)
    pytest.fail(f"no kernel started for {notebook.name} within 60 s")


def _wait(page, js, arg, timeout_s, message):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        # at least 1 s: playwright reads a timeout of 0 as none
        return page.wait_for_function(js, arg=arg, timeout=max(timeout_s, 1) * 1000, polling=250).json_value()
    except PlaywrightTimeout:
        pass  # fail outside the except, without playwright's traceback chained on
    pytest.fail(f"{message} (waited {timeout_s:.0f} s)")


def _errors(page):
    return page.evaluate(ERRORS_JS)


def _run_all_cells(page):
    """Run > Run All Cells, found by its command id (`runmenu:run-all` in JupyterLab 4) rather than its label."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()


def _explore(page, base, token, notebook, kernel):
    page.goto(f"{base}/lab/tree/{notebook.name}?token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    _wait_for_kernel(page, base, token, notebook, kernel)
    _run_all_cells(page)
    deadline = time.monotonic() + RUN_S

    # 1. the explorer renders, unless a cell fails first
    first = f"() => document.querySelector('{HEATMAP}') ? 'explorer' : ({ERRORS_JS})().length ? 'error' : null"
    found = _wait(page, first, None, deadline - time.monotonic(), f"no `{HEATMAP}` appeared after Run All Cells")
    if found == "error":
        pytest.fail("a cell failed before the explorer rendered:\n" + "\n\n".join(_errors(page)))

    # 2. the cells after it finish too (until then the kernel would queue the explorer's redraws behind them)
    _wait(page, "() => ![...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'))",
          None, deadline - time.monotonic(), "cells were still running")
    if errors := _errors(page):
        pytest.fail("a cell failed:\n" + "\n\n".join(errors))

    # 3. picking another example redraws the heatmap
    heatmap, select = page.locator(HEATMAP).first, page.locator(EXAMPLE).first
    key, text = heatmap.get_attribute("data-key"), heatmap.inner_text()
    options = select.locator("option").evaluate_all("os => os.map(o => o.value)")
    other = next((v for v in options if v != select.input_value()), None)
    assert other is not None, f"the example picker offers one example only: {options}"
    select.select_option(other)
    _wait(page, "([sel, key]) => { const e = document.querySelector(sel); return e && e.dataset.key !== key; }",
          [HEATMAP, key], 30, f"heatmap data-key stayed {key!r} after picking example {other!r}")
    new_key, new_text = heatmap.get_attribute("data-key"), heatmap.inner_text()
    assert new_text != text, f"heatmap data-key went {key!r} -> {new_key!r} but its text stayed {text!r}"
    page.locator(EXPLORER).first.scroll_into_view_if_needed()  # for the screenshot


@pytest.mark.browser
def test_notebook_07_explorer_redraws_in_jupyterlab(tmp_path):
    notebook = _notebook()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"{CHROMIUM} is missing")

    port, token = _free_port(), secrets.token_hex(16)
    base, log_path = f"http://127.0.0.1:{port}", tmp_path / "lab.log"
    screenshot = REPORTS / f"browser-{notebook.stem}.png"
    REPORTS.mkdir(exist_ok=True)
    with open(log_path, "w") as log:
        proc = _start_lab(notebook.parent, tmp_path / "jupyter", port, token, log)
    try:
        kernel = _kernel_name(_wait_for_lab(proc, base, token, log_path), notebook)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                _explore(page, base, token, notebook, kernel)
            finally:
                page.screenshot(path=str(screenshot), full_page=True)  # on failure too: it shows what went wrong
                browser.close()
    finally:
        _stop(proc)
