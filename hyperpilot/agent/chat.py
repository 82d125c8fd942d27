"""The conversation engine behind `hyperpilot chat` and `hyperpilot serve`'s web page: `Conversation(tools,
llm).turn(text) -> Reply` (`attach(path)` for an uploaded file).

    a request ──► `parse_request` (the request parser the CLI uses) ──► a question? ask it; the
    user's answer is merged into the pending request (a column name answers "which column
    should be predicted?", "iris.csv" answers "which data?", "random forest" an unknown model)
    ──► the plan (`Task.describe()` and the models' search spaces) ──► "yes" ──► start_study
    ──► follow-ups: status, explain, try N more, use MODEL instead, compare, export …
    "write your own model for this" (`CODE_ASK`, at any point): the plan also tunes
    `custom_code`, the studies' LLM writes the programs, the result reply counts them

**Which tool a follow-up calls.** A capable LLM (`llm.free_proposals`) picks it through one
constrained JSON action: `{"action": {"tool": NAME, "arguments": {...}}}`, a union
discriminated by the tool name whose arguments are each tool's pydantic model (llama.cpp
grammars and OpenAI JSON schemas both enforce it); an answer that fails validation, or any
LLM error, falls back to the rules. The embedded small model and no LLM use the rules
(keyword matching below): `tool_choice="auto"` never calls a tool with the small models
(FACTS.md) and their free text is not trusted, so the embedded model only plans trials
inside studies. A new study always goes through the plan and a "yes", whoever chose it.
Every answer's numbers come from a tool's result, formatted here; no LLM writes them.

The tools are passed in (LangChain `StructuredTool`s from `hyperpilot.tools.all_tools`, or any
object with `name`, `args_schema` and `invoke(dict)`); this module knows them by name only.
A conversation is saved as JSON lines under `HYPERPILOT_HOME/chats/NAME.jsonl` (each turn,
with the state) and resumed with `Conversation.resume(NAME, tools)`."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, Union

from pydantic import BaseModel, Field, ValidationError, create_model

from hyperpilot import studies
from hyperpilot.agent.llm.base import LLM
from hyperpilot.agent.request import parse_request
from hyperpilot.agent.request_rules import read_rules
from hyperpilot.cards import get_model_card
from hyperpilot.errors import HyperpilotError, LLMError

YES = {"yes", "y", "go", "ok", "okay", "sure", "start", "run", "run it", "do it", "go ahead", "yes please", "yep", "start it"}
NO = {"no", "n", "cancel", "stop", "never mind", "nevermind", "abort", "forget it"}
EXAMPLE = "tune a random forest on data.csv to predict churn, maximise AUC, 30 trials"
FOLLOW_UPS = "what's best so far · why that learning rate · try 20 more · use logistic regression instead · export it"
START_FIELDS = ("data", "target", "models", "metric", "n_trials", "timeout", "cv_folds")
_TARGET_PHRASE = re.compile(r"\b(?:predict(?:s|ing)?|target|label)\b\s*[:=]?\s*[^,.;]*", re.I)
CODE_ASK = re.compile(r"\b(?:writ|cod|program|build|mak|creat|design|craft)\w*\b[^.?!]*\b(?:your|its|an?)\s+own\b"
                      r"|\bcustom (?:code|programs?|models?)\b|\bcode as a hyper-?\s?parameter\b"
                      r"|\bwrit\w* (?:a |some |the )?(?:python )?(?:code|programs?)\b", re.I)
_FILE = re.compile(r"(sklearn:[a-z_]+|[\w./~+-]+\.(?:csv|tsv|parquet|pq))\b", re.I)


class Tool(Protocol):
    """What the engine needs of a tool (a LangChain `StructuredTool` is one)."""

    name: str
    description: str

    def invoke(self, input: Any) -> Any: ...  # noqa: A002 - LangChain's name


@dataclass
class Reply:
    """One answer: `kind` is question (waiting for an answer), plan (waiting for yes),
    result (a study ran), answer, or error (a short reply; the conversation goes on).
    `result` is the tool's JSON result, `tool` its name."""

    text: str
    kind: str = "answer"
    tool: str | None = None
    result: dict[str, Any] | None = None


