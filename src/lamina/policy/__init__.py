"""Resource-based policies of functions: statements as AWS renders them, their evaluation, the service."""
