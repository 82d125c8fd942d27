"""Typed search spaces: float, int and categorical parameters that check themselves,
round-trip through JSON, convert to Optuna distributions, validate configs and sample.

The LLM planner reads and writes spaces and configs as JSON, so this module is the
contract with it: nothing outside a `SearchSpace` reaches a trainer.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

import numpy as np
import optuna.distributions as od
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from hyperpilot.errors import SpaceError

Scalar = Union[bool, int, float, str, None]


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str = ""

    @model_validator(mode="wrap")
    @classmethod
    def _one_line(cls, data: Any, handler: Any) -> Any:
        name = data.get("name") if isinstance(data, dict) else None
        return _space_errors(data, handler, f"invalid {cls.__name__}" + (f" '{name}'" if name else ""))


class FloatParam(_Param):
    type: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False
    default: float | None = None

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        _check_range(self.name, self.low, self.high, self.log, self.default)
        return self

    def cast(self, value: Any) -> float:
        value = _to_number(self.name, value)
        if not math.isfinite(value):
            raise SpaceError(f"'{self.name}' must be a finite number, got {value!r}")
        return min(max(value, self.low), self.high)

    def distribution(self) -> od.BaseDistribution:
        return od.FloatDistribution(self.low, self.high, log=self.log)

    def sample(self, rng: np.random.Generator) -> float:
        if self.log:  # exp(log(x)) may miss x by an ulp: clip so that a sample always validates
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
            return min(max(value, self.low), self.high)
        return float(rng.uniform(self.low, self.high))

    def grid(self, n: int) -> list[float]:
        """`n` values spread over the range (log-spaced for log params), rounded to 3
        significant digits so that a small LLM can pick one."""
        if self.log:
            raw = np.geomspace(self.low, self.high, n)
        else:
            raw = np.linspace(self.low, self.high, n)
        return sorted({self.cast(float(f"{v:.3g}")) for v in raw})


class IntParam(_Param):
    type: Literal["int"] = "int"
    low: int
    high: int
    log: bool = False
    default: int | None = None

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        _check_range(self.name, self.low, self.high, self.log, self.default)
        return self

    def cast(self, value: Any) -> int:
        value = _to_number(self.name, value)
        if not math.isfinite(float(value)):
            raise SpaceError(f"'{self.name}' must be a finite number, got {value!r}")
        return int(min(max(round(float(value)), self.low), self.high))

    def distribution(self) -> od.BaseDistribution:
        return od.IntDistribution(self.low, self.high, log=self.log)

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return self.cast(math.floor(value))
        return int(rng.integers(self.low, self.high + 1))

    def grid(self, n: int) -> list[int]:
        if self.log:
            raw = np.geomspace(self.low, self.high, n)
        else:
            raw = np.linspace(self.low, self.high, n)
        return sorted({self.cast(v) for v in raw})


class CategoricalParam(_Param):
    type: Literal["categorical"] = "categorical"
    choices: list[Scalar]
    default: Scalar = None

    @model_validator(mode="after")
    def _check(self) -> CategoricalParam:
        if not self.choices:
            raise SpaceError(f"'{self.name}' needs at least one choice")
        for c in self.choices:
            if isinstance(c, float) and not math.isfinite(c):
                raise SpaceError(f"choice {c!r} of '{self.name}' is not finite; it would not survive JSON")
        # Optuna tells choices apart by ==, so 1, 1.0 and True are one choice to it
        dupes = [c for i, c in enumerate(self.choices) if any(c == d for d in self.choices[:i])]
        if dupes:
            raise SpaceError(f"'{self.name}' has duplicate choices {dupes} in {self.choices} (1, 1.0 and True count as equal)")
        if self.default is not None and self.default not in self.choices:
            raise SpaceError(
                f"default={self.default!r} of '{self.name}' is not one of {self.choices}"
            )
        return self

    def cast(self, value: Any) -> Scalar:
        for choice in self.choices:
            if value == choice and type(value) is type(choice):
                return choice
        for choice in self.choices:  # 3.0 -> 3, np.int64(3) -> 3 (but not True -> 1)
            if _is_number(value) and _is_number(choice) and value == choice:
                return choice
        for choice in self.choices:  # "true" -> True, "0.5" -> 0.5, "none" -> None
            if str(value).strip().lower() == str(choice).lower():
                return choice
        raise SpaceError(f"'{self.name}' must be one of {self.choices}, got {value!r}")

    def distribution(self) -> od.BaseDistribution:
        return od.CategoricalDistribution(self.choices)

    def sample(self, rng: np.random.Generator) -> Scalar:
        return self.choices[int(rng.integers(len(self.choices)))]

    def grid(self, n: int) -> list[Scalar]:
        return list(self.choices)


Param = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")]
_PARAM_ADAPTER: TypeAdapter[Any] = TypeAdapter(Param)


class SearchSpace(BaseModel):
    """An ordered set of named parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    params: list[Param] = Field(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _one_line(cls, data: Any, handler: Any) -> Any:
        return _space_errors(data, handler, "invalid search space")

    @model_validator(mode="after")
    def _unique(self) -> SearchSpace:
        names = [p.name for p in self.params]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SpaceError(f"search space names {dupes} more than once")
        return self

    @classmethod
    def from_dict(cls, spec: dict[str, dict[str, Any]]) -> SearchSpace:
        """Build from `{name: {type, low, high, ...}}` (the model-card form)."""
        try:
            return cls(params=[_PARAM_ADAPTER.validate_python({"name": n, **s}) for n, s in spec.items()])
        except SpaceError:
            raise
        except ValueError as e:
            raise SpaceError(f"invalid search space: {_first_error(e)}") from e

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {p.name: p.model_dump(exclude={"name"}) for p in self.params}

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def __getitem__(self, name: str) -> FloatParam | IntParam | CategoricalParam:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def __len__(self) -> int:
        return len(self.params)

    def distributions(self) -> dict[str, od.BaseDistribution]:
        return {p.name: p.distribution() for p in self.params}

    def defaults(self) -> dict[str, Any]:
        """Each param's default, or the middle of its range where it has none."""
        out: dict[str, Any] = {}
        for p in self.params:
            if p.default is not None:
                out[p.name] = p.default
            elif isinstance(p, CategoricalParam):
                out[p.name] = p.choices[0]
            elif p.log:
                out[p.name] = p.cast(math.sqrt(p.low * p.high))
            else:
                out[p.name] = p.cast((p.low + p.high) / 2)
        return out

    def validate(self, config: dict[str, Any], *, fill: bool = True) -> dict[str, Any]:  # type: ignore[override]
        """Return `config` cast to each param's type and clipped to its range.

        Unknown names raise `SpaceError`; missing names take the default when `fill`."""
        if not isinstance(config, dict):
            raise SpaceError(f"a config must be a JSON object, got {type(config).__name__}")
        unknown = sorted(set(config) - set(self.names))
        if unknown:
            raise SpaceError(f"unknown parameter(s) {unknown}; the space has {self.names}")
        missing = [n for n in self.names if n not in config]
        if missing and not fill:
            raise SpaceError(f"missing parameter(s) {missing}")
        defaults = self.defaults()
        return {p.name: p.cast(config[p.name]) if p.name in config else defaults[p.name] for p in self.params}

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {p.name: p.sample(rng) for p in self.params}


def _check_range(name: str, low: float, high: float, log: bool, default: float | None) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise SpaceError(f"low={low} and high={high} of '{name}' must be finite")
    if low > high:
        raise SpaceError(f"low={low} > high={high} for '{name}'")
    if log and low <= 0:
        raise SpaceError(f"low={low} of log-scaled '{name}' must be > 0")
    if default is not None and not low <= default <= high:
        raise SpaceError(f"default={default} of '{name}' is outside [{low}, {high}]")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def _to_number(name: str, value: Any) -> float:
    """`value` as a number: numbers pass, numeric strings ("3.7") are parsed, anything
    else (a bool included: `true` for a depth is a mistake, not 1) is a `SpaceError`."""
    if not _is_number(value) and not isinstance(value, str):
        raise SpaceError(f"'{name}' must be a number, got {value!r}")
    try:
        return float(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise SpaceError(f"'{name}' must be a number, got {value!r}") from None
    except OverflowError:  # an int beyond float range
        raise SpaceError(f"'{name}' must be a finite number, got {value!r}") from None


def _space_errors(data: Any, handler: Any, what: str) -> Any:
    """Run pydantic's validation, turning its (multi-line, ValueError) report into a
    one-line `SpaceError`; our own checks raise `SpaceError` already."""
    try:
        return handler(data)
    except ValidationError as e:
        raise SpaceError(f"{what}: {_first_error(e)}") from None


def _first_error(e: Exception) -> str:
    errors = getattr(e, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(e)
