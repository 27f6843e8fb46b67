package operator

import (
	"fmt"
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

// memoryBudget reads --memory-budget: a quantity (400Mi), 0 for none, or auto: a share of the
// container's memory limit, from GOMEMLIMIT (the Deployment sets it from limits.memory) or the
// cgroup, or none when there is no limit.
func memoryBudget(flag string) (int64, error) {
	if flag != "auto" {
		q, err := resource.ParseQuantity(flag)
		if err != nil || q.Sign() < 0 {
			return 0, fmt.Errorf("--memory-budget %q: want a quantity such as 400Mi, 0 or auto", flag)
		}
		return q.Value(), nil
	}
	limit := parseLimit(os.Getenv("GOMEMLIMIT"))
	if limit == 0 {
		if b, err := os.ReadFile(cgroupMemoryMax); err == nil {
			limit = parseLimit(string(b))
		}
	}
	return int64(float64(limit) * budgetShare), nil
}

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
