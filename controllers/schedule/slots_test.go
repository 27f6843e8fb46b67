package schedule

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustSchedule(t *testing.T, expr, zone string) cronSchedule {
	t.Helper()
	c, err := parseSchedule(expr, zone)
	require.NoError(t, err)
	return c
}

func TestParseSchedule(t *testing.T) {
	for _, ok := range []string{"30 2 * * *", "*/5 * * * * *", "@daily", "@every 90s", "0 9 * * MON-FRI"} {
		_, err := parseSchedule(ok, "Europe/Berlin")
		require.NoError(t, err, ok)
	}
	for expr, zone := range map[string]string{
		"61 * * * *":                "UTC",
		"* * *":                     "UTC",
		"0 2 * * *":                 "Mars/Olympus_Mons",
		"CRON_TZ=UTC 0 2 * * *":     "",
		"TZ=Europe/Paris 0 2 * * *": "",
	} {
		_, err := parseSchedule(expr, zone)
		require.Error(t, err, "%q in %q", expr, zone)
	}
	c := mustSchedule(t, "0 12 * * *", "")
	require.Equal(t, time.UTC, c.loc, "no time zone means UTC")
}

// TestSlotsAcrossDST: on the day clocks spring forward a slot in the skipped hour runs once, at
// the end of the gap; on the day they fall back a slot in the repeated hour runs once, at its
// first occurrence. Two zones, both changes, 2026.
func TestSlotsAcrossDST(t *testing.T) {
	utc := func(s string) time.Time {
		t.Helper()
		at, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return at
	}
	tests := []struct {
		name, expr, zone string
		from, to         string
		want             []string
	}{
		{name: "New York spring forward: 02:30 runs once, at 03:00 EDT", expr: "30 2 * * *", zone: "America/New_York",
			from: "2026-03-07T00:00:00Z", to: "2026-03-10T00:00:00Z",
			want: []string{"2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
		{name: "Berlin spring forward: 02:30 runs once, at 03:00 CEST", expr: "30 2 * * *", zone: "Europe/Berlin",
			from: "2026-03-28T00:00:00Z", to: "2026-03-31T00:00:00Z",
			want: []string{"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
		{name: "New York fall back: 01:30 runs once, at its first occurrence (EDT)", expr: "30 1 * * *", zone: "America/New_York",
			from: "2026-10-31T00:00:00Z", to: "2026-11-03T00:00:00Z",
			want: []string{"2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
		{name: "Berlin fall back: 02:30 runs once, at its first occurrence (CEST)", expr: "30 2 * * *", zone: "Europe/Berlin",
			from: "2026-10-24T00:00:00Z", to: "2026-10-27T00:00:00Z",
			want: []string{"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{name: "New York fall back, hourly: the repeated 01:00 once", expr: "0 * * * *", zone: "America/New_York",
			from: "2026-11-01T03:30:00Z", to: "2026-11-01T07:30:00Z",
			want: []string{"2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z"}},
		{name: "New York spring forward, every 20 min: the gap's slots are one, at 03:00", expr: "*/20 * * * *", zone: "America/New_York",
			from: "2026-03-08T06:30:00Z", to: "2026-03-08T07:30:00Z",
			want: []string{"2026-03-08T06:40:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:20:00Z"}},
		{name: "leap day", expr: "0 12 29 2 *", zone: "UTC", from: "2026-01-01T00:00:00Z", to: "2029-01-01T00:00:00Z",
			want: []string{"2028-02-29T12:00:00Z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustSchedule(t, tc.expr, tc.zone)
			slots, dropped := c.slotsBetween(utc(tc.from), utc(tc.to), 100)
			require.Zero(t, dropped)
			got := make([]string, len(slots))
			for i, s := range slots {
				got[i] = s.UTC().Format(time.RFC3339)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

// TestNextFromInsideTheRepeatedHour: looking from the second occurrence of a repeated hour, the
// next slot is after it (its slots ran in the first occurrence), not one already fired.
func TestNextFromInsideTheRepeatedHour(t *testing.T) {
	c := mustSchedule(t, "*/15 * * * *", "America/New_York")
	secondOccurrence := time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC) // 01:30 EST
	require.Equal(t, time.Date(2026, 11, 1, 7, 0, 0, 0, time.UTC), c.next(secondOccurrence).UTC(), "02:00 EST")
	firstOccurrence := time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC) // 01:30 EDT
	require.Equal(t, time.Date(2026, 11, 1, 5, 45, 0, 0, time.UTC), c.next(firstOccurrence).UTC(), "01:45 EDT")
}

// TestSlotsBetweenKeepsTheNewest: a per-second schedule after 3 h keeps the newest slots and
// counts the others.
func TestSlotsBetweenKeepsTheNewest(t *testing.T) {
	c := mustSchedule(t, "* * * * * *", "UTC")
	from := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	to := from.Add(3 * time.Hour)
	slots, dropped := c.slotsBetween(from, to, 1000)
	require.Len(t, slots, 1000)
	require.Equal(t, 3*3600-1000, dropped)
	require.Equal(t, to, slots[999])
	require.Equal(t, to.Add(-999*time.Second), slots[0])
	for i := 1; i < len(slots); i++ {
		require.Equal(t, time.Second, slots[i].Sub(slots[i-1]), "oldest first, none lost")
	}
}
