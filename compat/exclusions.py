"""Which of Celery's tests do not apply to Conveyor, and why.

Each entry is ``(pattern, brokers, reason)``: the pattern is matched (fnmatch, case
sensitive) against the test id as pytest prints it from the sdist's root; ``brokers`` limits
the entry to some runs ("sqlite", "redis", "memory" for the unit tests), empty for all.
A test is excluded only when what it checks has no meaning outside Celery: its internals,
mocks of its classes, AMQP properties, one of its result backends, or a worker running
inside the test process; or when it checks that Celery refuses a call that Conveyor
accepts (ported code never makes it) or a difference docs/porting-from-celery.md lists.
Anything else a Celery user could see stays in, so it passes or fails.
"""

from __future__ import annotations

__all__ = ["EXCLUSIONS"]

INTERNALS = "Celery internals"
MOCKS = "mocks Celery's own classes"
AMQP = "AMQP message properties"
IN_PROCESS = (
    "needs Celery's in-process test worker: receivers or patches set in the test process "
    "act inside the worker"
)
REDIS_BACKEND = "Celery's Redis result backend (its pub/sub channels)"

RESULT_BACKEND_API = (
    "stores its results through Celery's result-backend API (backend.mark_as_done, "
    "mark_as_failure), which Conveyor's backends do not have"
)
MOCK_MEMBERS = (
    MOCKS + ": Mock members, asserting which of their methods Celery's implementation calls "
    "rather than what the workflow does"
)
CHORD_SIZE = "Celery's chord-size counting for its key-value backends (__length_hint__)"
ACCEPTED = "Celery refuses a call that Conveyor accepts (docs/porting-from-celery.md)"
DOCUMENTED = "a difference docs/porting-from-celery.md lists"

T = "t/unit/tasks/test_canvas.py::"
R = "t/unit/tasks/test_result.py::"
S = "t/unit/app/test_schedules.py::"

IT = "t/integration/test_tasks.py::"
IC = "t/integration/test_canvas.py::"
RECEIVED_IN_TEST = IN_PROCESS + " (a task_received receiver in the test process)"

