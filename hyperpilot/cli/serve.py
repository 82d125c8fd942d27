"""`hyperpilot serve`: the conversation engine of `hyperpilot chat` (`agent.chat.Conversation`,
over the same agent tools) as a local web page; `create_app(...)` builds the FastAPI app.

    GET  /                                   the page (static/chat.html + chat.js)
    POST /api/chats                          a new conversation, or {"resume": NAME} a saved one
    POST /api/chats/{chat}/files             upload a CSV / TSV / Parquet table (multipart field `file`)
    POST /api/chats/{chat}/messages          {"text": ...} -> the reply (answers when the turn ends,
                                             a study included)
    GET  /api/chats/{chat}/events?after=N    progress lines of the running turn (the page polls it)
    GET  /api/chats/{chat}/plot?study=NAME   the study's optimisation history (`report.plots.plot_history`)

A reply is `{"text", "kind", "tool", "study", "plot"}`; a mistake is a reply of kind "error"
(one line, a 4xx status) and the conversation goes on. An upload is saved in the
conversation's folder (`HYPERPILOT_HOME/serve/NAME/`, the tools' working folder) and is only
ever read as a table; the page shows every text with `textContent`, never as HTML, under a
Content-Security-Policy that allows no inline script. Only loopback Host names and same-origin
POSTs are accepted unless the server is bound to another address. One study runs at a time
(conversations share the executor); the others' studies wait for it."""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations, defined in create_app

import ipaddress
import re
import secrets
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import quote, urlsplit

import typer

from hyperpilot.cli.options import LlmKeyEnvOption, LlmOption, MemoryOption, SandboxOption, StorageOption, WorkersOption

if TYPE_CHECKING:
    from fastapi import FastAPI

    from hyperpilot.agent.chat import Conversation, Reply

MAX_MESSAGE = 4000  # characters
UPLOAD_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
PLOTTED = ("start_study", "continue_study", "study_status")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class ServeError(Exception):
    """A request the server answers with one line and an HTTP status."""

    def __init__(self, text: str, status: int = 400) -> None:
        super().__init__(text)
        self.status = status


@dataclass
class Session:
    """One conversation on the page: the engine, its folder, the progress lines of its turns."""

    folder: Path
    chat: Any = None  # the Conversation
    events: list[str] = field(default_factory=list)
    running: Optional[str] = None  # the study running now
    busy: threading.Lock = field(default_factory=threading.Lock)  # one turn (or upload) at a time
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards events

    def log(self, text: str) -> None:
        with self.lock:
            self.events.append(text)


class SessionProgress:
    """The `tools.runtime.Progress` of a session: it takes the server's study lock (one study
    runs at a time) and writes each step as a progress line the page polls."""

    def __init__(self, session: Session, what: str, studies_lock: threading.Lock) -> None:
        self.session, self.what, self.studies_lock = session, what, studies_lock

    def __enter__(self) -> "SessionProgress":
        if not self.studies_lock.acquire(blocking=False):
            self.session.log("waiting for another conversation's study to finish")
            self.studies_lock.acquire()
        self.session.log(f"{self.what}: loading the data")
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.running = None
        self.studies_lock.release()

    def on_start(self, task: Any) -> None:
        self.session.running = str(task.study_name)
        self.session.log(f"plan: {task.describe()}")
        self.session.log(f"study: {task.study_name}")

    def on_trial(self, t: Any) -> None:
        value = t.value_text()
        best = "-" if t.best_value is None else f"{t.best_value:.4f}"
        budget = f"{t.n_done}/{t.n_total}" if t.n_total else str(t.n_done)
        error = f" ({t.error[:200]})" if t.error else ""
        self.session.log(f"trial {t.number}: {t.source} {t.model} {value}, best {best}, {budget} done, "
                         f"{t.seconds:.1f}s{error}")
        if t.n_total is not None and t.n_done >= t.n_total:
            self.session.log("refitting the best and writing the report")


