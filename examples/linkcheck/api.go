package linkcheck

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/operator"
)

// API is the web service of an application that starts checks in the background and reports
// on them, with taskpilot's typed client: the request returns at once, the work runs in the
// operator, and the same Params type describes it on both sides.
//
//	POST /checks          {"urls": [...], "notifyURL": "..."}   -> 202 {"name": "check-..."}
//	GET  /checks/{name}   -> 200 {"phase": "Running", "progress": "3/10", "report": {...}}
//
// A POST with an Idempotency-Key header creates one check however often it is retried: the
// task's name is derived from the key.
func API(c *operator.Client) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /checks", func(w http.ResponseWriter, r *http.Request) {
		var p Params
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := p.Validate(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		name := taskName(r.Header.Get("Idempotency-Key"))
		bt, created, err := c.Enqueue(r.Context(), name, p,
			operator.WithLabels(map[string]string{"app.kubernetes.io/created-by": "linkcheck-api"}))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		status := http.StatusAccepted
		if !created {
			status = http.StatusOK // a retried request: the check exists already
		}
		writeJSON(w, status, map[string]string{"name": bt.Name})
	})
	mux.HandleFunc("GET /checks/{name}", func(w http.ResponseWriter, r *http.Request) {
		bt, err := c.Get(r.Context(), r.PathValue("name"))
		var status apierrors.APIStatus
		switch {
		case errors.As(err, &status) && apierrors.IsNotFound(err):
			http.Error(w, "no such check", http.StatusNotFound)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		writeJSON(w, http.StatusOK, view(bt))
	})
	return mux
}

// checkView is what GET /checks/{name} answers.
type checkView struct {
	Phase    v1alpha1.Phase  `json:"phase"`
	Progress string          `json:"progress,omitempty"`
	Message  string          `json:"message,omitempty"`
	Report   json.RawMessage `json:"report,omitempty"`
}

func view(bt *v1alpha1.BackgroundTask) checkView {
	v := checkView{Phase: bt.Status.Phase, Progress: bt.Status.Progress, Message: bt.Status.Message}
	if bt.Status.Result != nil {
		v.Report = bt.Status.Result.Raw
	}
	return v
}

// taskName is the check's BackgroundTask name: derived from the idempotency key when there is
// one, else random.
func taskName(idempotencyKey string) string {
	if idempotencyKey == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		return "check-" + hex.EncodeToString(b[:]) + "-" + time.Now().UTC().Format("0102")
	}
	sum := sha256.Sum256([]byte(idempotencyKey))
	return "check-" + hex.EncodeToString(sum[:10])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
