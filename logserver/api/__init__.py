"""Request handlers, one module per group of Kafka APIs."""
