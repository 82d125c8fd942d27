"""Runs inside HEBO's own venv: JSON lines in (init / ask / tell), JSON lines out.
Imports nothing from hyperpilot."""

import json
import os
import sys

# The protocol owns stdout; anything HEBO or its libraries print goes to stderr.
PROTOCOL = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr

import numpy as np  # noqa: E402 - after the stdout redirect above
from hebo.design_space.design_space import DesignSpace  # noqa: E402
from hebo.optimizers.hebo import HEBO  # noqa: E402


def design_space(spec):
    params = []
    for name, p in spec.items():
        if p["type"] == "categorical":
            params.append({"name": name, "type": "cat", "categories": [str(c) for c in p["choices"]]})
        elif p["type"] == "int":
            kind = "pow_int" if p.get("log") else "int"
            params.append({"name": name, "type": kind, "lb": p["low"], "ub": p["high"]})
        else:
            kind = "pow" if p.get("log") else "num"
            params.append({"name": name, "type": kind, "lb": p["low"], "ub": p["high"]})
    return DesignSpace().parse(params)


def main():
    opt = last = None
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "init":
            np.random.seed(msg["seed"])
            opt = HEBO(design_space(msg["space"]), scramble_seed=msg["seed"])
            out = {"ok": True}
        elif msg["cmd"] == "ask":
            last = opt.suggest(n_suggestions=1)
            out = {k: (v.item() if hasattr(v, "item") else v) for k, v in last.iloc[0].to_dict().items()}
        else:
            opt.observe(last, np.array([[float(msg["loss"])]]))
            out = {"ok": True}
        PROTOCOL.write(json.dumps(out) + "\n")
        PROTOCOL.flush()


if __name__ == "__main__":
    main()
