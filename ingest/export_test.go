package ingest

import "time"

// SetCheckpointEvery changes how often intake journals are checkpointed,
// for tests that need records left after the last checkpoint.
func SetCheckpointEvery(d time.Duration) { checkpointEvery = d }
