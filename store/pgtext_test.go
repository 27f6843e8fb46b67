package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/taskpilot/taskpilot/internal/pgtext"
)

// TestStoredLengthMatchesPostgres checks package pgtext against the real server: for arbitrary
// JSON (escapes, NUL, invalid UTF-8, surrogates, duplicate keys, numbers in every notation),
// the value it returns is accepted by jsonb and its measured length is exactly
// octet_length(value::jsonb::text), the quantity the schema's size constraints check.
func TestStoredLengthMatchesPostgres(t *testing.T) {
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, srv.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	stored := func(v string) (int, error) {
		var n int
		err := conn.QueryRow(ctx, `SELECT octet_length(CAST($1::text AS jsonb)::text)`, v).Scan(&n)
		return n, err
	}

	rapid.Check(t, func(rt *rapid.T) {
		raw := jsonValue(3).Draw(rt, "json")
		clean, n, err := pgtext.JSON([]byte(raw))
		if errors.Is(err, pgtext.ErrNumberRange) {
			return // numbers at the limits are checked below
		}
		if err != nil {
			rt.Fatalf("generated JSON rejected: %v\n%q", err, raw)
		}
		want, err := stored(string(clean))
		if err != nil {
			rt.Fatalf("PostgreSQL rejects the cleaned value %q (from %q): %v", clean, raw, err)
		}
		if n != want {
			rt.Fatalf("measured %d, PostgreSQL stores %d bytes for %q", n, want, clean)
		}
	})

	rapid.Check(t, func(rt *rapid.T) {
		num := rapid.OneOf(jsonNumber(), extremeNumber()).Draw(rt, "number")
		_, n, err := pgtext.JSON([]byte(num))
		want, pgErr := stored(num)
		switch {
		case errors.Is(err, pgtext.ErrNumberRange) && pgErr != nil:
		case err == nil && pgErr == nil && n == want:
		default:
			rt.Fatalf("%s: pgtext says %d/%v, PostgreSQL %d/%v", num, n, err, want, pgErr)
		}
	})
}

func jsonValue(depth int) *rapid.Generator[string] {
	leaves := []*rapid.Generator[string]{rapid.SampledFrom([]string{"null", "true", "false"}), jsonNumber(), jsonString()}
	if depth == 0 {
		return rapid.OneOf(leaves...)
	}
	array := rapid.Custom(func(t *rapid.T) string {
		elems := rapid.SliceOfN(jsonValue(depth-1), 0, 4).Draw(t, "elems")
		return "[" + strings.Join(elems, rapid.SampledFrom([]string{",", " , ", ",\n"}).Draw(t, "sep")) + "]"
	})
	object := rapid.Custom(func(t *rapid.T) string {
		n := rapid.IntRange(0, 4).Draw(t, "pairs")
		pairs := make([]string, n)
		for i := range pairs {
			key := rapid.OneOf(rapid.SampledFrom([]string{`"a"`, `"b"`, `"a\u0000"`, `"ab"`, `""`}), jsonString()).Draw(t, "key")
			pairs[i] = key + ":" + jsonValue(depth-1).Draw(t, "value")
		}
		return "{" + strings.Join(pairs, ",") + "}"
	})
	return rapid.OneOf(append(leaves, array, object)...)
}

func jsonString() *rapid.Generator[string] {
	piece := rapid.SampledFrom([]string{
		"x", "hello", " ", `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u0001`, `\u001f`, `\u007f`, `\u00e9`,
		`\u0000`, `\ud83d\ude00`, `\ud800`, `\udc00x`, "é", "😀", "\x7f", "\xff", "\xc3", "<&>",
	})
	return rapid.Custom(func(t *rapid.T) string {
		return `"` + strings.Join(rapid.SliceOfN(piece, 0, 8).Draw(t, "pieces"), "") + `"`
	})
}

func jsonNumber() *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		var b strings.Builder
		if rapid.Bool().Draw(t, "neg") {
			b.WriteString("-")
		}
		b.WriteString(rapid.OneOf(rapid.Just("0"), rapid.StringMatching(`[1-9][0-9]{0,20}`)).Draw(t, "int"))
		if rapid.Bool().Draw(t, "frac") {
			b.WriteString("." + rapid.StringMatching(`[0-9]{1,20}`).Draw(t, "fraction"))
		}
		if rapid.Bool().Draw(t, "exp") {
			b.WriteString(rapid.SampledFrom([]string{"e", "E", "e+", "e-", "E-"}).Draw(t, "e"))
			b.WriteString(rapid.StringMatching(`[0-9]{1,3}`).Draw(t, "exponent"))
		}
		return b.String()
	})
}

// extremeNumber generates numbers around PostgreSQL's numeric limits.
func extremeNumber() *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		mantissa := rapid.SampledFrom([]string{"1", "0", "1.5", "12.345", "0.0001", "99"}).Draw(t, "mantissa")
		exp := rapid.SampledFrom([]int{131068, 131069, 131070, 131071, 131072, 131073, -16380, -16382, -16383, -16384, -16385, 200000, -20000}).Draw(t, "exp")
		return mantissa + "e" + strconv.Itoa(exp)
	})
}
