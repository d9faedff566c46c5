package engine

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/target"
)

// pageAck tracks one accepted page until every record it handed to delivery
// has been acknowledged by the target. Only then may the view's checkpoint
// move past the page.
type pageAck struct {
	view     *viewProgress
	pending  int       // records of this page not yet acknowledged
	sealed   bool      // every record of the page has been handed over
	position time.Time // last_changed of the page's last member
}

// viewProgress is how far one view (member status filter) has been
// delivered: every member of the view with last_changed < position has been
// acknowledged by the target.
type viewProgress struct {
	name     string
	mu       sync.Mutex
	pages    []*pageAck // accepted pages not yet fully acknowledged, in order
	position time.Time
	complete bool // the whole window has been paged and delivered
	onMove   func()
}

func newViewProgress(name string, start time.Time, onMove func()) *viewProgress {
	return &viewProgress{name: name, position: start, onMove: onMove}
}

// open registers a new page, in paging order, that will hand over records
// records.
func (v *viewProgress) open(position time.Time, records int) *pageAck {
	p := &pageAck{view: v, position: position, pending: records}
	v.mu.Lock()
	v.pages = append(v.pages, p)
	v.mu.Unlock()
	return p
}

// seal says the page's records have all been handed to delivery.
func (v *viewProgress) seal(p *pageAck) {
	v.mu.Lock()
	p.sealed = true
	moved := v.advanceLocked()
	v.mu.Unlock()
	if moved && v.onMove != nil {
		v.onMove()
	}
}

// ack acknowledges n delivered records of page p.
func (v *viewProgress) ack(p *pageAck, n int) {
	v.mu.Lock()
	p.pending -= n
	moved := v.advanceLocked()
	v.mu.Unlock()
	if moved && v.onMove != nil {
		v.onMove()
	}
}

// advanceLocked moves position over every leading page that is sealed and
// fully acknowledged. Pages behind a page still in flight must wait: the
// checkpoint claims everything before it.
func (v *viewProgress) advanceLocked() bool {
	moved := false
	for len(v.pages) > 0 && v.pages[0].sealed && v.pages[0].pending == 0 {
		v.position = v.pages[0].position
		v.pages = v.pages[1:]
		moved = true
	}
	return moved
}

// finish marks the view complete once the last page is acknowledged:
// position becomes the window end.
func (v *viewProgress) finish(windowEnd time.Time) {
	v.mu.Lock()
	if len(v.pages) == 0 {
		v.position = windowEnd
		v.complete = true
	}
	v.mu.Unlock()
}

// snapshot returns the position and whether the view is complete.
func (v *viewProgress) snapshot() (time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.position, v.complete
}

// change is one operation on its way to the target, the member it is
// about, and the page whose checkpoint waits for it (nil for a reconcile's
// deletes and a retry of the rejected log, which no checkpoint waits for).
type change struct {
	op     target.Op
	member state.MemberID
	page   *pageAck
}

// batch is the changes one Apply carries.
type batch []change

func (b batch) ops() []target.Op {
	ops := make([]target.Op, len(b))
	for i, c := range b {
		ops[i] = c.op
	}
	return ops
}

// rosterWriter records a batch in the connection's roster: the members a
// batch upserts before it is sent, the members it deletes once the target
// has acknowledged them. So the roster never misses a member the target
// may hold: a crash between the write and the send leaves an id too many
// (harmless: a later delete of a gone member), never one too few.
type rosterWriter func(ctx context.Context, c state.RosterChange) error

// delivery groups operations into batches and applies them with `workers`
// concurrent requests. It runs beside Mailchimp paging, so a slow target
// never stalls the pager until the buffers fill.
//
// A batch the target refuses (400, 422) is split to find the records it
// refuses on their own (refused.go): those go to the rejected log, the
// others to the target, and the batch's pages are acknowledged as usual.
// A batch it finds too large (413) is split too, and the batches after it
// are made smaller.
type delivery struct {
	sink      Sink
	batchSize *batchLimit
	workers   int
	in        chan change
	roster    rosterWriter
	rejected  *rejectedLog
	// retrying says the changes are retries of the rejected log: refusals
	// are expected, so a refused batch is tried record by record rather
	// than taken for a sign that the mapping is broken.
	retrying bool
	onSent   func(delivered batch)
	logger   *slog.Logger
}

