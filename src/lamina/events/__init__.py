"""Event sources: mappings (``mappings``), their pollers (``sqs``, ``streams``), the pattern language."""
