"""Run reports of a real run with failures: HTML opened in headless Chromium, PNGs read back."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from provtask import DAG, Store, task
from provtask.analysis import svg, timeline
from provtask.analysis.report import write_html, write_pngs
from provtask.cli import main

FAILED_RGB = (0xD6, 0x27, 0x28)  # timeline.FAILED_COLOUR


@task
def make_items(n: int) -> list[int]:
    return list(range(n))


@task
def work(x: int) -> int:
    time.sleep(0.02 + 0.01 * (x % 3))
    return x * x


@task(retries=1)
def explode(values: list[int]) -> int:
    raise ValueError(f"cannot reduce {len(values)} values")


@task
def after(total: int) -> int:
    return total


@pytest.fixture(scope="module")
def failed_run(client, tmp_path_factory):
    """24 work elements on two workers; explode fails twice, so after never runs."""
    store_dir = tmp_path_factory.mktemp("report") / "store"
    with DAG("reported", params={"n": 24}) as dag:
        squares = work.map(make_items(dag.param("n")))
        after(explode(squares))
    run_id = dag.run(client=client, store=store_dir).run_id
    return Store(store_dir), run_id


def drawn_attempts(store: Store, run_id: str) -> int:
    attempts = store.attempts(run_id)
    return int(attempts[["started_at", "worker"]].notna().all(axis=1).sum())


def test_html_report_is_self_contained_and_complete(failed_run, tmp_path):
    store, run_id = failed_run
    html = write_html(store, run_id, tmp_path / "report.html").read_text()

    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|@import|url\(", html)
    # One bar per attempt that ran (the first task, 24 elements, explode twice), one lane
    # per worker, and the failures with their error.
    assert html.count('<rect class="bar') == drawn_attempts(store, run_id) == 1 + 24 + 2
    # explode's first attempt was retried, its second failed the task: told apart.
    assert html.count('<rect class="bar failed"') == html.count('<rect class="bar retried"') == 1
    for worker in store.workers(run_id).itertuples():
        label = f"client · {worker.node} · pid {worker.pid}<title>{worker.worker}</title>"
        assert f">{label}</text>" in html  # lanes by partition and node; address on hover
    assert '<tr class="failed-task"><td><code>explode</code>' in html
    assert f"provtask logs {run_id} &#x27;explode&#x27;" in html  # not a path in the repo
    # Every mark has a legend entry; the cluster start-up is a band before the first task.
    for key in ("the task failed (▼)", "retried (▽)", "cancelled attempt", "cluster start-up"):
        assert key in html
    assert 'class="startup"' in html
    first = min(float(x) for x in re.findall(r'<rect class="bar[^"]*" x="([\d.]+)"', html))
    assert first == pytest.approx(svg.LABEL_WIDTH + svg.STARTUP_BAND, abs=0.2)
    assert html.count('class="strip"') == 1 + 24  # one tick per successful attempt
    assert "builtins.ValueError: cannot reduce 24 values" in html
    assert "Failed tasks (1)" in html
    assert '<span class="status failed">failed</span>' in html
    assert "{&quot;n&quot;: 24}" in html  # the params, escaped


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def browse(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with every host name unresolvable: nothing can be fetched."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def test_chromium_renders_the_report_offline(failed_run, tmp_path):
    store, run_id = failed_run
    page = write_html(store, run_id, tmp_path / "report.html")

    dom = browse(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert dom.count('<rect class="bar') == drawn_attempts(store, run_id)
    # One lane per worker that ran an attempt (how work spread over workers is up to Dask).
    workers = set(store.attempts(run_id)["worker"].dropna())
    assert len(re.findall(r'<text class="lane-label"[^>]*>client · ', dom)) == len(workers) >= 1
    assert re.search(r'<tr class="failed-task"><td><code>explode</code>', dom)

    shot = tmp_path / "shot.png"
    browse(tmp_path, "--window-size=1200,1400", f"--screenshot={shot}", page.as_uri())
    import matplotlib.image

    pixels = (matplotlib.image.imread(shot)[..., :3] * 255).round().astype(int)
    assert pixels.shape[:2] == (1400, 1200)
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 50  # text, tables and plots, not a blank page
    assert (pixels == FAILED_RGB).all(axis=-1).sum() > 20  # the failure markers and badge


def test_pngs_are_images_of_the_plots(failed_run, tmp_path):
    import matplotlib.image

    store, run_id = failed_run
    paths = write_pngs(store, run_id, tmp_path / "png")
    assert sorted(p.name for p in paths) == ["durations.png", "efficiency.png", "timeline.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = matplotlib.image.imread(path)[..., :3]
        height, width = pixels.shape[:2]
        assert 900 <= width <= 2000 and 150 <= height <= 2100, (path.name, pixels.shape)
        assert pixels.std() > 0.05  # drawn on, not blank
    timeline_pixels = (matplotlib.image.imread(tmp_path / "png" / "timeline.png") * 255).round()
    assert (timeline_pixels[..., :3] == FAILED_RGB).all(axis=-1).any()


def test_big_runs_are_aggregated_but_failures_stay_visible(failed_run, tmp_path, monkeypatch):
    store, run_id = failed_run
    monkeypatch.setattr(timeline, "MAX_BARS", 10)  # as if the run had thousands of attempts
    monkeypatch.setattr(timeline, "BINS", 5)
    html = write_html(store, run_id, tmp_path / "report.html").read_text()
    bars = re.findall(r'<rect class="bar( failed| retried)?"[^>]*><title>([^<]*)</title>', html)
    failed = [title for kind, title in bars if kind]
    merged = [title for kind, title in bars if not kind]
    assert len(failed) == 2 and all(t.startswith("explode (attempt") for t in failed)
    started = sum(int(re.search(r"attempts started: (\d+)", t).group(1)) for t in merged)
    assert started == drawn_attempts(store, run_id) - 2  # every successful attempt counted
    assert len(merged) <= 2 * 5  # at most one bar per lane and bin
    assert "More than 10 attempts" in html


def test_cli_writes_html_by_default_and_pngs_on_request(failed_run, tmp_path, monkeypatch):
    store, run_id = failed_run
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    done = runner.invoke(main, ["report", run_id[:16], "--store", str(store.root)])
    assert done.exit_code == 0, done.output
    assert done.output == f"wrote report-{run_id}.html\n"
    assert "explode" in (tmp_path / f"report-{run_id}.html").read_text()

    done = runner.invoke(main, ["report", run_id, "--png", "figs", "--store", str(store.root)])
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "durations.png",
        "efficiency.png",
        "timeline.png",
    ]
    assert len(list(tmp_path.glob("*.html"))) == 1  # --png alone writes no HTML

    missing = runner.invoke(main, ["report", "nope", "--store", str(store.root)])
    assert missing.exit_code == 1 and "no run 'nope'" in missing.output


def test_pngs_without_matplotlib_say_how_to_install_it(failed_run, tmp_path):
    store, run_id = failed_run
    script = (
        "import sys; sys.modules['matplotlib'] = None  # as if it were not installed\n"
        "from provtask import Store\n"
        "from provtask.analysis.report import write_pngs\n"
        f"write_pngs(Store({str(store.root)!r}), {run_id!r}, {str(tmp_path / 'png')!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 1
    assert "ProvtaskError: PNG plots need matplotlib: pip install 'provtask[report]'" in (
        done.stderr
    )
    assert not (tmp_path / "png").exists()
