"""``celery.canvas``: signatures and workflows (``_chain`` is the class behind ``chain``)."""

from celery._bridge import bind

bind(
    globals(),
    {
        "Signature": "conveyor.canvas",
        "StampingVisitor": ("conveyor.stamps", "conveyor.canvas"),
        "_chain": "conveyor.canvas:chain",
        "_chord": "conveyor.canvas:chord",
        "_maybe_group": None,
        "_merge_dictionaries": None,
        "chain": "conveyor.canvas",
        "chord": "conveyor.canvas",
        "chunks": "conveyor.canvas",
        "group": "conveyor.canvas",
        "maybe_signature": "conveyor.canvas",
        "maybe_unroll_group": None,
        "signature": "conveyor.canvas",
        "xmap": "conveyor.canvas",
        "xstarmap": "conveyor.canvas",
    },
)
