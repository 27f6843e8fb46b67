package pgtext

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

var (
	// ErrInvalidJSON: the value is not one JSON document.
	ErrInvalidJSON = errors.New("not valid JSON")
	// ErrNumberRange: a number PostgreSQL's numeric type cannot represent (more than 131072
	// digits before the decimal point or 16383 after it).
	ErrNumberRange = errors.New("number out of PostgreSQL's numeric range")
)

// PostgreSQL numeric limits (NUMERIC_MAX_... in src/backend/utils/adt/numeric.c).
const (
	maxIntegerDigits = 131072
	maxDisplayScale  = 16383
)

// JSON returns raw as jsonb accepts it and the length in bytes of its jsonb text
// (octet_length(value::jsonb::text)), which is what the schema's size constraints measure.
// Strings lose NUL characters (jsonb rejects \u0000) and have invalid UTF-8 and unpaired
// surrogates replaced by U+FFFD; everything else is kept, numbers digit for digit. The result
// is compact JSON.
func JSON(raw []byte) (json.RawMessage, int, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrInvalidJSON, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("%w: data after the JSON value", ErrInvalidJSON)
	}
	v = clean(v)
	n, err := storedLen(v)
	if err != nil {
		return nil, 0, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrInvalidJSON, err)
	}
	return json.RawMessage(bytes.TrimRight(buf.Bytes(), "\n")), n, nil
}

// clean removes NUL characters from strings and keys (encoding/json already replaced invalid
// UTF-8 and lone surrogates while decoding).
func clean(v any) any {
	switch x := v.(type) {
	case string:
		return strings.ReplaceAll(x, "\x00", "")
	case []any:
		for i := range x {
			x[i] = clean(x[i])
		}
		return x
	case map[string]any:
		if !slices.ContainsFunc(slices.Collect(maps.Keys(x)), func(k string) bool { return strings.IndexByte(k, 0) >= 0 }) {
			for k, e := range x {
				x[k] = clean(e)
			}
			return x
		}
		out := make(map[string]any, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) { // sorted: which duplicate wins is deterministic
			out[strings.ReplaceAll(k, "\x00", "")] = clean(x[k])
		}
		return out
	}
	return v
}

// storedLen is the length of jsonb's text form: `{"k": v, "k2": v2}`, `[a, b]`, strings
// escaped by escape_json, numbers as numeric_out prints them.
func storedLen(v any) (int, error) {
	switch x := v.(type) {
	case nil:
		return len("null"), nil
	case bool:
		if x {
			return len("true"), nil
		}
		return len("false"), nil
	case string:
		return quotedLen(x), nil
	case json.Number:
		return numericLen(string(x))
	case []any:
		n := 2 + 2*max(len(x)-1, 0)
		for _, e := range x {
			l, err := storedLen(e)
			if err != nil {
				return 0, err
			}
			n += l
		}
		return n, nil
	case map[string]any:
		n := 2 + 2*max(len(x)-1, 0)
		for k, e := range x {
			l, err := storedLen(e)
			if err != nil {
				return 0, err
			}
			n += quotedLen(k) + len(": ") + l
		}
		return n, nil
	}
	return 0, fmt.Errorf("%w: unexpected %T", ErrInvalidJSON, v)
}

// quotedLen is the length of s as PostgreSQL's escape_json writes it.
func quotedLen(s string) int {
	n := 2
	for _, r := range s {
		switch {
		case r == '"' || r == '\\' || r == '\b' || r == '\f' || r == '\n' || r == '\r' || r == '\t':
			n += 2
		case r < 0x20:
			n += len(`\u0000`)
		default:
			n += utf8.RuneLen(r)
		}
	}
	return n
}

// numericLen is the length of a JSON number as PostgreSQL's numeric_out prints it: no
// exponent, the input's display scale (digits after the point, minus the exponent), no sign
// on zero.
func numericLen(s string) (int, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mantissa, expText, hasExp := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mantissa, ".")
	exp := 0
	if hasExp {
		expText = strings.TrimPrefix(expText, "+")
		sign := 1
		if strings.HasPrefix(expText, "-") {
			sign, expText = -1, expText[1:]
		}
		if len(expText) > 7 {
			return 0, fmt.Errorf("%w: exponent of %s", ErrNumberRange, s)
		}
		for _, c := range expText {
			exp = exp*10 + int(c-'0')
		}
		exp *= sign
	}
	scale := max(len(frac)-exp, 0)
	if scale > maxDisplayScale {
		return 0, fmt.Errorf("%w: %d digits after the decimal point", ErrNumberRange, scale)
	}
	digits := intPart + frac
	leadingZeros := len(digits) - len(strings.TrimLeft(digits, "0"))
	fraction := 0
	if scale > 0 {
		fraction = 1 + scale
	}
	if leadingZeros == len(digits) { // zero: printed without a sign
		return 1 + fraction, nil
	}
	integer := len(intPart) + exp - leadingZeros
	if integer > maxIntegerDigits {
		return 0, fmt.Errorf("%w: %d digits before the decimal point", ErrNumberRange, integer)
	}
	n := max(integer, 1) + fraction
	if neg {
		n++
	}
	return n, nil
}
