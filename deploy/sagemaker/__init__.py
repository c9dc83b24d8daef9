"""Amazon SageMaker hosting: the bidirectional-streaming bridge container and its endpoint script."""