@dataclass
class State:
    request: str | None = None  # the pending request's text
    given: dict[str, Any] = field(default_factory=dict)  # Task fields read from answers (they win over the text)
    question: str | None = None  # target | data | other, while a question waits for its answer
    plan: dict[str, Any] | None = None  # start_study arguments waiting for "yes"
    study: str | None = None  # the current study
    last: dict[str, Any] | None = None  # the start_study arguments of the current study
    code: bool = False  # "write your own model": the next plan also tunes custom_code (the studies' LLM writes programs)
    files: list[str] = field(default_factory=list)  # files the user gave (uploads); a request naming none uses the last


def chats_dir() -> Path:
    path = studies.home() / "chats"
    path.mkdir(parents=True, exist_ok=True)
    return path


class Conversation:
    """A chat over hyperpilot's tools; `turn(text)` answers one message. `cwd` is where
    relative file names in requests are looked up (the tools' `Runtime.cwd` should match);
    `name` names the saved conversation (default `chat-DATE-TIME`); `save=False` keeps it
    in memory only."""

    def __init__(self, tools: Sequence[Tool], llm: LLM | None = None, *, name: str | None = None,
                 cwd: Path | None = None, save: bool = True) -> None:
        self.tools = {t.name: t for t in tools}
        self.llm = llm
        self.name = name or time.strftime("chat-%Y%m%d-%H%M%S")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", self.name):
            raise HyperpilotError(f"conversation name {self.name!r} must be letters, digits and '_', '.' or '-'")
        self.cwd = cwd or Path.cwd()
        self.state = State()
        self.history: list[dict[str, Any]] = []
        self.path = chats_dir() / f"{self.name}.jsonl" if save else None

    @classmethod
    def resume(cls, name: str, tools: Sequence[Tool], llm: LLM | None = None, *, cwd: Path | None = None) -> Conversation:
        """The saved conversation `name`, with its history and state, ready for the next turn."""
        chat = cls(tools, llm, name=name, cwd=cwd)
        if chat.path is None or not chat.path.is_file():
            saved = sorted(p.stem for p in chats_dir().glob("*.jsonl"))
            raise HyperpilotError(f"no saved conversation named '{name}'"
                                  + (f"; saved ones: {', '.join(saved[-10:])}" if saved else ""))
        for raw in chat.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            chat.history.append(entry)
            if isinstance(entry.get("state"), dict):
                chat.state = State(**entry["state"])
        return chat

    # -- one turn ---------------------------------------------------------------------------
    def turn(self, text: str) -> Reply:
        text = " ".join(text.split())
        self._save({"role": "user", "text": text})
        try:
            reply = self._turn(text)
        except HyperpilotError as e:  # a mistake the tools did not catch: one line, the conversation goes on
            reply = Reply(str(e), "error")
        self._save({"role": "assistant", "text": reply.text, "kind": reply.kind, "tool": reply.tool,
                    "state": asdict(self.state)})
        return reply

    def _turn(self, text: str) -> Reply:
        low = text.lower().strip(" .!?")
        if not low:
            return Reply(f"Tell me what to tune, e.g. '{EXAMPLE}'.")
        if low in ("help", "?", "what can you do"):
            return Reply(self._help())
        if CODE_ASK.search(text):
            return self._code(text)
        if self.state.question is not None:
            return self._answer(text)
        if self.state.plan is not None:
            return self._confirm(text)
        return self._route(text)

    def _help(self) -> str:
        return (f"Tell me what to tune, e.g. '{EXAMPLE}'. I restate the plan and start when you say yes. "
                f"Then ask: {FOLLOW_UPS} · compare trials 1 and 2 · list models · tell me about svm · "
                "profile data.csv · search memory for …")

    # -- the request: questions, answers, the plan ------------------------------------------
    def attach(self, path: Path, columns: Sequence[str] = ()) -> Reply:
        """A file the user gave (an upload in `hyperpilot serve`): it answers a pending "which
        data?" question, and a later request that names no file uses it. Only read as a table."""
        name = path.name if path.parent == self.cwd else str(path)
        located = str(path if path.is_absolute() else self.cwd / path)  # kept whole: the conversation may reopen elsewhere
        self.state.files.append(located)
        self._save({"role": "user", "file": name})
        if self.state.question == "data":
            self.state.given["data"] = located
            reply = self._parse()
        else:
            cols = f" (columns: {', '.join(columns[:20])}{' …' if len(columns) > 20 else ''})" if columns else ""
            reply = Reply(f"Got {name}{cols}. Say what to tune, e.g. 'tune a random forest to predict "
                          f"{columns[-1] if columns else 'COLUMN'}, 20 trials'.")
        self._save({"role": "assistant", "text": reply.text, "kind": reply.kind, "tool": None, "state": asdict(self.state)})
        return reply

    def _code(self, text: str) -> Reply:
        """"Write your own model for this": the plan (the pending one, else the pending
        request, else the last study's task, else this request) also tunes `custom_code`, whose
        programs the studies' LLM writes; confirmed like any plan."""
        if self.state.plan is not None or self.state.question is not None:
            self.state.code = True
            return self._parse() if self.state.request is not None else self._plan_from(dict(self.state.plan or {}))
        if self.state.last is not None and not read_rules(text).get("data"):
            self.state.request, self.state.code = None, True
            return self._plan_from({**self.state.last, "study_name": None})
        return self._request(text, code=True)

    def _request(self, text: str, given: dict[str, Any] | None = None, code: bool = False) -> Reply:
        named = read_rules(text).get("data")
        if self.state.files and not named:
            given = {"data": self.state.files[-1], **(given or {})}
        elif isinstance(named, str) and (self.cwd / named).is_file():  # a file here: kept whole, so a reopened
            given = {"data": str(self.cwd / named), **(given or {})}  # conversation (another folder) finds it
        self.state.request, self.state.given, self.state.plan = text, dict(given or {}), None
        self.state.code = code
        return self._parse()

    def _parse(self) -> Reply:
        try:
            task = parse_request(str(self.state.request), self.llm, cwd=self.cwd, **self.state.given)
        except HyperpilotError as e:
            self.state.question = _kind(str(e))
            return Reply(f"{e} (or say 'cancel')", "question")
        task = task.with_code() if self.state.code else task
        self.state.question = None
        self.state.plan = {k: getattr(task, k) for k in START_FIELDS}
        return Reply(self._plan_text(task), "plan")

    def _plan_text(self, task: Any) -> str:
        lines = [f"Plan: {task.describe()}."]
        for name in task.models:
            card = get_model_card(name)
            lines.append(f"  {name}: tunes {', '.join(card.space.names)} (from the card's default first)")
        lines.append("Start it? (yes / no, or change something, e.g. '10 trials', 'use svm')")
        return "\n".join(lines)

    def _answer(self, text: str) -> Reply:
        """The answer to the pending question, merged into the pending request."""
        low = text.lower().strip(" .!?")
        if low in NO:
            self.state = State(study=self.state.study, last=self.state.last, files=self.state.files)
            return Reply("OK, dropped that request. Tell me another, or ask about the current study.")
        rules = read_rules(text)
        if rules["questions"]:
            return Reply(next(iter(rules["questions"].values())), "question")
        fields = _fields(rules)
        request = str(self.state.request)
        if self.state.question == "target":
            named = text if rules["named_targets"] else f"predict {_FILE.sub('', text).strip()}"
            request = _retarget(request, named)
            self.state.given.pop("target", None)
        elif self.state.question == "data" and "data" not in fields:
            fields["data"] = text.strip().strip("'\"")
        elif not fields:
            request = request + ". " + text
        self.state.request = request
        self.state.given.update(fields)
        return self._parse()

    def _confirm(self, text: str) -> Reply:
        low = text.lower().strip(" .!?")
        plan = dict(self.state.plan or {})
        if low in YES or low.startswith(("yes", "go ")):
            self.state.plan = None
            return self._start(plan)
        if low in NO:
            self.state.plan = None
            return Reply("OK, not started. Change the request or tell me another.")
        rules = read_rules(text)
        if rules["questions"]:
            return Reply(next(iter(rules["questions"].values())), "question")
        fields = _fields(rules)
        if fields and self.state.request is None:  # a plan made from the last study ("use svm instead")
            return self._plan_from({**plan, **fields})
        if fields or rules["named_targets"]:
            if rules["named_targets"]:
                self.state.request = _retarget(str(self.state.request), text)
                self.state.given.pop("target", None)
            self.state.given.update(fields)
            return self._parse()
        return Reply("Say 'yes' to start, 'no' to cancel, or change something (e.g. '10 trials', 'use svm').", "plan")

    def _start(self, args: dict[str, Any]) -> Reply:
        result = self._call("start_study", args)
        if "error" in result:
            return Reply(f"{result['error']}. Nothing was started; change the request and try again.", "error",
                         "start_study", result)
        self.state.study, self.state.last, self.state.code = result["study"], args, False
        return Reply(_result_text(result), "result", "start_study", result)

    # -- follow-ups ---------------------------------------------------------------------------
    def _route(self, text: str) -> Reply:
        if self.llm is not None and self.llm.free_proposals:
            action = self._llm_action(text)
            if action is not None:
                return self._do(*action, text=text)
        return self._do(*self._rules_action(text), text=text)

    def _rules_action(self, text: str) -> tuple[str, dict[str, Any]]:
        """(tool or 'request' / 'new_model' / 'cannot', its arguments) by keywords."""
        low = text.lower()
        study = {"study": self.state.study} if self.state.study else {}
        numbers = [int(n) for n in re.findall(r"\b(\d+)\b", low)]
        if re.search(r"\bexport\b|\bsave (it|the model|the best)", low):
            where = re.search(r"\b(?:to|into|in)\s+(\S+)", text)
            return "export_study", {**study, **({"folder": where.group(1).strip("'\".,")} if where else {})}
        if re.search(r"\bcompare\b", low) and len(numbers) >= 2:
            return "compare_trials", {**study, "a": numbers[0], "b": numbers[1]}
        if re.search(r"\bwhy\b|\bexplain\b|\bimportan", low):
            trial = re.search(r"\btrial\s*#?\s*(\d+)", low)
            return "explain", {**study, **({"trial": int(trial.group(1))} if trial else {}), "param": text}
        more = re.search(r"\b(\d+)\s+more\b|\banother\s+(\d+)\b", low)
        if more or re.search(r"\bmore trials\b|\bcontinue\b|\bkeep going\b", low):
            n = int(more.group(1) or more.group(2)) if more else 10
            return "continue_study", {**study, "more_trials": n}
        rules = read_rules(text)
        if rules.get("data") or re.search(r"\b(tune|train|fit|optimi[sz]e|classify)\b|\bpredict", low):
            return "request", {}
        if (rules.get("models") or "models" in rules["questions"]) and re.search(r"\binstead\b|\buse\b|\btry\b|\bswitch", low):
            return "new_model", {"models": rules.get("models"), "question": rules["questions"].get("models")}
        if re.search(r"\bbest\b|\bstatus\b|so far|how('s| is)? (it|the study) going|\bprogress\b|\bresults?\b", low):
            return "study_status", study
        if re.search(r"\bmodels\b", low) and re.search(r"\b(list|which|what|available|show)\b", low):
            return "list_models", {}
        if rules.get("models") or "models" in rules["questions"]:
            name = (rules.get("models") or [None])[0]
            return "model_card", {"name": name or _unknown_model(rules["questions"].get("models", ""))}
        if re.search(r"\bprofile\b|\bdescribe\b|\bcolumns\b|\blook at\b", low) and _FILE.search(text):
            return "profile_dataset", {"data": _FILE.search(text).group(1)}  # type: ignore[union-attr]
        if re.search(r"\bmemory\b|\bsimilar\b|\bpast stud", low):
            query = re.sub(r"\b(search|the|memory|for|similar|studies|past|in)\b", " ", low).strip() or low
            return "search_memory", {"query": query}
        return "cannot", {}

    def _do(self, tool: str, args: dict[str, Any], *, text: str) -> Reply:
        if tool == "request":
            return self._request(text)
        if tool == "cannot":
            return Reply("I can't do that here. " + self._help())
        if tool == "new_model":
            if args.get("question"):
                return Reply(str(args["question"]), "error")
            if self.state.last is None:
                return self._request(text)
            self.state.request = None
            task_text = {**self.state.last, "models": args["models"], "study_name": None}
            return self._plan_from(task_text)
        if tool == "start_study":  # chosen by an LLM: restated and confirmed like any request
            return self._plan_from(args)
        if tool in ("export_study", "compare_trials", "explain", "continue_study", "study_status") and "study" not in args:
            return Reply(f"There is no study in this conversation yet; start one, e.g. '{EXAMPLE}'.", "error")
        if tool == "explain":
            args = {**args, "param": self._param_in(str(args.get("param") or ""), args)}
        result = self._call(tool, args)
        if "error" in result:
            return Reply(str(result["error"]), "error", tool, result)
        if tool == "continue_study":
            self.state.study = result["study"]
        return Reply(_say(tool, result), "result" if tool == "continue_study" else "answer", tool, result)

    def _plan_from(self, args: dict[str, Any]) -> Reply:
        from hyperpilot.task import Task

        fields = {k: v for k, v in args.items() if k in START_FIELDS and v is not None}
        task = Task(**fields).with_code() if self.state.code else Task(**fields)
        for name in task.models:
            get_model_card(name, task.task_type)
        self.state.plan = {k: getattr(task, k) for k in START_FIELDS}
        return Reply(self._plan_text(task), "plan")

    def _param_in(self, words: str, args: dict[str, Any]) -> str | None:
        """The hyperparameter of the explained trial that `words` name ("why that learning
        rate"), or None for all of them."""
        if not words or len(words) > 200:
            return None
        if "trial" in args:
            names = list(self._call("compare_trials", {"study": args["study"], "a": args["trial"], "b": args["trial"]})
                         .get("a", {}).get("config", {}))
        else:
            names = list((self._call("study_status", {"study": args["study"]}).get("best") or {}).get("config", {}))
        squashed = re.sub(r"[^0-9a-z]+", "", words.lower())
        spaced = f" {words.lower()} "
        for n in sorted(names, key=len, reverse=True):
            if len(n) >= 3 and re.sub(r"[^0-9a-z]+", "", n.lower()) in squashed or f" {n.lower()} " in spaced:
                return n
        return None

    def _call(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        if tool not in self.tools:
            return {"error": f"I have no tool '{tool}' here"}
        result = self.tools[tool].invoke(args)
        return result if isinstance(result, dict) else {"error": str(result)}

    # -- a capable LLM picks the action -----------------------------------------------------
    def action_schema(self) -> type[BaseModel]:
        """The constrained JSON action: one of the tools with its typed arguments, 'request'
        (a new tuning request, read by the request parser) or 'cannot'."""
        options: list[Any] = [_model(f"Call_{n}", tool=(Literal[n], ...), arguments=(getattr(t, "args_schema", dict), ...))
                              for n, t in self.tools.items()]
        options += [_model("NewRequest", tool=(Literal["request"], ...)), _model("Cannot", tool=(Literal["cannot"], ...))]
        union: Any = Annotated[Union[tuple(options)], Field(discriminator="tool")]  # noqa: UP007
        return _model("Action", action=(union, ...))

    def _llm_action(self, text: str) -> tuple[str, dict[str, Any]] | None:
        schema = self.action_schema()
        context = [f"Current study: {self.state.study}." if self.state.study else "No study yet."]
        if self.state.last:
            context.append(f"Its task: {json.dumps(self.state.last, default=str)}.")
        tools = "\n".join(f"- {n}: {getattr(t, 'description', '')}" for n, t in self.tools.items())
        messages = [{"role": "system", "content": "You choose the one action that answers the user's message in "
                     "hyperpilot, a hyperparameter-tuning assistant. Use 'request' for a new tuning request "
                     f"and 'cannot' when no tool fits.\nTools:\n{tools}\n" + " ".join(context)},
                    {"role": "user", "content": text}]
        assert self.llm is not None
        try:
            answer = self.llm.chat(messages, schema=schema.model_json_schema(), max_tokens=300, timeout=60.0)
            action = schema.model_validate_json(answer.text).action  # type: ignore[attr-defined]
        except (LLMError, ValidationError, ValueError):
            return None  # the rules answer instead
        arguments = getattr(action, "arguments", None)
        args = arguments.model_dump(exclude_none=True) if isinstance(arguments, BaseModel) else {}
        return str(action.tool), args

    # -- saving -----------------------------------------------------------------------------
    def _save(self, entry: dict[str, Any]) -> None:
        entry = {**entry, "time": round(time.time(), 3)}
        self.history.append(entry)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry, default=str) + "\n")


