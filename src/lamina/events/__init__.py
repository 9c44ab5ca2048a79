"""Event sources: mappings (``mappings``), their pollers (``sqs``), and the pattern language (``patterns``)."""
