package engine

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync/atomic"

	"github.com/chimport/chimport/internal/target"
)

// Records the target refuses. A target that answers a batch with 400 or
// 422 refuses the whole batch for what may be one bad record in it, so the
// batch is split in halves, each half sent on its own, and the refused
// halves split again, until the records the target refuses on their own
// are found: they go to the rejected log (rejected.go), and everything
// else reaches the target. One bad record among n costs about 2·log2(n)
// requests.
//
// A target that refuses everything (a broken mapping, a changed API) must
// not be bisected record by record: when both halves of a batch are
// refused, a few records of each are tried on their own first, and when
// every one of them is refused too the run stops (*RefusalsError) after a
// handful of requests. So does a run whose target has refused minProbed
// records on their own and accepted none (batches too small to probe), and
// one in which more records are refused than Job.MaxRejected. A stopped
// run leaves the watermark where it was, and the batch that stopped it
// unacknowledged.
//
// Members a completed run left in the rejected log are no evidence: they
// were refused before and will be again until someone fixes them, so they
// are never probed and never count towards a systematic verdict. Else a
// few bad records that change while nothing else does would stop the run
// as a broken mapping, run after run.

// probesPerHalf is how many records of each half of a batch are tried on
// their own when both halves are refused. Chosen at random, so a batch
// with a few bad records is not taken for a broken mapping every run
// because they sit at the same places: with a bad fraction f, all four
// probes fail with chance f^4.
const probesPerHalf = 2

// minProbed is the smallest half that is probed, and the smallest batch
// whose records, all refused on their own, make the refusals systematic.
// Only the first split of a batch for a refusal probes: deeper down, the
// halves of a clump of bad records are all bad, and so are the halves of
// a small batch more often than of a large one.
const minProbed = 8

// refusal is a change the target refused on its own, and its answer.
type refusal struct {
	change change
	err    *target.Error
}

// isolation finds the refused records of one batch.
type isolation struct {
	d         *delivery
	delivered batch
	refused   []refusal
	probed    bool // the batch was split for a refusal, and probed if it had to be
	// A 413: largestAccepted is the largest part of the batch the target
	// took, the batch size for the rest of the run.
	tooLarge        bool
	largestAccepted int
}

// applyIsolating applies b and returns the changes the target accepted.
// The changes it refused on their own are in the rejected log when it
// returns nil.
func (d *delivery) applyIsolating(ctx context.Context, b batch) (batch, error) {
	is := &isolation{d: d}
	if err := is.deliver(ctx, b); err != nil {
		return nil, err
	}
	if is.tooLarge && is.largestAccepted > 0 {
		d.batchSize.lower(is.largestAccepted)
	}
	if !d.retrying && len(is.delivered) == 0 {
		// Every record refused on its own: not a few bad records, unless
		// most of them were in the log already (a few bad records that
		// changed, alone in the window).
		if n := len(d.rejected.unknownAt(b)); n >= minProbed {
			return nil, &RefusalsError{Connection: d.rejected.name, Tried: n, Systematic: true, Err: is.refused[len(is.refused)-1].err}
		}
	}
	if systematic, tried := d.rejected.systematic(); systematic && !d.retrying && len(is.refused) > 0 {
		// Batches too small for the rule above (a small batch_size, or
		// after a 413), and not one record taken.
		return nil, &RefusalsError{Connection: d.rejected.name, Tried: tried, Systematic: true, Err: is.refused[len(is.refused)-1].err}
	}
	if err := d.rejected.record(ctx, is.refused); err != nil {
		return nil, err
	}
	return is.delivered, nil
}

// deliver sends cs and, if the target refuses it, finds what it refuses.
func (is *isolation) deliver(ctx context.Context, cs batch) error {
	refused, err := is.try(ctx, cs)
	if err != nil || refused == nil {
		return err
	}
	return is.split(ctx, cs, refused)
}

// try sends cs as one batch. It returns the target's refusal, or nil with
// cs delivered, or the error of a batch that failed for another reason.
func (is *isolation) try(ctx context.Context, cs batch) (*target.Error, error) {
	err := is.d.sink.Apply(ctx, cs.ops())
	if err == nil {
		is.delivered = append(is.delivered, cs...)
		is.largestAccepted = max(is.largestAccepted, len(cs))
		is.d.rejected.took(len(cs))
		return nil, nil
	}
	var te *target.Error
	if !errors.As(err, &te) || !te.Refused() && !te.TooLarge() {
		return nil, err
	}
	if te.TooLarge() {
		is.tooLarge = true
	}
	return te, nil
}

