"""Model writes by the reference's own code path, with a worker that DELs late.

Run under the reference's venv (horde-model-reference 8.6.2), with the same
environment as its service (tests/daemon_reference.rs sets it up; see
../shared/tools/reference_service.sh), so that this process and the late
worker it starts share the service's model-reference files and Redis:

    python late_del_writes.py writes N CHECK_SECONDS
    python late_del_writes.py late-worker MAX_DELAY_SECONDS

`writes`: starts a late worker, then N times adds a model (a renamed copy of a
record) to text_generation or image_generation (alternating) through
`ModelReferenceManager().backend.update_model` — the reference's write path:
the file is written, the category PUBLISHed on P:invalidate and its keys DELed
(in this process, in the service's listener, and — up to MAX_DELAY_SECONDS
late — in the late worker). CHECK_SECONDS after each write it checks that every
entry of the written category is in Redis and names the new model, and that
the other category's entries did not change. Prints one line per write and a
summary; exits 1 if any write failed the check.

`late-worker`: a reference worker (its own RedisBackend listener and analytics
caches) whose listener thread is busy: each invalidation's DELs come 0.1 s to
MAX_DELAY_SECONDS after the PUBLISH.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import redis

PREFIX = os.environ.get("HORDE_MODEL_REFERENCE_REDIS__KEY_PREFIX", "horde:model_ref")
ENTRIES = {
    "image_generation": [
        "deletion_risk:image_generation:grouped=false",
        "deletion_risk:image_generation:grouped=true",
        "stats:image_generation:grouped=false",
        "stats:image_generation:grouped=true",
    ],
    "text_generation": [
        "deletion_risk:text_generation:grouped=false",
        "deletion_risk:text_generation:grouped=true",
        "deletion_risk:text_generation:grouped=false:variations=true",
        "stats:text_generation:grouped=false",
        "stats:text_generation:grouped=true",
    ],
}


def manager():
    from horde_model_reference import ModelReferenceManager

    return ModelReferenceManager()


def late_worker(max_delay: float) -> None:
    from horde_model_reference.analytics import base_cache
    from horde_model_reference.analytics.deletion_risk_cache import DeletionRiskCache
    from horde_model_reference.analytics.statistics_cache import StatisticsCache

    original = base_cache.RedisCache.invalidate

    def busy_invalidate(self, category, grouped=None, include_backend_variations=None):
        # The listener thread is busy (a worker answering cache misses):
        # its DELs come late.
        time.sleep(random.uniform(0.1, max_delay))
        original(self, category, grouped, include_backend_variations)
        print(f"late worker: DELed {self.__class__.__name__} {category}", flush=True)

    base_cache.RedisCache.invalidate = busy_invalidate
    manager()
    DeletionRiskCache()
    StatisticsCache()
    print("late worker: listening", flush=True)
    while True:
        time.sleep(3600)


def entry_ok(r: redis.Redis, name: str, model: str, since: float) -> str | None:
    raw = r.get(f"{PREFIX}:{name}")
    if raw is None:
        return "missing"
    if name.startswith("deletion_risk:"):
        group = model.rsplit("/", 1)[-1].removesuffix("-7B")
        if model.encode() not in raw and not (":grouped=true" in name and group.encode() in raw):
            return "lacks the new model"
    else:
        # Statistics name no models: computed after the write, they count it.
        at = json.loads(raw).get("computed_at", 0)
        if at < int(since):
            return f"computed at {at}, before the write ({since:.0f})"
    return None


def writes(n: int, check_seconds: float, max_delay: float) -> int:
    from horde_model_reference.meta_consts import MODEL_REFERENCE_CATEGORY

    r = redis.from_url(os.environ["HORDE_MODEL_REFERENCE_REDIS__URL"])
    channel = f"{PREFIX}:invalidate"
    before_subs = r.pubsub_numsub(channel)[0][1]
    worker = subprocess.Popen(
        [sys.executable, __file__, "late-worker", str(max_delay)],
        stdout=sys.stdout,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while r.pubsub_numsub(channel)[0][1] <= before_subs:
            if time.time() > deadline or worker.poll() is not None:
                print("FAILED: the late worker did not subscribe", flush=True)
                return 1
            time.sleep(0.1)
        backend = manager().backend
        # The publisher's own analytics caches DEL at once, as in the service.
        from horde_model_reference.analytics.deletion_risk_cache import DeletionRiskCache
        from horde_model_reference.analytics.statistics_cache import StatisticsCache

        DeletionRiskCache()
        StatisticsCache()
        failures = 0
        for i in range(n):
            category = ["text_generation", "image_generation"][i % 2]
            other = "image_generation" if category == "text_generation" else "text_generation"
            cat = MODEL_REFERENCE_CATEGORY(category)
            data = backend.fetch_category(cat, force_refresh=True) or {}
            template = dict(next(iter(data.values())))
            # No dash but the size: the grouped view names the group "ReadersWrite<pid>x<i>".
            model = f"readersref/ReadersWrite{os.getpid()}x{i}-7B"
            template["name"] = model
            other_before = {k: r.get(f"{PREFIX}:{k}") for k in ENTRIES[other]}
            t0 = time.time()
            backend.update_model(cat, model, template)
            time.sleep(max(0.0, t0 + check_seconds - time.time()))
            problems = {k: p for k in ENTRIES[category] if (p := entry_ok(r, k, model, t0))}
            other_now = {k: r.get(f"{PREFIX}:{k}") for k in ENTRIES[other]}
            if other_now != other_before:
                problems["other category"] = "changed"
            status = "ok" if not problems else f"FAILED {problems}"
            print(f"write {i + 1}: {category} {model}: {check_seconds:.0f} s later {status}", flush=True)
            failures += bool(problems)
        print(f"summary: {n - failures} of {n} writes ok", flush=True)
        return 1 if failures else 0
    finally:
        worker.kill()
        worker.wait()


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role == "late-worker":
        late_worker(float(sys.argv[2]))
    elif role == "writes":
        sys.exit(writes(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 1.5))
    else:
        print(__doc__)
        sys.exit(2)