def _retarget(request: str, named: str) -> str:
    """`request` with its target phrase replaced by `named` ("predict churned"); a file the
    phrase ran over ("predicts whether a customer churned? the data is in churn.csv") is kept."""
    kept = _TARGET_PHRASE.sub("", request).strip(" ,.")
    lost = [f for f in _FILE.findall(request) if f not in kept]
    return kept + "".join(f" on {f}" for f in lost) + ". " + named


def _model(name: str, **fields: Any) -> type[BaseModel]:
    return create_model(name, **fields)  # type: ignore[no-any-return]


def _kind(question: str) -> str:
    q = question.lower()
    if "which column" in q or "has no column" in q or "like an id" in q:
        return "target"
    if q.startswith(("which data", "the request names")) or "no such file" in q or "cannot read" in q:
        return "data"
    return "other"


def _fields(rules: dict[str, Any]) -> dict[str, Any]:
    """The Task fields a reply states (file, models, metric, budget, folds …)."""
    keys = ("data", "models", "metric", "n_trials", "timeout", "cv_folds", "seed", "sampler", "task_type")
    return {k: rules[k] for k in keys if rules.get(k)}


def _unknown_model(question: str) -> str:
    m = re.search(r"unknown model '([^']+)'", question)
    return m.group(1) if m else question


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _config(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in config.items()) or "defaults"


