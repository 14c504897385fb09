"""`python -m optimizer.dashboard` seen by headless Chromium: the Pareto-front plot with the
study's trials, and a trial's note and artifacts, all through the read-only guard (the page's
own attempt to delete the study is refused). Screenshots go to the test's directory."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import optuna
import pytest
from optuna.trial import TrialState

from optimizer.dashboard import TOKEN_ENV
from tests.browser.cdp import Browser, chromium_path
from tests.optimizer.report_study import study_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dashboard(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The dashboard on a fresh study; an indirect parameter sets its token (by environment)."""
    token = getattr(request, "param", None)
    study, _ = study_in(tmp_path_factory, "browser", n_trials=10)
    url = study._storage._backend.url  # type: ignore[attr-defined]
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(TOKEN_ENV, None)
    if token:
        env[TOKEN_ENV] = token
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    proc = subprocess.Popen(
        [sys.executable, "-m", "optimizer.dashboard", study.study_name, "--storage", url,
         "--port", str(port)],
        cwd=REPO, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            ready = httpx.get(f"{base}/api/studies", headers=auth, trust_env=False)
            if ready.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "dashboard did not start"
        time.sleep(0.3)
    try:
        yield study, base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


@pytest.mark.skipif(chromium_path() is None, reason="no chromium (CI installs Debian's)")
def test_pareto_plot_note_and_artifact_are_visible(dashboard, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    study, base = dashboard
    url = study._storage._backend.url
    foreign = httpx.get(f"{base}/api/studies", headers={"Host": "rebind.example"}, trust_env=False)
    assert foreign.status_code == 421
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    sid = study._study_id

    async def run() -> tuple[int, str, int]:
        async with Browser(tmp_path / "profile") as page:
            await page.goto(f"{base}/dashboard/studies/{sid}")
            points = await page.wait_for(
                "document.querySelectorAll('#graph-pareto-front .scatterlayer .point').length"
            )
            title = await page.evaluate("document.body.innerText")
            assert "output throughput (tok/s)" in title and "p99 TPOT (ms)" in title
            await page.screenshot(tmp_path / "pareto.png")
            refused = await page.evaluate(
                f"fetch('/api/studies/{sid}', {{method: 'DELETE'}}).then(r => r.status)"
            )
            await page.goto(f"{base}/dashboard/studies/{sid}/trials?numbers=0")
            await page.wait_for(
                "document.body && document.body.innerText.includes('bench-simulated.json')"
            )
            text = str(await page.evaluate("document.body.innerText"))
            await page.screenshot(tmp_path / "trial.png")
            return int(points), text, int(refused)

    points, text, refused = asyncio.run(run())
    assert refused == 403  # the guard is in place, and the page loaded through it
    assert len(optuna.load_study(study_name=study.study_name, storage=url).trials) == len(
        study.trials
    )
    assert points == len(complete)
    baseline = study.trials[0]
    assert baseline.user_attrs["serve_command"] in text  # the note
    assert "baseline (engine defaults)" in text
    assert "trial-0-engine-log-tail.txt" in text  # the artifacts
    assert (tmp_path / "pareto.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.skipif(chromium_path() is None, reason="no chromium (CI installs Debian's)")
@pytest.mark.parametrize("dashboard", ["browser-test-token"], indirect=True)
def test_a_token_in_the_first_url_is_enough_for_the_page(dashboard, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    study, base = dashboard
    assert httpx.get(f"{base}/api/studies", trust_env=False).status_code == 401
    sid = study._study_id

    async def run() -> tuple[int, int]:
        async with Browser(tmp_path / "profile") as page:
            await page.goto(f"{base}/dashboard/studies/{sid}?token=browser-test-token")
            points = await page.wait_for(
                "document.querySelectorAll('#graph-pareto-front .scatterlayer .point').length"
            )
            # later requests of the page carry the cookie, not the token
            later = await page.evaluate("fetch('/api/studies').then(r => r.status)")
            return int(points), int(later)

    points, later = asyncio.run(run())
    assert points == len([t for t in study.trials if t.state == TrialState.COMPLETE])
    assert later == 200
