package monitoring

import (
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Parser is the PromQL parser of the Prometheus version the expressions are checked against.
func Parser() parser.Parser { return parser.NewParser(parser.Options{}) }

// MetricNames parses expr and returns the metric families it reads: each selector's __name__,
// with a histogram's _bucket, _sum or _count suffix cut to its family's name.
func MetricNames(expr string) ([]string, error) {
	ast, err := Parser().ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	var names []string
	var bad error
	parser.Inspect(ast, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			bad = fmt.Errorf("%q selects series without naming a metric", vs.String())
			return nil
		}
		names = append(names, Family(name))
		return nil
	})
	if bad != nil {
		return nil, bad
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Family is the metric family a series name belongs to (histogram suffixes removed).
func Family(name string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if f, ok := strings.CutSuffix(name, suffix); ok {
			return f
		}
	}
	return name
}