def _result_text(r: dict[str, Any]) -> str:
    test = "no held-out test" if r["test_score"] is None else f"test {r['test_score']:.4f}"
    return (f"Done. Best: {r['best_model']} ({_config(r['best_config'])}): CV {r['metric']} {r['cv_score']:.4f}, "
            f"{test} ({r['n_trials']} trials, {r['n_failed']} failed, {r['wall_seconds']:.0f} s).\n"
            f"model:  {r['model_path']}\nreport: {r['report_path']}\nstudy:  {r['study']}\n"
            f"{_programs_text(r)}Ask: {FOLLOW_UPS}.")


def _programs_text(r: dict[str, Any]) -> str:
    """What the programs of a `custom_code` study did, from its report.json (counted from the
    study's trials by `report.programs`); empty for other studies."""
    if "custom_code" not in str(r.get("task", "")):
        return ""
    try:
        p = json.loads(Path(r["report_path"]).with_name("report.json").read_text(encoding="utf-8")).get("programs")
    except (OSError, ValueError, KeyError):
        return ""
    if not p:
        return "No program was written: the studies have no LLM (--llm none), so custom_code ran its baseline.\n"
    w = p["writer"]
    best = (f" Best program: trial {p['best']['trial']}, {r['metric']} {p['best']['value']:.4f}, by {p['best']['by']} "
            f"({p['best']['file']})."
            if p["best"] else " No program completed a trial.")
    return (f"Programs by {w.get('writer', 'the LLM')}: {p['ran']} ran ({p['completed']} completed, {p['failed']} failed), "
            f"{p['repaired']} repaired; writer calls {w.get('calls', 0)}, answers rejected by the checks "
            f"{w.get('rejected', 0)}{', then BO went on' if w.get('gave_up') else ''}.{best}\n")


