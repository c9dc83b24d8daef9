"""What runs the pipeline: the `callscope` CLI, embedded services, the demo, the images (top floor)."""
