package operator

import (
	"errors"
	"os"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// budgetShare is the share of the container's memory limit that runs may reserve by default:
// the rest is the operator itself, its caches, and the garbage collector's headroom.
const budgetShare = 0.6

// cgroupMemoryMax is where cgroup v2 says how much memory the container may use.
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// AutoMemoryBudget is the default memory budget: a share of the container's memory limit, from
// GOMEMLIMIT (the Deployment sets it from limits.memory) or the cgroup; 0 (none) without a limit.
func AutoMemoryBudget() int64 {
	limit := parseLimit(os.Getenv("GOMEMLIMIT"))
	if limit == 0 {
		if b, err := os.ReadFile(cgroupMemoryMax); err == nil {
			limit = parseLimit(string(b))
		}
	}
	return int64(float64(limit) * budgetShare)
}

// budgetFlag is --memory-budget: a quantity (400Mi), 0 for none, or auto (AutoMemoryBudget).
type budgetFlag int64

func (b *budgetFlag) String() string { return quantityText(int64(*b)) }

func (b *budgetFlag) Set(s string) error {
	if s == "auto" {
		*b = budgetFlag(AutoMemoryBudget())
		return nil
	}
	v, err := parseQuantity(s, true)
	if err != nil {
		return errors.New("want a quantity such as 400Mi, 0 or auto")
	}
	*b = budgetFlag(v)
	return nil
}

// quantityFlag is a byte count written as a Kubernetes quantity (64Mi), more than 0.
type quantityFlag int64

func (q *quantityFlag) String() string { return quantityText(int64(*q)) }

func (q *quantityFlag) Set(s string) error {
	v, err := parseQuantity(s, false)
	if err != nil {
		return errors.New("want a quantity such as 64Mi")
	}
	*q = quantityFlag(v)
	return nil
}

func parseQuantity(s string, zeroOK bool) (int64, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil || q.Sign() < 0 || (!zeroOK && q.Sign() == 0) {
		return 0, errors.New("not a quantity")
	}
	return q.Value(), nil
}

func quantityText(n int64) string { return resource.NewQuantity(n, resource.BinarySI).String() }

// parseLimit reads a byte count as GOMEMLIMIT or cgroup write it (1073741824, 512MiB, max);
// 0 means no limit.
func parseLimit(s string) int64 {
	s = strings.TrimSpace(s)
	for suffix, mult := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				return 0
			}
			return v * mult
		}
	}
	v, err := strconv.ParseInt(strings.TrimSuffix(s, "B"), 10, 64)
	if err != nil || v >= 1<<60 { // "max", or GOMEMLIMIT's "no limit" (math.MaxInt64)
		return 0
	}
	return v
}
