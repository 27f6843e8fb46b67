package lifecycle

// Limits of the values stored with a task, enforced by CHECK constraints of background_tasks
// and measured as PostgreSQL measures them (characters for text, bytes of jsonb's text for
// JSON; package pgtext measures both). Producers bound their values with them, so no write
// fails on a limit.
const (
	// MaxProgressChars bounds progress, the task's short progress text.
	MaxProgressChars = 64
	// MaxMessageChars bounds a transition's message.
	MaxMessageChars = 4096
	// MaxPayloadBytes bounds a result and a checkpoint.
	MaxPayloadBytes = 64 << 10
)
