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
