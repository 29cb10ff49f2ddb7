"""Pareto/NBD and BG/NBD baselines for the replay benchmark, computed with `lifetimes`.

    python baselines.py DIR

Reads DIR/activity.csv and DIR/meta.json (written by `cargo run --example replay`), steps
"now" through the history one day at a time as the replay does, and flags an account when its
probability of being alive falls below a threshold. Each model is refitted every REFIT_DAYS
days on the history seen so far (nothing from the future), in weeks, with repeat purchases
counted per active day; the fit rounds times to whole weeks, P(alive) uses exact days. Writes DIR/flags/<name>.csv (first flag per quiet
spell, the replay's format) and DIR/baselines.json.
"""

import json
import os
import sys
import time
import warnings

import numpy as np
from lifetimes import BetaGeoFitter, ParetoNBDFitter

THRESHOLDS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
REFIT_DAYS = int(os.environ.get("REPLAY_REFIT_DAYS", "56"))
MODELS = {"bgnbd": BetaGeoFitter, "paretonbd": ParetoNBDFitter}


def load(directory):
    with open(os.path.join(directory, "meta.json")) as f:
        meta = json.load(f)
    rows = np.loadtxt(os.path.join(directory, "activity.csv"), delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    return meta, rows


def fit(model_class, x, t_x, T):
    """Fits on the unique (x, t_x, T) triples in whole weeks, weighted by how many accounts
    share each (the likelihood is the same sum, over far fewer terms)."""
    triples = np.stack([x, np.round(t_x / 7.0), np.round(T / 7.0)], axis=1)
    unique, counts = np.unique(triples, axis=0, return_counts=True)
    model = model_class(penalizer_coef=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(unique[:, 0], unique[:, 1], unique[:, 2], weights=counts)
    return model


def main(directory):
    np.random.seed(0)  # the fitters start from random parameters
    meta, rows = load(directory)
    first_day, end_day = meta["firstDay"], meta["endDay"]
    accounts, index = np.unique(rows[:, 0], return_inverse=True)
    n = len(accounts)
    days = rows[:, 1]
    by_day = {}
    order = np.argsort(days, kind="stable")
    for i in order:
        by_day.setdefault(int(days[i]), []).append(index[i])

    first = np.full(n, -1, dtype=np.int64)
    last = np.full(n, -1, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    flags = {(m, t): [] for m in MODELS for t in THRESHOLDS}
    flagged_spell = {(m, t): np.full(n, -1, dtype=np.int64) for m in MODELS for t in THRESHOLDS}
    fitted = {}
    params = {}
    started = time.time()
    fit_seconds = 0.0
    for day in range(first_day, end_day + 1):
        active = np.array(by_day.get(day, []), dtype=np.int64)
        if len(active):
            new = first[active] < 0
            first[active[new]] = day
            count[active] += 1
            last[active] = day
        seen = np.nonzero(first >= 0)[0]
        x = count[seen] - 1
        t_x = last[seen] - first[seen]
        T = day - first[seen]
        if (day - first_day + 1) % REFIT_DAYS == 0:
            t0 = time.time()
            for name, model_class in MODELS.items():
                fitted[name] = fit(model_class, x, t_x, T)
                params[name] = {k: float(v) for k, v in fitted[name].params_.items()}
            fit_seconds += time.time() - t0
            print(f"baselines: day {day - first_day + 1}: fitted {params}", file=sys.stderr)
        if fitted:
            # Accounts that share a history share its probability: compute each once.
            unique, inverse = np.unique(np.stack([x, t_x, T], axis=1), axis=0, return_inverse=True)
            inverse = inverse.reshape(-1)
        for name, model in fitted.items():
            with np.errstate(all="ignore"):
                alive = model.conditional_probability_alive(unique[:, 0], unique[:, 1] / 7.0, unique[:, 2] / 7.0)
            alive = np.nan_to_num(np.asarray(alive, dtype=float), nan=1.0)[inverse]
            for t in THRESHOLDS:
                spell = flagged_spell[(name, t)]
                hit = seen[(alive < t) & (spell[seen] != last[seen])]
                spell[hit] = last[hit]
                flags[(name, t)].extend((int(accounts[i]), day) for i in hit)

    listed = []
    os.makedirs(os.path.join(directory, "flags"), exist_ok=True)
    for (name, t), pairs in flags.items():
        detector = f"{name}-p{t:.1f}"
        with open(os.path.join(directory, "flags", detector + ".csv"), "w") as f:
            f.write("account_id,day\n")
            for account, day in sorted(pairs):
                f.write(f"{account},{day}\n")
        listed.append({"name": detector, "family": name, "source": "lifetimes"})
    with open(os.path.join(directory, "baselines.json"), "w") as f:
        json.dump(listed, f, indent=2)
    print(
        f"baselines: {n} accounts, {end_day - first_day + 1} days in {time.time() - started:.1f} s "
        f"({fit_seconds:.1f} s fitting); last parameters {params}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main(sys.argv[1])