// deliveryOf is what a delivery is made of; see delivery.
type deliveryOf struct {
	sink      Sink
	batchSize *batchLimit
	workers   int
	roster    rosterWriter
	rejected  *rejectedLog
	retrying  bool
	onSent    func(delivered batch) // the changes the target accepted
	logger    *slog.Logger
}

func newDelivery(c deliveryOf) *delivery {
	d := &delivery{
		sink:    c.sink,
		workers: c.workers,
		// The batcher gathers operations as fast as they come, and behind
		// the batches in flight `workers` full batches may wait: that is
		// the backlog that keeps the target busy. This buffer only spares
		// a goroutine switch per operation, and is allocated whole for
		// every run, of which serve and run may have hundreds at once.
		in:       make(chan change, min(c.batchSize.get(), 128)),
		roster:   c.roster,
		rejected: c.rejected,
		retrying: c.retrying,
		onSent:   c.onSent,
		logger:   c.logger,
	}
	d.batchSize = c.batchSize
	return d
}

// send hands one operation over; it blocks while the target is behind.
func (d *delivery) send(ctx context.Context, c change) error {
	select {
	case d.in <- c:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// close says no more operations will come; deliver then flushes the last
// batch.
func (d *delivery) close() { close(d.in) }

// feed delivers what produce sends, for a producer that has all its
// changes at hand (a reconcile's deletes, the rejected log's retries):
// produce stops at its first failed send, and the result is the delivery's
// error, or nil once every change is applied.
func (d *delivery) feed(ctx context.Context, produce func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan error, 1)
	go func() {
		err := d.deliver(ctx)
		cancel(err)
		done <- err
	}()
	sendErr := produce(ctx)
	d.close()
	if err := <-done; err != nil {
		return err
	}
	return sendErr
}

// deliver batches and applies until close has been called and everything
// is applied, or a batch fails for good, or ctx ends.
func (d *delivery) deliver(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	batches := make(chan batch, d.workers)
	g.Go(func() error {
		defer close(batches)
		return d.gather(ctx, batches)
	})
	for range d.workers {
		g.Go(func() error {
			for b := range batches {
				if err := d.apply(ctx, b); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// gather groups operations into batches. A batch's upserts enter the
// roster here, one write per batch, before the batch can be sent: the
// batcher writes while the workers send the batches before it.
func (d *delivery) gather(ctx context.Context, batches chan<- batch) error {
	var cur batch
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		if add := members(cur, target.OpUpsert); len(add) > 0 {
			if err := d.roster(ctx, state.RosterChange{Add: add}); err != nil {
				return fmt.Errorf("recording members in the roster before sending them: %w", err)
			}
		}
		// The batch size may have come down (a 413) while this batch
		// was gathered.
		for b := range slices.Chunk(cur, d.batchSize.get()) {
			select {
			case batches <- b:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		cur = make(batch, 0, d.batchSize.get())
		return nil
	}
	for {
		select {
		case c, ok := <-d.in:
			if !ok {
				return flush()
			}
			cur = append(cur, c)
			if len(cur) >= d.batchSize.get() {
				if err := flush(); err != nil {
					return err
				}
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// members lists the members of the changes of kind k.
func members(b batch, k target.OpKind) []state.MemberID {
	var ids []state.MemberID
	for _, c := range b {
		if c.op.Kind == k {
			ids = append(ids, c.member)
		}
	}
	return ids
}

// apply sends one batch, isolating the records the target refuses, then
// takes its deleted members out of the roster and the delivered ones out
// of the rejected log, and acknowledges its pages: every change of the
// batch is now either in the target or in the rejected log.
func (d *delivery) apply(ctx context.Context, b batch) error {
	delivered, err := d.applyIsolating(ctx, b)
	if err != nil {
		return err
	}
	if gone := members(delivered, target.OpDelete); len(gone) > 0 {
		if err := d.roster(ctx, state.RosterChange{Remove: gone}); err != nil {
			return fmt.Errorf("taking members the target deleted out of the roster: %w", err)
		}
	}
	if err := d.rejected.clear(ctx, delivered); err != nil {
		return err
	}
	acks := map[*pageAck]int{}
	for _, c := range b {
		if c.page != nil {
			acks[c.page]++
		}
	}
	for p, n := range acks {
		p.view.ack(p, n)
	}
	if d.onSent != nil {
		d.onSent(delivered)
	}
	return nil
}
