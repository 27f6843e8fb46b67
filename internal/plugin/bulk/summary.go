package bulk

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Counts tallies outcomes by result.
func Counts(outcomes []Outcome) map[Result]int {
	n := map[Result]int{}
	for _, o := range outcomes {
		n[o.Result]++
	}
	return n
}

// PrintSummary writes one row per task (sorted by namespace and name) and a closing count:
// what changed, what was already there, and what failed and why. With waited, a column says
// how each task ended up. withNamespace adds the NAMESPACE column (for -A).
func PrintSummary(w io.Writer, verb Verb, outcomes []Outcome, withNamespace, waited bool) error {
	sorted := slices.Clone(outcomes)
	slices.SortFunc(sorted, func(a, b Outcome) int {
		return strings.Compare(a.Key.String(), b.Key.String())
	})
	tw := tabwriter.NewWriter(w, 6, 4, 3, ' ', 0) // kubectl's table layout (cli-runtime printers)
	header := []string{"NAME", "RESULT", "DETAIL"}
	if waited {
		header = append(header, "NOW")
	}
	if withNamespace {
		header = append([]string{"NAMESPACE"}, header...)
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, o := range sorted {
		row := []string{o.Key.Name, resultWord(verb, o.Result), o.Detail}
		if waited {
			row = append(row, nowText(o))
		}
		if withNamespace {
			row = append([]string{o.Key.Namespace}, row...)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	n := Counts(outcomes)
	noun := "tasks"
	if len(outcomes) == 1 {
		noun = "task"
	}
	_, err := fmt.Fprintf(w, "%d %s: %d %s, %d already there, %d failed\n",
		len(outcomes), noun, n[Changed], verb.Done(), n[AlreadyThere], n[Failed])
	return err
}

// resultWord is the RESULT cell: "paused", "already there", "failed".
func resultWord(verb Verb, r Result) string {
	if r == Changed {
		return verb.Done()
	}
	return string(r)
}

// nowText is the NOW cell after waiting: the phase reached and, if it is not the plain one,
// how.
func nowText(o Outcome) string {
	if o.Result == Failed {
		return string(o.Phase) // empty for a task never read (not found, forbidden)
	}
	if o.Waited != "" {
		return o.Waited
	}
	return string(o.Phase)
}
