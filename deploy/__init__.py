"""What runs the pipeline: CLI, settings, embedded services, shared Kafka plumbing."""