def create_app(*, llm: Any = None, executor: Any = None, memory: Any = True, workers: int = 1,
               storage: Optional[str] = None, folder: Optional[Path] = None, max_upload_mb: float = 50.0,
               hosts: Optional[list[str]] = None) -> "FastAPI":
    """The web chat app. `llm`: the conversation's and the studies' LLM (None: rules only, no
    planner); `executor`: where trials run (None: one `SandboxExecutor` shared by all
    conversations); `memory`, `workers`, `storage` as in `tools.Runtime`; `folder`: where
    conversations keep their uploads (default `HYPERPILOT_HOME/serve`); `max_upload_mb`: the
    largest upload; `hosts`: the Host names accepted (default loopback only; ["*"]: any)."""
    from fastapi import FastAPI, File, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel

    from hyperpilot import studies
    from hyperpilot.errors import HyperpilotError

    root = folder or studies.home() / "serve"
    limit = int(max_upload_mb * 1024 * 1024)
    if executor is None:
        from hyperpilot.sandbox import SandboxExecutor

        executor = SandboxExecutor(workers=workers)
    sessions: dict[str, Session] = {}
    sessions_lock, studies_lock, plot_lock = threading.Lock(), threading.Lock(), threading.Lock()
    app = FastAPI(title="hyperpilot", docs_url=None, redoc_url=None, openapi_url=None)
    allowed = {h.strip("[]").lower() for h in (hosts or LOOPBACK_NAMES)}

    class NewChat(BaseModel):
        resume: Optional[str] = None

    class Message(BaseModel):
        text: str

    def open_session(name: Optional[str], resume: bool) -> Session:
        from hyperpilot.agent.chat import Conversation
        from hyperpilot.tools import Runtime, all_tools

        name = name or time.strftime("web-%Y%m%d-%H%M%S-") + secrets.token_hex(2)
        session = Session(folder=root / name)
        runtime = Runtime(executor=executor, llm=llm or "none", memory=memory, workers=workers, storage=storage,
                          cwd=session.folder, progress=lambda what: SessionProgress(session, what, studies_lock))
        tools = all_tools(runtime)
        try:
            session.chat = (Conversation.resume(name, tools, llm, cwd=session.folder) if resume
                            else Conversation(tools, llm, name=name, cwd=session.folder))
        except HyperpilotError as e:
            raise ServeError(str(e), 404 if resume else 400) from None
        session.folder.mkdir(parents=True, exist_ok=True)
        with sessions_lock:
            sessions[name] = session
        return session

    def session_of(name: str) -> Session:
        with sessions_lock:
            session = sessions.get(name)
        if session is not None:
            return session
        try:
            return open_session(name, resume=True)  # the server restarted under an open page
        except ServeError:
            raise ServeError(f"no conversation '{name}'; reload the page to start a new one", 404) from None

    def answer(session: Session, reply: "Reply") -> dict[str, Any]:
        chat: Conversation = session.chat
        study = (reply.result or {}).get("study") if reply.tool in PLOTTED and reply.kind != "error" else None
        plot = f"/api/chats/{quote(chat.name)}/plot?study={quote(study)}&n={len(chat.history)}" if study else None
        return {"text": reply.text, "kind": reply.kind, "tool": reply.tool, "study": chat.state.study, "plot": plot}

    def turn(session: Session, act: Any) -> dict[str, Any]:
        if not session.busy.acquire(blocking=False):
            raise ServeError("still working on your last message; wait for its answer", 409)
        try:
            return answer(session, act())
        except HyperpilotError as e:
            raise ServeError(str(e)) from None
        finally:
            session.busy.release()

    @app.exception_handler(ServeError)
    def _serve_error(request: Request, e: ServeError) -> JSONResponse:
        return JSONResponse({"text": str(e), "kind": "error"}, status_code=e.status)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"text": f"bad request: {where}: {first.get('msg', 'invalid')}", "kind": "error"}, 400)

    @app.exception_handler(Exception)
    def _bug(request: Request, e: Exception) -> JSONResponse:
        traceback.print_exception(e)  # a bug: the whole story on the server's stderr, one line on the page
        return JSONResponse({"text": f"internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}; "
                             "the conversation goes on", "kind": "error"}, 500)

    @app.middleware("http")
    async def _guard(request: Request, call_next: Any) -> Any:
        host = urlsplit("//" + request.headers.get("host", "")).hostname or ""
        if "*" not in allowed and host.lower() not in allowed:  # e.g. a DNS-rebinding page
            return JSONResponse({"text": f"requests for host '{host[:100]}' are refused", "kind": "error"}, 400)
        if request.method == "POST":
            origin = request.headers.get("origin")
            if origin and urlsplit(origin).netloc != request.headers.get("host"):
                return JSONResponse({"text": "cross-origin requests are refused", "kind": "error"}, 403)
            size = request.headers.get("content-length", "")
            if request.url.path.endswith("/files") and size.isdigit() and int(size) > limit + 65536:
                return JSONResponse({"text": f"that file is larger than the {max_upload_mb:g} MB upload limit "
                                     "(hyperpilot serve --max-upload-mb)", "kind": "error"}, 413)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/")
    def page() -> Response:
        return Response(files("hyperpilot.cli").joinpath("static/chat.html").read_bytes(), media_type="text/html")

    @app.get("/static/chat.js")
    def script() -> Response:
        return Response(files("hyperpilot.cli").joinpath("static/chat.js").read_bytes(), media_type="text/javascript")

    @app.post("/api/chats")
    def new_chat(body: NewChat) -> dict[str, Any]:
        session = session_of(body.resume) if body.resume else open_session(None, resume=False)
        chat: Conversation = session.chat
        history = [{"role": e.get("role"), "text": e.get("text") or f"uploaded {e.get('file')}", "kind": e.get("kind")}
                   for e in chat.history if e.get("text") or e.get("file")]
        return {"chat": chat.name, "history": history, "study": chat.state.study,
                "plot": f"/api/chats/{quote(chat.name)}/plot?study={quote(chat.state.study)}" if chat.state.study else None}

    @app.post("/api/chats/{chat}/messages")
    def message(chat: str, body: Message) -> dict[str, Any]:
        session = session_of(chat)
        if len(body.text) > MAX_MESSAGE:
            raise ServeError(f"that message has {len(body.text)} characters; keep it under {MAX_MESSAGE}")
        return turn(session, lambda: session.chat.turn(body.text))

    @app.post("/api/chats/{chat}/files")
    def upload(chat: str, file: UploadFile = File(...)) -> dict[str, Any]:  # noqa: B008 - FastAPI's idiom
        session = session_of(chat)
        given = Path(file.filename or "").name
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", given).lstrip("._-")[-100:]
        if Path(name).suffix.lower() not in UPLOAD_SUFFIXES or Path(name).stem == "":
            raise ServeError(f"'{given[:100]}' is not a table hyperpilot reads; upload a .csv, .tsv or .parquet file")
        return turn(session, lambda: session.chat.attach(*_save_upload(file, session.folder / name, limit, max_upload_mb)))

    @app.get("/api/chats/{chat}/events")
    def events(chat: str, after: int = 0) -> dict[str, Any]:
        session = session_of(chat)
        with session.lock:
            lines = session.events[max(after, 0):]
            count = len(session.events)
        return {"events": lines, "next": count, "running": session.running, "busy": session.busy.locked()}

    @app.get("/api/chats/{chat}/plot")
    def plot(chat: str, study: str) -> Response:
        from hyperpilot.report.plots import plot_history

        session = session_of(chat)
        try:
            loaded = studies.load_study(study, storage)
        except HyperpilotError as e:
            raise ServeError(str(e), 404) from None
        table = studies.trial_table(loaded)
        if not (table.state == "COMPLETE").any():
            raise ServeError(f"study '{study}' has no complete trial yet", 404)
        task = studies.stored_task(loaded)
        with plot_lock:  # pyplot is not thread-safe; one drawing at a time
            path = session.folder / "history.png"
            plot_history(table, list(task.models), str(task.metric), loaded.direction.name == "MAXIMIZE", study, path)
            png = path.read_bytes()
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    return app


