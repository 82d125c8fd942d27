"""The LLM planner: each decision is a prompt template (`hyperpilot/prompts/`), a pydantic
schema, and a check. Nothing the model says is used unvalidated.

    render template ─► llm.chat(schema) ─► parse (pydantic) ─► check (space, clip, dedupe)
          ▲                                         │ invalid
          └──── the error, fed back (retry budget) ◄┘ ─► spent: `AnswerError` (BO takes over)

Numbers are *offered*: for a model that only picks (`llm.free_proposals` False, e.g. the
embedded one, whose grammar ignores minimum/maximum), every numeric hyperparameter of an
initial design is an enum of grid values (log-spaced for log parameters). A capable model
may write numbers; they are clipped into the space. The next trial (`pick`) is, for every
model, one letter naming one of BO's own candidates (`LLM.choose`): no free text at all.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar, Union

from pydantic import BaseModel, Field, ValidationError, create_model

from hyperpilot.agent.llm.base import LETTERS, LLM, LLMBadAnswer, LLMTimeout, LLMUnavailable, Message, redact
from hyperpilot.cards.model import ModelCard
from hyperpilot.core.proposer import config_key
from hyperpilot.core.space import StudySpace
from hyperpilot.errors import LLMError, SpaceError
from hyperpilot.prompts import fmt_config, fmt_value, render
from hyperpilot.space import CategoricalParam, FloatParam

T = TypeVar("T")
GRID_POINTS = 6
REASON = (str, Field(max_length=80, description="one short sentence"))


class Example(BaseModel):
    """An in-context example, e.g. the best config of a similar past study (trial memory)."""

    task: str = ""
    model: str
    config: dict[str, Any]
    score: float | None = None


@dataclass(frozen=True)
class Proposal:
    """A config for the next trial(s), with where it came from and why."""

    model: str
    config: dict[str, Any]
    rationale: str = ""
    origin: str = "llm"  # llm (written by the model) | bo | random | memory (picked by the model)


@dataclass
class PlannerStats:
    """What the planner's calls cost and how their answers fared."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    valid: int = 0
    invalid: int = 0
    clipped: int = 0
    timeouts: int = 0
    unavailable: int = 0
    fallbacks: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    picked: dict[str, int] = field(default_factory=dict)  # letters `pick` chose: A is BO's first candidate

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class AnswerError(LLMError):
    """The model's answers stayed invalid after the retry budget; `transcript` keeps them."""

    def __init__(self, message: str, transcript: list[Message] | None = None) -> None:
        super().__init__(message)
        self.transcript = transcript or []


