"""End-to-end pipelines built from curate steps (they wire steps together; they implement nothing)."""
