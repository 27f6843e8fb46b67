package main

import (
	"sort"
	"strings"
)

// apiWrites are kube-apiserver write requests (POST/PUT/PATCH/DELETE/APPLY) by resource.
type apiWrites map[string]float64 // "VERB resource[/subresource]" -> count

func writesFrom(m metricSet) apiWrites {
	out := apiWrites{}
	for _, s := range m {
		if s.name != "apiserver_request_total" {
			continue
		}
		switch s.labels["verb"] {
		case "POST", "PUT", "PATCH", "DELETE", "APPLY":
		default:
			continue
		}
		key := s.labels["verb"] + " " + s.labels["resource"]
		if sub := s.labels["subresource"]; sub != "" {
			key += "/" + sub
		}
		out[key] += s.value
	}
	return out
}

func (a apiWrites) minus(b apiWrites) apiWrites {
	out := apiWrites{}
	for k, v := range a {
		if d := v - b[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func (a apiWrites) get(verb, resource string) float64 { return a[verb+" "+resource] }

func (a apiWrites) total() float64 {
	t := 0.0
	for _, v := range a {
		t += v
	}
	return t
}

// objectUpdates are writes to the BackgroundTask object other than creates and status.
func (a apiWrites) objectUpdates() float64 {
	return a.get("PUT", "backgroundtasks") + a.get("PATCH", "backgroundtasks")
}

func (a apiWrites) statusUpdates() float64 {
	return a.get("PUT", "backgroundtasks/status") + a.get("PATCH", "backgroundtasks/status")
}

func (a apiWrites) events() float64 {
	t := 0.0
	for k, v := range a {
		if strings.HasSuffix(k, " events") {
			t += v
		}
	}
	return t
}

func (a apiWrites) keys() []string {
	ks := make([]string, 0, len(a))
	for k := range a {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return a[ks[i]] > a[ks[j]] })
	return ks
}
