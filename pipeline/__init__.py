"""The ground floor: what every stage shares (event contract base, topics, dead letters, Kafka
helpers, settings base, logging and the stage toolkit). Imports nothing of the stages above it."""