def _say(tool: str, r: dict[str, Any]) -> str:
    """A tool's result in words; every number is the tool's."""
    if tool == "continue_study":
        return _result_text(r)
    if tool == "study_status":
        best = r["best"]
        head = (f"Study {r['study']}: {r['done']}{'/' + str(r['budget']) if r['budget'] else ''} trials done "
                f"({r['failed']} failed, {r['pruned']} pruned, {r['running']} running).")
        if best is None:
            return head + " No trial has completed yet."
        return head + f" Best so far: trial {best['trial']}, {best['model']} ({_config(best['config'])}): {r['metric']} {best['value']:.4f}."
    if tool == "explain":
        return _explain_text(r)
    if tool == "compare_trials":
        a, b = r["a"], r["b"]
        lines = [f"trial {t['trial']}: {t['model']} {t['state'].lower()}, {r['metric']} "
                 f"{'-' if t['value'] is None else format(t['value'], '.4f')}"
                 + ("" if t["cv_std"] is None else f" ± {t['cv_std']:.4f} over the folds") for t in (a, b)]
        if r["differ"]:
            lines.append("differ in: " + "; ".join(f"{k}: {_fmt(v[0])} vs {_fmt(v[1])}" for k, v in r["differ"].items()))
        if r["better"] is not None:
            lines.append(f"trial {r['better']} is better.")
        return "\n".join(lines)
    if tool == "export_study":
        return f"Exported {', '.join(r['files'])} to {r['folder']}."
    if tool == "list_models":
        return "Models: " + "; ".join(f"{m['name']} ({m['family']}, {', '.join(m['tasks'])})" for m in r["models"])
    if tool in ("model_card", "profile_dataset"):
        return str(r["text"])
    if tool == "search_memory":
        if not r["studies"]:
            return str(r.get("note", "nothing found"))
        return "Similar past studies:\n" + "\n".join(
            f"  {s['dataset']} · {s['model']} · best {s['metric']} {_fmt(s['best_score'])} ({_config(s['best_config'] or {})}), "
            f"similarity {s['similarity']:.2f}" for s in r["studies"])
    return json.dumps(r, default=str)


def _explain_text(r: dict[str, Any]) -> str:
    head = (f"Trial {r['trial']} ({r['model']}, {r['metric']} {_fmt(r['value'])}). Importances are Optuna's, "
            f"measured over {r['n_complete']} complete {r['model']} trial(s).")
    params = [p for p in r["params"] if r["focus"] is None or p["name"] == r["focus"]]
    lines = [head]
    for p in params:
        span = "" if p["range"] is None else (
            f"one of {p['range']}" if isinstance(p["range"][0], str) or len(p["range"]) != 2
            else f"range {_fmt(p['range'][0])} to {_fmt(p['range'][1])}{' (log)' if p['log'] else ''}")
        weight = ("no importance measured" if p["importance"] is None
                  else f"importance {p['importance']:.2f} (rank {p['rank']} of {r['importances_of']})")
        lines.append(f"  {p['name']} = {_fmt(p['value'])}: {span}, card default {_fmt(p['default'])}; {weight}")
    lines += [f"  note: {n}" for n in r["notes"]]
    return "\n".join(lines)
