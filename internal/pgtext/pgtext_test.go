package pgtext

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestText(t *testing.T) {
	require.Equal(t, "ab", Text("a\x00b", 10), "NUL removed")
	require.Equal(t, "a\uFFFDb", Text("a\xffb", 10), "invalid UTF-8 replaced")
	require.Equal(t, "héllo", Text("héllo", 5), "counted in characters, not bytes")
	require.Equal(t, "hé…", Text("héllo", 3))
	require.Equal(t, "x", Text("x", 0), "0: no limit")
}

// The expected lengths were read from PostgreSQL 15 (SELECT octet_length(x::jsonb::text));
// TestStoredLengthMatchesPostgres in package store checks the same against a live server.
func TestJSONMeasuresLikePostgres(t *testing.T) {
	for raw, want := range map[string]struct {
		stored string // jsonb's text form, whose length is expected
		clean  string // what JSON returns, when it differs from raw
	}{
		`{"b":1,"a":[1,2,{"cc":null,"c":true}],"a":2}`:    {stored: `{"a": 2, "b": 1}`, clean: `{"a":2,"b":1}`},
		`[1.50e2, 1.5e-3, 1.500, 1.500e1, -0, -0.0]`:      {stored: `[150, 0.0015, 1.500, 15.00, 0, 0.0]`, clean: `[1.50e2,1.5e-3,1.500,1.500e1,-0,-0.0]`},
		`[1e3, 1E+3, 0.1e1, 100e-2, -1.0E-2, -0e-3]`:      {stored: `[1000, 1000, 1, 1.00, -0.010, 0.000]`, clean: `[1e3,1E+3,0.1e1,100e-2,-1.0E-2,-0e-3]`},
		`"a\u00e9\/\b\f\n\r\t\u0001\u001f\u007f é \\ \""`: {stored: `"aé/\b\f\n\r\t\u0001\u001f` + "\x7f" + ` é \\ \""`, clean: `"aé/\b\f\n\r\t\u0001\u001f` + "\x7f" + ` é \\ \""`},
		`"\ud83d\ude00"`: {stored: `"😀"`, clean: `"😀"`},
		`"a\u0000b"`:     {stored: `"ab"`, clean: `"ab"`},
		`{"a\u0000":1}`:  {stored: `{"a": 1}`, clean: `{"a":1}`},
		` [ ] `:          {stored: `[]`, clean: `[]`},
		`{"a":{}}`:       {stored: `{"a": {}}`},
	} {
		clean, n, err := JSON([]byte(raw))
		require.NoError(t, err, raw)
		require.Equal(t, len(want.stored), n, raw)
		if want.clean == "" {
			want.clean = raw
		}
		require.Equal(t, want.clean, string(clean), raw)
	}
}

func TestJSONNumbersAtPostgresLimits(t *testing.T) {
	for raw, want := range map[string]int{
		"1e1000": 1001, "1e-1000": 1002, "5e-324": 326, "1e131071": 131072, "1e-16383": 16385,
		"0e200000": 1, "0.0e5": 1,
	} {
		_, n, err := JSON([]byte(raw))
		require.NoError(t, err, raw)
		require.Equal(t, want, n, raw)
	}
	for _, raw := range []string{"1e131072", "1e-16384", "1.5e-16383", "123e-16385", "0e-20000", "1e99999999"} {
		_, _, err := JSON([]byte(raw))
		require.ErrorIs(t, err, ErrNumberRange, raw)
	}
}

func TestJSONRejectsWhatIsNotOneDocument(t *testing.T) {
	for _, raw := range []string{"", "{", `{"a":1}{}`, "nul", strings.Repeat("[", 10001) + strings.Repeat("]", 10001)} {
		_, _, err := JSON([]byte(raw))
		require.ErrorIs(t, err, ErrInvalidJSON, raw)
	}
}
