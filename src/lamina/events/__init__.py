"""Event sources: mappings (``mappings``), their pollers (``sqs``, ``streams``), the pattern language
(``patterns``), and schedules: expressions (``cron``, ``expressions``), the Scheduler and rule
APIs (``schedules``, ``rules``) and the one task that fires them (``scheduler``, ``timers``)."""
