"""The OKR model (objectives, key results, periods, scoring) and the store it is written to."""
