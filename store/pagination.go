package store

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// continuePrefix versions the token format so it can change later without
// misreading old tokens.
const continuePrefix = "v1:"

// encodeContinue makes the opaque token for "rows after id".
func encodeContinue(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(continuePrefix + strconv.FormatInt(id, 10)))
}

// decodeContinue reverses encodeContinue; "" means the first page (id > 0).
func decodeContinue(token string) (int64, error) {
	if token == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, fmt.Errorf("continue token: %w", ErrInvalidArgument)
	}
	s, ok := strings.CutPrefix(string(raw), continuePrefix)
	if !ok {
		return 0, fmt.Errorf("continue token version: %w", ErrInvalidArgument)
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 0 {
		return 0, fmt.Errorf("continue token id: %w", ErrInvalidArgument)
	}
	return id, nil
}
