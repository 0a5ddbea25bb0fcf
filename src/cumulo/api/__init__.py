"""HTTP: the REST API (v1) and the operational endpoints."""
