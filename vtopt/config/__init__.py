"""The YAML config: schema, reading, checks, a sweep's distributions."""
