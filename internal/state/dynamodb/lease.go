package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/chimport/chimport/internal/state"
)

// rereads bounds how often ClaimLease and SetAlert read the item again
// after their condition failed because another worker changed it in
// between. Each retry needs another worker's successful write in the
// gap between a read and a write, so a handful is plenty.
const rereads = 8

// ClaimLease implements state.Store: one conditional UpdateItem that sets the
// owner and expiry and adds 1 to LeaseToken, so DynamoDB decides between
// concurrent claims and every winner gets a larger token.
func (s *Store) ClaimLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (state.Lease, error) {
	lease := state.Lease{Connection: name, Owner: owner}
	err := s.write("claim lease", name, func() (string, error) {
		exp, err := state.CheckClaim(owner, now, ttl)
		if err != nil {
			return "", err
		}
		lease.Expires = exp
		for attempt := 1; ; attempt++ {
			u := newHistoryUpdate()
			ownerValue := u.setValue(attrLeaseOwner, str(owner))
			u.setValue(attrLeaseExpires, num(exp.UnixNano()))
			u.addNumber(attrLeaseToken, 1)
			o, e := u.name(attrLeaseOwner), u.name(attrLeaseExpires)
			// A released lease has neither owner nor expiry.
			u.cond = "attribute_not_exists(" + o + ") OR " + e + " <= " + u.value(num(now.UnixNano())) +
				" OR " + o + " = " + ownerValue
			updated, err := s.updateHistory(ctx, name, u)
			if err == nil {
				r := &reader{item: updated}
				lease.Token = r.int(attrLeaseToken)
				return "", r.err
			}
			var held *types.ConditionalCheckFailedException
			if !errors.As(err, &held) {
				return s.cfg.HistoryTable, err
			}
			cur, err := s.currentLease(ctx, name)
			if err != nil {
				return s.cfg.HistoryTable, err
			}
			free := cur.Owner == "" || !cur.Expires.After(now) || cur.Owner == owner
			if !free || attempt == rereads {
				return "", &state.LeaseHeldError{Connection: name, Owner: cur.Owner, Expires: cur.Expires}
			}
			// Released or expired in between: claim again.
		}
	})
	if err != nil {
		return state.Lease{}, err
	}
	return lease, nil
}

// RenewLease implements state.Store.
func (s *Store) RenewLease(ctx context.Context, lease state.Lease, now time.Time, ttl time.Duration) (state.Lease, error) {
	err := s.write("renew lease", lease.Connection, func() (string, error) {
		exp, err := state.CheckRenew(lease, now, ttl)
		if err != nil {
			return "", err
		}
		u := newHistoryUpdate()
		u.setValue(attrLeaseExpires, num(exp.UnixNano()))
		// A released lease has no owner, so it cannot be renewed.
		u.and(u.name(attrLeaseOwner) + " = " + u.value(str(lease.Owner)))
		u.fence(lease.Token)
		_, err = s.updateHistory(ctx, lease.Connection, u)
		lease.Expires = exp
		return s.fenced(ctx, lease.Connection, lease.Token, err)
	})
	if err != nil {
		return state.Lease{}, err
	}
	return lease, nil
}

// ReleaseLease implements state.Store.
func (s *Store) ReleaseLease(ctx context.Context, lease state.Lease) error {
	return s.write("release lease", lease.Connection, func() (string, error) {
		if err := state.CheckLease(lease); err != nil {
			return "", err
		}
		u := newHistoryUpdate()
		u.removeAttr(attrLeaseOwner)
		u.removeAttr(attrLeaseExpires)
		u.fence(lease.Token)
		_, err := s.updateHistory(ctx, lease.Connection, u)
		return s.fenced(ctx, lease.Connection, lease.Token, err)
	})
}

