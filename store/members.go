package store

import (
	"context"
	"fmt"
	"time"
)

// MemberState is what PostgreSQL knows of an owner process (its row in taskpilot_members).
type MemberState struct {
	// Found: the process joined through this database (a row exists for its epoch).
	Found bool
	// Released: it gave its tasks up on a clean shutdown.
	Released bool
	// ExpiresIn is how long until its row expires unless renewed, by the database's clock
	// (zero or less: expired).
	ExpiresIn time.Duration
}

// Live reports whether the process may still be running tasks by this database's account.
func (s MemberState) Live() bool { return s.Found && !s.Released && s.ExpiresIn > 0 }

// JoinMember records owner as a live process of deployment for ttl (from the database's now()),
// and forgets processes that ended more than a day ago. It ends no other process, not even an
// older one of the same identity: that one may still be running (the membership ends it only
// once it is provably stopped, see membership.Member).
func (r *Repository) JoinMember(ctx context.Context, owner Owner, deployment string, ttl time.Duration) error {
	err := r.db.WithContext(ctx).Exec(`
INSERT INTO taskpilot_members (epoch, identity, deployment, expires_at)
VALUES (?, ?, ?, now() + make_interval(secs => ?))`, owner.Epoch, owner.Name, deployment, ttl.Seconds()).Error
	if err != nil {
		return fmt.Errorf("record member %s (epoch %d): %w", owner.Name, owner.Epoch, err)
	}
	if err := r.db.WithContext(ctx).Exec(`
DELETE FROM taskpilot_members WHERE coalesce(released_at, expires_at) < now() - interval '1 day'`).Error; err != nil {
		r.log.Info("could not forget old members", "error", err.Error())
	}
	return nil
}

// RenewMember extends the row of epoch to ttl from the database's now(); ErrMemberLost when it
// was released or is missing.
func (r *Repository) RenewMember(ctx context.Context, epoch int64, ttl time.Duration) error {
	res := r.db.WithContext(ctx).Exec(`
UPDATE taskpilot_members SET renewed_at = now(), expires_at = now() + make_interval(secs => ?)
WHERE epoch = ? AND released_at IS NULL`, ttl.Seconds(), epoch)
	if res.Error != nil {
		return fmt.Errorf("renew member epoch %d: %w", epoch, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("renew member epoch %d: %w", epoch, ErrMemberLost)
	}
	return nil
}

// ReleaseMember marks the process of epoch as stopped: its tasks may be claimed at once.
func (r *Repository) ReleaseMember(ctx context.Context, epoch int64) error {
	err := r.db.WithContext(ctx).Exec(`
UPDATE taskpilot_members SET released_at = now() WHERE epoch = ? AND released_at IS NULL`, epoch).Error
	if err != nil {
		return fmt.Errorf("release member epoch %d: %w", epoch, err)
	}
	return nil
}

// Member reads the state of the process of epoch.
func (r *Repository) Member(ctx context.Context, epoch int64) (MemberState, error) {
	var row struct {
		Released  bool
		ExpiresIn float64
	}
	res := r.db.WithContext(ctx).Raw(`
SELECT released_at IS NOT NULL AS released, extract(epoch FROM expires_at - now()) AS expires_in
FROM taskpilot_members WHERE epoch = ?`, epoch).Scan(&row)
	if res.Error != nil {
		return MemberState{}, fmt.Errorf("read member epoch %d: %w", epoch, res.Error)
	}
	if res.RowsAffected == 0 {
		return MemberState{}, nil
	}
	return MemberState{Found: true, Released: row.Released, ExpiresIn: time.Duration(row.ExpiresIn * float64(time.Second))}, nil
}

// LiveMembers lists the identities of deployment's processes whose row is live by the
// database's clock (not released, not expired): those that may be running tasks by
// PostgreSQL's account, whatever their Leases say.
func (r *Repository) LiveMembers(ctx context.Context, deployment string) ([]string, error) {
	var ids []string
	err := r.db.WithContext(ctx).Raw(`
SELECT DISTINCT identity FROM taskpilot_members
WHERE deployment = ? AND released_at IS NULL AND expires_at > now()
ORDER BY identity`, deployment).Scan(&ids).Error
	if err != nil {
		return nil, fmt.Errorf("list live members of %s: %w", deployment, err)
	}
	return ids, nil
}
