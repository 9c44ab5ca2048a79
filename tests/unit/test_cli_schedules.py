"""``lamina schedules``' table and the router that puts Scheduler beside Lambda."""

from __future__ import annotations

from lamina.cli.schedules import format_schedules
from lamina.protocol import RestRouter, load_service_model
from lamina.protocol.prefix_router import PrefixRouter

NOW = 1_800_000_000.0


def test_table_shows_state_next_and_last_firing() -> None:
    timers = [
        {
            "Kind": "schedule",
            "Group": "reports",
            "Name": "nightly",
            "State": "ENABLED",
            "ScheduleExpression": "cron(0 3 * * ? *)",
            "Timezone": "Europe/Paris",
            "NextFire": NOW + 30,
            "LastFire": NOW - 7200,
            "LastResult": "OK: 1 invoke(s) queued",
        },
        {"Kind": "rule", "Group": "default", "Name": "tick", "State": "DISABLED", "NextFire": None},
    ]
    out = format_schedules(timers, NOW).splitlines()
    assert out[0].split() == [
        "KIND",
        "NAME",
        "STATE",
        "EXPRESSION",
        "NEXT",
        "FIRING",
        "LAST",
        "FIRING",
        "LAST",
        "RESULT",
    ]
    assert "reports/nightly" in out[1] and "cron(0 3 * * ? *) Europe/Paris" in out[1]
    assert "(in 30s)" in out[1] and "(120m ago)" in out[1] and "OK: 1 invoke(s) queued" in out[1]
    assert out[2].split()[:3] == ["rule", "tick", "DISABLED"] and " - " in out[2]


def test_prefix_router_sends_scheduler_paths_to_its_model() -> None:
    scheduler = RestRouter(load_service_model("scheduler"))
    router = PrefixRouter(
        RestRouter(load_service_model("lambda")), {"schedules": scheduler, "schedule-groups": scheduler}
    )
    route = router.match("POST", "/schedules/nightly")
    assert route is not None and route[0].name == "CreateSchedule" and route[1] == {"Name": "nightly"}
    route = router.match("GET", "/schedule-groups")
    assert route is not None and route[0].name == "ListScheduleGroups"
    route = router.match("GET", "/2015-03-31/functions/f")
    assert route is not None and route[0].name == "GetFunction"
