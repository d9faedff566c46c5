package state

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// The checks below are the argument rules of the Store methods that every
// store applies the same way, so that no store accepts what another
// refuses.

// CheckClaim validates ClaimLease's (and RenewLease's) arguments and
// returns the new expiry, now+ttl in UTC.
func CheckClaim(owner string, now time.Time, ttl time.Duration) (time.Time, error) {
	switch {
	case owner == "":
		return time.Time{}, errors.New("empty lease owner")
	case now.IsZero():
		return time.Time{}, errors.New("no current time")
	case ttl <= 0:
		return time.Time{}, fmt.Errorf("lease ttl %s is not positive", ttl)
	}
	if _, err := Nanos(now); err != nil {
		return time.Time{}, fmt.Errorf("current time: %w", err)
	}
	exp := now.Add(ttl).UTC()
	if _, err := Nanos(exp); err != nil {
		return time.Time{}, fmt.Errorf("lease expiry: %w", err)
	}
	return exp, nil
}

// CheckLease validates a lease passed back to RenewLease or ReleaseLease.
func CheckLease(l Lease) error {
	switch {
	case l.Owner == "":
		return errors.New("empty lease owner")
	case l.Token <= 0:
		return fmt.Errorf("lease token %d: the lease was never claimed", l.Token)
	}
	return nil
}

// CheckRenew validates RenewLease's arguments and returns the new expiry.
func CheckRenew(l Lease, now time.Time, ttl time.Duration) (time.Time, error) {
	if err := CheckLease(l); err != nil {
		return time.Time{}, err
	}
	return CheckClaim(l.Owner, now, ttl)
}

// CheckAlert validates SetAlert's arguments.
func CheckAlert(kind string, open bool, at time.Time) error {
	switch {
	case kind == "":
		return errors.New("empty alert kind")
	case !open:
		return nil // at is ignored
	case at.IsZero():
		return errors.New("an alert needs the time it opened")
	}
	_, err := Nanos(at)
	return err
}

// Fenced is the error a store returns when a write carried token but the
// connection's current lease is token current, held by owner (current 0:
// never leased). It wraps ErrFenced and says which token was refused and
// which one is current.
func Fenced(token, current int64, owner string) error {
	if current == 0 {
		return fmt.Errorf("%w: token %d, but the connection was never leased", ErrFenced, token)
	}
	return fmt.Errorf("%w: token %d, but the current lease is token %d (owner %q)", ErrFenced, token, current, owner)
}

// CheckRejection validates one entry given to RecordRejections.
func CheckRejection(r Rejection) error {
	switch {
	case r.Status < 100 || r.Status > 599:
		return fmt.Errorf("member %s: HTTP status %d", r.Member, r.Status)
	case len(r.Reason) > MaxRejectionReason:
		return fmt.Errorf("member %s: reason of %d bytes, more than %d", r.Member, len(r.Reason), MaxRejectionReason)
	// DynamoDB holds only UTF-8 strings (the SDK would swap bad bytes for
	// U+FFFD), so an entry that would not come back as given is refused.
	case !utf8.ValidString(r.Reason):
		return fmt.Errorf("member %s: reason is not valid UTF-8", r.Member)
	case !utf8.ValidString(r.Key):
		return fmt.Errorf("member %s: key is not valid UTF-8", r.Member)
	case r.LastAttempt.IsZero():
		return fmt.Errorf("member %s: no time of the attempt", r.Member)
	}
	if _, err := Nanos(r.LastAttempt); err != nil {
		return fmt.Errorf("member %s: last attempt: %w", r.Member, err)
	}
	return nil
}

// CheckNoteError validates NoteError's arguments.
func CheckNoteError(msg string, at time.Time) error {
	switch {
	case msg == "":
		return errors.New("empty error")
	case at.IsZero():
		return errors.New("no time for the error")
	}
	_, err := Nanos(at)
	return err
}
