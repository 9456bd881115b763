"""``celery.result``: result handles."""

from celery._bridge import bind

bind(
    globals(),
    {
        "AsyncResult": "conveyor.result",
        "EagerResult": "conveyor.result",
        "GroupResult": "conveyor.result",
        "ResultBase": None,
        "ResultSet": "conveyor.result",
        "allow_join_result": ("conveyor.result", "conveyor.joins"),
        "assert_will_not_block": None,
        "result_from_tuple": "conveyor.result",
        "task_join_will_block": None,
    },
)
