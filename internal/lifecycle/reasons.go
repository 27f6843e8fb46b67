package lifecycle

// Reasons recorded in background_tasks.reason and background_task_transitions.reason. They are
// CamelCase so they can be copied into Kubernetes conditions and Events verbatim. The runner's
// own reasons (Started, Paused, Completed, Error, ...) are defined in package runner and pass
// through unchanged; the ones below are those decisions depend on.
const (
	// ReasonCreated is the reason of seq 1.
	ReasonCreated = "Created"
	// ReasonRetryScheduled: a failed attempt is followed by a new one after a backoff;
	// retry_at says when.
	ReasonRetryScheduled = "RetryScheduled"
	// ReasonRestarted: spec.restartGeneration grew and the restart could not start a run at
	// once (spec.state is Paused or Stopped).
	ReasonRestarted = "Restarted"
	// ReasonStopped: spec.state became Stopped while the task was not running in any process.
	ReasonStopped = "Stopped"
	// ReasonPaused: spec.state became Paused while a recorded run was not running anywhere.
	ReasonPaused = "Paused"
	// ReasonUnknownTaskType: spec.taskName names no registered task type.
	ReasonUnknownTaskType = "UnknownTaskType"
	// ReasonInvalidParams: the task type's factory rejected spec.params.
	ReasonInvalidParams = "InvalidParams"
	// ReasonResultTooLarge: the run finished with a result PostgreSQL cannot store within the
	// size limit.
	ReasonResultTooLarge = "ResultTooLarge"
	// ReasonRecordRejected: PostgreSQL permanently rejected the transition the run produced, so
	// the attempt is recorded as failed instead.
	ReasonRecordRejected = "RecordRejected"
	// ReasonPauseTimeout: the task stayed Paused longer than spec.pauseTimeout and was stopped.
	ReasonPauseTimeout = "PauseTimeout"
	// ReasonStalled: a running task showed no sign of life (pause point, progress, checkpoint,
	// heartbeat) for spec.stallTimeout; recorded as Running -> Running.
	ReasonStalled = "Stalled"
	// ReasonStallEnded: a stalled task showed a sign of life again (Running -> Running).
	ReasonStallEnded = "StallEnded"
)

// Retriable reports whether an attempt that failed with this reason can succeed when simply
// run again. A spec that can never run, or an outcome the database cannot store, fails the
// same way every time; a restart (a new restartGeneration) is the way to try again.
func Retriable(reason string) bool {
	switch reason {
	case ReasonUnknownTaskType, ReasonInvalidParams, ReasonResultTooLarge, ReasonRecordRejected:
		return false
	}
	return true
}
