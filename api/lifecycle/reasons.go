package lifecycle

// Reasons recorded in background_tasks.reason and background_task_transitions.reason, and shown
// in the BackgroundTask's conditions and Events. They are CamelCase so they can be copied into
// Kubernetes conditions verbatim. This is the one list: the runner reports these, decisions and
// the status read them, SQL users filter on them.
const (
	// ReasonCreated is the reason of seq 1.
	ReasonCreated = "Created"
	// ReasonQueued: the run waits Pending for what it needs to start (a runner slot, memory).
	ReasonQueued = "Queued"
	// ReasonStarted: a run of a new attempt got what it needed and entered Running.
	ReasonStarted = "Started"
	// ReasonResumed: a run continued: after a pause, after waiting for a slot again, or on a new
	// owner from its checkpoint.
	ReasonResumed = "Resumed"
	// ReasonCompleted: Run returned a result.
	ReasonCompleted = "Completed"
	// ReasonError: Pre or Run returned an error; retried as spec.maxRetries says.
	ReasonError = "Error"
	// ReasonPermanentError: Pre or Run returned an error marked permanent (runner.Permanent):
	// retrying cannot mend it, so it is not retried.
	ReasonPermanentError = "PermanentError"
	// ReasonPanic: a hook panicked; the message holds the value and a trimmed stack.
	ReasonPanic = "Panic"
	// ReasonPaused: the run parked at a pause point, or spec.state became Paused while the run
	// was not running anywhere.
	ReasonPaused = "Paused"
	// ReasonStopped: spec.state became Stopped (or a restart ended the attempt).
	ReasonStopped = "Stopped"
	// ReasonStopGraceExceeded: a stopped run ignored cancellation for the stop grace and was
	// reported Stopped while its goroutine still ran.
	ReasonStopGraceExceeded = "StopGraceExceeded"
	// ReasonDeadlineExceeded: the attempt's running time exceeded spec.timeout.
	ReasonDeadlineExceeded = "DeadlineExceeded"
	// ReasonRetryScheduled: a failed attempt is followed by a new one after a backoff;
	// retry_at says when.
	ReasonRetryScheduled = "RetryScheduled"
	// ReasonRestarted: spec.restartGeneration grew and the restart could not start a run at
	// once (spec.state is Paused or Stopped).
	ReasonRestarted = "Restarted"
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
	case ReasonUnknownTaskType, ReasonInvalidParams, ReasonResultTooLarge, ReasonRecordRejected, ReasonPermanentError:
		return false
	}
	return true
}