// split finds the refused records of cs, which the target refused as a
// whole with why.
func (is *isolation) split(ctx context.Context, cs batch, why *target.Error) error {
	if len(cs) == 1 {
		return is.refuse(refusal{change: cs[0], err: why})
	}
	if is.d.retrying && why.Refused() {
		// Retries of the log: most are refused again. One at a time costs
		// a request each, where bisecting costs two.
		for i := range cs {
			if err := is.deliver(ctx, cs[i:i+1]); err != nil {
				return err
			}
		}
		return nil
	}
	halves := []batch{cs[:len(cs)/2], cs[len(cs)/2:]}
	whys := make([]*target.Error, len(halves))
	for i, h := range halves {
		refused, err := is.try(ctx, h)
		if err != nil {
			return err
		}
		whys[i] = refused
	}
	// A split for a 413 is no sign of refusals: the first split with
	// refused halves probes, whatever split it was.
	probe := !is.probed && !is.d.retrying && whys[0] != nil && whys[1] != nil &&
		whys[0].Refused() && whys[1].Refused() && len(halves[0]) >= minProbed &&
		len(is.d.rejected.unknownAt(halves[0])) >= probesPerHalf && len(is.d.rejected.unknownAt(halves[1])) >= probesPerHalf
	if probe || why.Refused() {
		is.probed = true
	}
	if probe {
		return is.probe(ctx, halves)
	}
	for i, h := range halves {
		if whys[i] != nil {
			if err := is.split(ctx, h, whys[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// probe tries a few records of each refused half on their own. If the
// target refuses every one, the refusals look systematic and the run
// stops; otherwise the rest of each half is delivered as usual.
func (is *isolation) probe(ctx context.Context, halves []batch) error {
	tried := 0
	var refused []refusal
	for hi, h := range halves {
		// Among the records not known (split checked there are enough):
		// known ones are refused anyway.
		candidates := is.d.rejected.unknownAt(h)
		picked := make([]int, 0, probesPerHalf)
		for _, k := range rand.Perm(len(candidates))[:probesPerHalf] {
			i := candidates[k]
			picked = append(picked, i)
			why, err := is.try(ctx, h[i:i+1:i+1])
			if err != nil {
				return err
			}
			tried++
			if why != nil {
				refused = append(refused, refusal{change: h[i], err: why})
			}
		}
		rest := make(batch, 0, len(h)-len(picked)) // the half without its probes
		for i, c := range h {
			if !slices.Contains(picked, i) {
				rest = append(rest, c)
			}
		}
		halves[hi] = rest
	}
	if len(refused) == tried {
		return &RefusalsError{Connection: is.d.rejected.name, Tried: tried, Systematic: true, Err: refused[tried-1].err}
	}
	for _, r := range refused {
		if err := is.refuse(r); err != nil {
			return err
		}
	}
	for _, h := range halves {
		if err := is.deliver(ctx, h); err != nil {
			return err
		}
	}
	return nil
}

// refuse keeps a record refused on its own, for the log, and counts it
// against the run's limit at once: a run over the limit stops before it
// bisects further.
func (is *isolation) refuse(r refusal) error {
	is.refused = append(is.refused, r)
	return is.d.rejected.count(r, is.d.retrying)
}

// batchLimit is the most records a run puts in one batch: the job's
// batch size until the target refuses a batch as too large (413), then
// the largest part of it the target took, for the rest of the run. Every
// delivery of the run (retries, window, reconcile) shares it.
type batchLimit struct {
	n          atomic.Int64
	connection string
	logger     *slog.Logger
}

func newBatchLimit(n int, connection string, logger *slog.Logger) *batchLimit {
	b := &batchLimit{connection: connection, logger: logger}
	b.n.Store(int64(max(n, 1)))
	return b
}

func (b *batchLimit) get() int { return int(b.n.Load()) }

// lower makes the limit n, if that is lower.
func (b *batchLimit) lower(n int) {
	n = max(n, 1)
	for {
		cur := b.n.Load()
		if int64(n) >= cur {
			return
		}
		if b.n.CompareAndSwap(cur, int64(n)) {
			b.logger.Info("the target refused a batch as too large; sending smaller batches for the rest of the run",
				"connection", b.connection, "batch_size", n)
			return
		}
	}
}
