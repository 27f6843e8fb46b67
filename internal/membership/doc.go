// Package membership gives an operator process its identity as a task owner: a fencing token
// (epoch) from PostgreSQL, and two records that say it is alive, a Kubernetes Lease of its own
// and a row in PostgreSQL's taskpilot_members, so that losing either backend stops nothing.
//
// Every process that runs tasks joins once: it takes the next value of the
// taskpilot_owner_epoch sequence, inserts its row (expires_at = the database's now() + the
// lease duration) and acquires the Lease named after its identity, recording the epoch in an
// annotation; the API server is not needed to join, PostgreSQL is. It renews both every retry
// period, each on its own. Another process may take over a task owned by epoch E only when E is
// gone in both: its Lease was released, carries a newer epoch (the same identity restarted), or
// was not seen renewed for the lease duration, judged on the observer's monotonic clock from
// when it saw the Lease change (as client-go's leader election does: no node's wall clock is
// compared with another's) and confirmed by an uncached read; and its row was released or
// expired by the database's clock. The takeover itself is a compare-and-swap on the row's
// owner_epoch that checks E's row again in the same statement (store.Claim), and every write of
// the old owner is refused from then on.
//
// A process must stop running its tasks before others may consider it gone. So the member
// counts itself valid only until renewDeadline after the start of its last successful renewal
// of either record, which is shorter than the lease duration others wait for, from a later
// instant, on either record; once that passes it is invalid for good (Valid never turns true
// again), the runner stops every run at its next pause point without recording anything, and
// the process must join again with a new epoch. A process frozen by SIGSTOP therefore wakes up
// invalid even before it could renew. The margin (lease duration − renew deadline) absorbs the
// difference in clock rates between nodes, as in Kubernetes leader election.
//
// Partitions: a process that reaches only the API server keeps its tasks through its Lease;
// another that reaches only PostgreSQL cannot confirm that Lease's expiry (the uncached read
// fails) and takes nothing. A process that reaches only PostgreSQL keeps its tasks through its
// row; another that reaches only the API server cannot claim (claims are PostgreSQL writes that
// check the row). docs/architecture.md has the argument in full.
package membership
