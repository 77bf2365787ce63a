"""bench.profile's attribution of py-spy samples to parts, on stacks in py-spy's own raw format."""

from __future__ import annotations

from bench.profile import parse_raw, part_of

LOOP = (
    "_run_module_as_main (<frozen runpy>:198);run_worker (ml/streams/worker.py:48);"
    "BaseEventLoop._run_once (asyncio/base_events.py:1922);Handle._run (asyncio/events.py:80)"
)


def test_a_library_the_hot_path_calls_is_its_own_part() -> None:
    stack = [*LOOP.split(";"), "apply (ml/features/redis_store.py:300)", "execute (redis/client.py:1)"]
    assert part_of(stack) == "Redis client (redis-py)"
    validate = [
        *LOOP.split(";"),
        "parse_event (ml/schemas/events.py:9)",
        "validate_json (pydantic/main.py:1)",
    ]
    assert part_of(validate) == "pydantic validation"


def test_river_and_numpy_go_to_our_module_that_called_them() -> None:
    stack = [
        *LOOP.split(";"),
        "learn (ml/learners/online.py:9)",
        "learn_one (river/linear_model/log_reg.py:1)",
    ]
    assert part_of(stack) == "learners/online.py"
    drift = [*LOOP.split(";"), "update (ml/monitor/ks.py:4)", "ks_2samp (scipy/stats/_stats_py.py:1)"]
    assert part_of(drift) == "monitor/ks.py"


def test_a_stack_with_nothing_of_ours_is_the_event_loop_or_other() -> None:
    loop_only = [f for f in LOOP.split(";") if "(ml/" not in f]
    assert part_of(loop_only) == "asyncio event loop"
    assert part_of(LOOP.split(";")) == "streams/worker.py"  # the innermost frame of ours holds the loop
    assert part_of(["<module> (<string>:1)"]) == "other (interpreter, threads)"


def test_parse_raw_sums_counts_per_part_and_skips_thread_frames() -> None:
    text = "\n".join(
        [
            f"thread (0x7f01);{LOOP};apply (ml/features/store.py:12) 7",
            f"{LOOP};apply (ml/features/store.py:40) 3",
            f"{LOOP};dumps (orjson/__init__.py:1) 2",
            "not a sample line",
        ]
    )
    assert parse_raw(text) == {"features/store.py": 10, "JSON": 2}
