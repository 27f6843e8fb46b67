// Package membership gives an operator process its identity as a task owner: a fencing token
// (epoch) from PostgreSQL and a Kubernetes Lease of its own that says it is alive.
//
// Every process that runs tasks joins once: it takes the next value of the
// taskpilot_owner_epoch sequence and acquires the Lease named after its identity, recording
// the epoch in an annotation. It renews the Lease every retry period. Another process may take
// over a task owned by epoch E only when E is gone: the Lease that carried E was released on a
// clean shutdown, expired (not renewed for the lease duration), or already carries a newer
// epoch (the same identity restarted). The takeover itself is a compare-and-swap on the row's
// owner_epoch (store.Claim), and every write of the old owner is refused from then on.
//
// A process must stop running its tasks before others may consider it gone. So the member
// counts itself valid only until renewDeadline after the start of its last successful
// renewal, which is shorter than the lease duration others wait for; once that passes it is
// invalid for good (Valid never turns true again), the runner stops every run at its next
// pause point without recording anything, and the process exits so that it restarts with a
// new epoch. A process frozen by SIGSTOP therefore wakes up invalid even before it could
// renew. The margin (lease duration − renew deadline) absorbs clock skew between nodes, as in
// Kubernetes leader election.
package membership
