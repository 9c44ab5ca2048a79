"""EventBridge Scheduler handlers (rest-json, ``/schedules`` and ``/schedule-groups``): thin --
the rules live in lamina.events.schedules."""

from __future__ import annotations

from lamina.events.schedules import ScheduleService
from lamina.types import Handler, Output, Params, RequestContext


def handlers(schedules: ScheduleService) -> dict[str, Handler]:
    async def create_schedule(ctx: RequestContext, p: Params) -> Output:
        return await schedules.create(ctx.region, dict(p))

    async def get_schedule(ctx: RequestContext, p: Params) -> Output:
        return schedules.get(ctx.region, p["Name"], p.get("GroupName"))

    async def update_schedule(ctx: RequestContext, p: Params) -> Output:
        return await schedules.update(ctx.region, dict(p))

    async def delete_schedule(ctx: RequestContext, p: Params) -> Output:
        return await schedules.delete(ctx.region, p["Name"], p.get("GroupName"))

    async def list_schedules(ctx: RequestContext, p: Params) -> Output:
        return schedules.list(ctx.region, dict(p))

    async def create_schedule_group(ctx: RequestContext, p: Params) -> Output:
        return await schedules.create_group(ctx.region, p["Name"])

    async def get_schedule_group(ctx: RequestContext, p: Params) -> Output:
        return schedules.get_group(ctx.region, p["Name"])

    async def delete_schedule_group(ctx: RequestContext, p: Params) -> Output:
        return await schedules.delete_group(ctx.region, p["Name"])

    async def list_schedule_groups(ctx: RequestContext, p: Params) -> Output:
        return schedules.list_groups(ctx.region, p.get("NamePrefix"), p.get("NextToken"), p.get("MaxResults"))

    return {
        "CreateSchedule": create_schedule,
        "GetSchedule": get_schedule,
        "UpdateSchedule": update_schedule,
        "DeleteSchedule": delete_schedule,
        "ListSchedules": list_schedules,
        "CreateScheduleGroup": create_schedule_group,
        "GetScheduleGroup": get_schedule_group,
        "DeleteScheduleGroup": delete_schedule_group,
        "ListScheduleGroups": list_schedule_groups,
    }
