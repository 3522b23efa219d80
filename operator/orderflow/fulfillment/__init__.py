"""The fulfillment controller: a durable workflow driven by spec signals and reported through status."""
