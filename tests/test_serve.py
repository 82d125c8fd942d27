"""`hyperpilot serve`: the web chat app through FastAPI's TestClient (upload, a rules-only
conversation that runs a real 3-trial study in-process, streamed progress, the history PNG,
bad input), and the real server end to end in headless Chromium driven by Selenium."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_iris
from threadpoolctl import threadpool_limits

from hyperpilot.cli.serve import create_app
from hyperpilot.sandbox import InProcessExecutor

fastapi_testclient = pytest.importorskip("fastapi.testclient")
PNG = b"\x89PNG\r\n\x1a\n"
HOSTILE = '<img src=x onerror="document.title=\'pwned\'">'  # a column name a page must never run


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with threadpool_limits(1):
        yield


def iris_csv(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame = load_iris(as_frame=True).frame.rename(columns={"target": "species"})
    frame[HOSTILE] = 1.0
    path = folder / "iris.csv"
    frame.to_csv(path, index=False)
    return path


def client(**kw: Any) -> Any:
    app = create_app(executor=InProcessExecutor(), memory=False, **kw)
    return fastapi_testclient.TestClient(app, base_url="http://127.0.0.1")


def say(c: Any, chat: str, text: str) -> dict[str, Any]:
    r = c.post(f"/api/chats/{chat}/messages", json={"text": text})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_upload_a_conversation_a_study_progress_and_the_plot(tmp_path: Path, hyperpilot_home: Path) -> None:
    c = client()
    page = c.get("/")
    assert page.status_code == 200 and "hyperpilot" in page.text and "script-src 'self'" in page.headers["content-security-policy"]
    assert c.get("/static/chat.js").status_code == 200
    chat = c.post("/api/chats", json={}).json()["chat"]

    with iris_csv(tmp_path).open("rb") as f:
        got = c.post(f"/api/chats/{chat}/files", files={"file": ("iris.csv", f, "text/csv")}).json()
    assert got["kind"] == "answer" and "Got iris.csv" in got["text"] and "species" in got["text"], got
    saved = hyperpilot_home / "serve" / chat / "iris.csv"
    assert saved.read_bytes() == (tmp_path / "iris.csv").read_bytes()  # kept in the conversation's folder

    plan = say(c, chat, "tune a random forest to predict species, 3 trials, 2 folds")  # no file named: the upload
    assert plan["kind"] == "plan" and "'species' in iris.csv" in plan["text"] and "3 trials" in plan["text"], plan

    replies: list[dict[str, Any]] = []
    runner = threading.Thread(target=lambda: replies.append(say(c, chat, "yes")))
    runner.start()
    during: list[str] = []
    refused: dict[str, Any] = {}
    while runner.is_alive():  # progress streams while the study runs
        ev = c.get(f"/api/chats/{chat}/events").json()
        if ev["busy"] and any(line.startswith("trial ") for line in ev["events"]):
            during = ev["events"]
            if not refused:
                r = c.post(f"/api/chats/{chat}/messages", json={"text": "what's best so far"})
                refused = {"status": r.status_code, **r.json()}
        time.sleep(0.05)
    runner.join()
    assert during and any(line.startswith("study: ") for line in during), "no progress seen while the study ran"
    assert refused["status"] == 409 and "still working" in refused["text"]

    done = replies[0]
    assert done["kind"] == "result" and "Done. Best: random_forest" in done["text"] and done["tool"] == "start_study"
    study = done["study"]
    assert done["plot"] and study in done["plot"]
    events = c.get(f"/api/chats/{chat}/events", params={"after": 0}).json()
    assert [line.split(":")[0] for line in events["events"] if line.startswith("trial ")] == ["trial 0", "trial 1", "trial 2"]
    assert not events["busy"] and events["running"] is None

    png = c.get(done["plot"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content.startswith(PNG)
    import matplotlib.image

    assert matplotlib.image.imread(io.BytesIO(png.content)).shape[1] > 100  # a real image, not a stub

    status = say(c, chat, "what's best so far")  # the conversation goes on, numbers from the tool
    assert status["tool"] == "study_status" and "3/3 trials done" in status["text"] and status["plot"]

    again = c.post("/api/chats", json={"resume": chat}).json()  # the page reloaded: the saved conversation
    assert again["chat"] == chat and again["study"] == study and any("Done. Best" in h["text"] for h in again["history"])


def test_bad_input_gets_one_line_and_the_conversation_goes_on(tmp_path: Path) -> None:
    c = client(max_upload_mb=0.02)
    chat = c.post("/api/chats", json={}).json()["chat"]
    url = f"/api/chats/{chat}"
    csv = iris_csv(tmp_path)

    def upload(name: str, content: bytes) -> tuple[int, dict[str, Any]]:
        r = c.post(f"{url}/files", files={"file": (name, content, "application/octet-stream")})
        return r.status_code, r.json()

    asked = say(c, chat, "tune logistic regression to predict species, 2 trials, 2 folds")
    assert asked["kind"] == "question" and "which data?" in asked["text"], asked

    bad = [upload("run.py", b"import os\nos.system('touch PWNED')\n"),
           upload("big.csv", b"a,b\n" + b"1,2\n" * 20_000),
           upload("empty.csv", b""),
           upload("one.csv", b"x\n1\n2\n")]
    assert [s for s, _ in bad] == [400, 413, 400, 400], bad
    assert "upload a .csv, .tsv or .parquet file" in bad[0][1]["text"] and "0.02 MB upload limit" in bad[1][1]["text"]
    assert all(r["kind"] == "error" and "\n" not in r["text"] for _, r in bad)
    assert not (tmp_path / "PWNED").exists() and not list((Path(os.environ["HYPERPILOT_HOME"]) / "serve" / chat).iterdir())

    status, got = upload("../../iris data.csv", csv.read_bytes())  # the name is cleaned, the folder kept
    assert status == 200 and got["kind"] == "plan" and "'species' in iris_data.csv" in got["text"], got  # answers "which data?"
    assert say(c, chat, "no")["kind"] == "answer"

    replies = [
        ("book me a flight to Lisbon", "answer", "can't do that"),
        ("what's best so far", "error", "no study in this conversation yet"),
        ("tune xgboost to predict species", "question", "did you mean hist_gradient_boosting"),
        ("cancel", "answer", "dropped that request"),
        ("tune svm on churn.csv to predict churned", "question", "no such file"),
        ("no", "answer", "dropped"),
        ("tune a random forest to predict colour, 2 trials", "question", "colour"),
        ("cancel", "answer", "dropped"),
        ("tune a random forest to predict species, maximise MAPE, 2 trials", "question", "unknown metric 'mape'"),
        ("cancel", "answer", "dropped"),
        ("tune logistic regression to predict species, 2 trials, 2 folds", "plan", "iris_data.csv"),
    ]
    for text, kind, says in replies:
        r = say(c, chat, text)
        assert r["kind"] == kind and says in r["text"], (text, r)

    too_long = c.post(f"{url}/messages", json={"text": "x" * 5000})
    assert too_long.status_code == 400 and "keep it under 4000" in too_long.json()["text"]
    malformed = c.post(f"{url}/messages", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["text"].startswith("bad request")
    gone = c.post("/api/chats/nope-123/messages", json={"text": "hi"})
    assert gone.status_code == 404 and "no conversation 'nope-123'" in gone.json()["text"]
    assert c.post("/api/chats/..%2F..%2Fetc/messages", json={"text": "hi"}).status_code == 404
    plot = c.get(f"{url}/plot", params={"study": "nope"})
    assert plot.status_code == 404 and "no study named 'nope'" in plot.json()["text"]
    other_site = c.post(f"{url}/messages", json={"text": "yes"}, headers={"origin": "http://evil.example"})
    assert other_site.status_code == 403
    rebound = c.get("/", headers={"host": "evil.example"})  # DNS rebinding: a foreign Host name
    assert rebound.status_code == 400
    assert say(c, chat, "no")["kind"] == "answer"  # the plan waited through all of that


def _url(proc: subprocess.Popen[str], timeout: float = 120.0) -> str:
    end = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if match := re.search(r"open (http://\S+)", line):
            return match.group(1)
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"hyperpilot serve printed no URL (exit {proc.poll()})")


def _chrome() -> Any:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(binary).is_file() and Path(driver).is_file()):
        pytest.skip("chromium and chromedriver are not installed (apt install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,900"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)  # a given driver: Selenium Manager stays off


@pytest.mark.slow
def test_the_page_end_to_end_in_headless_chromium(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _chrome()
    csv = iris_csv(tmp_path / "data")
    env = {**os.environ, "HYPERPILOT_LLM": "none", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", "from hyperpilot.cli import main; main()", "serve", "--port", "0", "--no-sandbox",
           "--no-memory"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path, env=env)
    try:
        url = _url(proc)
        assert url.startswith("http://127.0.0.1:")
        browser.get(url)
        wait = WebDriverWait(browser, 240, poll_frequency=0.2)
        title = browser.title

        def bot_says(pattern: str) -> str:
            def seen(_: Any) -> str | bool:
                texts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".msg.bot")]
                return next((t for t in texts if re.search(pattern, t)), False)
            return str(wait.until(seen))

        bot_says("Upload a table")
        browser.find_element(By.ID, "file").send_keys(str(csv))
        got = bot_says(r"Got iris\.csv")
        assert HOSTILE in got and browser.title == title  # shown as text, never run
        for text, expect in [("tune a random forest to predict species, 3 trials, 2 folds", r"Start it\?"),
                             ("yes", r"Done\. Best: random_forest")]:
            wait.until(lambda b: b.find_element(By.ID, "send").is_enabled())
            box = browser.find_element(By.ID, "text")
            box.send_keys(text)
            browser.find_element(By.ID, "send").click()
            bot_says(expect)
        wait.until(lambda b: b.execute_script(
            "const i = document.getElementById('plot'); return i.complete && i.naturalWidth > 0 && "
            "!document.getElementById('plotbox').hidden"))
        # the page polls the progress lines: the last poll may land just after the reply
        wait.until(lambda b: "trial 2:" in b.find_element(By.ID, "progress").text)
        assert "trial 0:" in browser.find_element(By.ID, "progress").text
        assert "study: " in browser.find_element(By.ID, "study").text
        shot = tmp_path / "serve.png"
        browser.save_screenshot(str(shot))
        assert shot.read_bytes().startswith(PNG)
        print(f"screenshot: {shot}")
    finally:
        browser.quit()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_serve_help_and_a_port_in_use() -> None:
    import socket

    from typer.testing import CliRunner

    from hyperpilot.cli.commands import app

    runner = CliRunner()
    shown = runner.invoke(app, ["serve", "--help"])
    assert shown.exit_code == 0 and "127.0.0.1" in shown.output and "0 picks a free one" in shown.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = runner.invoke(app, ["serve", "--port", str(port), "--no-sandbox", "--no-memory"])
    assert busy.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in busy.output, busy.output


def test_the_printed_port_accepts_before_the_server_runs() -> None:
    """The URL is printed before uvicorn starts: a browser that is quicker must wait, not be refused (CI saw it)."""
    import socket

    from hyperpilot.cli.serve import bind, url_of

    sock = bind("127.0.0.1", 0)
    try:
        port = int(url_of(sock, "127.0.0.1").rstrip("/").rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        sock.close()


def test_an_upload_without_a_length_is_cut_at_the_limit(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from hyperpilot.cli.serve import ServeError, _save_upload

    big = SimpleNamespace(file=io.BytesIO(b"a,b\n" + b"1,2\n" * 1000))
    with pytest.raises(ServeError, match="larger than the 0.001 MB upload limit") as e:
        _save_upload(big, tmp_path / "big.csv", limit=1024, limit_mb=0.001)
    assert e.value.status == 413 and not list(tmp_path.iterdir())
    small = SimpleNamespace(file=io.BytesIO(b"a,b\n1,2\n3,4\n"))
    assert _save_upload(small, tmp_path / "ok.csv", limit=1024, limit_mb=0.001) == (tmp_path / "ok.csv", ["a", "b"])