def _save_upload(file: Any, dest: Path, limit: int, limit_mb: float) -> tuple[Path, list[str]]:
    """Write an upload to `dest` (at most `limit` bytes) and read its column names; a file
    that is too big or not a table is removed and is one `ServeError` line."""
    part = dest.with_name(dest.name + ".part")
    size = 0
    with part.open("wb") as out:
        while chunk := file.file.read(1 << 20):
            size += len(chunk)
            if size > limit:
                out.close()
                part.unlink()
                raise ServeError(f"{dest.name} is larger than the {limit_mb:g} MB upload limit "
                                 "(hyperpilot serve --max-upload-mb)", 413)
            out.write(chunk)
    try:
        columns = _columns(part, dest.suffix.lower())
    except Exception as e:  # noqa: BLE001 - any parser failure is the user's file
        part.unlink()
        raise ServeError(f"cannot read {dest.name} as a table: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    part.replace(dest)
    return dest, columns


def _columns(path: Path, suffix: str) -> list[str]:
    import pandas as pd

    if suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", nrows=100)
    if frame.empty or len(frame.columns) < 2:
        raise ValueError("it needs a header and data rows, with at least two columns")
    return [str(c) for c in frame.columns]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(128)  # before the URL is printed: a browser that connects first waits instead of being refused
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def is_loopback(host: str) -> bool:
    if host.strip("[]") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. The default, 127.0.0.1, is this "
                             "machine only; another address lets anyone who reaches it upload files and run studies."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port to listen on; 0 picks a free one (the URL is printed)."),
    max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", min=0.001, help="Largest file a page may upload, in MB."),
    llm: LlmOption = None,
    llm_key_env: LlmKeyEnvOption = None,
    memory: MemoryOption = None,
    sandbox: SandboxOption = None,
    workers: WorkersOption = None,
    storage: StorageOption = None,
) -> None:
    """A local web chat page: upload a CSV or Parquet file, say what to tune, answer the
    questions, confirm the plan, watch the trials and the history plot, then ask follow-ups
    (what's best so far, why, try N more, use another model, export it). The same engine as
    'hyperpilot chat'; conversations are saved and reopen from their URL. Ctrl-C stops it."""
    import uvicorn

    from hyperpilot.cli.commands import _executor, _planner
    from hyperpilot.cli.output import err, fail, line, show_notices
    from hyperpilot.errors import HyperpilotError

    show_notices()
    try:
        planner = _planner(llm, llm_key_env)
        app = create_app(llm=planner, executor=_executor(sandbox is False, None, workers or 1),
                         memory=True if memory is None else memory, workers=workers or 1, storage=storage,
                         max_upload_mb=max_upload_mb,
                         hosts=None if is_loopback(host) else ["*"])
        sock = bind(host, port)
    except HyperpilotError as e:
        fail(str(e))
        raise typer.Exit(2) from None
    except OSError as e:
        fail(f"cannot listen on {host}:{port}: {e.strerror or e}")
        raise typer.Exit(2) from None
    if not is_loopback(host):
        line(f"[bold red]WARNING[/bold red]: listening on {host}: anyone who reaches it can upload files and run studies", err)
    typer.echo(f"hyperpilot serve: open {url_of(sock, host)}")
    sys.stdout.flush()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    line("stopped; conversations are saved (reopen one with its URL's ?chat=NAME)", err)