EXCLUSIONS: list[tuple[str, tuple[str, ...], str]] = [
    # -- integration: tasks ------------------------------------------------------------
    (IT + "test_tasks::test_properties", (), AMQP + " (app_id)"),
    (
        IT + "test_tasks::test_*_with_unpickleable_exception",
        (),
        INTERNALS + ": its UnpickleableExceptionWrapper, for exceptions pickle cannot rebuild",
    ),
    (
        IT + "test_trace_log_arguments::*",
        (),
        IN_PROCESS + " (caplog in the test process reads the worker's log records)",
    ),
    (IT + "test_task_redis_result_backend::*", (), REDIS_BACKEND),
    (
        IT + "test_tasks::test_revoked_by_headers_*_canvas",
        (),
        IN_PROCESS
        + " (between its loops it clears celery.worker.state.revoked_stamps, the in-process"
        " worker's memory of revoked stamps; Conveyor keeps them in the coordinator)",
    ),
    (IT + "test_task_replacement::*", (), RECEIVED_IN_TEST),
    # -- integration: canvas -----------------------------------------------------------
    (
        IC + "test_chain::test_chord_header_id_duplicated_on_rabbitmq_msg_duplication*",
        (),
        AMQP + ": republishes through Celery's producer pool, as RabbitMQ would duplicate",
    ),
    (
        IC + "test_chord::test_simple_chord_with_a_delay_in_group_save",
        (),
        MOCKS + " (patches BaseKeyValueStoreBackend._apply_chord_incr)",
    ),
    (IC + "test_chord::test_redis_subscribed_channels_leak", (), REDIS_BACKEND),
    (
        IC + "test_chord::test_chord_on_error",
        (),
        "Celery's Redis result backend (reads a chord's member results from its '.j' key,"
        " found with backend.get_key_for_group)",
    ),
    (
        IC + "test_stamping_mechanism::test_properties_not_affected_from_stamping",
        (),
        AMQP + " (the properties argument of before_task_publish)",
    ),
    (IC + "test_stamping_mechanism::test_stamping_workflow", (), RECEIVED_IN_TEST),
    (IC + "test_stamping_mechanism::test_task_received_has_access_to_stamps", (), RECEIVED_IN_TEST),
    (IC + "test_stamping_mechanism::test_all_tasks_of_canvas_are_stamped", (), RECEIVED_IN_TEST),
    (IC + "test_stamping_mechanism::test_replace_merge_stamps", (), RECEIVED_IN_TEST),
    (IC + "test_stamping_mechanism::test_*linking_stamped_sig", (), RECEIVED_IN_TEST),
    (IC + "test_stamping_mechanism::test_stamps_remain_on_task_retry", (), RECEIVED_IN_TEST),
    # -- unit: canvas ------------------------------------------------------------------
    (
        "t/unit/test_canvas.py::*",
        (),
        INTERNALS + ": app.thread_oid and the reply_to queue of Celery's RPC result backend",
    ),
    (T + "test_maybe_unroll_group::*", (), INTERNALS + " (maybe_unroll_group)"),
    (T + "test_merge_dictionaries::*", (), INTERNALS + " (_merge_dictionaries)"),
    (T + "test_chord::test_chord_size_*", (), CHORD_SIZE),
    (T + "test_Signature::test_json", (), INTERNALS + ": the __json__ hook of kombu's encoder"),
    (T + "test_Signature::test_merge_*", (), INTERNALS + " (Signature._merge)"),
    (
        T + "test_Signature::test_apply_async_when_not_registered",
        (),
        INTERNALS + " (Signature._apply_async)",
    ),
    (T + "test_Signature::test_call", (), MOCKS + ": replaces a signature's task with a Mock"),
    (T + "test_xmap_xstarmap::test_apply", (), MOCKS + ": replaces a signature's task with a Mock"),
    (T + "test_Signature::test_election", (), MOCKS + ": app.control, for its election command"),
    (T + "test_chain::test_splices_chains", (), INTERNALS + " (chain._frozen)"),
    (
        T + "test_chain::test_apply_options*",
        (),
        INTERNALS + " (a Signature whose clone() returns itself and _apply_async records its"
        " call, to watch the options Celery's chain sets on its own tasks when sending)",
    ),
    (T + "test_chunks::test_chunks", (), MOCKS + " (x.group replaced by a Mock)"),
    (
        T + "test_chord::test__get_app_does_not_exhaust_generator",
        (),
        INTERNALS + " (regen's look-ahead: finding the app reads one item more)",
    ),
    (T + "test_chain::test_handles_dicts", (), INTERNALS + " (chain._frozen)"),
    (T + "test_chain::test_append_to_empty_chain", (), INTERNALS + " (chain._frozen)"),
    (T + "test_chain::test_group_to_chord*", (), INTERNALS + " (chain.prepare_steps, _use_link)"),
    (
        T + "test_chain::test_prepare_steps_set_last_task_id_to_chain",
        (),
        INTERNALS + " (chain.prepare_steps)",
    ),
    (
        T + "test_chain::test_app_falls_back_to_default",
        (),
        INTERNALS + ": identity with celery._state's current_app proxy",
    ),
    (T + "*::test_chain_always_eager", (), INTERNALS + " (patches celery._state)"),
    (T + "test_chain::test_chain_single_child_*", (), MOCKS + " (patch.object on apply_async)"),
    (T + "test_group::test_maybe_group_sig", (), INTERNALS + " (_maybe_group)"),
    (
        T + "test_group::test_apply_async_with_parent",
        (),
        INTERNALS + " (celery._state._task_stack)",
    ),
    (
        T + "test_group::test_apply_from_generator*",
        (),
        MOCKS + " (patches celery.canvas.Signature.apply_async)",
    ),
    (T + "test_group::test_apply_contains_chord*", (), MOCKS + " (backend.set_chord_size)"),
    (T + "test_group::test_group_prepared", (), INTERNALS + " (group._prepared, _freeze_gid)"),
    (T + "test_group::test_set_immutable", (), MOCK_MEMBERS),
    (T + "test_group::test_link", (), MOCK_MEMBERS),
    (T + "test_group::test_link_error*", (), MOCK_MEMBERS),
    (T + "test_chord::test_set_immutable", (), MOCK_MEMBERS),
    (T + "test_chord::test_flag_allow_error_cb_on_chord_header", (), MOCK_MEMBERS),
    (T + "test_chord::test_app_when_app_in_task", (), INTERNALS + " (Signature._app)"),
    (T + "test_chord::test_app_fallback_to_current", (), INTERNALS + " (celery._state)"),
    (
        T + "test_chain::test_accepts_generator_argument",
        (),
        INTERNALS + " (chain.type: Celery's built-in celery.chain task)",
    ),
    (
        T + "test_group::test_cannot_link*_on_group",
        (),
        ACCEPTED + ": group.apply_async(link=...) is group.link, link_error= group.link_error",
    ),
    (
        T + "test_chord::test_freeze_tasks_body_is_group*",
        (),
        INTERNALS + " (freezing swaps each member for a clone carrying a group_index option;"
        " here a member keeps its object and its index is given when it is sent)",
    ),
    (
        T + "test_chord::test_chord_clone_kwargs",
        (),
        INTERNALS + " (chord.kwargs, the dict holding a chord's header, body and extra keys)",
    ),
    (
        T + "test_chord::test_link_error_on_chord_header*",
        (),
        DOCUMENTED + ": the header tasks get a plain copy of the errback, not Celery's"
        " clone(immutable=True), which here would change the call",
    ),
    # -- unit: results -----------------------------------------------------------------
    (R + "test_AsyncResult::*", (), RESULT_BACKEND_API),
    (R + "test_GroupResult::*", (), RESULT_BACKEND_API),
    (R + "test_failed_AsyncResult::*", (), RESULT_BACKEND_API),
    (R + "test_ResultSet::test_get", (), MOCKS + " (a result's backend)"),
    (
        R + "test_ResultSet::test_get_sync_subtask_option",
        (),
        MOCKS + " (celery.result.task_join_will_block)",
    ),
    (
        R + "test_ResultSet::test_join_native_with_group_chain_group",
        (),
        MOCKS + " (a result's backend, _cache)",
    ),
    (R + "test_ResultSet::test_get_empty", (), MOCKS + " (ResultSet.join)"),
    (
        R + "test_EagerResult::test_get_sync_subtask_option",
        (),
        MOCKS + " (celery.result.task_join_will_block)",
    ),
    # -- unit: schedules ---------------------------------------------------------------
    (S + "test_solar::test_event_uses_center", (), INTERNALS + " (solar._use_center_l)"),
    (S + "test_solar::test_remaining_estimate", (), MOCKS + " (solar.cal, ephem's observer)"),
    (
        S + "test_solar::test_is_due",
        (),
        MOCKS + " (solar.remaining_estimate replaced by a Mock; Conveyor's is_due asks the"
        " schedule's next run, so the Mock is never read)",
    ),
    (
        S + "test_crontab_is_due::test_every_minute_execution_is_due",
        (),
        INTERNALS + " (crontab.remaining_delta: the (last run, relativedelta, now) parts"
        " Celery's remaining_estimate is made of; is_due and remaining_estimate are tested)",
    ),
    (
        S + "test_crontab_parser::test_range_steps_not_enough",
        (),
        INTERNALS + " (crontab_parser._range_steps)",
    ),
    (
        S + "test_crontab_parser::test_expand_cronspec_*",
        (),
        INTERNALS + " (crontab._expand_cronspec)",
    ),
]
