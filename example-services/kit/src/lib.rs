//! What the Weir example services share: server start-up, problem responses, database pools, calls through the sidecar, telemetry.