class Planner:
    """The LLM decisions of one study: `initial_design` and `pick` (and `parse_request` via
    `hyperpilot.agent.request`)."""

    def __init__(self, llm: LLM, *, retries: int = 2, timeout: float = 30.0, max_tokens: int = 320) -> None:
        self.llm = llm
        self.retries = retries
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.stats = PlannerStats()

    # -- the one loop every decision goes through ------------------------------------------
    def ask(self, decision: str, variables: dict[str, Any], schema: type[BaseModel] | None,
            check: Callable[[Any], T], max_tokens: int | None = None) -> T:
        """Render `decision`, call the model, parse and `check` the answer; feed errors back
        up to `retries` times. Raises `AnswerError` (budget spent), `LLMTimeout`, `LLMUnavailable`."""
        self.stats.decisions[decision] = self.stats.decisions.get(decision, 0) + 1
        messages = render(decision, **variables)
        json_schema = schema.model_json_schema() if schema is not None else None
        last: Exception | None = None
        for _ in range(1 + self.retries):
            text = self._call(messages, json_schema, max_tokens or self.max_tokens)
            try:
                answer = schema.model_validate_json(text) if schema is not None else text
                result = check(answer)
            except (ValidationError, SpaceError, AnswerError) as e:
                self.stats.invalid += 1
                last = e
                messages = [*messages, {"role": "assistant", "content": text[:2000]},
                            *render("retry", error=_short_error(e), hint="")]
                continue
            self.stats.valid += 1
            return result
        raise AnswerError(
            f"{decision}: no valid answer from {self.llm.describe()} in {1 + self.retries} tries; last: {_short_error(last)}",
            messages,
        ) from last

    def _call(self, messages: list[Message], schema: dict[str, Any] | None, max_tokens: int) -> str:
        start = time.perf_counter()
        self.stats.calls += 1
        try:
            completion = self.llm.chat(messages, schema=schema, max_tokens=max_tokens, timeout=self.timeout)
        except LLMTimeout:
            self.stats.timeouts += 1
            self.stats.seconds += time.perf_counter() - start
            raise
        except LLMError:
            self.stats.unavailable += 1
            self.stats.seconds += time.perf_counter() - start
            raise
        except Exception as e:  # noqa: BLE001 - a backend bug must not stop the study
            self.stats.unavailable += 1
            self.stats.seconds += time.perf_counter() - start
            raise LLMUnavailable(redact(f"{self.llm.describe()} raised {type(e).__name__}: {e}")) from None
        self.stats.seconds += completion.seconds
        self.stats.prompt_tokens += completion.prompt_tokens
        self.stats.completion_tokens += completion.completion_tokens
        return completion.text

    # -- decisions ------------------------------------------------------------------------
    def initial_design(self, space: StudySpace, variables: dict[str, Any], k: int,
                       tried: set[tuple[Any, ...]]) -> list[Proposal]:
        """`k` starting configs (fewer when the model repeats itself), none of them in `tried`.

        `variables`: task, metric, direction, dataset_card, examples, planned (see the template)."""
        offered = not self.llm.free_proposals
        item = _union([config_schema(c, offered) for c in space.cards.values()])
        schema = create_model("InitialDesign", configs=(list[item], Field(min_length=k, max_length=k)))  # type: ignore[valid-type]

        def check(answer: Any) -> list[Proposal]:
            out: list[Proposal] = []
            seen = set(tried)
            for raw in answer.configs:
                proposal = self._validated(space, raw, "llm")
                key = config_key(proposal.model, proposal.config)
                if key not in seen:
                    seen.add(key)
                    out.append(proposal)
            if not out:
                raise AnswerError("every configuration you proposed was already tried or planned; propose different values")
            return out

        model_cards = [c.to_text() for c in space.cards.values()]
        allowed = [f"{c.name}.{p.name}: {', '.join(fmt_value(v) for v in _offered(p))}" if len(space.cards) > 1
                   else f"{p.name}: {', '.join(fmt_value(v) for v in _offered(p))}"
                   for c in space.cards.values() for p in c.space.params] if offered else []
        return self.ask("initial_design", {**variables, "k": k, "offered": offered, "model_cards": model_cards,
                                           "allowed": allowed}, schema, check, max_tokens=self.max_tokens * k)

    def pick(self, variables: dict[str, Any], candidates: list[Proposal]) -> Proposal:
        """The next trial: one of `candidates` (BO's), lettered A, B, … in the prompt; the
        model answers a letter and nothing else (`LLM.choose`): nothing to validate but the
        letter, and no free text. No retry: a failed choice raises and BO proposes instead.

        `variables`: metric, direction, history (lines), n_done, and `columns`: the parameter
        names of a one-model study, whose configs are then written as rows of values in that
        order (`config_row`: a third of the tokens of `name=value`); without, `model name=value`."""
        if len(candidates) < 2:
            raise AnswerError("fewer than two candidates to choose from")
        self.stats.decisions["pick"] = self.stats.decisions.get("pick", 0) + 1
        columns = list(variables.get("columns") or [])
        lines = [f"{letter}: {config_row(columns, c.config) if columns else c.model + ' ' + fmt_config(c.config)}"
                 for letter, c in zip(LETTERS, candidates, strict=False)]
        messages = render("next_candidates", **{"columns": [], **variables, "candidates": lines})
        start = time.perf_counter()
        self.stats.calls += 1
        try:
            choice = self.llm.choose(messages, len(lines), timeout=self.timeout)
        except LLMBadAnswer as e:
            self.stats.invalid += 1
            raise AnswerError(f"pick: {e}", messages) from e
        except LLMTimeout:
            self.stats.timeouts += 1
            raise
        except LLMError:
            self.stats.unavailable += 1
            raise
        except Exception as e:  # noqa: BLE001 - a backend bug must not stop the study
            self.stats.unavailable += 1
            raise LLMUnavailable(redact(f"{self.llm.describe()} raised {type(e).__name__}: {e}")) from None
        finally:
            self.stats.seconds += time.perf_counter() - start
        self.stats.prompt_tokens += choice.prompt_tokens
        self.stats.valid += 1
        self.stats.picked[LETTERS[choice.index]] = self.stats.picked.get(LETTERS[choice.index], 0) + 1
        c = candidates[choice.index]
        return Proposal(c.model, c.config, "", c.origin)

    def _validated(self, space: StudySpace, raw: BaseModel, origin: str, rationale: str | None = None) -> Proposal:
        data = raw.model_dump()
        model = data.pop("model")
        reason = data.pop("reason", "") if rationale is None else rationale
        params = space.to_params(model, data)  # raises SpaceError for unknown names; clips
        _, config = space.from_params(params)
        if any(_differs(config[k], v) for k, v in data.items()):
            self.stats.clipped += 1
        return Proposal(model, config, str(reason), origin)


