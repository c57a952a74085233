"""Prefect flows: thin wiring of connectors, expectations, transforms and the store."""