// SetAlert implements state.Store: a consistent read of the alert, then, if it
// needs flipping, an UpdateItem conditioned on the state that was read. A
// failed condition means another worker flipped it in between; the read
// is then repeated, and it usually finds nothing left to do.
func (s *Store) SetAlert(ctx context.Context, name, kind string, open bool, at time.Time) (bool, error) {
	var changed bool
	err := s.write("set alert", name, func() (string, error) {
		if err := state.CheckAlert(kind, open, at); err != nil {
			return "", err
		}
		for range rereads {
			out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
				TableName:                &s.cfg.HistoryTable,
				Key:                      map[string]types.AttributeValue{attrListID: str(name)},
				ProjectionExpression:     aws.String("#a"),
				ExpressionAttributeNames: map[string]string{"#a": attrAlerts},
				ConsistentRead:           aws.Bool(true),
			})
			if err != nil {
				return s.cfg.HistoryTable, err
			}
			alerts, isMap := out.Item[attrAlerts].(*types.AttributeValueMemberM)
			if out.Item[attrAlerts] != nil && !isMap {
				return s.cfg.HistoryTable, fmt.Errorf("attribute %s holds %T, want a map", attrAlerts, out.Item[attrAlerts])
			}
			isOpen := isMap && alerts.Value[kind] != nil
			if isOpen == open {
				return "", nil
			}
			_, err = s.updateHistory(ctx, name, alertFlip(kind, open, isMap, at))
			var raced *types.ConditionalCheckFailedException
			if errors.As(err, &raced) {
				continue
			}
			if err != nil {
				return s.cfg.HistoryTable, err
			}
			changed = true
			return "", nil
		}
		return s.cfg.HistoryTable, fmt.Errorf("alert %q kept changing under this write (%d tries)", kind, rereads)
	})
	if err != nil {
		return false, err
	}
	return changed, nil
}

// alertFlip is the update that opens (at) or closes the alert of kind,
// on condition that it is still as read: closed, or open; isMap says
// whether the item has an Alerts map yet.
func alertFlip(kind string, open, isMap bool, at time.Time) *historyUpdate {
	u := newHistoryUpdate()
	a := u.name(attrAlerts)
	kindPath := func() string {
		u.names["#kind"] = kind // a placeholder of its own: kind is any string
		return a + ".#kind"
	}
	switch {
	case !open:
		k := kindPath()
		u.remove = append(u.remove, k)
		u.cond = "attribute_exists(" + k + ")"
	case !isMap:
		// The first alert makes the map: a path into a missing map cannot
		// be set.
		m := &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{kind: num(at.UnixNano())}}
		u.set = append(u.set, a+" = "+u.value(m))
		u.cond = "attribute_not_exists(" + a + ")"
	default:
		k := kindPath()
		u.set = append(u.set, k+" = "+u.value(num(at.UnixNano())))
		u.cond = "attribute_not_exists(" + k + ")"
	}
	return u
}

// currentLease reads the connection's lease as it is now; the zero Lease
// (with Connection set) if it was never claimed.
func (s *Store) currentLease(ctx context.Context, name string) (state.Lease, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:            &s.cfg.HistoryTable,
		Key:                  map[string]types.AttributeValue{attrListID: str(name)},
		ProjectionExpression: aws.String("#id, #o, #t, #e"),
		ExpressionAttributeNames: map[string]string{
			"#id": attrListID, "#o": attrLeaseOwner, "#t": attrLeaseToken, "#e": attrLeaseExpires},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return state.Lease{}, err
	}
	r := &reader{item: out.Item}
	l := state.Lease{Connection: name, Owner: r.string(attrLeaseOwner), Token: r.int(attrLeaseToken), Expires: r.time(attrLeaseExpires)}
	return l, r.err
}

// fenced finishes a history update that carried token, for write: a failed
// condition becomes an error wrapping ErrFenced (of this package's own
// making, so no table is named), which says what the current lease is.
func (s *Store) fenced(ctx context.Context, name string, token int64, err error) (table string, _ error) {
	var failed *types.ConditionalCheckFailedException
	if token == 0 || !errors.As(err, &failed) {
		return s.cfg.HistoryTable, err
	}
	cur, rerr := s.currentLease(ctx, name)
	if rerr != nil {
		// The write was refused all the same; say so, and why the detail
		// is missing.
		return "", fmt.Errorf("%w: token %d (reading the current lease: %v)", state.ErrFenced, token, rerr)
	}
	return "", state.Fenced(token, cur.Token, cur.Owner)
}