def _offered(p: Any) -> list[Any]:
    """The values a picking model may choose for `p`: its choices, or a grid."""
    return list(p.choices) if isinstance(p, CategoricalParam) else list(p.grid(GRID_POINTS))


def config_schema(card: ModelCard, offered: bool, reason: bool = True) -> type[BaseModel]:
    """The pydantic model of one config of `card`: `model` is a constant; with `offered`,
    every value is an enum (grids for numbers), else numbers are free (clipped later)."""
    fields: dict[str, Any] = {"model": (Literal[card.name], ...)}
    for p in card.space.params:
        if p.name in ("model", "reason"):
            raise SpaceError(f"model card '{card.name}' names a hyperparameter '{p.name}', which the planner reserves")
        if isinstance(p, CategoricalParam) or offered:
            fields[p.name] = (Literal[tuple(_offered(p))], ...)
        else:
            kind = float if isinstance(p, FloatParam) else int
            fields[p.name] = (kind, Field(description=f"in [{p.low}, {p.high}]{', log scale' if p.log else ''}"))
    if reason:
        fields["reason"] = REASON
    return create_model(f"{card.name}_config", **fields)


def _union(models: list[type[BaseModel]]) -> Any:
    if len(models) == 1:
        return models[0]
    return Union[tuple(models)]  # type: ignore[return-value]  # noqa: UP007 - built at run time


def config_row(columns: list[str], config: dict[str, Any]) -> str:
    """`config`'s values in the order of `columns`: `5,.001,gini`. Compact because the
    embedded model's tokenizer spends a token on every digit, space and quote: `,` alone, no
    leading zero and a bare choice name cut the decision tree's question from ~323 tokens
    to ~210 (docs/benchmarks.md, "Seconds per decision")."""
    return ",".join(_cell(config[name]) for name in columns)


def short_number(value: float, digits: int = 3) -> str:
    """`value` to `digits` significant digits without a leading zero: `.0421`, `-.5`, `12.3`."""
    text = f"{value:.{digits}g}"
    return re.sub(r"^(-?)0\.", r"\1.", text)


def _cell(value: Any) -> str:
    """A value of a row: a float as `short_number`, a choice name bare where it is a plain
    word, else as `fmt_value`."""
    if isinstance(value, float):
        return short_number(value)
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][\w.-]*", value) and value not in ("true", "false", "null"):
        return value
    return fmt_value(value)


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return not math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return bool(a != b)


def _short_error(e: Exception | None) -> str:
    if isinstance(e, ValidationError):
        parts = []
        for err in e.errors()[:3]:
            where = ".".join(str(x) for x in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return "; ".join(parts)[:500]
    return str(e)[:500]
