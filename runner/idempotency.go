package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// IdempotencyKey is Control.IdempotencyKey for a task's key (its UID) and attempt: "tp-" and
// 32 hex digits of a SHA-256 over the three, short enough for any API's idempotency header.
func IdempotencyKey(key Key, attempt int, step string) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%s", key, attempt, step))
	return "tp-" + hex.EncodeToString(sum[:16])
}

// itemIdempotencyKey is Item.IdempotencyKey: the same for every execution of item idx of the
// task (any attempt, retry, resume or replica) until the task restarts.
func itemIdempotencyKey(key Key, generation int64, idx int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00g%d\x00item-%d", key, generation, idx))
	return "tp-" + hex.EncodeToString(sum[:16])
}
