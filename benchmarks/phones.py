"""Numbers/s through leadhub.phones.normalize, beside the plain-phonenumbers anchor in the same run.

Anchor: `phonenumbers.parse(s, "IN")` + `is_valid_number` + `format_number(E164)` in a try/except, the least
any caller must do for a validated key. leadhub: `normalize(s)` catching PhoneError, which adds the
pre-cleans, the two-in-one split, the re-reading of '+'-stripped foreign digits and the error reasons, and
skips `parse` on its fast path. Two input sets, built from a seed: canonical ('+91…') and messy (the mix of
formats that ../shared/legacy/fixture.sql writes, in its proportions).

    .venv/bin/python benchmarks/phones.py [--n 100000] [--seed 1] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

from leadhub.phones import PhoneError, normalize

Phone = str | None


def person(rng: random.Random) -> str:
    # fixture.sql: 6000000000 + k * 6151 % 3999999999, i.e. spread over [6-9]xxxxxxxxx
    return str(6_000_000_000 + rng.randrange(3_999_999_999))


def canonical(n: int, seed: int) -> list[Phone]:
    rng = random.Random(seed)
    return ["+91" + person(rng) for _ in range(n)]


def messy(n: int, seed: int) -> list[Phone]:
    """The formats fixture.sql writes, with its percentages (the `h % 100` ladder)."""
    rng = random.Random(seed)
    out: list[Phone] = []
    for _ in range(n):
        m, h = person(rng), rng.randrange(100)
        if h < 40:
            out.append(m)  # last 10 digits (Python syncs)
        elif h < 70:
            out.append("91" + m)  # all digits of +91… (webhook, UI)
        elif h < 80:
            out.append("0" + m)  # trunk 0
        elif h < 84:
            out.append("0091" + m)
        elif h < 87:
            out.append(f"+91 {m[:5]} {m[5:]}")
        elif h < 89:
            out.append("022" + m[2:])  # Mumbai landline with STD code
        elif h < 90:
            out.append("4420" + m[2:])  # London, '+' stripped
        elif h < 93:
            out.append(None)
        elif h < 95:
            out.append("")
        elif h < 97:
            out.append(m[:6])  # truncated
        else:
            out.append(f"{m}/{int(m) + 1}")  # two in one
    return out


def anchor(raw: Phone) -> str | None:
    try:
        number = phonenumbers.parse(raw, "IN")  # type: ignore[arg-type]  # None raises, as in real use
    except NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def leadhub(raw: Phone) -> str | None:
    try:
        return normalize(raw)
    except PhoneError:
        return None


def best_rate(fn: Callable[[Phone], str | None], inputs: Sequence[Phone], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for raw in inputs:
            fn(raw)
        best = min(best, time.perf_counter() - start)
    return len(inputs) / best


def measure(inputs: Sequence[Phone], repeat: int) -> dict[str, float | int]:
    for raw in inputs[:2000]:  # load metadata and compile patterns outside the timing
        anchor(raw)
        leadhub(raw)
    anchor_rate = best_rate(anchor, inputs, repeat)
    leadhub_rate = best_rate(leadhub, inputs, repeat)
    anchor_keys, leadhub_keys = [anchor(r) for r in inputs], [leadhub(r) for r in inputs]
    return {
        "anchor_per_s": round(anchor_rate),
        "leadhub_per_s": round(leadhub_rate),
        "ratio": round(leadhub_rate / anchor_rate, 2),
        "anchor_keys": sum(k is not None for k in anchor_keys),
        "leadhub_keys": sum(k is not None for k in leadhub_keys),
        "keys_that_differ": sum(
            a is not None and b is not None and a != b for a, b in zip(anchor_keys, leadhub_keys, strict=True)
        ),
    }


def machine() -> dict[str, str | int | None]:
    cpu = platform.processor() or "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "phonenumbers": phonenumbers.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="inputs per set")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed passes per function; the best one counts"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()

    sets = {"canonical": canonical(args.n, args.seed), "messy": messy(args.n, args.seed)}
    results = {name: measure(inputs, args.repeat) for name, inputs in sets.items()}
    report = {"machine": machine(), "n": args.n, "seed": args.seed, "repeat": args.repeat, "sets": results}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    m = report["machine"]
    print(f"{m['date']} · {m['platform']} · {m['cpu']} · {m['cpu_count']} cpus · Python {m['python']}")
    print(f"phonenumbers {m['phonenumbers']} · n={args.n} per set · seed {args.seed} · best of {args.repeat}")
    print(f"{'set':<10} {'anchor/s':>10} {'leadhub/s':>10} {'ratio':>6} {'keys a/l':>15} {'differ':>6}")
    for name, r in results.items():
        keys = f"{r['anchor_keys']}/{r['leadhub_keys']}"
        print(
            f"{name:<10} {r['anchor_per_s']:>10,} {r['leadhub_per_s']:>10,} {r['ratio']:>6} "
            f"{keys:>15} {r['keys_that_differ']:>6}"
        )


if __name__ == "__main__":
    main()
